//! Reads the records of a request body as they arrive: concatenated JSON objects, whitespace between them allowed,
//! each at most a given size. A streaming client's records are handled while it is still sending.

use axum::body::Bytes;
use futures::{Stream, StreamExt};
use serde_json::Value;

use super::wire::ApiError;

pub struct RecordReader<S> {
    chunks: S,
    buffer: Vec<u8>,
    ended: bool,
    max_record_bytes: usize,
    /// After a malformed record the stream cannot be resynchronised: nothing more is read.
    broken: bool,
}

impl<S, E> RecordReader<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<ApiError>,
{
    pub fn new(chunks: S, max_record_bytes: usize) -> Self {
        Self {
            chunks,
            buffer: Vec::new(),
            ended: false,
            max_record_bytes,
            broken: false,
        }
    }

    /// The next record's JSON; `None` at the end of the body. After an `Err`, the reader yields `None`.
    /// Cancel-safe: bytes already read stay buffered.
    pub async fn next(&mut self) -> Option<Result<Value, ApiError>> {
        if self.broken {
            return None;
        }
        let result = self.read().await;
        if matches!(result, Some(Err(_))) {
            self.broken = true;
        }
        result
    }

    async fn read(&mut self) -> Option<Result<Value, ApiError>> {
        loop {
            let start = self
                .buffer
                .iter()
                .position(|byte| !byte.is_ascii_whitespace())
                .unwrap_or(self.buffer.len());
            self.buffer.drain(..start);
            if !self.buffer.is_empty() {
                let mut values = serde_json::Deserializer::from_slice(&self.buffer).into_iter::<Value>();
                match values.next() {
                    Some(Ok(value)) => {
                        let used = values.byte_offset();
                        if used > self.max_record_bytes {
                            return Some(Err(self.too_large()));
                        }
                        self.buffer.drain(..used);
                        return Some(Ok(value));
                    }
                    Some(Err(error)) if !error.is_eof() => {
                        return Some(Err(ApiError::malformed(format!("the body is not JSON: {error}"))))
                    }
                    _ => {}
                }
                if self.buffer.len() > self.max_record_bytes {
                    return Some(Err(self.too_large()));
                }
                if self.ended {
                    return Some(Err(ApiError::malformed("the body ends inside a record")));
                }
            } else if self.ended {
                return None;
            }
            match self.chunks.next().await {
                Some(Ok(chunk)) => self.buffer.extend_from_slice(&chunk),
                Some(Err(error)) => return Some(Err(error.into())),
                None => self.ended = true,
            }
        }
    }

    fn too_large(&self) -> ApiError {
        ApiError::too_large(format!(
            "a record is larger than max_record_bytes ({} bytes)",
            self.max_record_bytes
        ))
    }
}

#[cfg(test)]
mod tests {
    use futures::stream;
    use serde_json::json;

    use super::*;

    fn reader(chunks: &[&str], max: usize) -> RecordReader<impl Stream<Item = Result<Bytes, ApiError>> + Unpin> {
        let chunks: Vec<Result<Bytes, ApiError>> =
            chunks.iter().map(|chunk| Ok(Bytes::from(chunk.to_string()))).collect();
        RecordReader::new(stream::iter(chunks), max)
    }

    #[tokio::test]
    async fn records_split_across_chunks_are_joined() {
        let mut records = reader(&["{\"a\":", "1}\n  {\"b\"", ":2}{\"c\":3}", "\n"], 100);
        assert_eq!(records.next().await.unwrap().unwrap(), json!({"a": 1}));
        assert_eq!(records.next().await.unwrap().unwrap(), json!({"b": 2}));
        assert_eq!(records.next().await.unwrap().unwrap(), json!({"c": 3}));
        assert!(records.next().await.is_none());
    }

    #[tokio::test]
    async fn malformed_and_truncated_bodies_are_bad_requests() {
        let mut records = reader(&["{\"a\":1} {nope}"], 100);
        assert!(records.next().await.unwrap().is_ok());
        let error = records.next().await.unwrap().unwrap_err();
        assert_eq!((error.status.as_u16(), error.error_code), (400, 40001));
        assert!(
            records.next().await.is_none(),
            "nothing is read after a malformed record"
        );
        let error = reader(&["{\"a\":"], 100).next().await.unwrap().unwrap_err();
        assert_eq!(error.message, "the body ends inside a record");
    }

    #[tokio::test]
    async fn records_over_the_limit_are_too_large() {
        let error = reader(&["{\"a\":\"0123456789\"}"], 10)
            .next()
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!((error.status.as_u16(), error.error_code), (413, 41301));
        let error = reader(&["{\"a\":\"01234", "56789\""], 10)
            .next()
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(
            error.error_code, 41301,
            "an incomplete record over the limit is not waited for"
        );
    }

    #[tokio::test]
    async fn an_empty_body_has_no_records() {
        assert!(reader(&[" \n"], 10).next().await.is_none());
    }
}
