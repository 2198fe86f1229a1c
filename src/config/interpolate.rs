//! `${env:NAME}` and `${file:/path}` placeholders in configuration strings, in the spirit of Kafka Connect's
//! config providers, and the two string types that carry them: [`Interpolated`] and [`Secret`]. Providers that need
//! more than the process has at hand (AWS Secrets Manager and SSM Parameter Store need the worker's AWS credentials)
//! are installed from above with [`install_provider`].
//!
//! Both keep the text as written next to the resolved value. Everything that shows a configuration to a person
//! (`Debug`, `Serialize`, `validate`, the REST API) shows the text as written, so a value that came from the
//! environment or a file never appears in output. A [`Secret`] written literally is shown as `[hidden]`.

use std::fmt;
use std::sync::{Arc, RwLock};

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use crate::redact;

/// What [`Secret`] shows in place of a literal value, as Kafka Connect does for `PASSWORD` settings.
pub use crate::redact::HIDDEN;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InterpolationError {
    #[error("environment variable `{0}` is not set (referenced as ${{env:{0}}})")]
    UnsetVariable(String),
    #[error("environment variable `{0}` is not valid UTF-8")]
    NonUnicodeVariable(String),
    #[error("cannot read `{path}` (referenced as ${{file:{path}}}): {reason}")]
    UnreadableFile { path: String, reason: String },
    #[error("`{path}` (referenced as ${{file:{path}}}) is larger than {limit} bytes; a secret file is smaller")]
    FileTooLarge { path: String, limit: u64 },
    #[error("`[hidden]` is how the API shows a secret, not a value: write the secret itself or a ${{env:}}/${{file:}} placeholder")]
    HiddenWrittenBack,
    #[error(
        "unknown config provider `{0}` in `${{{0}:...}}`; expected `env`, `file`, `aws-secretsmanager` or `aws-ssm`"
    )]
    UnknownProvider(String),
    #[error(
        "`${{{0}:...}}` is read with the worker's AWS settings, which were not read: give the worker file \
         (`--worker`), whose `aws` section must load without such placeholders"
    )]
    ProviderUnavailable(String),
    #[error("{reason} (referenced as ${{{reference}}})")]
    External { reference: String, reason: String },
    #[error(
        "unterminated placeholder starting at byte {0}: a `${{` without its `}}` (write `$${{` for a literal `${{`)"
    )]
    Unterminated(usize),
}

/// Resolves every placeholder in `raw`. `$${` stands for a literal `${`.
pub fn interpolate(raw: &str) -> Result<String, InterpolationError> {
    substitute(raw, resolve)
}

/// The config providers a placeholder may name.
const PROVIDERS: [&str; 4] = ["env", "file", "aws-secretsmanager", "aws-ssm"];

/// A config provider that the worker installs once it can reach it: `serves` tells which provider names it answers.
pub trait ExternalProvider: Send + Sync {
    fn serves(&self, provider: &str) -> bool;
    /// The value of `${provider:argument}`, or why there is none (naming what is missing, never showing a value).
    fn resolve(&self, provider: &str, argument: &str) -> Result<String, String>;
}

static EXTERNAL: RwLock<Option<Arc<dyn ExternalProvider>>> = RwLock::new(None);

/// Makes `provider` answer its placeholders in every configuration read from now on, in this process.
pub fn install_provider(provider: Arc<dyn ExternalProvider>) {
    *EXTERNAL.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(provider);
}

/// Resolves the config providers' placeholders of a setting that has placeholders of its own, such as the
/// `${topic}` of a `detail_type` template: those are left as written.
pub fn interpolate_providers(raw: &str) -> Result<String, InterpolationError> {
    substitute(raw, |reference| match reference.split_once(':') {
        Some((provider, _)) if PROVIDERS.contains(&provider) => resolve(reference),
        _ => Ok(format!("${{{reference}}}")),
    })
}

/// Whether a text holds a config provider's placeholder (`${env:}`, `${file:}`, `${aws-ssm:}`, ...).
pub fn has_provider_placeholder(raw: &str) -> bool {
    let unescaped = raw.replace("$${", "");
    PROVIDERS
        .iter()
        .any(|provider| unescaped.contains(&format!("${{{provider}:")))
}

fn substitute(
    raw: &str,
    resolve: impl Fn(&str) -> Result<String, InterpolationError>,
) -> Result<String, InterpolationError> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    let mut consumed = 0;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar..];
        if let Some(escaped) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = escaped;
            consumed += dollar + 3;
            continue;
        }
        if !after.starts_with("${") {
            out.push('$');
            rest = &after[1..];
            consumed += dollar + 1;
            continue;
        }
        let close = after
            .find('}')
            .ok_or(InterpolationError::Unterminated(consumed + dollar))?;
        out.push_str(&resolve(&after[2..close])?);
        rest = &after[close + 1..];
        consumed += dollar + close + 1;
    }
    out.push_str(rest);
    Ok(out)
}

