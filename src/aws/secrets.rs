//! `${aws-secretsmanager:NAME}`, `${aws-secretsmanager:NAME#json_key}` and `${aws-ssm:/param/path}`: secrets read
//! from AWS with the worker's credentials, for any configuration string.
//!
//! Configuration is read synchronously, in serde, so reads run on a [`BlockingAws`] thread. Each reference is read once and kept; [`AwsSecrets::refresh`] reads them all again and tells
//! which changed, so that the controller restarts what uses them (a rotated secret takes effect without a restart of
//! the process).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use aws_sdk_secretsmanager::error::DisplayErrorContext;

use super::blocking::BlockingAws;
use crate::config::{AwsConfig, ExternalProvider};
use crate::telemetry::{emit, SecretRefreshFailed};

const SECRETS_MANAGER: &str = "aws-secretsmanager";
const PARAMETER_STORE: &str = "aws-ssm";

/// How long one read may take, retries included.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// `${provider:argument}`, split: the name and the JSON key after `#`, if any.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Reference {
    provider: &'static str,
    name: String,
    json_key: Option<String>,
}

impl Reference {
    fn parse(provider: &str, argument: &str) -> Result<Self, String> {
        let provider = match provider {
            SECRETS_MANAGER => SECRETS_MANAGER,
            PARAMETER_STORE => PARAMETER_STORE,
            other => return Err(format!("`{other}` is not an AWS config provider")),
        };
        let (name, json_key) = match argument.split_once('#') {
            Some((name, key)) => (name, Some(key.to_owned())),
            None => (argument, None),
        };
        if name.is_empty() {
            return Err("the name is empty".to_owned());
        }
        if json_key.as_deref() == Some("") {
            return Err("the JSON key after `#` is empty".to_owned());
        }
        Ok(Self {
            provider,
            name: name.to_owned(),
            json_key,
        })
    }

    fn text(&self) -> String {
        match &self.json_key {
            Some(key) => format!("${{{}:{}#{key}}}", self.provider, self.name),
            None => format!("${{{}:{}}}", self.provider, self.name),
        }
    }
}

/// The secrets read so far, by reference, and, from the first read on, the clients that read them.
pub struct AwsSecrets {
    config: AwsConfig,
    readers: OnceLock<Result<Readers, String>>,
    values: Mutex<BTreeMap<Reference, String>>,
}

struct Readers {
    aws: BlockingAws,
    secrets_manager: aws_sdk_secretsmanager::Client,
    parameter_store: aws_sdk_ssm::Client,
}

impl AwsSecrets {
    /// Reads with the credentials and endpoint of `config`. Nothing starts until a placeholder asks.
    pub fn new(config: &AwsConfig) -> Arc<Self> {
        Arc::new(Self {
            config: config.clone(),
            readers: OnceLock::new(),
            values: Mutex::new(BTreeMap::new()),
        })
    }

    /// The thread that reads, started with the SDK configuration loaded on it.
    fn readers(&self) -> Result<&Readers, String> {
        let started = self.readers.get_or_init(|| {
            let aws = BlockingAws::start("aws-secrets")
                .map_err(|error| format!("cannot start the AWS secrets reader: {error}"))?;
            let config = self.config.clone();
            let sdk = aws
                .run(async move { super::sdk_config(&config).await })
                .map_err(|error| error.to_string())?;
            Ok(Readers {
                aws,
                secrets_manager: aws_sdk_secretsmanager::Client::new(&super::service_config(
                    &sdk,
                    &self.config,
                    super::Service::SecretsManager,
                )),
                parameter_store: aws_sdk_ssm::Client::new(&super::service_config(
                    &sdk,
                    &self.config,
                    super::Service::Ssm,
                )),
            })
        });
        started.as_ref().map_err(Clone::clone)
    }

    /// What the name holds in AWS now, with the JSON key, if any, taken.
    fn read(&self, reference: &Reference) -> Result<String, String> {
        let readers = self.readers()?;
        let name = reference.name.clone();
        let read = match reference.provider {
            SECRETS_MANAGER => {
                let client = readers.secrets_manager.clone();
                readers
                    .aws
                    .run(with_timeout(async move { read_secret(&client, &name).await }))
            }
            _ => {
                let client = readers.parameter_store.clone();
                readers
                    .aws
                    .run(with_timeout(async move { read_parameter(&client, &name).await }))
            }
        };
        let whole = read.map_err(|error| error.to_string())??;
        select_json_key(reference, whole)
    }

    /// Reads every secret read so far again; returns the references (as written, e.g.
    /// `${aws-secretsmanager:kafka#password}`) whose value changed. A secret that cannot be read keeps its value.
    pub(crate) fn refresh(&self) -> Vec<String> {
        let known: Vec<Reference> = self.values().keys().cloned().collect();
        let mut changed = Vec::new();
        for reference in known {
            match self.read(&reference) {
                Ok(value) => {
                    crate::redact::record(&value);
                    let previous = self.values().insert(reference.clone(), value.clone());
                    if previous.as_ref() != Some(&value) {
                        changed.push(reference.text());
                    }
                }
                Err(error) => emit(SecretRefreshFailed {
                    reference: &reference.text(),
                    error: &crate::redact::scrub(&error),
                }),
            }
        }
        changed
    }

