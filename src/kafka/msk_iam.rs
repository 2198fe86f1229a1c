//! `kafka.sasl.mechanism: AWS_MSK_IAM`: Amazon MSK's IAM access control. librdkafka speaks OAUTHBEARER and asks the
//! client's context for a token (first as the client starts, then again at 80% of the token's lifetime); the token
//! is a SigV4-presigned `kafka-cluster:Connect` URL, made by `aws-msk-iam-sasl-signer` (a port of AWS's own signers,
//! on `aws-sigv4`) with the worker's AWS credentials: the chain PutEvents uses, assumed role included.
//!
//! One signer serves the process: every Kafka client's context asks [`token`], whatever its type, so none of the
//! client constructors needs to carry it.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::Region;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use rdkafka::client::{Client, OAuthToken};
use rdkafka::ClientContext;

use crate::aws::blocking::BlockingAws;
use crate::config::WorkerConfig;

/// How long signing may take, fetching credentials included.
const SIGN_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum MskIamError {
    #[error("cannot start the MSK IAM signer: {0}")]
    Start(String),
    #[error("no AWS region for MSK IAM: the brokers' host names do not name one, so set aws.region")]
    NoRegion,
    #[error("no AWS credentials provider for MSK IAM")]
    NoCredentials,
    #[error("cannot sign an MSK IAM token: {0}")]
    Sign(String),
    #[error("kafka.sasl.mechanism is AWS_MSK_IAM but the worker started no MSK IAM signer")]
    NotInstalled,
}

/// Signs MSK IAM tokens for one region with one credentials provider.
pub struct MskIamSigner {
    aws: BlockingAws,
    region: Region,
    credentials: SharedCredentialsProvider,
    /// The last token, with when it was signed: every client of the process asks for one (several per connector),
    /// and each signing fetches credentials (an STS call for an assumed role).
    last: Mutex<Option<(i64, OAuthToken)>>,
}

impl MskIamSigner {
    /// The worker's credentials; the region of the brokers' host names (`b-1.c.x.c2.kafka.eu-west-1.amazonaws.com`)
    /// if they are MSK's, else the worker's region.
    pub fn start(worker: &WorkerConfig) -> Result<Self, MskIamError> {
        let aws = BlockingAws::start("msk-iam").map_err(|error| MskIamError::Start(error.to_string()))?;
        let config = worker.aws.clone();
        let sdk = aws
            .run(async move { crate::aws::sdk_config(&config).await })
            .map_err(|error| MskIamError::Start(error.to_string()))?;
        let region = region_of_brokers(worker.kafka.bootstrap_servers.value())
            .map(Region::new)
            .or_else(|| sdk.region().cloned())
            .ok_or(MskIamError::NoRegion)?;
        let credentials = sdk.credentials_provider().ok_or(MskIamError::NoCredentials)?;
        Ok(Self {
            aws,
            region,
            credentials,
            last: Mutex::new(None),
        })
    }

    pub fn region(&self) -> &str {
        self.region.as_ref()
    }

    /// A token with at least half its lifetime left: the last one, or a new one. A token expires with the presigned
    /// URL (15 minutes after signing) or with the credentials that signed it, whichever is first, so that temporary
    /// credentials are renewed before a token outlives them.
    pub fn token(&self) -> Result<OAuthToken, MskIamError> {
        let now = now_ms();
        let mut last = self.last.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((signed_at, token)) = last.as_ref() {
            if now < signed_at + (token.lifetime_ms - signed_at) / 2 {
                return Ok(copy(token));
            }
        }
        let token = self.sign()?;
        *last = Some((now, copy(&token)));
        Ok(token)
    }

    fn sign(&self) -> Result<OAuthToken, MskIamError> {
        let region = self.region.clone();
        let provider = self.credentials.clone();
        let signed = self
            .aws
            .run(async move {
                tokio::time::timeout(SIGN_TIMEOUT, async move {
                    let credentials = provider
                        .provide_credentials()
                        .await
                        .map_err(|error| format!("no AWS credentials: {error}"))?;
                    let expiry = credentials.expiry();
                    let (token, url_expiry_ms) =
                        aws_msk_iam_sasl_signer::generate_auth_token_from_credentials_provider(
                            region,
                            SharedCredentialsProvider::new(credentials),
                        )
                        .await
                        .map_err(|error| error.to_string())?;
                    Ok::<_, String>((token, url_expiry_ms, expiry))
                })
                .await
                .unwrap_or_else(|_| Err(format!("signing took longer than {SIGN_TIMEOUT:?}")))
            })
            .map_err(|error| MskIamError::Sign(error.to_string()))?
            .map_err(MskIamError::Sign)?;
        let (token, url_expiry_ms, credentials_expiry) = signed;
        let credentials_expiry_ms = credentials_expiry
            .and_then(|expiry| expiry.duration_since(UNIX_EPOCH).ok())
            .map_or(i64::MAX, |since| since.as_millis() as i64);
        Ok(OAuthToken {
            token,
            principal_name: String::new(),
            lifetime_ms: url_expiry_ms.min(credentials_expiry_ms),
        })
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64)
}

