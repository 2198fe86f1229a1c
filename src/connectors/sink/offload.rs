//! Claim-check offloading to S3, compatible with the AWS EventBridge connector's: the part of the event at a path
//! (default `$.detail.value`) is written to S3 as JSON, removed from the event, and replaced next to where it was by
//! `dataref` (`arn:aws:s3:::<bucket>/<key>`) and `datarefJsonPath` (the path), so a consumer can fetch it back.

use std::time::Instant;

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use serde_json::Value;

use super::config::OffloadConfig;
use crate::backoff::full_jitter;
use crate::eventbridge::delivery::DeliveryError;
use crate::eventbridge::retry::RetryPolicy;
use crate::json_path::JsonPath;

/// An object to write before the entry that refers to it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Upload {
    pub(crate) bucket: String,
    pub(crate) key: String,
    pub(crate) body: Vec<u8>,
}

/// Decides what to offload and rewrites the detail.
#[derive(Debug, Clone)]
pub(crate) struct Offloader {
    bucket: String,
    prefix: String,
    /// The path as written (into the event), recorded in `datarefJsonPath`.
    path: String,
    /// The object in the detail that holds the offloaded field, and the field.
    parent: JsonPath,
    field: String,
    pub(crate) always: bool,
}

impl Offloader {
    /// `path` is checked at config load (`SinkConfig::check`) to start with `$.detail.` and end in a field name.
    pub(crate) fn new(config: &OffloadConfig, path: &JsonPath) -> Option<Self> {
        let within_detail = path.strip_field("detail")?;
        let (parent, field) = within_detail.split_last_field()?;
        Some(Self {
            bucket: config.s3_bucket.clone(),
            prefix: config.s3_prefix.clone(),
            path: path.to_string(),
            field: field.to_owned(),
            parent,
            always: config.always,
        })
    }

    /// Moves the field out of `detail`; `None` when there is nothing there to offload (missing or null).
    pub(crate) fn offload(&self, detail: &mut Value) -> Option<Upload> {
        let Some(Value::Object(parent)) = self.parent.select_mut(detail) else {
            return None;
        };
        match parent.get(&self.field) {
            None | Some(Value::Null) => return None,
            Some(_) => {}
        }
        let moved = parent.shift_remove(&self.field)?;
        let key = format!("{}{}", self.prefix, uuid::Uuid::new_v4());
        parent.insert(
            "dataref".to_owned(),
            Value::String(format!("arn:aws:s3:::{}/{key}", self.bucket)),
        );
        parent.insert("datarefJsonPath".to_owned(), Value::String(self.path.clone()));
        Some(Upload {
            bucket: self.bucket.clone(),
            key,
            body: moved.to_string().into_bytes(),
        })
    }
}

/// Writes offloaded parts, retrying what a later try can fix.
pub(crate) struct S3Uploader {
    pub(crate) client: aws_sdk_s3::Client,
    pub(crate) retry: RetryPolicy,
}

impl S3Uploader {
    pub(crate) async fn upload_all<'a>(&self, uploads: impl Iterator<Item = &'a Upload>) -> Result<(), DeliveryError> {
        futures::future::try_join_all(uploads.map(|upload| self.upload(upload))).await?;
        Ok(())
    }

    async fn upload(&self, upload: &Upload) -> Result<(), DeliveryError> {
        let started = Instant::now();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let result = self
                .client
                .put_object()
                .bucket(&upload.bucket)
                .key(&upload.key)
                .content_type("application/json")
                .body(ByteStream::from(upload.body.clone()))
                .send()
                .await;
            let error = match result {
                Ok(_) => return Ok(()),
                Err(error) => error,
            };
            let retryable = match &error {
                SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
                SdkError::ServiceError(service) => {
                    let status = service.raw().status().as_u16();
                    status >= 500 || status == 429 || matches!(error.code(), Some("SlowDown" | "RequestTimeout"))
                }
                _ => false,
            };
            let reason = format!(
                "S3 PutObject s3://{}/{}: {}",
                upload.bucket,
                upload.key,
                crate::error_chain(&error)
            );
            if !retryable {
                return Err(DeliveryError::Fatal(reason));
            }
            let delay = full_jitter(self.retry.initial_backoff, self.retry.max_backoff, attempts);
            if attempts >= self.retry.max_attempts || started.elapsed() + delay > self.retry.max_duration {
                return Err(DeliveryError::RetriesExhausted {
                    entries: 1,
                    attempts,
                    elapsed: started.elapsed(),
                    last_error: reason,
                });
            }
            tokio::time::sleep(delay).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn offloader(path: &str) -> Offloader {
        let config = OffloadConfig {
            s3_bucket: "claims".into(),
            s3_prefix: "ebc/".into(),
            json_path: None,
            always: false,
        };
        Offloader::new(&config, &path.parse().unwrap()).unwrap()
    }

    #[test]
    fn moves_the_field_to_an_upload_and_leaves_a_reference() {
        let mut detail = json!({"topic": "t", "value": {"big": "x"}, "key": "k"});
        let upload = offloader("$.detail.value").offload(&mut detail).unwrap();
        assert_eq!(upload.bucket, "claims");
        assert!(upload.key.starts_with("ebc/"));
        assert_eq!(upload.body, br#"{"big":"x"}"#);
        assert_eq!(
            detail,
            json!({"topic": "t", "key": "k", "dataref": format!("arn:aws:s3:::claims/{}", upload.key),
                   "datarefJsonPath": "$.detail.value"})
        );
    }

    #[test]
    fn nothing_to_offload_leaves_the_detail_alone() {
        for mut detail in [
            json!({"value": null}),
            json!({"other": 1}),
            json!({"value": {"blob": 1}}),
        ] {
            let before = detail.clone();
            assert!(offloader("$.detail.value.missing").offload(&mut detail).is_none());
            assert_eq!(detail, before);
        }
    }
}
