//! The JSONPath subset EventBridge accepts in InputPathsMap and that the connectors use to pick fields:
//! `$`, `.name`, `['name']`, `[index]` and `[*]`. Parsed once at config load.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Field(String),
    Index(usize),
    Wildcard,
}

/// A parsed path. Displays as written.
#[derive(Clone, PartialEq, Eq)]
pub struct JsonPath {
    text: String,
    steps: Vec<Step>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid JSON path `{path}`: {reason}")]
pub struct JsonPathError {
    pub(crate) path: String,
    pub(crate) reason: String,
}

impl FromStr for JsonPath {
    type Err = JsonPathError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = |reason: &str| JsonPathError {
            path: text.to_owned(),
            reason: reason.to_owned(),
        };
        let mut rest = text.strip_prefix('$').ok_or_else(|| error("must start with `$`"))?;
        let mut steps = Vec::new();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('.') {
                let end = after.find(['.', '[']).unwrap_or(after.len());
                let name = &after[..end];
                if name.is_empty() {
                    return Err(error("empty field name after `.`"));
                }
                steps.push(if name == "*" {
                    Step::Wildcard
                } else {
                    Step::Field(name.to_owned())
                });
                rest = &after[end..];
            } else if let Some(after) = rest.strip_prefix('[') {
                let end = after.find(']').ok_or_else(|| error("`[` without `]`"))?;
                let inside = after[..end].trim();
                steps.push(if inside == "*" {
                    Step::Wildcard
                } else if let Some(quoted) = inside
                    .strip_prefix('\'')
                    .and_then(|s| s.strip_suffix('\''))
                    .or_else(|| inside.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
                {
                    Step::Field(quoted.to_owned())
                } else {
                    Step::Index(
                        inside
                            .parse()
                            .map_err(|_| error("a bracket holds an index, `*` or a quoted name"))?,
                    )
                });
                rest = &after[end + 1..];
            } else {
                return Err(error("expected `.` or `[` after a step"));
            }
        }
        Ok(Self {
            text: text.to_owned(),
            steps,
        })
    }
}

impl JsonPath {
    #[cfg(test)]
    fn as_str(&self) -> &str {
        &self.text
    }

    /// `$`.
    pub(crate) fn root() -> Self {
        Self {
            text: "$".to_owned(),
            steps: Vec::new(),
        }
    }

    /// This path followed by `.name`.
    pub(crate) fn child(&self, name: &str) -> Self {
        let mut steps = self.steps.clone();
        steps.push(Step::Field(name.to_owned()));
        Self {
            text: format!("${}", render(&steps)),
            steps,
        }
    }

    /// True if the path can select more than one value (it has a `[*]`).
    pub(crate) fn is_multi(&self) -> bool {
        self.steps.contains(&Step::Wildcard)
    }

