//! EventBridge event patterns: parsed and checked once, then matched against JSON events.
//!
//! A pattern is an object. Each field holds either an array of matchers (the field matches when any matcher does)
//! or a nested pattern object; all fields must match. `$or` holds an array of two or more pattern objects of which
//! one must match. Arrays in the event match when any element does, and for objects inside arrays every field of
//! a pattern object must match within the same element (array consistency).
//!
//! Like EventBridge, `$or` is compiled by expanding it into alternatives, each the surrounding fields merged with one
//! `$or` branch, where a branch's field replaces a surrounding field of the same name. A pattern object is therefore
//! held as a list of flat alternatives, one of which must match.
//!
//! Matchers: exact strings, numbers (compared by value), `true`/`false`, `null`; `prefix`, `suffix` (each also
//! `{"equals-ignore-case": ...}`), `equals-ignore-case`, `wildcard`, `anything-but` (a value, a list, or a
//! `prefix`/`suffix`/`equals-ignore-case`/`wildcard`), `numeric` ranges, `exists`, and `cidr`.

mod matcher;
mod parse;

use serde_json::Value;

use self::matcher::Matcher;
pub use self::parse::PatternError;

/// A compiled event pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    root: Alternatives,
}

/// Pattern objects of which one must match.
type Alternatives = Vec<ObjectPattern>;

/// Fields that must all match.
#[derive(Debug, Clone, PartialEq, Default)]
struct ObjectPattern {
    fields: Vec<(String, FieldPattern)>,
}

#[derive(Debug, Clone, PartialEq)]
enum FieldPattern {
    Matchers(Vec<Matcher>),
    Object(Alternatives),
}

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
        parse::pattern(value).map(|root| Self { root })
    }

    /// True if `event` matches.
    pub fn matches(&self, event: &Value) -> bool {
        self.root.iter().any(|alternative| alternative.matches(Some(event)))
    }
}

impl ObjectPattern {
    /// `event` is the value at this pattern's place in the event, if there is one.
    fn matches(&self, event: Option<&Value>) -> bool {
        match event {
            // Array consistency: the whole pattern object must match one element.
            Some(Value::Array(items)) => {
                let mut objects = Vec::new();
                flatten(items, &mut objects);
                if objects.is_empty() {
                    self.matches_object(None)
                } else {
                    objects.into_iter().any(|item| self.matches(Some(item)))
                }
            }
            Some(Value::Object(map)) => self.matches_object(Some(map)),
            // A leaf where the pattern expects an object: nothing below it exists.
            _ => self.matches_object(None),
        }
    }

    fn matches_object(&self, object: Option<&serde_json::Map<String, Value>>) -> bool {
        self.fields.iter().all(|(name, field)| {
            let value = object.and_then(|object| object.get(name));
            field.matches(value)
        })
    }
}

/// Collects the elements of nested arrays.
fn flatten<'v>(items: &'v [Value], into: &mut Vec<&'v Value>) {
    for item in items {
        match item {
            Value::Array(inner) => flatten(inner, into),
            other => into.push(other),
        }
    }
}

impl FieldPattern {
    fn matches(&self, value: Option<&Value>) -> bool {
        match self {
            Self::Object(alternatives) => alternatives.iter().any(|alternative| alternative.matches(value)),
            Self::Matchers(matchers) => {
                let mut leaves = Vec::new();
                match value {
                    Some(Value::Array(items)) => flatten(items, &mut leaves),
                    Some(other) => leaves.push(other),
                    None => {}
                }
                // Objects are not values a matcher can test; only leaves count.
                leaves.retain(|leaf| !leaf.is_object());
                if leaves.is_empty() {
                    return matchers.iter().any(Matcher::matches_absent);
                }
                leaves
                    .iter()
                    .any(|leaf| matchers.iter().any(|matcher| matcher.matches(leaf)))
            }
        }
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
        assert!(matches(r#"{"ip": [{"cidr": "::1/128"}]}"#, json!({"ip": "::1"})));
        assert!(matches(
            r#"{"ip": [{"cidr": "0.0.0.0/0"}]}"#,
            json!({"ip": "203.0.113.9"})
        ));
        assert!(!matches(
            r#"{"ip": [{"cidr": "10.0.0.0/8"}]}"#,
            json!({"ip": "not an address"})
        ));
        assert!(Pattern::parse(r#"{"ip": [{"cidr": "2001:db8::/129"}]}"#).is_err());
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
