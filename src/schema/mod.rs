//! Turning record bytes into JSON: the plain formats here; Schema Registry Avro in `avro` and `registry`.

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How bytes from Kafka become JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// UTF-8 JSON.
    Json,
    /// UTF-8 text, as a JSON string.
    String,
    /// Any bytes, as a base64 JSON string.
    Bytes,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("not valid UTF-8: {0}")]
    Utf8(#[from] std::str::Utf8Error),
}

/// Decodes `bytes`; a missing key or value (`None`, a Kafka null) is JSON `null`.
pub fn decode(format: Format, bytes: Option<&[u8]>) -> Result<Value, DecodeError> {
    let Some(bytes) = bytes else {
        return Ok(Value::Null);
    };
    Ok(match format {
        Format::Json => serde_json::from_slice(bytes)?,
        Format::String => Value::String(std::str::from_utf8(bytes)?.to_owned()),
        Format::Bytes => Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn decodes_each_format() {
        assert_eq!(
            decode(Format::Json, Some(br#"{"a":[1,2.5]}"#)).unwrap(),
            json!({"a": [1, 2.5]})
        );
        assert_eq!(decode(Format::String, Some("é".as_bytes())).unwrap(), json!("é"));
        assert_eq!(decode(Format::Bytes, Some(&[0, 255])).unwrap(), json!("AP8="));
        assert_eq!(decode(Format::Json, None).unwrap(), Value::Null);
    }

    #[test]
    fn bad_bytes_are_errors_not_panics() {
        assert!(matches!(
            decode(Format::Json, Some(b"{nope")),
            Err(DecodeError::Json(_))
        ));
        assert!(matches!(
            decode(Format::String, Some(&[0xff, 0xfe])),
            Err(DecodeError::Utf8(_))
        ));
    }
}
