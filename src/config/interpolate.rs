//! `${env:NAME}` and `${file:/path}` placeholders in configuration strings, in the spirit of Kafka Connect's
//! config providers, and the two string types that carry them: [`Interpolated`] and [`Secret`].
//!
//! Both keep the text as written next to the resolved value. Everything that shows a configuration to a person
//! (`Debug`, `Serialize`, `validate`, the REST API) shows the text as written, so a value that came from the
//! environment or a file never appears in output. A [`Secret`] written literally is shown as `[hidden]`.

use std::fmt;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// What [`Secret`] shows in place of a literal value, as Kafka Connect does for `PASSWORD` settings.
pub const HIDDEN: &str = "[hidden]";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InterpolationError {
    #[error("environment variable `{0}` is not set (referenced as ${{env:{0}}})")]
    UnsetVariable(String),
    #[error("environment variable `{0}` is not valid UTF-8")]
    NonUnicodeVariable(String),
    #[error("cannot read `{path}` (referenced as ${{file:{path}}}): {reason}")]
    UnreadableFile { path: String, reason: String },
    #[error("unknown config provider `{0}` in `${{{0}:...}}`; expected `env` or `file`")]
    UnknownProvider(String),
    #[error(
        "unterminated placeholder starting at byte {0}: a `${{` without its `}}` (write `$${{` for a literal `${{`)"
    )]
    Unterminated(usize),
}

/// Resolves every placeholder in `raw`. `$${` stands for a literal `${`.
pub fn interpolate(raw: &str) -> Result<String, InterpolationError> {
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
        "file" => std::fs::read_to_string(argument)
            // A secret file written by an editor or `echo` ends in a newline that is not part of the secret.
            .map(|content| content.trim_end_matches(['\r', '\n']).to_owned())
            .map_err(|error| InterpolationError::UnreadableFile {
                path: argument.to_owned(),
                reason: error.to_string(),
            }),
        other => Err(InterpolationError::UnknownProvider(other.to_owned())),
    }
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
    pub fn new(raw: impl Into<String>) -> Result<Self, InterpolationError> {
        let raw = raw.into();
        let resolved = interpolate(&raw)?;
        Ok(Self { raw, resolved })
    }

    /// The value to use.
    pub fn value(&self) -> &str {
        &self.resolved
    }

    /// The text as written in the file.
    pub fn as_written(&self) -> &str {
        &self.raw
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

impl<'de> Deserialize<'de> for Interpolated {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Interpolated::new(raw).map_err(de::Error::custom)
    }
}

/// A password, token or key. Its value is never shown: a placeholder is shown as written, a literal as `[hidden]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Interpolated);

impl Secret {
    pub fn new(raw: impl Into<String>) -> Result<Self, InterpolationError> {
        Interpolated::new(raw).map(Self)
    }

    /// The secret itself, for handing to a client library. Never log it.
    pub fn expose(&self) -> &str {
        self.0.value()
    }

    /// What may be shown of this secret.
    pub fn redacted(&self) -> &str {
        if has_placeholder(self.0.as_written()) {
            self.0.as_written()
        } else {
            HIDDEN
        }
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

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Interpolated::deserialize(deserializer).map(Self)
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
    }
}
