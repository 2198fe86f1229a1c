//! Record transforms, applied in order like Kafka Connect's single message transforms. Each is configured as a
//! one-key map in the connector's `transforms:` list, checked at load, and applied to a record's decoded key and
//! value. A record a transform cannot handle is a record error (the connector's `errors` policy), never a panic.

mod dedupe;
mod input_transformer;
mod mask;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use self::dedupe::Verdict;
pub use self::dedupe::{Dedupe, DedupeConfig};
pub use self::input_transformer::{InputTransformer, InputTransformerConfig};
pub use self::mask::{Mask, MaskConfig};
use crate::json_path::JsonPath;
use crate::pattern::Pattern;

/// Where the record came from, for transforms that use it.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub(crate) connector: &'a str,
    pub(crate) topic: &'a str,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    /// Milliseconds since the epoch.
    pub(crate) timestamp: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{transform}: {message}")]
pub(crate) struct TransformError {
    pub(crate) transform: &'static str,
    pub(crate) message: String,
}

/// The connector's `transforms:` list. Each entry is a one-key map (`- mask: {...}`), not a YAML tag.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(transparent)]
pub(crate) struct Transforms(#[serde(with = "serde_norway::with::singleton_map_recursive")] pub Vec<TransformConfig>);

/// One entry of `transforms:`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum TransformConfig {
    /// Keep the records whose value matches an event pattern (with `negate: true`, drop them).
    Filter(FilterConfig),
    /// Hide the values at JSON paths.
    Mask(MaskConfig),
    /// EventBridge's InputPathsMap and InputTemplate: the record value becomes the template's output.
    InputTransformer(InputTransformerConfig),
    /// Set a field to a fixed value, or to the record's topic, partition, offset or timestamp.
    InsertField(InsertFieldConfig),
    /// Remove fields.
    DropFields(PathsConfig),
    /// Replace the value with the value at a path.
    ExtractField(PathConfig),
    /// Rename fields, keeping them where they are.
    RenameFields(RenameFieldsConfig),
    /// Set the record key to the value at a path of the value.
    SetKey(PathConfig),
    /// Drop records whose key was seen within a window. At most one per connector.
    Dedupe(DedupeConfig),
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FilterConfig {
    /// An event pattern, as a YAML map or as JSON text.
    pub(crate) pattern: Value,
    /// Drop the matching records instead of keeping them. Default: false.
    #[serde(default)]
    pub(crate) negate: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InsertFieldConfig {
    /// Where to put it: a path ending in a field name, e.g. `$.ebconnect.topic`. Missing parent objects are made.
    pub(crate) path: JsonPath,
    /// A fixed value. Exactly one of `value` and `from`.
    #[serde(default)]
    pub(crate) value: Option<Value>,
    /// `topic`, `partition`, `offset` or `timestamp` (RFC 3339) of the record.
    #[serde(default)]
    pub(crate) from: Option<RecordField>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RecordField {
    Topic,
    Partition,
    Offset,
    Timestamp,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PathsConfig {
    pub(crate) paths: Vec<JsonPath>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PathConfig {
    pub(crate) path: JsonPath,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RenameFieldsConfig {
    /// Path of a field → its new name, e.g. `$.userIdentity.arn: principalArn`.
    pub(crate) renames: BTreeMap<JsonPath, String>,
}

/// A checked transform, ready to apply.
#[derive(Debug, Clone)]
enum Transform {
    Filter {
        pattern: Pattern,
        negate: bool,
    },
    Mask(Mask),
    InputTransformer(InputTransformer),
    InsertField {
        parent: JsonPath,
        field: String,
        value: Option<Value>,
        from: Option<RecordField>,
    },
    DropFields(Vec<(JsonPath, String)>),
    ExtractField(JsonPath),
    RenameFields(Vec<(JsonPath, String, String)>),
    SetKey(JsonPath),
    Dedupe(Dedupe),
}

/// A record as the transforms see it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Decoded {
    pub(crate) key: Value,
    pub(crate) value: Value,
}

/// The connector's transforms, in order.
#[derive(Debug, Clone, Default)]
pub struct Chain {
    transforms: Vec<Transform>,
}

fn field_path(path: &JsonPath, what: &str) -> Result<(JsonPath, String), String> {
    path.split_last_field()
        .filter(|_| !path.is_multi())
        .map(|(parent, field)| (parent, field.to_owned()))
        .ok_or_else(|| format!("{what}: `{path}` must end in a field name and have no `[*]`"))
}

impl Chain {
    /// Checks every transform; the error names its position, e.g. `transforms[1].mask: ...`.
    pub(crate) fn new(configs: &[TransformConfig]) -> Result<Self, String> {
        let transforms: Vec<Transform> = configs
            .iter()
            .enumerate()
            .map(|(index, config)| Self::build(config).map_err(|message| format!("transforms[{index}].{message}")))
            .collect::<Result<_, _>>()?;
        if let Some(index) = transforms
            .iter()
            .enumerate()
            .filter(|(_, transform)| matches!(transform, Transform::Dedupe(_)))
            .nth(1)
            .map(|(index, _)| index)
        {
            return Err(format!(
                "transforms[{index}].dedupe: a connector has at most one dedupe"
            ));
        }
        Ok(Self { transforms })
    }

    fn build(config: &TransformConfig) -> Result<Transform, String> {
        Ok(match config {
            TransformConfig::Filter(filter) => {
                let pattern = match &filter.pattern {
                    Value::String(text) => Pattern::parse(text),
                    other => Pattern::from_value(other),
                }
                .map_err(|error| format!("filter.pattern: {error}"))?;
                Transform::Filter {
                    pattern,
                    negate: filter.negate,
                }
            }
            TransformConfig::Mask(mask) => Transform::Mask(Mask::new(mask).map_err(|error| format!("mask: {error}"))?),
            TransformConfig::InputTransformer(config) => Transform::InputTransformer(
                InputTransformer::new(config).map_err(|error| format!("input_transformer.{error}"))?,
            ),
            TransformConfig::InsertField(insert) => {
                if insert.value.is_some() == insert.from.is_some() {
                    return Err("insert_field: give exactly one of `value` and `from`".into());
                }
                let (parent, field) = field_path(&insert.path, "insert_field.path")?;
                Transform::InsertField {
                    parent,
                    field,
                    value: insert.value.clone(),
                    from: insert.from,
                }
            }
            TransformConfig::DropFields(drop) => Transform::DropFields(
                drop.paths
                    .iter()
                    .map(|path| field_path(path, "drop_fields.paths"))
                    .collect::<Result<_, _>>()?,
            ),
            TransformConfig::ExtractField(extract) => {
                if extract.path.is_multi() {
                    return Err(format!("extract_field.path: `{}` must select one value", extract.path));
                }
                Transform::ExtractField(extract.path.clone())
            }
            TransformConfig::RenameFields(rename) => Transform::RenameFields(
                rename
                    .renames
                    .iter()
                    .map(|(path, to)| {
                        field_path(path, "rename_fields.renames").map(|(parent, from)| (parent, from, to.clone()))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            TransformConfig::SetKey(set) => {
                if set.path.is_multi() {
                    return Err(format!("set_key.path: `{}` must select one value", set.path));
                }
                Transform::SetKey(set.path.clone())
            }
            TransformConfig::Dedupe(config) => {
                Transform::Dedupe(Dedupe::new(config).map_err(|error| format!("dedupe.{error}"))?)
            }
        })
    }

    /// The chain for one run of its connector: the same transforms, the dedupe with nothing seen.
    pub(crate) fn for_run(&self) -> Self {
        Self {
            transforms: self
                .transforms
                .iter()
                .map(|transform| match transform {
                    Transform::Dedupe(dedupe) => Transform::Dedupe(dedupe.fresh()),
                    other => other.clone(),
                })
                .collect(),
        }
    }

    /// The chain's dedupe transform, if it has one.
    pub(crate) fn dedupe(&self) -> Option<&Dedupe> {
        self.transforms.iter().find_map(|transform| match transform {
            Transform::Dedupe(dedupe) => Some(dedupe),
            _ => None,
        })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.transforms.is_empty()
    }

    /// Applies every transform. `Ok(None)` means a filter or the dedupe dropped the record.
    pub(crate) fn apply(&self, record: Decoded, context: &Context<'_>) -> Result<Option<Decoded>, TransformError> {
        Ok(self.apply_keyed(record, context)?.map(|applied| applied.record))
    }

    /// As `apply`, also giving the key the dedupe admitted the record by.
    pub(crate) fn apply_keyed(
        &self,
        mut record: Decoded,
        context: &Context<'_>,
    ) -> Result<Option<Applied>, TransformError> {
        let mut dedupe_key = None;
        for transform in &self.transforms {
            match transform {
                Transform::Filter { pattern, negate } => {
                    if pattern.matches(&record.value) == *negate {
                        return Ok(None);
                    }
                }
                Transform::Mask(mask) => mask.apply(&mut record.value),
                Transform::InputTransformer(transformer) => record.value = transformer.apply(&record.value, context)?,
                Transform::InsertField {
                    parent,
                    field,
                    value,
                    from,
                } => {
                    let inserted = match (value, from) {
                        (Some(value), _) => value.clone(),
                        (None, Some(RecordField::Topic)) => Value::from(context.topic),
                        (None, Some(RecordField::Partition)) => Value::from(context.partition),
                        (None, Some(RecordField::Offset)) => Value::from(context.offset),
                        (None, Some(RecordField::Timestamp)) => context
                            .timestamp
                            .and_then(chrono::DateTime::from_timestamp_millis)
                            .map(|time| Value::String(time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)))
                            .unwrap_or(Value::Null),
                        (None, None) => Value::Null,
                    };
                    let object = object_at(&mut record.value, parent).ok_or_else(|| TransformError {
                        transform: "insert_field",
                        message: format!("`{parent}` is not an object in this record"),
                    })?;
                    object.insert(field.clone(), inserted);
                }
                Transform::DropFields(fields) => {
                    for (parent, field) in fields {
                        if let Some(Value::Object(object)) = parent.select_mut(&mut record.value) {
                            object.shift_remove(field);
                        }
                    }
                }
                Transform::ExtractField(path) => {
                    record.value = path.select_one(&record.value).cloned().ok_or_else(|| TransformError {
                        transform: "extract_field",
                        message: format!("`{path}` selects nothing in this record"),
                    })?;
                }
                Transform::RenameFields(renames) => {
                    for (parent, from, to) in renames {
                        if let Some(Value::Object(object)) = parent.select_mut(&mut record.value) {
                            if object.contains_key(from) {
                                // Rebuilt so that the renamed field keeps its place.
                                *object = std::mem::take(object)
                                    .into_iter()
                                    .map(|(name, value)| {
                                        if name == *from {
                                            (to.clone(), value)
                                        } else {
                                            (name, value)
                                        }
                                    })
                                    .collect();
                            }
                        }
                    }
                }
                Transform::SetKey(path) => {
                    record.key = path.select_one(&record.value).cloned().ok_or_else(|| TransformError {
                        transform: "set_key",
                        message: format!("`{path}` selects nothing in this record"),
                    })?;
                }
                Transform::Dedupe(dedupe) => {
                    // A record without a timestamp is judged at the time it is read.
                    let timestamp = context
                        .timestamp
                        .unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
                    match dedupe.judge(context.connector, &record.value, timestamp) {
                        Verdict::Duplicate => return Ok(None),
                        Verdict::Admitted(key) => dedupe_key = Some(key),
                        Verdict::Unkeyed => {}
                    }
                }
            }
        }
        Ok(Some(Applied { record, dedupe_key }))
    }
}

/// A record the chain let through.
#[derive(Debug)]
pub(crate) struct Applied {
    pub(crate) record: Decoded,
    /// The key the dedupe transform remembered it by.
    pub(crate) dedupe_key: Option<String>,
}

/// The object at `path`, making missing objects on the way; `None` if something else is in the way or the path has
/// indexes.
fn object_at<'v>(value: &'v mut Value, path: &JsonPath) -> Option<&'v mut Map<String, Value>> {
    if value.is_null() {
        *value = Value::Object(Map::new());
    }
    let mut current = value;
    for name in path.field_names()? {
        current = current
            .as_object_mut()?
            .entry(name.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    current.as_object_mut()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn chain(yaml: &str) -> Result<Chain, String> {
        let configs: Transforms = serde_norway::from_str(yaml).map_err(|error| error.to_string())?;
        Chain::new(&configs.0)
    }

    fn context() -> Context<'static> {
        Context {
            connector: "c",
            topic: "audit",
            partition: 2,
            offset: 41,
            timestamp: Some(0),
        }
    }

    fn run(chain: &Chain, value: Value) -> Result<Option<Decoded>, TransformError> {
        chain.apply(
            Decoded {
                key: Value::Null,
                value,
            },
            &context(),
        )
    }

    #[test]
    fn filter_keeps_or_drops_by_pattern() {
        let keep_s3 = chain("- filter:\n    pattern: {eventSource: [s3.amazonaws.com]}\n").unwrap();
        assert!(run(&keep_s3, json!({"eventSource": "s3.amazonaws.com"}))
            .unwrap()
            .is_some());
        assert!(run(&keep_s3, json!({"eventSource": "ec2.amazonaws.com"}))
            .unwrap()
            .is_none());
        let drop_noise =
            chain("- filter:\n    pattern: '{\"userIdentity\": {\"type\": [\"AWSService\"]}}'\n    negate: true\n")
                .unwrap();
        assert!(run(&drop_noise, json!({"userIdentity": {"type": "AWSService"}}))
            .unwrap()
            .is_none());
        assert!(run(&drop_noise, json!({"userIdentity": {"type": "IAMUser"}}))
            .unwrap()
            .is_some());
    }

    #[test]
    fn field_operations_in_order() {
        let chain = chain(
            "- insert_field: {path: $.meta.topic, from: topic}\n\
             - insert_field: {path: $.meta.offset, from: offset}\n\
             - insert_field: {path: $.pipeline, value: ebconnect}\n\
             - rename_fields: {renames: {$.userIdentity.arn: principalArn}}\n\
             - drop_fields: {paths: [$.requestParameters, $.absent]}\n\
             - set_key: {path: $.userIdentity.principalId}\n",
        )
        .unwrap();
        let out = run(
            &chain,
            json!({"userIdentity": {"arn": "arn:x", "principalId": "AIDA1"}, "requestParameters": {"a": 1}}),
        )
        .unwrap()
        .unwrap();
        assert_eq!(out.key, json!("AIDA1"));
        assert_eq!(
            out.value,
            json!({"userIdentity": {"principalArn": "arn:x", "principalId": "AIDA1"},
                   "meta": {"topic": "audit", "offset": 41}, "pipeline": "ebconnect"})
        );
        let keys: Vec<&String> = out.value["userIdentity"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["principalArn", "principalId"], "a renamed field keeps its place");
    }

    #[test]
    fn extract_field_and_record_errors() {
        let extract = chain("- extract_field: {path: $.detail}\n").unwrap();
        let out = run(&extract, json!({"detail": {"x": 1}})).unwrap().unwrap();
        assert_eq!(out.value, json!({"x": 1}));
        let error = run(&extract, json!({"other": 1})).unwrap_err();
        assert_eq!(error.transform, "extract_field");
        let insert = chain("- insert_field: {path: $.a.b, value: 1}\n").unwrap();
        assert!(run(&insert, json!({"a": "not an object"})).is_err());
    }

    #[test]
    fn bad_settings_name_the_transform() {
        let error = chain("- mask: {paths: [$.a]}\n- filter: {pattern: {a: 1}}\n").unwrap_err();
        assert!(error.starts_with("transforms[1].filter.pattern:"), "{error}");
        let error = chain("- insert_field: {path: $.a, value: 1, from: topic}\n").unwrap_err();
        assert!(error.contains("exactly one of `value` and `from`"), "{error}");
        assert!(chain("- explode: {}\n")
            .unwrap_err()
            .contains("unknown variant `explode`"));
        assert!(chain("- drop_fields: {paths: [$.a], extra: 1}\n")
            .unwrap_err()
            .contains("unknown field `extra`"));
    }
}