fn resolve(reference: &str) -> Result<String, InterpolationError> {
    let (provider, argument) = reference.split_once(':').unwrap_or((reference, ""));
    match provider {
        "env" => match std::env::var(argument) {
            Ok(value) => Ok(value),
            Err(std::env::VarError::NotPresent) => Err(InterpolationError::UnsetVariable(argument.to_owned())),
            Err(std::env::VarError::NotUnicode(_)) => Err(InterpolationError::NonUnicodeVariable(argument.to_owned())),
        },
        "file" => read_file(argument),
        other if PROVIDERS.contains(&other) => {
            let external = EXTERNAL.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
            match external {
                Some(external) if external.serves(other) => {
                    external
                        .resolve(other, argument)
                        .map_err(|reason| InterpolationError::External {
                            reference: reference.to_owned(),
                            reason,
                        })
                }
                _ => Err(InterpolationError::ProviderUnavailable(other.to_owned())),
            }
        }
        other => Err(InterpolationError::UnknownProvider(other.to_owned())),
    }
}

/// The most `${file:}` reads: enough for any key or certificate bundle, and `/dev/zero` cannot fill memory.
pub(crate) const FILE_LIMIT: u64 = 1 << 20;

/// A regular file of at most [`FILE_LIMIT`] bytes, without the newline an editor or `echo` ends it with.
fn read_file(path: &str) -> Result<String, InterpolationError> {
    let unreadable = |reason: String| InterpolationError::UnreadableFile {
        path: path.to_owned(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|error| unreadable(error.to_string()))?;
    let metadata = file.metadata().map_err(|error| unreadable(error.to_string()))?;
    if !metadata.is_file() {
        return Err(unreadable("not a regular file".into()));
    }
    let content = read_at_most(file, FILE_LIMIT).map_err(|error| unreadable(error.to_string()))?;
    if content.len() as u64 > FILE_LIMIT {
        return Err(InterpolationError::FileTooLarge {
            path: path.to_owned(),
            limit: FILE_LIMIT,
        });
    }
    Ok(content.trim_end_matches(['\r', '\n']).to_owned())
}

/// A file's text, reading at most `limit` bytes and one more: a caller sees that a file is too large without
/// reading all of it.
pub(super) fn read_at_most(file: std::fs::File, limit: u64) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    file.take(limit + 1).read_to_string(&mut text)?;
    Ok(text)
}

fn has_placeholder(raw: &str) -> bool {
    raw.replace("$${", "").contains("${")
}

/// A configuration string that may contain placeholders. Shown as written, used resolved.
#[derive(Clone, PartialEq, Eq)]
pub struct Interpolated {
    raw: String,
    resolved: String,
}

impl Interpolated {
    /// The name a deserializer sees for it.
    pub(crate) const NAME: &'static str = "Interpolated";

    pub(crate) fn new(raw: impl Into<String>) -> Result<Self, InterpolationError> {
        let raw = raw.into();
        if raw == HIDDEN {
            return Err(InterpolationError::HiddenWrittenBack);
        }
        let resolved = interpolate(&raw)?;
        if has_placeholder(&raw) {
            redact::record(&resolved);
        }
        Ok(Self { raw, resolved })
    }

    /// The value to use.
    pub fn value(&self) -> &str {
        &self.resolved
    }

    /// The text as written in the file.
    pub(crate) fn as_written(&self) -> &str {
        &self.raw
    }

    /// What may be shown of this text when it holds a secret: a placeholder as written, a literal as `[hidden]`.
    pub(crate) fn shown_as_secret(&self) -> &str {
        if has_placeholder(&self.raw) {
            &self.raw
        } else {
            HIDDEN
        }
    }
}

impl fmt::Debug for Interpolated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.raw, f)
    }
}

impl fmt::Display for Interpolated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl Serialize for Interpolated {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.raw)
    }
}

/// Read as a newtype named [`Interpolated::NAME`], so that a deserializer can tell the settings that resolve their
/// own placeholders from those whose placeholders are resolved for them (see `config::resolve_placeholders`).
impl<'de> Deserialize<'de> for Interpolated {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl<'de> de::Visitor<'de> for Visitor {
            type Value = Interpolated;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_newtype_struct<D: Deserializer<'de>>(self, deserializer: D) -> Result<Interpolated, D::Error> {
                let raw = String::deserialize(deserializer)?;
                Interpolated::new(raw).map_err(de::Error::custom)
            }

            fn visit_str<E: de::Error>(self, raw: &str) -> Result<Interpolated, E> {
                Interpolated::new(raw).map_err(E::custom)
            }
        }

        deserializer.deserialize_newtype_struct(Interpolated::NAME, Visitor)
    }
}

/// A password, token or key. Its value is never shown: a placeholder is shown as written, a literal as `[hidden]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Interpolated);

impl Secret {
    #[cfg(test)]
    fn new(raw: impl Into<String>) -> Result<Self, InterpolationError> {
        Interpolated::new(raw).map(Self::from)
    }

    /// The secret itself, for handing to a client library. Never log it.
    pub fn expose(&self) -> &str {
        self.0.value()
    }

    /// What may be shown of this secret.
    pub(crate) fn redacted(&self) -> &str {
        self.0.shown_as_secret()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.redacted(), f)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.redacted())
    }
}

