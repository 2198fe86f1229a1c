//! One PutEvents entry, and its size as EventBridge counts it against the request limit.

use std::sync::Arc;

use serde_json::Value;

use crate::json_text::{quoted_json, QuotedJson};

/// An event's detail: JSON text, kept as the JSON string that a PutEvents body carries it in, so that the body
/// copies it rather than escaping it again (see `json_text`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detail(QuotedJson);

impl Detail {
    /// The compact JSON text of `value`.
    pub(crate) fn from_value(value: &Value) -> Self {
        Self(quoted_json(value))
    }

    /// Text already written in its quoted form; the caller has made sure it is a JSON object.
    pub(crate) fn from_quoted_object(object: QuotedJson) -> Self {
        Self(object)
    }

    /// The JSON string holding the text, quotes included, as UTF-8.
    pub(crate) fn quoted(&self) -> &bytes::Bytes {
        self.0.quoted()
    }

    /// The UTF-8 length of the JSON text itself, which is what EventBridge counts.
    pub(crate) fn text_len(&self) -> usize {
        self.0.text_len()
    }

    /// Keeps the text in memory of its own, if it shares a block with other details (see
    /// `json_text::write_quoted`), so that a detail kept waiting does not keep the whole block.
    pub(crate) fn hold_alone(&mut self) {
        self.0.hold_alone();
    }
}

/// A PutEvents entry without its bus (the bus is the connector's, set per request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Shared: most connectors give every entry the same source.
    pub(crate) source: Arc<str>,
    pub(crate) detail_type: String,
    /// A JSON object.
    pub(crate) detail: Detail,
    /// Milliseconds since the epoch; `None` lets EventBridge stamp the time of the call.
    pub(crate) time: Option<i64>,
    pub(crate) resources: Vec<String>,
    pub(crate) trace_header: Option<String>,
}

impl Entry {
    /// The size EventBridge counts, per "Calculating Amazon EventBridge PutEvents event entry size": 14 bytes
    /// for a time, plus the UTF-8 lengths of source, detail-type, detail and each resource. The trace header
    /// and the bus name do not count.
    pub(crate) fn size(&self) -> usize {
        let time = if self.time.is_some() { 14 } else { 0 };
        time + self.source.len()
            + self.detail_type.len()
            + self.detail.text_len()
            + self.resources.iter().map(String::len).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn size_follows_the_aws_rule() {
        let mut entry = Entry {
            source: "kafka-connect.x".into(),
            detail_type: "é".into(),
            detail: Detail::from_value(&json!({"a": 1})),
            time: None,
            resources: vec!["arn:aws:s3:::b".into(), "r".into()],
            trace_header: Some("Root=1-abc".into()),
        };
        assert_eq!(entry.size(), 15 + 2 + 7 + 14 + 1);
        entry.time = Some(0);
        assert_eq!(entry.size(), 15 + 2 + 7 + 14 + 1 + 14);
        // The detail counts as its text, not as the escaped string the request carries it in.
        entry.detail = Detail::from_value(&json!({"q": "\"é\n"}));
        assert_eq!(entry.detail.quoted(), r#""{\"q\":\"\\\"é\\n\"}""#);
        assert_eq!(entry.size(), 15 + 2 + r#"{"q":"\"é\n"}"#.len() + 14 + 1 + 14);
    }
}