    /// The first value the path selects, if any: `select`'s first, found without collecting the rest (a sink
    /// reads a record's detail-type and time this way). Every value `select` gives is as deep as the path is long,
    /// so its order is the order of a walk that goes down first.
    pub(crate) fn select_one<'v>(&self, value: &'v Value) -> Option<&'v Value> {
        self.select_one_below(0, value)
    }

    /// As `select_one`, for the steps after the first `depth`, on the value those steps lead to.
    pub(crate) fn select_one_below<'v>(&self, depth: usize, value: &'v Value) -> Option<&'v Value> {
        fn first<'v>(steps: &[Step], value: &'v Value) -> Option<&'v Value> {
            let Some((step, rest)) = steps.split_first() else {
                return Some(value);
            };
            match (step, value) {
                (Step::Field(name), Value::Object(map)) => first(rest, map.get(name)?),
                (Step::Index(index), Value::Array(items)) => first(rest, items.get(*index)?),
                (Step::Wildcard, Value::Array(items)) => items.iter().find_map(|item| first(rest, item)),
                (Step::Wildcard, Value::Object(map)) => map.values().find_map(|item| first(rest, item)),
                _ => None,
            }
        }
        first(self.steps.get(depth..)?, value)
    }

    /// Every value the path selects, in document order.
    pub(crate) fn select<'v>(&self, value: &'v Value) -> Vec<&'v Value> {
        self.select_below(0, value)
    }

    /// As `select`, for the steps after the first `depth`, on the value those steps lead to.
    pub(crate) fn select_below<'v>(&self, depth: usize, value: &'v Value) -> Vec<&'v Value> {
        let Some(steps) = self.steps.get(depth..) else {
            return Vec::new();
        };
        let mut current = vec![value];
        for step in steps {
            let mut next = Vec::new();
            for value in current {
                match (step, value) {
                    (Step::Field(name), Value::Object(map)) => next.extend(map.get(name)),
                    (Step::Index(index), Value::Array(items)) => next.extend(items.get(*index)),
                    (Step::Wildcard, Value::Array(items)) => next.extend(items.iter()),
                    (Step::Wildcard, Value::Object(map)) => next.extend(map.values()),
                    _ => {}
                }
            }
            current = next;
        }
        current
    }

    /// The path below a leading `.name` step: `$.detail.value` without `detail` is `$.value`.
    pub(crate) fn strip_field(&self, name: &str) -> Option<JsonPath> {
        match self.steps.split_first() {
            Some((Step::Field(first), rest)) if first == name => Some(Self {
                text: format!("${}", render(rest)),
                steps: rest.to_vec(),
            }),
            _ => None,
        }
    }

    /// The parent path and the last field name, for a path that ends in a field: `$.a.b` is `($.a, "b")`.
    pub(crate) fn split_last_field(&self) -> Option<(JsonPath, &str)> {
        match self.steps.split_last() {
            Some((Step::Field(last), parent)) => Some((
                Self {
                    text: format!("${}", render(parent)),
                    steps: parent.to_vec(),
                },
                last,
            )),
            _ => None,
        }
    }

    /// The field names of a path made only of fields (`$.a.b` gives `[a, b]`); `None` if it has an index or `[*]`.
    pub(crate) fn field_names(&self) -> Option<Vec<&str>> {
        let names = self.leading_field_names();
        (names.len() == self.steps.len()).then_some(names)
    }

    /// The name of the field the step after the first `depth` selects; `None` when that step is not a field.
    pub(crate) fn field_at(&self, depth: usize) -> Option<&str> {
        match self.steps.get(depth)? {
            Step::Field(name) => Some(name),
            Step::Index(_) | Step::Wildcard => None,
        }
    }

    /// The field names the path starts with, up to its first index or `[*]`: `$.a.b[*].c` gives `[a, b]`.
    pub(crate) fn leading_field_names(&self) -> Vec<&str> {
        self.steps
            .iter()
            .map_while(|step| match step {
                Step::Field(name) => Some(name.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The `index`-th value the path selects (in `select`'s order), for changing it in place.
    pub(crate) fn select_nth_mut<'v>(&self, value: &'v mut Value, index: usize) -> Option<&'v mut Value> {
        fn walk<'v>(steps: &[Step], value: &'v mut Value, index: &mut usize) -> Option<&'v mut Value> {
            let Some((step, rest)) = steps.split_first() else {
                if *index == 0 {
                    return Some(value);
                }
                *index -= 1;
                return None;
            };
            match (step, value) {
                (Step::Field(name), Value::Object(map)) => walk(rest, map.get_mut(name)?, index),
                (Step::Index(at), Value::Array(items)) => walk(rest, items.get_mut(*at)?, index),
                (Step::Wildcard, Value::Array(items)) => items.iter_mut().find_map(|item| walk(rest, item, index)),
                (Step::Wildcard, Value::Object(map)) => map.values_mut().find_map(|item| walk(rest, item, index)),
                _ => None,
            }
        }
        let mut remaining = index;
        walk(&self.steps, value, &mut remaining)
    }

    /// The value at this path, for changing it in place; `None` for paths with `[*]` or that lead nowhere.
    pub(crate) fn select_mut<'v>(&self, value: &'v mut Value) -> Option<&'v mut Value> {
        let mut current = value;
        for step in &self.steps {
            current = match (step, current) {
                (Step::Field(name), Value::Object(map)) => map.get_mut(name)?,
                (Step::Index(index), Value::Array(items)) => items.get_mut(*index)?,
                _ => return None,
            };
        }
        Some(current)
    }
}

fn render(steps: &[Step]) -> String {
    steps
        .iter()
        .map(|step| match step {
            Step::Field(name)
                if !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-') =>
            {
                format!(".{name}")
            }
            Step::Field(name) => format!("['{name}']"),
            Step::Index(index) => format!("[{index}]"),
            Step::Wildcard => "[*]".to_owned(),
        })
        .collect()
}