    fn values(&self) -> std::sync::MutexGuard<'_, BTreeMap<Reference, String>> {
        self.values.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl ExternalProvider for AwsSecrets {
    fn serves(&self, provider: &str) -> bool {
        provider == SECRETS_MANAGER || provider == PARAMETER_STORE
    }

    fn resolve(&self, provider: &str, argument: &str) -> Result<String, String> {
        let reference = Reference::parse(provider, argument)?;
        if let Some(value) = self.values().get(&reference) {
            return Ok(value.clone());
        }
        let value = self.read(&reference)?;
        self.values().insert(reference, value.clone());
        Ok(value)
    }
}

/// The secret, or with `#key` the value of that key of the JSON object it holds (Secrets Manager's key/value form):
/// a string as it is, anything else as its JSON text.
fn select_json_key(reference: &Reference, whole: String) -> Result<String, String> {
    let Some(key) = &reference.json_key else {
        return Ok(whole);
    };
    let not_an_object = || {
        format!(
            "`{}` does not hold a JSON object, so it has no key `{key}`",
            reference.name
        )
    };
    let object = match serde_json::from_str::<serde_json::Value>(&whole) {
        Ok(serde_json::Value::Object(object)) => object,
        _ => return Err(not_an_object()),
    };
    match object.get(key) {
        Some(serde_json::Value::String(text)) => Ok(text.clone()),
        Some(other) => Ok(other.to_string()),
        None => {
            let keys: Vec<&str> = object.keys().map(String::as_str).collect();
            Err(format!(
                "`{}` has no key `{key}` (its keys: {})",
                reference.name,
                keys.join(", ")
            ))
        }
    }
}

async fn with_timeout(read: impl std::future::Future<Output = Result<String, String>>) -> Result<String, String> {
    tokio::time::timeout(READ_TIMEOUT, read)
        .await
        .unwrap_or_else(|_| Err(format!("AWS did not answer within {READ_TIMEOUT:?}")))
}

async fn read_secret(client: &aws_sdk_secretsmanager::Client, name: &str) -> Result<String, String> {
    match client.get_secret_value().secret_id(name).send().await {
        Ok(output) => match (output.secret_string, output.secret_binary) {
            (Some(text), _) => Ok(text),
            (None, Some(binary)) => String::from_utf8(binary.into_inner())
                .map_err(|_| format!("AWS Secrets Manager's secret `{name}` is binary, not text")),
            (None, None) => Err(format!("AWS Secrets Manager's secret `{name}` has no value")),
        },
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|error| error.is_resource_not_found_exception()) =>
        {
            Err(format!("AWS Secrets Manager has no secret `{name}`"))
        }
        Err(error) => Err(format!(
            "cannot read secret `{name}` from AWS Secrets Manager: {}",
            DisplayErrorContext(&error)
        )),
    }
}

async fn read_parameter(client: &aws_sdk_ssm::Client, name: &str) -> Result<String, String> {
    match client.get_parameter().name(name).with_decryption(true).send().await {
        Ok(output) => output
            .parameter
            .and_then(|parameter| parameter.value)
            .ok_or_else(|| format!("SSM Parameter Store's parameter `{name}` has no value")),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|error| error.is_parameter_not_found()) =>
        {
            Err(format!("SSM Parameter Store has no parameter `{name}`"))
        }
        Err(error) => Err(format!(
            "cannot read parameter `{name}` from SSM Parameter Store: {}",
            DisplayErrorContext(&error)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(argument: &str) -> Reference {
        Reference::parse(SECRETS_MANAGER, argument).unwrap()
    }

    #[test]
    fn a_json_key_selects_one_value_of_the_object() {
        let whole = r#"{"username": "svc", "password": "p@ss", "port": 9096}"#.to_owned();
        assert_eq!(
            select_json_key(&reference("kafka#password"), whole.clone()),
            Ok("p@ss".into())
        );
        assert_eq!(
            select_json_key(&reference("kafka#port"), whole.clone()),
            Ok("9096".into())
        );
        assert_eq!(select_json_key(&reference("kafka"), whole.clone()), Ok(whole.clone()));
        assert_eq!(
            select_json_key(&reference("kafka#token"), whole),
            Err("`kafka` has no key `token` (its keys: username, password, port)".into())
        );
        assert_eq!(
            select_json_key(&reference("plain#password"), "hunter2".into()),
            Err("`plain` does not hold a JSON object, so it has no key `password`".into())
        );
    }

    #[test]
    fn a_reference_is_shown_as_written() {
        assert_eq!(
            reference("kafka#password").text(),
            "${aws-secretsmanager:kafka#password}"
        );
        assert_eq!(
            Reference::parse(PARAMETER_STORE, "/ebconnect/kafka/password")
                .unwrap()
                .text(),
            "${aws-ssm:/ebconnect/kafka/password}"
        );
        assert!(Reference::parse(SECRETS_MANAGER, "#key").is_err());
        assert!(Reference::parse(SECRETS_MANAGER, "name#").is_err());
    }
}
