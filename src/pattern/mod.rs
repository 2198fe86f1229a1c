//! EventBridge event patterns: parsed and checked once, then matched against JSON events, with the semantics of
//! event-ruler, the library EventBridge's matching comes from (its version and the few deliberate differences are
//! in the README, "Event patterns"; `tests/it/pattern_differential.rs` checks agreement against the library itself).
//!
//! As in event-ruler, a pattern is compiled into sub-rules, one of which must match. A sub-rule is a set of fields,
//! each named by its flattened path (the keys from the root joined with dots, so `{"a": {"b": ...}}` and
//! `{"a.b": ...}` name the same field), each with matchers of which one must accept a value at that path. `$or`
//! forks the sub-rules built so far, and a field written again replaces the earlier one of the same path.
//!
//! An event is seen as its leaves (strings, numbers, booleans, nulls), each named by its flattened path; an array's
//! elements all sit at the array's path. Array consistency: the values a sub-rule matches must not come from
//! different elements of the same array. Fields are tried in event-ruler's order (sorted by name, as Java sorts
//! strings), which matters for `exists: false`: a field is absent if no value at its path is consistent with the
//! elements the fields before it matched in.

mod matcher;
mod parse;

use serde_json::Value;

use self::matcher::Matcher;
pub use self::parse::PatternError;

/// A compiled event pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    rules: Vec<SubRule>,
}

/// Fields that must all match, in event-ruler's order.
#[derive(Debug, Clone, PartialEq, Default)]
struct SubRule {
    fields: Vec<Field>,
}

#[derive(Debug, Clone, PartialEq)]
struct Field {
    /// The flattened path, e.g. `detail.userIdentity.type`.
    path: String,
    /// Where `path` may be split into keys: the byte offsets of its dots.
    dots: Vec<usize>,
    matchers: Vec<Matcher>,
    /// `exists: false` is among the matchers: the field also matches when it has no value.
    absent: bool,
}

/// The array elements a value lies in: (the array, the element's index), outermost first. An array is named by
/// its address, which is unique while the event is borrowed.
type Membership = Vec<(usize, usize)>;

impl Pattern {
    /// Parses and checks a pattern given as JSON text.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let value: Value = serde_json::from_str(text).map_err(|error| PatternError {
            path: String::new(),
            message: format!("not valid JSON: {error}"),
        })?;
        if let Some(literal) = parse::underflowing_number(text) {
            return Err(PatternError {
                path: String::new(),
                message: format!("cannot compare number {literal}: it is below the smallest double"),
            });
        }
        Self::from_value(&value)
    }

    /// Checks and compiles a pattern given as a JSON value (e.g. written in YAML).
    pub fn from_value(value: &Value) -> Result<Self, PatternError> {
        parse::pattern(value).map(|rules| Self { rules })
    }

    /// True if `event` matches. An event that is not a JSON object matches nothing.
    pub fn matches(&self, event: &Value) -> bool {
        event.is_object()
            && self
                .rules
                .iter()
                .any(|rule| fields_match(&rule.fields, event, &mut Membership::new()))
    }
}

/// Whether `fields` all match, each in an element consistent with `chosen`, the elements matched so far.
fn fields_match(fields: &[Field], event: &Value, chosen: &mut Membership) -> bool {
    let Some((field, rest)) = fields.split_first() else {
        return true;
    };
    if field.absent && !field.has_consistent_value(event, chosen) && fields_match(rest, event, chosen) {
        return true;
    }
    if field.matchers.is_empty() {
        return false;
    }
    let mut membership = Membership::new();
    field.visit(event, &mut membership, &mut |value, membership| {
        if !field.matchers.iter().any(|matcher| matcher.matches(value)) {
            return false;
        }
        let mark = chosen.len();
        let matched = choose(chosen, membership) && fields_match(rest, event, chosen);
        chosen.truncate(mark);
        matched
    })
}

/// Adds a value's elements to `chosen`, or answers false if it lies in another element of an array already chosen.
fn choose(chosen: &mut Membership, membership: &[(usize, usize)]) -> bool {
    for &(array, index) in membership {
        match chosen.iter().find(|(other, _)| *other == array) {
            Some(&(_, other_index)) if other_index != index => return false,
            Some(_) => {}
            None => chosen.push((array, index)),
        }
    }
    true
}