/// Ordered by text, so that paths can key a sorted map.
impl PartialOrd for JsonPath {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for JsonPath {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.text.cmp(&other.text)
    }
}

impl fmt::Debug for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.text, f)
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for JsonPath {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

/// How a JSON value is named in messages: "a string", "an object", ...
pub(crate) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl<'de> Deserialize<'de> for JsonPath {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn path(text: &str) -> JsonPath {
        text.parse().unwrap()
    }

    #[test]
    fn selects_fields_indexes_and_wildcards() {
        let event = json!({"detail": {"userIdentity": {"arn": "a"}, "resources": [{"ARN": "r1"}, {"ARN": "r2"}],
                           "odd key": 1}});
        assert_eq!(path("$.detail.userIdentity.arn").select_one(&event), Some(&json!("a")));
        assert_eq!(path("$.detail.resources[1].ARN").select_one(&event), Some(&json!("r2")));
        assert_eq!(path("$.detail['odd key']").select_one(&event), Some(&json!(1)));
        assert_eq!(
            path("$.detail.resources[*].ARN").select(&event),
            [&json!("r1"), &json!("r2")]
        );
        assert_eq!(path("$").select_one(&event), Some(&event));
        assert_eq!(path("$.missing.deeper").select_one(&event), None);
        assert!(path("$.a[*]").is_multi());
    }

    /// `select_one` is `select`'s first on generated documents and paths of fields, indexes and wildcards that
    /// find nothing, one value or many.
    #[test]
    fn select_one_is_the_first_that_select_gives() {
        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};

        fn document(rng: &mut StdRng, depth: usize) -> Value {
            match rng.random_range(0..if depth == 0 { 2 } else { 6 }) {
                0 => json!(rng.random_range(0..3)),
                1 => Value::Null,
                2 | 3 => Value::Array((0..rng.random_range(0..4)).map(|_| document(rng, depth - 1)).collect()),
                _ => Value::Object(
                    (0..rng.random_range(0..4))
                        .map(|_| {
                            (
                                ["a", "b", "c"][rng.random_range(0..3)].to_owned(),
                                document(rng, depth - 1),
                            )
                        })
                        .collect(),
                ),
            }
        }
        let mut rng = StdRng::seed_from_u64(17);
        let mut found = [0; 3];
        for _ in 0..20_000 {
            let value = document(&mut rng, 4);
            let text: String = (0..rng.random_range(0..4))
                .map(|_| match rng.random_range(0..5) {
                    0 | 1 => "[*]".to_owned(),
                    2 => format!("[{}]", rng.random_range(0..3)),
                    _ => format!(".{}", ["a", "b", "c"][rng.random_range(0..3)]),
                })
                .collect();
            let path = path(&format!("${text}"));
            let all = path.select(&value);
            found[all.len().min(2)] += 1;
            assert_eq!(path.select_one(&value), all.first().copied(), "{path:?} in {value}");
        }
        assert!(found.iter().all(|&count| count > 500), "{found:?}");
    }

    #[test]
    fn select_mut_changes_in_place() {
        let mut event = json!({"a": [{"b": 1}]});
        *path("$.a[0].b").select_mut(&mut event).unwrap() = json!(2);
        assert_eq!(event, json!({"a": [{"b": 2}]}));
        assert!(path("$.a[*].b").select_mut(&mut event).is_none());
    }

    #[test]
    fn splits_and_strips_steps() {
        let full = path("$.detail.value['odd key']");
        let relative = full.strip_field("detail").unwrap();
        assert_eq!(relative.as_str(), "$.value['odd key']");
        let (parent, last) = relative.split_last_field().unwrap();
        assert_eq!((parent.as_str(), last), ("$.value", "odd key"));
        assert!(full.strip_field("value").is_none());
        assert!(path("$.a[0]").split_last_field().is_none());
        assert_eq!(path("$.a['b c'][*].d").leading_field_names(), ["a", "b c"]);
        assert_eq!(path("$.a.b").leading_field_names(), ["a", "b"]);
        assert!(path("$[0].a").leading_field_names().is_empty());
        assert!(path("$").leading_field_names().is_empty());
    }

    #[test]
    fn rejects_malformed_paths() {
        for bad in ["detail", "$.", "$[", "$[x]", "$.a..b", "$a"] {
            assert!(bad.parse::<JsonPath>().is_err(), "{bad} should be rejected");
        }
    }
}
