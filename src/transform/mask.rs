//! Masking: the values at JSON paths are hidden, either all but their last characters or by a fixed value.
//!
//! With `keep_last: N` (default 0), a string keeps its last N characters and every other character becomes
//! `mask_char` (default `*`); a number or boolean is masked the same way as its text and becomes a string; `null`
//! stays `null`; in an object or array every such value inside is masked. With `replacement`, the value is replaced
//! whatever its type. A path that selects nothing leaves the record as it is.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::json_path::JsonPath;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MaskConfig {
    /// The values to mask. A `[*]` path masks every value it selects.
    pub(crate) paths: Vec<JsonPath>,
    /// Characters left visible at the end of each string. Default: 0.
    #[serde(default)]
    pub(crate) keep_last: usize,
    /// Default: `*`.
    #[serde(default = "default_mask_char")]
    pub(crate) mask_char: char,
    /// Replace the whole value with this instead. Excludes `keep_last` and `mask_char`.
    #[serde(default)]
    pub(crate) replacement: Option<Value>,
}

fn default_mask_char() -> char {
    '*'
}

#[derive(Debug, Clone)]
pub struct Mask {
    paths: Vec<JsonPath>,
    keep_last: usize,
    mask_char: char,
    replacement: Option<Value>,
}

impl Mask {
    pub(crate) fn new(config: &MaskConfig) -> Result<Self, String> {
        if config.paths.is_empty() {
            return Err("paths: name at least one path".into());
        }
        if config.replacement.is_some() && (config.keep_last != 0 || config.mask_char != '*') {
            return Err("`replacement` excludes `keep_last` and `mask_char`".into());
        }
        Ok(Self {
            paths: config.paths.clone(),
            keep_last: config.keep_last,
            mask_char: config.mask_char,
            replacement: config.replacement.clone(),
        })
    }

    fn mask_text(&self, text: &str) -> String {
        let count = text.chars().count();
        let hidden = count.saturating_sub(self.keep_last);
        text.chars()
            .enumerate()
            .map(|(index, c)| if index < hidden { self.mask_char } else { c })
            .collect()
    }

    fn mask_value(&self, value: &mut Value) {
        if let Some(replacement) = &self.replacement {
            *value = replacement.clone();
            return;
        }
        match value {
            Value::Null => {}
            Value::String(text) => *text = self.mask_text(text),
            Value::Number(_) | Value::Bool(_) => *value = Value::String(self.mask_text(&value.to_string())),
            Value::Array(items) => items.iter_mut().for_each(|item| self.mask_value(item)),
            Value::Object(map) => map.values_mut().for_each(|item| self.mask_value(item)),
        }
    }

    pub(crate) fn apply(&self, value: &mut Value) {
        for path in &self.paths {
            if path.is_multi() {
                // Mask through the parent of the wildcard by re-selecting each match in turn.
                let count = path.select(value).len();
                for index in 0..count {
                    if let Some(target) = path.select_nth_mut(value, index) {
                        self.mask_value(target);
                    }
                }
            } else if let Some(target) = path.select_mut(value) {
                self.mask_value(target);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn mask(paths: &[&str], keep_last: usize, replacement: Option<Value>) -> Mask {
        Mask::new(&MaskConfig {
            paths: paths.iter().map(|path| path.parse().unwrap()).collect(),
            keep_last,
            mask_char: '*',
            replacement,
        })
        .unwrap()
    }

    #[test]
    fn keeps_the_last_characters_of_each_value() {
        let mut value = json!({"userIdentity": {"principalId": "AIDAEXAMPLE", "accountId": 123456, "mfa": true, "none": null},
                               "ips": ["10.0.0.1", "10.0.0.2"]});
        mask(&["$.userIdentity", "$.ips[*]"], 2, None).apply(&mut value);
        assert_eq!(
            value,
            json!({"userIdentity": {"principalId": "*********LE", "accountId": "****56", "mfa": "**ue", "none": null},
                   "ips": ["******.1", "******.2"]})
        );
    }

    #[test]
    fn replacement_replaces_whatever_is_there() {
        let mut value = json!({"a": {"b": 1}, "c": "x"});
        mask(&["$.a", "$.missing"], 0, Some(json!("[masked]"))).apply(&mut value);
        assert_eq!(value, json!({"a": "[masked]", "c": "x"}));
    }

    #[test]
    fn short_strings_and_unicode() {
        let mut value = json!({"a": "é", "b": "日本語です"});
        mask(&["$.a", "$.b"], 2, None).apply(&mut value);
        assert_eq!(value, json!({"a": "é", "b": "***です"}));
    }
}