fn consistent(chosen: &[(usize, usize)], membership: &[(usize, usize)]) -> bool {
    membership.iter().all(|&(array, index)| {
        chosen
            .iter()
            .all(|&(other, other_index)| other != array || other_index == index)
    })
}

/// Answers true to stop the walk.
type Visitor<'v, 'e> = dyn FnMut(&'e Value, &[(usize, usize)]) -> bool + 'v;

impl Field {
    fn new(path: String, matchers: Vec<Matcher>, absent: bool) -> Self {
        let dots = path.match_indices('.').map(|(at, _)| at).collect();
        Self {
            path,
            dots,
            matchers,
            absent,
        }
    }

    fn has_consistent_value(&self, event: &Value, chosen: &[(usize, usize)]) -> bool {
        self.visit(event, &mut Membership::new(), &mut |_, membership| {
            consistent(chosen, membership)
        })
    }

    /// Calls `found` with every leaf at this field's path, until it answers true.
    fn visit<'e>(&self, event: &'e Value, membership: &mut Membership, found: &mut Visitor<'_, 'e>) -> bool {
        self.visit_object(event, 0, membership, found)
    }

    /// `value` is reached by the path's bytes before `start`; the keys that follow may hold dots themselves.
    fn visit_object<'e>(
        &self,
        value: &'e Value,
        start: usize,
        membership: &mut Membership,
        found: &mut Visitor<'_, 'e>,
    ) -> bool {
        let Value::Object(map) = value else {
            return false;
        };
        let ends = self.dots.iter().copied().filter(|&dot| dot > start);
        for (candidate, end) in ends.chain([self.path.len()]).enumerate() {
            let key = &self.path[start..end];
            // The shortest key is the one events have; a key holding dots is rare, and finding that it is not there
            // by comparing lengths costs less than hashing it.
            let child = if candidate == 0 {
                map.get(key)
            } else {
                map.iter()
                    .find(|(name, _)| name.len() == key.len() && *name == key)
                    .map(|(_, child)| child)
            };
            let Some(child) = child else {
                continue;
            };
            let done = if end == self.path.len() {
                leaves(child, membership, found)
            } else {
                self.descend(child, end + 1, membership, found)
            };
            if done {
                return true;
            }
        }
        false
    }

    fn descend<'e>(
        &self,
        value: &'e Value,
        start: usize,
        membership: &mut Membership,
        found: &mut Visitor<'_, 'e>,
    ) -> bool {
        match value {
            Value::Object(_) => self.visit_object(value, start, membership, found),
            Value::Array(items) => {
                let array = items.as_ptr() as usize;
                items.iter().enumerate().any(|(index, item)| {
                    if !matches!(item, Value::Object(_) | Value::Array(_)) {
                        return false;
                    }
                    membership.push((array, index));
                    let done = self.descend(item, start, membership, found);
                    membership.pop();
                    done
                })
            }
            _ => false,
        }
    }
}

