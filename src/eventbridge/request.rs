//! The PutEvents request body (AWS JSON 1.1), written in one pass. Each detail already is the JSON string the body
//! holds (`entry::Detail`), so it is not escaped again, and the largest are not copied either: the body is sent as
//! pieces, the JSON around them written here and each of them shared with its entry, which stays held until it
//! settles anyway. A body in flight then costs little more than the JSON around them, and `writev` gathers the
//! pieces.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io::Write;
use std::ops::Range;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use sha2::{Digest, Sha256};

use super::entry::Entry;
use super::signing::lower_hex;
use crate::json_text::write_json_string;

/// hyper writes a request with one `writev` of at most 16 buffers, one of them its head. A body of up to 7 shared
/// details is 15 pieces (each detail with the JSON before it, and the end); more would take a second system call,
/// so of larger batches the other details are copied.
const MAX_SHARED_DETAILS: usize = 7;

pub(crate) const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
pub(crate) const TARGET: &str = "AWSEvents.PutEvents";

pub(crate) struct PutEventsBody<'a> {
    pub(crate) event_bus: &'a str,
    pub(crate) endpoint_id: Option<&'a str>,
    pub(crate) entries: &'a [&'a Entry],
}

impl PutEventsBody<'_> {
    pub(crate) fn to_pieces(&self) -> BodyPieces {
        let shared = self.shared_details();
        // One buffer holds all the JSON around the shared details; where each of them goes, it is cut.
        let mut around = Vec::with_capacity(64 + 160 * self.entries.len());
        let mut cuts = Vec::with_capacity(MAX_SHARED_DETAILS);
        around.extend_from_slice(b"{\"Entries\":[");
        // The bus and the source as the last entry's head wrote them, to copy rather than escape again: most
        // batches have one source.
        let mut written_source: Option<(&str, Range<usize>)> = None;
        for (index, (entry, shared)) in self.entries.iter().zip(shared).enumerate() {
            if index > 0 {
                around.push(b',');
            }
            let start = around.len();
            match &written_source {
                Some((source, written)) if **source == *entry.source => around.extend_from_within(written.clone()),
                _ => {
                    self.write_bus_and_source(&mut around, &entry.source);
                    written_source = Some((&entry.source, start..around.len()));
                }
            }
            around.extend_from_slice(b",\"DetailType\":");
            write_json_string(&mut around, &entry.detail_type);
            around.extend_from_slice(b",\"Detail\":");
            if shared {
                cuts.push((around.len(), entry.detail.quoted().clone()));
            } else {
                around.extend_from_slice(entry.detail.quoted());
            }
            write_entry_tail(&mut around, entry);
        }
        around.push(b']');
        if let Some(endpoint_id) = self.endpoint_id {
            around.extend_from_slice(b",\"EndpointId\":");
            write_json_string(&mut around, endpoint_id);
        }
        around.push(b'}');
        let around = Bytes::from(around);
        let mut pieces = VecDeque::with_capacity(2 * cuts.len() + 1);
        let mut from = 0;
        for (cut, detail) in cuts {
            pieces.push_back(around.slice(from..cut));
            pieces.push_back(detail);
            from = cut;
        }
        pieces.push_back(around.slice(from..));
        BodyPieces::new(pieces)
    }

    /// Which entries' details are shared rather than copied: the largest `MAX_SHARED_DETAILS`.
    fn shared_details(&self) -> Vec<bool> {
        let len = |entry: &&Entry| entry.detail.quoted().len();
        if self.entries.len() <= MAX_SHARED_DETAILS {
            return vec![true; self.entries.len()];
        }
        let mut lens: Vec<usize> = self.entries.iter().map(len).collect();
        let (_, &mut smallest_shared, _) = lens.select_nth_unstable_by(MAX_SHARED_DETAILS - 1, |a, b| b.cmp(a));
        // Those larger than the smallest shared length all fit; of those equal to it, the first that fit.
        let mut ties = MAX_SHARED_DETAILS - self.entries.iter().filter(|entry| len(entry) > smallest_shared).count();
        self.entries
            .iter()
            .map(|entry| match len(entry).cmp(&smallest_shared) {
                std::cmp::Ordering::Greater => true,
                std::cmp::Ordering::Equal if ties > 0 => {
                    ties -= 1;
                    true
                }
                _ => false,
            })
            .collect()
    }

    /// An entry's first members: the bus and its source.
    fn write_bus_and_source(&self, body: &mut Vec<u8>, source: &str) {
        body.extend_from_slice(b"{\"EventBusName\":");
        write_json_string(body, self.event_bus);
        body.extend_from_slice(b",\"Source\":");
        write_json_string(body, source);
    }
}