/// `OAuthToken` is not `Clone`.
fn copy(token: &OAuthToken) -> OAuthToken {
    OAuthToken {
        token: token.token.clone(),
        principal_name: token.principal_name.clone(),
        lifetime_ms: token.lifetime_ms,
    }
}

/// The region an MSK broker's host name holds: `…kafka.<region>.amazonaws.com` (provisioned) or
/// `…kafka-serverless.<region>.amazonaws.com` (serverless), of the first bootstrap server.
pub(crate) fn region_of_brokers(bootstrap_servers: &str) -> Option<String> {
    let first = bootstrap_servers.split(',').next()?.trim();
    let host = first.rsplit_once(':').map_or(first, |(host, _)| host);
    let labels: Vec<&str> = host.split('.').collect();
    labels.windows(3).find_map(|window| match window {
        ["kafka" | "kafka-serverless", region, "amazonaws"] if !region.is_empty() => Some((*region).to_owned()),
        _ => None,
    })
}

static SIGNER: RwLock<Option<Arc<MskIamSigner>>> = RwLock::new(None);

/// Makes `signer` answer every Kafka client's token requests from now on, in this process.
pub(crate) fn install(signer: MskIamSigner) {
    *SIGNER.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Arc::new(signer));
}

/// What every client context answers librdkafka's token requests with.
pub fn token() -> Result<OAuthToken, Box<dyn std::error::Error>> {
    let signer = installed().ok_or(MskIamError::NotInstalled)?;
    Ok(signer.token()?)
}

/// The process's signer, if any: with one, clients that are not polled ([`prime`]) need a token set by hand.
fn installed() -> Option<Arc<MskIamSigner>> {
    SIGNER.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
}

/// Sets a first token on a client that nobody polls (an admin client, a consumer used for one lookup): librdkafka
/// asks for tokens through the client's main queue, which only polling serves. Such clients live for one call,
/// well within a token's lifetime. Does nothing without a signer.
pub(crate) fn prime<C: ClientContext>(client: &Client<C>) -> Result<(), String> {
    let Some(signer) = installed() else {
        return Ok(());
    };
    let token = signer.token().map_err(|error| error.to_string())?;
    let value = std::ffi::CString::new(token.token).map_err(|_| "the token holds a NUL byte".to_owned())?;
    let principal =
        std::ffi::CString::new(token.principal_name).map_err(|_| "the principal holds a NUL byte".to_owned())?;
    let mut error = [0 as std::ffi::c_char; 512];
    // SAFETY: the client pointer is live for the borrow; librdkafka copies the strings before returning, and writes
    // at most `error.len()` bytes, NUL-terminated, into the buffer.
    let code = unsafe {
        rdkafka::bindings::rd_kafka_oauthbearer_set_token(
            client.native_ptr(),
            value.as_ptr(),
            token.lifetime_ms,
            principal.as_ptr(),
            std::ptr::null_mut(),
            0,
            error.as_mut_ptr(),
            error.len(),
        )
    };
    if code == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        return Ok(());
    }
    // SAFETY: librdkafka NUL-terminated what it wrote; the buffer was zeroed, so it is terminated either way.
    let message = unsafe { std::ffi::CStr::from_ptr(error.as_ptr()) };
    Err(format!(
        "librdkafka refused the MSK IAM token: {}",
        message.to_string_lossy()
    ))
}

/// The two items of a `ClientContext` impl that send librdkafka's token requests to [`token`]; every client
/// context of the crate holds them.
#[macro_export]
macro_rules! msk_iam_tokens {
    () => {
        const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

        fn generate_oauth_token(
            &self,
            _config: Option<&str>,
        ) -> Result<rdkafka::client::OAuthToken, Box<dyn std::error::Error>> {
            $crate::kafka::msk_iam::token()
        }
    };
}

/// The context of a client that needs nothing but authentication: admin clients and one-off lookups.
#[derive(Debug, Default, Clone, Copy)]
pub struct SigningContext;

impl ClientContext for SigningContext {
    crate::msk_iam_tokens!();
}

impl rdkafka::consumer::ConsumerContext for SigningContext {}

#[cfg(test)]
mod tests {
    use super::region_of_brokers;

    #[test]
    fn the_region_comes_from_an_msk_host_name() {
        assert_eq!(
            region_of_brokers("b-1.orders.a1b2c3.c2.kafka.eu-west-1.amazonaws.com:9098,b-2.orders.a1b2c3.c2.kafka.eu-west-1.amazonaws.com:9098"),
            Some("eu-west-1".into())
        );
        assert_eq!(
            region_of_brokers("boot-abcd.c1.kafka-serverless.us-east-2.amazonaws.com:9098"),
            Some("us-east-2".into())
        );
        assert_eq!(
            region_of_brokers("b-1.x.y.c3.kafka.cn-north-1.amazonaws.com.cn:9098"),
            Some("cn-north-1".into())
        );
        assert_eq!(region_of_brokers("kafka.internal.example.com:9098"), None);
        assert_eq!(region_of_brokers("127.0.0.1:9092"), None);
    }
}
