//! Signing PutEvents requests: credentials from the SDK's provider chain (environment, profile, web identity,
//! container and instance roles, an assumed role), cached until shortly before they expire, and SigV4 or SigV4a
//! from `aws-sigv4`, the SDK's own signer.

use std::time::{Duration, SystemTime};

use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::{v4, v4a};
use aws_smithy_runtime_api::client::identity::Identity;

use super::endpoint::{Signing, SIGNING_NAME};

/// Credentials are refreshed this long before they expire, so that no request is signed with credentials that
/// expire while it is on its way (the SDK's identity cache uses the same margin).
const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, thiserror::Error)]
pub(crate) enum SigningError {
    #[error("no AWS credentials are configured (environment, profile, web identity, container or instance role)")]
    NoProvider,
    #[error("cannot load AWS credentials: {0}")]
    Credentials(#[source] CredentialsError),
    #[error("cannot sign the request: {0}")]
    Sign(String),
}

impl SigningError {
    /// Whether a later attempt may succeed: a provider that timed out or failed may answer next time; missing
    /// or misconfigured credentials stay missing.
    pub(crate) fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Credentials(CredentialsError::ProviderTimedOut(_) | CredentialsError::ProviderError(_))
        )
    }
}

#[derive(Debug)]
pub(crate) struct RequestSigner {
    provider: Option<SharedCredentialsProvider>,
    cached: tokio::sync::Mutex<Option<Credentials>>,
    signing: Signing,
}

impl RequestSigner {
    pub(crate) fn new(provider: Option<SharedCredentialsProvider>, signing: Signing) -> Self {
        Self {
            provider,
            cached: tokio::sync::Mutex::new(None),
            signing,
        }
    }

    /// Credentials that stay valid for at least `REFRESH_MARGIN`. The lock is held while loading, so concurrent
    /// requests wait for one refresh instead of each asking the provider (an STS call for an assumed role).
    async fn credentials(&self) -> Result<Credentials, SigningError> {
        let provider = self.provider.as_ref().ok_or(SigningError::NoProvider)?;
        let mut cached = self.cached.lock().await;
        if let Some(credentials) = cached.as_ref() {
            let fresh = credentials
                .expiry()
                .is_none_or(|expiry| expiry > SystemTime::now() + REFRESH_MARGIN);
            if fresh {
                return Ok(credentials.clone());
            }
        }
        let loaded = provider
            .provide_credentials()
            .await
            .map_err(SigningError::Credentials)?;
        *cached = Some(loaded.clone());
        Ok(loaded)
    }

    /// Adds the signature headers (`authorization`, `x-amz-date`, the session token) to `request`, whose headers
    /// must all be set already: every header present is signed. The body travels apart (as pieces, see
    /// `request::BodyPieces`); `body_sha256` is its SHA-256 in lowercase hex.
    pub(crate) async fn sign(&self, request: &mut http::Request<()>, body_sha256: String) -> Result<(), SigningError> {
        let identity: Identity = self.credentials().await?.into();
        self.sign_with(&identity, SystemTime::now(), request, body_sha256)
    }

