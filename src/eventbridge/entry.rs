//! One PutEvents entry, and its size as EventBridge counts it against the request limit.

/// A PutEvents entry without its bus (the bus is the connector's, set per request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub source: String,
    pub detail_type: String,
    /// A JSON object, serialized.
    pub detail: String,
    /// Milliseconds since the epoch; `None` lets EventBridge stamp the time of the call.
    pub time: Option<i64>,
    pub resources: Vec<String>,
    pub trace_header: Option<String>,
}

impl Entry {
    /// The size EventBridge counts, per "Calculating Amazon EventBridge PutEvents event entry size": 14 bytes
    /// for a time, plus the UTF-8 lengths of source, detail-type, detail and each resource. The trace header
    /// and the bus name do not count.
    pub fn size(&self) -> usize {
        let time = if self.time.is_some() { 14 } else { 0 };
        time + self.source.len()
            + self.detail_type.len()
            + self.detail.len()
            + self.resources.iter().map(String::len).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_follows_the_aws_rule() {
        let mut entry = Entry {
            source: "kafka-connect.x".into(),
            detail_type: "é".into(),
            detail: r#"{"a":1}"#.into(),
            time: None,
            resources: vec!["arn:aws:s3:::b".into(), "r".into()],
            trace_header: Some("Root=1-abc".into()),
        };
        assert_eq!(entry.size(), 15 + 2 + 7 + 14 + 1);
        entry.time = Some(0);
        assert_eq!(entry.size(), 15 + 2 + 7 + 14 + 1 + 14);
    }
}
