//! The PutEvents request body (AWS JSON 1.1), written in one pass. Each detail already is the JSON string the body
//! holds (`entry::Detail`), so it is copied, not escaped again.

use std::io::Write;

use super::entry::Entry;
use crate::json_text::write_json_string;

pub(crate) const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
pub(crate) const TARGET: &str = "AWSEvents.PutEvents";

pub(crate) struct PutEventsBody<'a> {
    pub(crate) event_bus: &'a str,
    pub(crate) endpoint_id: Option<&'a str>,
    pub(crate) entries: &'a [&'a Entry],
}

impl PutEventsBody<'_> {
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        // The size counts the detail's text; the quoted detail is written in its place, and the rest is short.
        let capacity = 32
            + self
                .entries
                .iter()
                .map(|entry| 128 + entry.size() - entry.detail.text_len() + entry.detail.quoted().len())
                .sum::<usize>();
        let mut body = Vec::with_capacity(capacity);
        body.extend_from_slice(b"{\"Entries\":[");
        for (index, entry) in self.entries.iter().enumerate() {
            if index > 0 {
                body.push(b',');
            }
            self.write_entry(&mut body, entry);
        }
        body.push(b']');
        if let Some(endpoint_id) = self.endpoint_id {
            body.extend_from_slice(b",\"EndpointId\":");
            write_json_string(&mut body, endpoint_id);
        }
        body.push(b'}');
        body
    }

    fn write_entry(&self, body: &mut Vec<u8>, entry: &Entry) {
        body.extend_from_slice(b"{\"EventBusName\":");
        write_json_string(body, self.event_bus);
        body.extend_from_slice(b",\"Source\":");
        write_json_string(body, &entry.source);
        body.extend_from_slice(b",\"DetailType\":");
        write_json_string(body, &entry.detail_type);
        body.extend_from_slice(b",\"Detail\":");
        body.extend_from_slice(entry.detail.quoted().as_bytes());
        if let Some(millis) = entry.time {
            // AWS JSON 1.1 writes timestamps as epoch seconds, with a fraction when there is one.
            body.extend_from_slice(b",\"Time\":");
            if millis < 0 {
                body.push(b'-');
            }
            let seconds = millis.unsigned_abs() / 1000;
            let fraction = millis.unsigned_abs() % 1000;
            // Writing into a `Vec` cannot fail.
            let _ = write!(body, "{seconds}");
            if fraction != 0 {
                let _ = write!(body, ".{fraction:03}");
                while body.last() == Some(&b'0') {
                    body.pop();
                }
            }
        }
        if !entry.resources.is_empty() {
            body.extend_from_slice(b",\"Resources\":[");
            for (index, resource) in entry.resources.iter().enumerate() {
                if index > 0 {
                    body.push(b',');
                }
                write_json_string(body, resource);
            }
            body.push(b']');
        }
        if let Some(trace_header) = &entry.trace_header {
            body.extend_from_slice(b",\"TraceHeader\":");
            write_json_string(body, trace_header);
        }
        body.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventbridge::entry::Detail;
    use serde_json::{json, Value};

    #[test]
    fn writes_whole_seconds_and_fractions() {
        let mut entry = Entry {
            source: "s".into(),
            detail_type: "t".into(),
            detail: Detail::from_value(&json!({})),
            time: Some(1_700_000_000_000),
            resources: Vec::new(),
            trace_header: None,
        };
        let time = |entry: &Entry| {
            let body = PutEventsBody {
                event_bus: "b",
                endpoint_id: None,
                entries: &[entry],
            }
            .to_bytes();
            let parsed: Value = serde_json::from_slice(&body).unwrap();
            parsed["Entries"][0]["Time"].to_string()
        };
        assert_eq!(time(&entry), "1700000000");
        entry.time = Some(1_700_000_000_120);
        assert_eq!(time(&entry), "1700000000.12");
        entry.time = Some(-1);
        assert_eq!(time(&entry), "-0.001");
    }

    #[test]
    fn writes_the_put_events_shape() {
        let full = Entry {
            source: "kafka-connect.s3".into(),
            detail_type: "GetObject".into(),
            detail: Detail::from_value(&json!({"quote": "\"", "line": "a\nb", "é": 1})),
            time: Some(1_700_000_000_123),
            resources: vec!["arn:aws:s3:::bucket".into()],
            trace_header: Some("Root=1-5759e988-bd862e3fe1be46a994272793".into()),
        };
        let bare = Entry {
            source: "s".into(),
            detail_type: "t".into(),
            detail: Detail::from_value(&json!({})),
            time: None,
            resources: Vec::new(),
            trace_header: None,
        };
        let body = PutEventsBody {
            event_bus: "arn:aws:events:us-east-1:123456789012:event-bus/audit",
            endpoint_id: Some("abcde.veo"),
            entries: &[&full, &bare],
        }
        .to_bytes();
        let parsed: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            parsed,
            json!({
                "Entries": [
                    {
                        "EventBusName": "arn:aws:events:us-east-1:123456789012:event-bus/audit",
                        "Source": "kafka-connect.s3",
                        "DetailType": "GetObject",
                        "Detail": r#"{"quote":"\"","line":"a\nb","é":1}"#,
                        "Time": 1_700_000_000.123,
                        "Resources": ["arn:aws:s3:::bucket"],
                        "TraceHeader": "Root=1-5759e988-bd862e3fe1be46a994272793",
                    },
                    {"EventBusName": "arn:aws:events:us-east-1:123456789012:event-bus/audit", "Source": "s", "DetailType": "t", "Detail": "{}"},
                ],
                "EndpointId": "abcde.veo",
            })
        );
        let without_endpoint = PutEventsBody {
            event_bus: "default",
            endpoint_id: None,
            entries: &[&bare],
        }
        .to_bytes();
        assert_eq!(
            std::str::from_utf8(&without_endpoint).unwrap(),
            r#"{"Entries":[{"EventBusName":"default","Source":"s","DetailType":"t","Detail":"{}"}]}"#
        );
    }
}