/// The entry after its detail.
fn write_entry_tail(body: &mut Vec<u8>, entry: &Entry) {
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

/// A request body as the pieces it is sent in, of a length known up front (so it goes with a `content-length`).
#[derive(Debug)]
pub(crate) struct BodyPieces {
    pieces: VecDeque<Bytes>,
    len: usize,
}

impl BodyPieces {
    fn new(pieces: VecDeque<Bytes>) -> Self {
        let len = pieces.iter().map(Bytes::len).sum();
        Self { pieces, len }
    }

    /// The SHA-256 of the whole body in lowercase hex, as SigV4 signs it.
    pub(crate) fn sha256_hex(&self) -> String {
        let mut hasher = Sha256::new();
        for piece in &self.pieces {
            hasher.update(piece);
        }
        lower_hex(&hasher.finalize())
    }

    #[cfg(test)]
    pub(crate) fn to_vec(&self) -> Vec<u8> {
        self.pieces.iter().flat_map(|piece| piece.iter().copied()).collect()
    }
}

impl http_body::Body for BodyPieces {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let piece = self.pieces.pop_front();
        if let Some(piece) = &piece {
            self.len -= piece.len();
        }
        Poll::Ready(piece.map(|piece| Ok(Frame::data(piece))))
    }

    fn is_end_stream(&self) -> bool {
        self.pieces.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len as u64)
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
            .to_pieces()
            .to_vec();
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
        .to_pieces()
        .to_vec();
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
        // An entry with the same source as the one before copies its head; one with another source writes its own.
        let mixed = PutEventsBody {
            event_bus: "audit \"bus\"",
            endpoint_id: None,
            entries: &[&full, &full, &bare, &bare, &full],
        }
        .to_pieces()
        .to_vec();
        let parsed: Value = serde_json::from_slice(&mixed).unwrap();
        let heads: Vec<(&str, &str, &str)> = parsed["Entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| {
                let text = |name: &str| entry[name].as_str().unwrap();
                (text("EventBusName"), text("Source"), text("DetailType"))
            })
            .collect();
        let bus = "audit \"bus\"";
        assert_eq!(
            heads,
            [
                (bus, "kafka-connect.s3", "GetObject"),
                (bus, "kafka-connect.s3", "GetObject"),
                (bus, "s", "t"),
                (bus, "s", "t"),
                (bus, "kafka-connect.s3", "GetObject"),
            ]
        );
        let without_endpoint = PutEventsBody {
            event_bus: "default",
            endpoint_id: None,
            entries: &[&bare],
        }
        .to_pieces()
        .to_vec();
        assert_eq!(
            std::str::from_utf8(&without_endpoint).unwrap(),
            r#"{"Entries":[{"EventBusName":"default","Source":"s","DetailType":"t","Detail":"{}"}]}"#
        );
    }

    /// The pieces, taken as hyper takes them, are the body, at most 15 of them, its length is announced, and its
    /// hash is that of the whole, for bodies with and without an endpoint, of one to ten entries whose details
    /// differ in size and tie.
    #[tokio::test]
    async fn pieces_make_the_body_they_announce_and_hash() {
        use http_body::Body as _;
        use sha2::{Digest, Sha256};

        let details: Vec<Value> = (0..10)
            .map(|index| json!({"n": index, "q": "\"\\", "pad": "x".repeat(index * 7 % 4 * 10)}))
            .collect();
        let entries: Vec<Entry> = details
            .iter()
            .enumerate()
            .map(|(index, detail)| Entry {
                source: format!("s{index}").into(),
                detail_type: "t\"".into(),
                detail: Detail::from_value(detail),
                time: (index % 2 == 0).then_some(1_700_000_000_000 + index as i64),
                resources: vec!["r".into(); index % 3],
                trace_header: None,
            })
            .collect();
        for count in 1..=entries.len() {
            for endpoint_id in [None, Some("abcde.veo")] {
                let refs: Vec<&Entry> = entries[..count].iter().collect();
                let mut pieces = PutEventsBody {
                    event_bus: "bus",
                    endpoint_id,
                    entries: &refs,
                }
                .to_pieces();
                let announced = pieces.size_hint().exact().unwrap();
                let hash = pieces.sha256_hex();
                let mut taken = Vec::new();
                let mut frames = 0;
                while let Some(frame) = std::future::poll_fn(|context| Pin::new(&mut pieces).poll_frame(context)).await
                {
                    taken.extend_from_slice(&frame.unwrap().into_data().unwrap());
                    frames += 1;
                }
                assert!(pieces.is_end_stream());
                assert!(frames <= 15, "{count} entries in {frames} pieces");
                assert_eq!(announced, taken.len() as u64);
                let parsed: Value = serde_json::from_slice(&taken).unwrap();
                let sent: Vec<Value> = parsed["Entries"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|entry| serde_json::from_str(entry["Detail"].as_str().unwrap()).unwrap())
                    .collect();
                assert_eq!(sent, details[..count]);
                assert_eq!(parsed.get("EndpointId").and_then(Value::as_str), endpoint_id);
                let expected: String = Sha256::digest(&taken)
                    .iter()
                    .map(|byte| format!("{byte:02x}"))
                    .collect();
                assert_eq!(hash, expected);
            }
        }
    }
}