    fn sign_with(
        &self,
        identity: &Identity,
        time: SystemTime,
        request: &mut http::Request<()>,
        body_sha256: String,
    ) -> Result<(), SigningError> {
        let failed = |error: &(dyn std::error::Error + 'static)| SigningError::Sign(crate::error_chain(error));
        let params = match &self.signing {
            Signing::V4 { region } => v4::SigningParams::builder()
                .identity(identity)
                .region(region)
                .name(SIGNING_NAME)
                .time(time)
                .settings(SigningSettings::default())
                .build()
                .map_err(|error| failed(&error))?
                .into(),
            Signing::V4a { region_set } => v4a::SigningParams::builder()
                .identity(identity)
                .region_set(region_set)
                .name(SIGNING_NAME)
                .time(time)
                .settings(SigningSettings::default())
                .build()
                .map_err(|error| failed(&error))?
                .into(),
        };
        let headers = request
            .headers()
            .iter()
            .map(|(name, value)| {
                value
                    .to_str()
                    .map(|value| (name.as_str(), value))
                    .map_err(|_| SigningError::Sign(format!("header `{name}` is not visible ASCII")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let uri = request.uri().to_string();
        let signable = SignableRequest::new(
            request.method().as_str(),
            uri.as_str(),
            headers.into_iter(),
            SignableBody::Precomputed(body_sha256),
        )
        .map_err(|error| failed(&error))?;
        let (instructions, _signature) = sign(signable, &params).map_err(|error| failed(&error))?.into_parts();
        instructions.apply_to_request_http1x(request);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use aws_credential_types::provider::future;

    const BODY: &[u8] = br#"{"Entries":[]}"#;

    fn request() -> http::Request<()> {
        http::Request::post("https://events.us-east-1.amazonaws.com/")
            .header("host", "events.us-east-1.amazonaws.com")
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", "AWSEvents.PutEvents")
            .body(())
            .unwrap()
    }

    /// The body's hash as the service computes it, from the pieces of a body of no entries.
    fn body_sha256() -> String {
        let pieces = crate::eventbridge::request::PutEventsBody {
            event_bus: "default",
            endpoint_id: None,
            entries: &[],
        }
        .to_pieces();
        assert_eq!(pieces.to_vec(), BODY);
        pieces.sha256_hex()
    }

    fn credentials(expiry: Option<SystemTime>) -> Credentials {
        Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            Some("token".into()),
            expiry,
            "test",
        )
    }

    /// The signature of a fixed request at a fixed time, worked out independently with the algorithm in the AWS
    /// documentation (canonical request → string to sign → HMAC chain), so that a change in what is signed shows.
    #[test]
    fn sigv4_signs_the_headers_and_body() {
        let signer = RequestSigner::new(
            None,
            Signing::V4 {
                region: "us-east-1".into(),
            },
        );
        let mut request = request();
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        signer
            .sign_with(&credentials(None).into(), time, &mut request, body_sha256())
            .unwrap();
        let authorization = request.headers()["authorization"].to_str().unwrap();
        assert!(authorization.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/us-east-1/events/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, Signature="
        ));
        assert_eq!(request.headers()["x-amz-date"], "20231114T221320Z");
        assert_eq!(request.headers()["x-amz-security-token"], "token");
        let signature = authorization.rsplit('=').next().unwrap();
        assert_eq!(signature, expected_sigv4_signature(&request));
    }

    /// SigV4 by hand, for the test above.
    fn expected_sigv4_signature(request: &http::Request<()>) -> String {
        use sha2::{Digest, Sha256};
        let hex = |bytes: &[u8]| bytes.iter().map(|byte| format!("{byte:02x}")).collect::<String>();
        let hmac = |key: &[u8], data: &str| {
            use hmac::{Hmac, KeyInit, Mac};
            let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
            mac.update(data.as_bytes());
            mac.finalize().into_bytes().to_vec()
        };
        let headers = request.headers();
        let signed = [
            "content-type",
            "host",
            "x-amz-date",
            "x-amz-security-token",
            "x-amz-target",
        ];
        let canonical_headers: String = signed
            .iter()
            .map(|name| format!("{name}:{}\n", headers[*name].to_str().unwrap()))
            .collect();
        let canonical_request = format!(
            "POST\n/\n\n{canonical_headers}\n{}\n{}",
            signed.join(";"),
            hex(&Sha256::digest(BODY))
        );
        let date = headers["x-amz-date"].to_str().unwrap();
        let scope = format!("{}/us-east-1/events/aws4_request", &date[..8]);
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{date}\n{scope}\n{}",
            hex(&Sha256::digest(canonical_request.as_bytes()))
        );
        let mut key = hmac(b"AWS4wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", &date[..8]);
        for part in ["us-east-1", "events", "aws4_request"] {
            key = hmac(&key, part);
        }
        hex(&hmac(&key, &string_to_sign))
    }

    #[test]
    fn sigv4a_signs_for_the_region_set() {
        let signer = RequestSigner::new(None, Signing::V4a { region_set: "*".into() });
        let mut request = request();
        signer
            .sign_with(
                &credentials(None).into(),
                SystemTime::now(),
                &mut request,
                body_sha256(),
            )
            .unwrap();
        let authorization = request.headers()["authorization"].to_str().unwrap();
        assert!(
            authorization.starts_with("AWS4-ECDSA-P256-SHA256 Credential=AKIDEXAMPLE/"),
            "{authorization}"
        );
        assert_eq!(request.headers()["x-amz-region-set"], "*");
    }

    #[derive(Debug)]
    struct CountingProvider {
        calls: Arc<AtomicUsize>,
        lifetime: Duration,
    }

    impl ProvideCredentials for CountingProvider {
        fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            self.calls.fetch_add(1, Ordering::SeqCst);
            future::ProvideCredentials::ready(Ok(credentials(Some(SystemTime::now() + self.lifetime))))
        }
    }

    #[tokio::test]
    async fn credentials_are_cached_until_shortly_before_they_expire() {
        let calls = Arc::new(AtomicUsize::new(0));
        let long_lived = RequestSigner::new(
            Some(SharedCredentialsProvider::new(CountingProvider {
                calls: calls.clone(),
                lifetime: Duration::from_secs(3600),
            })),
            Signing::V4 {
                region: "us-east-1".into(),
            },
        );
        for _ in 0..3 {
            long_lived.sign(&mut request(), body_sha256()).await.unwrap();
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let expiring = RequestSigner::new(
            Some(SharedCredentialsProvider::new(CountingProvider {
                calls: calls.clone(),
                lifetime: REFRESH_MARGIN / 2,
            })),
            Signing::V4 {
                region: "us-east-1".into(),
            },
        );
        for _ in 0..3 {
            expiring.sign(&mut request(), body_sha256()).await.unwrap();
        }
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn no_provider_is_a_lasting_error() {
        let signer = RequestSigner::new(
            None,
            Signing::V4 {
                region: "us-east-1".into(),
            },
        );
        let error = signer.sign(&mut request(), body_sha256()).await.unwrap_err();
        assert!(matches!(error, SigningError::NoProvider));
        assert!(!error.is_retryable());
    }
}