impl From<Interpolated> for Secret {
    fn from(value: Interpolated) -> Self {
        redact::record(value.value());
        Self(value)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Interpolated::deserialize(deserializer).map(Self::from)
    }
}

/// librdkafka settings (`consumer_override`, `kafka.consumer`, ...), with `#[serde(with = ...)]`: shown as written,
/// except that a key naming a password, secret or private key shows its value as a [`super::Secret`] does, and its value
/// is recorded for scrubbing even when written literally.
pub mod client_settings {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer};

    use super::Interpolated;

    /// librdkafka keys whose value is a credential: `sasl.password`, `ssl.key.password`, `ssl.keystore.password`,
    /// `sasl.oauthbearer.client.secret`, `ssl.key.pem`, `ssl_key`, `sasl.oauthbearer.config`, and the like.
    pub(crate) fn is_secret(key: &str) -> bool {
        let key = key.to_ascii_lowercase();
        key.contains("password")
            || key.contains("secret")
            || key.ends_with("key.pem")
            || key == "ssl_key"
            || key == "sasl.oauthbearer.config"
            || key.ends_with("jaas.config")
    }

    pub(crate) fn serialize<S: Serializer>(
        settings: &BTreeMap<String, Interpolated>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_map(settings.iter().map(|(key, value)| {
            let shown = if is_secret(key) {
                value.shown_as_secret()
            } else {
                value.as_written()
            };
            (key, shown)
        }))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<BTreeMap<String, Interpolated>, D::Error> {
        let settings = BTreeMap::<String, Interpolated>::deserialize(deserializer)?;
        for (key, value) in &settings {
            if is_secret(key) {
                crate::redact::record(value.value());
            }
        }
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_env_and_file_and_escapes() {
        std::env::set_var("EBCONNECT_TEST_INTERPOLATE_USER", "alice");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("password");
        std::fs::write(&path, "s3cret\n").unwrap();
        let raw = format!(
            "user=${{env:EBCONNECT_TEST_INTERPOLATE_USER}} pass=${{file:{}}} literal=$${{env:X}} cost=$5",
            path.display()
        );
        assert_eq!(
            interpolate(&raw).unwrap(),
            "user=alice pass=s3cret literal=${env:X} cost=$5"
        );
    }

    #[test]
    fn names_what_is_wrong() {
        assert_eq!(
            interpolate("${env:EBCONNECT_TEST_SURELY_UNSET}"),
            Err(InterpolationError::UnsetVariable("EBCONNECT_TEST_SURELY_UNSET".into()))
        );
        assert_eq!(
            interpolate("${vault:x}"),
            Err(InterpolationError::UnknownProvider("vault".into()))
        );
        assert_eq!(interpolate("ab${env:X"), Err(InterpolationError::Unterminated(2)));
        assert!(matches!(
            interpolate("${file:/nonexistent/ebconnect}"),
            Err(InterpolationError::UnreadableFile { .. })
        ));
        assert!(matches!(
            interpolate("${file:/dev/zero}"),
            Err(InterpolationError::UnreadableFile { reason, .. }) if reason == "not a regular file"
        ));
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; FILE_LIMIT as usize + 1]).unwrap();
        assert!(matches!(
            interpolate(&format!("${{file:{}}}", big.display())),
            Err(InterpolationError::FileTooLarge { .. })
        ));
        assert_eq!(Interpolated::new(HIDDEN), Err(InterpolationError::HiddenWrittenBack));
    }

    #[test]
    fn secrets_never_show_their_value() {
        std::env::set_var("EBCONNECT_TEST_INTERPOLATE_SECRET", "hunter2");
        let from_env = Secret::new("${env:EBCONNECT_TEST_INTERPOLATE_SECRET}").unwrap();
        assert_eq!(from_env.expose(), "hunter2");
        assert_eq!(format!("{from_env:?}"), "\"${env:EBCONNECT_TEST_INTERPOLATE_SECRET}\"");
        let literal = Secret::new("hunter2").unwrap();
        assert_eq!(format!("{literal:?}"), "\"[hidden]\"");
        assert_eq!(serde_json::to_string(&literal).unwrap(), "\"[hidden]\"");
        let plain = Interpolated::new("${env:EBCONNECT_TEST_INTERPOLATE_SECRET}").unwrap();
        assert!(!format!("{plain:?} {plain}").contains("hunter2"));

        #[derive(Deserialize, Serialize)]
        struct Overrides {
            #[serde(with = "client_settings")]
            settings: std::collections::BTreeMap<String, Interpolated>,
        }
        let overrides: Overrides = serde_json::from_str(
            r#"{"settings": {"ssl.key.password": "literal-key-pass", "sasl.password": "${env:EBCONNECT_TEST_INTERPOLATE_SECRET}", "session.timeout.ms": "6000"}}"#,
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(&overrides).unwrap(),
            serde_json::json!({"settings": {
                "sasl.password": "${env:EBCONNECT_TEST_INTERPOLATE_SECRET}",
                "session.timeout.ms": "6000",
                "ssl.key.password": "[hidden]",
            }})
        );
        assert_eq!(redact::scrub("bad literal-key-pass"), "bad [hidden]");
    }
}
