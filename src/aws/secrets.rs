//! `${aws-secretsmanager:NAME}`, `${aws-secretsmanager:NAME#json_key}` and `${aws-ssm:/param/path}`: secrets read
//! from AWS with the worker's credentials, for any configuration string.
//!
//! Configuration is read synchronously (in serde, deep inside a file's deserialization), and sometimes on a runtime
//! thread (the REST API, hot reload); the SDK is async. So the store owns one thread with its own runtime, and a
//! read waits on it. Each reference is read once and kept; [`AwsSecrets::refresh`] reads them all again and tells
//! which changed, so that the controller restarts what uses them (a rotated secret takes effect without a restart of
//! the process).

use std::collections::BTreeMap;
use std::sync::{mpsc as sync_mpsc, Arc, Mutex};
use std::time::Duration;

use aws_sdk_secretsmanager::error::DisplayErrorContext;
use tokio::sync::mpsc;

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

struct Read {
    provider: &'static str,
    name: String,
    reply: sync_mpsc::Sender<Result<String, String>>,
}

/// The secrets read so far, by reference, and the thread that reads them.
pub struct AwsSecrets {
    reads: mpsc::UnboundedSender<Read>,
    values: Mutex<BTreeMap<Reference, String>>,
}

impl AwsSecrets {
    /// Starts the reading thread; the SDK configuration is loaded on it, from `aws`.
    pub fn start(aws: &AwsConfig) -> std::io::Result<Arc<Self>> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (reads, mut requests) = mpsc::unbounded_channel::<Read>();
        let aws = aws.clone();
        std::thread::Builder::new()
            .name("aws-secrets".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let sdk = super::sdk_config(&aws).await;
                    let secrets_manager = aws_sdk_secretsmanager::Client::new(&sdk);
                    let parameter_store = aws_sdk_ssm::Client::new(&sdk);
                    while let Some(read) = requests.recv().await {
                        let value = tokio::time::timeout(READ_TIMEOUT, async {
                            match read.provider {
                                SECRETS_MANAGER => read_secret(&secrets_manager, &read.name).await,
                                _ => read_parameter(&parameter_store, &read.name).await,
                            }
                        })
                        .await
                        .unwrap_or_else(|_| Err(format!("AWS did not answer within {READ_TIMEOUT:?}")));
                        let _ = read.reply.send(value);
                    }
                });
            })?;
        Ok(Arc::new(Self {
            reads,
            values: Mutex::new(BTreeMap::new()),
        }))
    }

    /// What the name holds in AWS now (the whole secret, before any JSON key is taken).
    fn read(&self, reference: &Reference) -> Result<String, String> {
        let (reply, answer) = sync_mpsc::channel();
        self.reads
            .send(Read {
                provider: reference.provider,
                name: reference.name.clone(),
                reply,
            })
            .map_err(|_| "the AWS secrets reader has stopped".to_owned())?;
        let whole = answer
            .recv()
            .map_err(|_| "the AWS secrets reader has stopped".to_owned())??;
        select_json_key(reference, whole)
    }

    /// Reads every secret read so far again; returns the references (as written, e.g.
    /// `${aws-secretsmanager:kafka#password}`) whose value changed. A secret that cannot be read keeps its value.
    pub fn refresh(&self) -> Vec<String> {
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
    let not_an_object = || format!("`{}` does not hold a JSON object, so it has no key `{key}`", reference.name);
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

async fn read_secret(client: &aws_sdk_secretsmanager::Client, name: &str) -> Result<String, String> {
    match client.get_secret_value().secret_id(name).send().await {
        Ok(output) => match (output.secret_string, output.secret_binary) {
            (Some(text), _) => Ok(text),
            (None, Some(binary)) => String::from_utf8(binary.into_inner())
                .map_err(|_| format!("AWS Secrets Manager's secret `{name}` is binary, not text")),
            (None, None) => Err(format!("AWS Secrets Manager's secret `{name}` has no value")),
        },
        Err(error) if error.as_service_error().is_some_and(|error| error.is_resource_not_found_exception()) => {
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
        Err(error) if error.as_service_error().is_some_and(|error| error.is_parameter_not_found()) => {
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
        assert_eq!(select_json_key(&reference("kafka#password"), whole.clone()), Ok("p@ss".into()));
        assert_eq!(select_json_key(&reference("kafka#port"), whole.clone()), Ok("9096".into()));
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
        assert_eq!(reference("kafka#password").text(), "${aws-secretsmanager:kafka#password}");
        assert_eq!(
            Reference::parse(PARAMETER_STORE, "/ebconnect/kafka/password").unwrap().text(),
            "${aws-ssm:/ebconnect/kafka/password}"
        );
        assert!(Reference::parse(SECRETS_MANAGER, "#key").is_err());
        assert!(Reference::parse(SECRETS_MANAGER, "name#").is_err());
    }
}