/// The leaves of a value at a field's path: the value itself, or the leaves of an array's elements at any depth.
/// An object's leaves are at longer paths.
fn leaves<'e>(value: &'e Value, membership: &mut Membership, found: &mut Visitor<'_, 'e>) -> bool {
    match value {
        Value::Object(_) => false,
        Value::Array(items) => {
            let array = items.as_ptr() as usize;
            items.iter().enumerate().any(|(index, item)| match item {
                Value::Object(_) => false,
                Value::Array(_) => {
                    membership.push((array, index));
                    let done = leaves(item, membership, found);
                    membership.pop();
                    done
                }
                leaf => found(leaf, membership),
            })
        }
        leaf => found(leaf, membership),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn matches(pattern: &str, event: Value) -> bool {
        Pattern::parse(pattern).unwrap().matches(&event)
    }

    #[test]
    fn cidr_matches_ipv4_and_ipv6_ranges() {
        let v6 = r#"{"ip": [{"cidr": "2001:db8::/32"}]}"#;
        assert!(matches(v6, json!({"ip": "2001:db8:1234::1"})));
        assert!(matches(v6, json!({"ip": "2001:0db8:ffff:ffff:ffff:ffff:ffff:ffff"})));
        assert!(!matches(v6, json!({"ip": "2001:db9::1"})));
        assert!(
            !matches(v6, json!({"ip": "10.0.0.1"})),
            "an IPv4 address is not in an IPv6 range"
        );
        assert!(matches(r#"{"ip": [{"cidr": "::/127"}]}"#, json!({"ip": "::1"})));
        assert!(matches(
            r#"{"ip": [{"cidr": "0.0.0.0/0"}]}"#,
            json!({"ip": "203.0.113.9"})
        ));
        assert!(!matches(
            r#"{"ip": [{"cidr": "10.0.0.0/8"}]}"#,
            json!({"ip": "not an address"})
        ));
        assert!(matches(
            r#"{"ip": [{"cidr": "253.0.0.0/8"}]}"#,
            json!({"ip": "253.252.51.07"})
        ));
        assert!(Pattern::parse(r#"{"ip": [{"cidr": "2001:db8::/128"}]}"#).is_err());
        assert!(Pattern::parse(r#"{"ip": [{"cidr": "10.0.0.1/32"}]}"#).is_err());
    }

    #[test]
    fn or_branches_add_to_the_fields_around_them() {
        let pattern = r#"{"detail": {"eventSource": ["s3.amazonaws.com"]},
            "$or": [{"detail": {"eventName": ["GetBucketAcl"]}}, {"detail": {"eventName": ["PutBucketAcl"]}}]}"#;
        assert!(!matches(
            pattern,
            json!({"detail": {"eventSource": "ec2.amazonaws.com", "eventName": "GetBucketAcl"}})
        ));
        assert!(matches(
            pattern,
            json!({"detail": {"eventSource": "s3.amazonaws.com", "eventName": "PutBucketAcl"}})
        ));
    }

    #[test]
    fn dotted_keys_are_flattened_paths() {
        assert!(matches(r#"{"a.b": ["x"]}"#, json!({"a": {"b": "x"}})));
        assert!(matches(r#"{"a": {"b": ["x"]}}"#, json!({"a.b": "x"})));
        assert!(matches(r#"{"a": {"b.c": ["x"]}}"#, json!({"a.b": {"c": "x"}})));
    }

    #[test]
    fn anything_but_matches_values_that_are_not_strings() {
        assert!(matches(r#"{"a": [{"anything-but": "x"}]}"#, json!({"a": null})));
        assert!(matches(
            r#"{"a": [{"anything-but": {"prefix": "x"}}]}"#,
            json!({"a": 5})
        ));
        assert!(!matches(r#"{"a": [{"anything-but": 5}]}"#, json!({"a": 5.0})));
        assert!(matches(r#"{"a": [{"anything-but": 5}]}"#, json!({"a": "5"})));
    }

    #[test]
    fn numbers_compare_by_value_only_when_a_double_holds_them() {
        assert!(matches(r#"{"a": [5]}"#, json!({"a": 5.0})));
        assert!(!matches(
            r#"{"a": [9007199254740992]}"#,
            json!({"a": 9007199254740993u64})
        ));
        assert!(matches(
            r#"{"a": [9007199254740993]}"#,
            json!({"a": 9007199254740993u64})
        ));
        assert!(Pattern::parse(r#"{"a": [{"numeric": ["=", 1152921504606846976]}]}"#).is_err());
        assert!(matches(r#"{"a": [{"numeric": [">=", 0]}]}"#, json!({"a": -0.0})));
    }

    #[test]
    fn equals_ignore_case_follows_the_patterns_cases() {
        let pattern = |text: &str| format!(r#"{{"a": [{{"equals-ignore-case": "{text}"}}]}}"#);
        assert!(matches(&pattern("ß"), json!({"a": "SS"})));
        assert!(!matches(&pattern("ß"), json!({"a": "ss"})));
        assert!(matches(&pattern("\u{212a}"), json!({"a": "k"})));
        assert!(!matches(&pattern("k"), json!({"a": "\u{212a}"})));
        assert!(matches(&pattern("ǅ"), json!({"a": "ǅ"})));
        assert!(matches(&pattern("😀x"), json!({"a": "😀X"})));
    }

    #[test]
    fn errors_name_the_place() {
        let error = Pattern::parse(r#"{"detail": {"eventName": [{"prefix": 3}]}}"#).unwrap_err();
        assert_eq!(error.path, "detail.eventName[0].prefix");
        assert_eq!(
            error.to_string(),
            "event pattern is not valid at `detail.eventName[0].prefix`: prefix match pattern must be a string"
        );
    }
}
