//! One PutEvents call over HTTP, its response mapped to an outcome per entry.
//!
//! The request is written and signed here rather than through the SDK's operation: at tens of thousands of
//! entries a second the SDK's per-request pipeline (building entry structs, escaping each detail byte by byte,
//! interceptors) cost more CPU than decoding the records. What stays the SDK's: the endpoint rules, the
//! credential providers and the signer (see `endpoint` and `signing`).

use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST, USER_AGENT};
use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::Deserialize;

use super::endpoint::PutEventsEndpoint;
use super::entry::Entry;
use super::request::{self, BodyPieces, PutEventsBody};
use super::retry::{is_retryable_entry_error, is_retryable_request_error, is_throttling_error};
use super::signing::RequestSigner;
use aws_credential_types::provider::SharedCredentialsProvider;

/// What became of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryOutcome {
    Delivered {
        event_id: String,
    },
    /// Worth sending again. `transient` when EventBridge said it was throttling or had an internal failure, which
    /// passes; otherwise the response did not say what became of the entry.
    Retryable {
        code: String,
        message: String,
        transient: bool,
    },
    /// Will fail the same way again (malformed, not authorized, ...): a record error.
    Rejected {
        code: String,
        message: String,
    },
}

impl EntryOutcome {
    /// EventBridge throttled the entry: the account's quota is spent.
    pub(crate) fn is_throttled(&self) -> bool {
        matches!(self, Self::Retryable { code, .. } if code == "ThrottlingException")
    }
}

/// A failure of the whole request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Throttled, 5xx, timed out, the connection failed or no credentials yet: the service is busy or away, and the
    /// same entries go through once it is back.
    #[error("PutEvents failed, will retry: {0}")]
    Transient(String),
    /// The account's quota is spent: sent again later, like `Transient`, and a reason to send less.
    #[error("PutEvents throttled, will retry: {0}")]
    Throttled(String),
    /// An answer that does not say what became of the entries (a success that is not a PutEvents response, a
    /// result count that does not fit): send them again, within the retry limits.
    #[error("PutEvents answer unclear, will retry: {0}")]
    Uncertain(String),
    /// The request itself is wrong (no such bus, access denied, bad credentials): no entry can succeed, so this
    /// fails the connector instead of dead-lettering every record.
    #[error("PutEvents failed: {0}")]
    Fatal(String),
    /// HTTP 413: the request is larger than the service takes. Smaller requests of the same entries may pass, so
    /// the batch is split; an entry alone too large is a record error.
    #[error("PutEvents request too large: {0}")]
    TooLarge(String),
}

#[derive(Debug)]
pub struct PutEventsService {
    transport: Transport,
    uri: http::Uri,
    host: String,
    signer: RequestSigner,
    event_bus: String,
    endpoint_id: Option<String>,
    timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ServiceSetupError {
    #[error("the EventBridge endpoint `{0}` is not an http(s) URL with a host")]
    BadEndpoint(String),
    #[error("cannot create the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("cannot set up TLS for the EventBridge endpoint: {0}")]
    Tls(#[source] std::io::Error),
}

/// How a request reaches the endpoint: through hyper's pooled client itself, or through reqwest when the
/// environment names a proxy for the endpoint (`HTTPS_PROXY`, `HTTP_PROXY` or `ALL_PROXY`, unless `NO_PROXY` exempts
/// it), as reqwest tunnels or forwards through it. reqwest wraps the same client in layers a PutEvents call does not
/// use (redirects, retries), which copy the headers and parse the URL twice a request: a tenth of the sink's CPU
/// (README "Performance").
#[derive(Debug)]
enum Transport {
    Direct(Box<hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, BodyPieces>>),
    Proxied(reqwest::Client),
}

/// A response as far as the outcomes need it.
struct Answer {
    status: StatusCode,
    /// `x-amzn-errortype`, read only from a failure.
    error_type: Option<String>,
    /// `None` when it is longer than [`MAX_RESPONSE_BODY`] and was not read.
    body: Option<Bytes>,
}

/// The most of a response's body that is read. A PutEvents response takes about a hundred bytes an entry, and an
/// error says what it has to say in a few hundred; a longer body (a proxy's error page, a misbehaving endpoint) is
/// not held, whatever its size, by each of the hundreds of requests a sink has in flight.
const MAX_RESPONSE_BODY: usize = 64 * 1024;

impl Answer {
    async fn read<B>(response: http::Response<B>) -> Result<Self, String>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (parts, body) = response.into_parts();
        let body = match http_body_util::Limited::new(body, MAX_RESPONSE_BODY).collect().await {
            Ok(body) => Some(body.to_bytes()),
            Err(error) if error.is::<http_body_util::LengthLimitError>() => None,
            Err(error) => return Err(crate::error_chain(&*error)),
        };
        Ok(Self {
            error_type: error_type(parts.status, &parts.headers),
            status: parts.status,
            body,
        })
    }
}

impl Transport {
    fn new(uri: &http::Uri, connect_timeout: Duration) -> Result<Self, ServiceSetupError> {
        if hyper_util::client::proxy::matcher::Matcher::from_system()
            .intercept(uri)
            .is_some()
        {
            let client = reqwest::Client::builder()
                .connect_timeout(connect_timeout)
                .build()
                .map_err(ServiceSetupError::Client)?;
            return Ok(Self::Proxied(client));
        }
        // As reqwest sets them: no Nagle delay for a request written in pieces, keep-alive probes on pooled
        // connections.
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_connect_timeout(Some(connect_timeout));
        tcp.set_nodelay(true);
        tcp.set_keepalive(Some(Duration::from_secs(15)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_platform_verifier(rustls::crypto::aws_lc_rs::default_provider())
            .map_err(ServiceSetupError::Tls)?
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .build(connector);
        Ok(Self::Direct(Box::new(client)))
    }

    async fn exchange(&self, request: http::Request<BodyPieces>) -> Result<Answer, String> {
        match self {
            Self::Direct(client) => {
                let response = client
                    .request(request)
                    .await
                    .map_err(|error| crate::error_chain(&error))?;
                Answer::read(response).await
            }
            Self::Proxied(client) => {
                let request = reqwest::Request::try_from(request.map(reqwest::Body::wrap))
                    .map_err(|error| crate::error_chain(&error))?;
                let response = client
                    .execute(request)
                    .await
                    .map_err(|error| crate::error_chain(&error))?;
                Answer::read(http::Response::<reqwest::Body>::from(response)).await
            }
        }
    }
}

fn error_type(status: StatusCode, headers: &HeaderMap) -> Option<String> {
    (!status.is_success())
        .then(|| headers.get("x-amzn-errortype"))
        .flatten()
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

impl PutEventsService {
    pub(crate) fn new(
        endpoint: PutEventsEndpoint,
        credentials: Option<SharedCredentialsProvider>,
        event_bus: String,
        endpoint_id: Option<String>,
        timeout: Duration,
    ) -> Result<Self, ServiceSetupError> {
        let bad_endpoint = || ServiceSetupError::BadEndpoint(endpoint.url.clone());
        let uri = endpoint
            .url
            .parse::<http::Uri>()
            .ok()
            .filter(|uri| matches!(uri.scheme_str(), Some("http" | "https")))
            .ok_or_else(bad_endpoint)?;
        let host = uri.authority().ok_or_else(bad_endpoint)?.as_str().to_owned();
        Ok(Self {
            transport: Transport::new(&uri, timeout)?,
            uri,
            host,
            signer: RequestSigner::new(credentials, endpoint.signing),
            event_bus,
            endpoint_id,
            timeout,
        })
    }

    /// Sends `entries` (at most 10, within the size limit) and returns one outcome per entry, in order.
    pub(crate) async fn send(&self, entries: &[&Entry]) -> Result<Vec<EntryOutcome>, RequestError> {
        let body = PutEventsBody {
            event_bus: &self.event_bus,
            endpoint_id: self.endpoint_id.as_deref(),
            entries,
        }
        .to_pieces();
        let mut request = http::Request::post(self.uri.clone())
            .header(HOST, self.host.as_str())
            .header(CONTENT_TYPE, request::CONTENT_TYPE)
            .header("x-amz-target", request::TARGET)
            .body(())
            .map_err(|error| RequestError::Fatal(format!("cannot build the request: {error}")))?;
        self.signer
            .sign(&mut request, body.sha256_hex())
            .await
            .map_err(|error| {
                if error.is_retryable() {
                    RequestError::Transient(error.to_string())
                } else {
                    RequestError::Fatal(error.to_string())
                }
            })?;
        // The user agent is not signed, as the SDKs leave it out too (proxies rewrite it).
        request.headers_mut().insert(
            USER_AGENT,
            http::HeaderValue::from_static(concat!("ebconnect/", env!("CARGO_PKG_VERSION"))),
        );
        let request = request.map(|()| body);
        match tokio::time::timeout(self.timeout, self.transport.exchange(request)).await {
            Err(_) => Err(RequestError::Transient(format!(
                "no response within {:?}",
                self.timeout
            ))),
            Ok(Err(error)) => Err(RequestError::Transient(error)),
            Ok(Ok(answer)) => outcomes(
                answer.status,
                answer.error_type.as_deref(),
                answer.body.as_deref(),
                entries.len(),
            ),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutEventsResponse {
    #[serde(default)]
    entries: Vec<ResultEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ResultEntry {
    event_id: Option<String>,
    error_code: Option<String>,
    error_message: Option<String>,
}

/// AWS JSON 1.1 error bodies name the error in `__type` (or `code`) and explain it in `message` (or `Message`).
#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(rename = "__type", alias = "code")]
    kind: Option<String>,
    #[serde(alias = "Message")]
    message: Option<String>,
}

/// The error code without the namespace (`aws.protocoltests#`) or the URL suffix (`:http://...`) some services add.
fn error_code(raw: &str) -> &str {
    let code = raw.rsplit_once('#').map_or(raw, |(_, code)| code);
    code.split_once(':').map_or(code, |(code, _)| code)
}

/// The per-entry outcomes of a response, or why the whole request failed. `error_type` is the `x-amzn-errortype`
/// header of a failure, which takes precedence over the body's; `body` is `None` when it was too long to read.
fn outcomes(
    status: StatusCode,
    error_type: Option<&str>,
    body: Option<&[u8]>,
    entries: usize,
) -> Result<Vec<EntryOutcome>, RequestError> {
    let too_long = || format!("a body of over {MAX_RESPONSE_BODY} bytes, not read");
    if !status.is_success() {
        let error: ErrorBody = body
            .and_then(|body| serde_json::from_slice(body).ok())
            .unwrap_or_default();
        let code = error_type.or(error.kind.as_deref()).map(error_code).unwrap_or_default();
        let message = error.message.unwrap_or_else(|| match body {
            Some(body) => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
            None => too_long(),
        });
        let detail = if code.is_empty() {
            format!("HTTP {}: {message}", status.as_u16())
        } else {
            format!("HTTP {}: {code}: {message}", status.as_u16())
        };
        return if status == StatusCode::PAYLOAD_TOO_LARGE {
            Err(RequestError::TooLarge(detail))
        } else if status == StatusCode::TOO_MANY_REQUESTS || is_throttling_error(code) {
            Err(RequestError::Throttled(detail))
        } else if status.is_server_error()
            || status == StatusCode::TOO_MANY_REQUESTS
            || is_retryable_request_error(code)
        {
            Err(RequestError::Transient(detail))
        } else {
            Err(RequestError::Fatal(detail))
        };
    }
    // A success that is not a PutEvents response came from something in between (a proxy, a captive portal);
    // whether the entries arrived is unknown, so they are sent again.
    let Some(body) = body else {
        return Err(RequestError::Uncertain(format!(
            "HTTP {} with {}",
            status.as_u16(),
            too_long()
        )));
    };
    let response: PutEventsResponse = serde_json::from_slice(body).map_err(|error| {
        RequestError::Uncertain(format!(
            "HTTP {} with a body that is not a PutEvents response: {error}",
            status.as_u16()
        ))
    })?;
    if response.entries.len() != entries {
        return Err(RequestError::Uncertain(format!(
            "response has {} results for {entries} entries",
            response.entries.len()
        )));
    }
    Ok(response
        .entries
        .into_iter()
        .map(|result| match (result.event_id, result.error_code) {
            (_, Some(code)) => {
                let message = result.error_message.unwrap_or_default();
                if is_retryable_entry_error(&code) {
                    EntryOutcome::Retryable {
                        code,
                        message,
                        transient: true,
                    }
                } else {
                    EntryOutcome::Rejected { code, message }
                }
            }
            (Some(event_id), None) => EntryOutcome::Delivered { event_id },
            (None, None) => EntryOutcome::Retryable {
                code: "MissingResult".into(),
                message: "the response gave this entry neither an event id nor an error".into(),
                transient: false,
            },
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(
        status: u16,
        error_type: Option<&str>,
        body: &str,
        entries: usize,
    ) -> Result<Vec<EntryOutcome>, RequestError> {
        outcomes(
            StatusCode::from_u16(status).unwrap(),
            error_type,
            Some(body.as_bytes()),
            entries,
        )
    }

    #[test]
    fn maps_each_entry_result() {
        let body = r#"{"FailedEntryCount":2,"Entries":[{"EventId":"a"},{"ErrorCode":"ThrottlingException","ErrorMessage":"slow down"},{"ErrorCode":"MalformedDetail","ErrorMessage":"bad"},{}]}"#;
        assert_eq!(
            answer(200, None, body, 4).unwrap(),
            vec![
                EntryOutcome::Delivered { event_id: "a".into() },
                EntryOutcome::Retryable {
                    code: "ThrottlingException".into(),
                    message: "slow down".into(),
                    transient: true,
                },
                EntryOutcome::Rejected {
                    code: "MalformedDetail".into(),
                    message: "bad".into()
                },
                EntryOutcome::Retryable {
                    code: "MissingResult".into(),
                    message: "the response gave this entry neither an event id nor an error".into(),
                    transient: false,
                },
            ]
        );
        assert!(matches!(answer(200, None, body, 3), Err(RequestError::Uncertain(_))));
        assert!(matches!(
            answer(200, None, "<html>", 1),
            Err(RequestError::Uncertain(_))
        ));
    }

    /// A body is read whole up to the limit, in however many frames it comes, and not at all past it; the status
    /// still decides: a success whose body was not read leaves its entries' fate unknown, a failure stays the
    /// failure its status and `x-amzn-errortype` say.
    #[tokio::test]
    async fn a_response_body_is_read_only_up_to_the_limit() {
        use http_body_util::StreamBody;

        async fn read(status: u16, error_type: Option<&str>, body_len: usize) -> Answer {
            let frames = vec![b'x'; body_len]
                .chunks(1000)
                .map(|chunk| Ok::<_, std::io::Error>(http_body::Frame::data(Bytes::copy_from_slice(chunk))))
                .collect::<Vec<_>>();
            let mut response = http::Response::builder().status(status);
            if let Some(error_type) = error_type {
                response = response.header("x-amzn-errortype", error_type);
            }
            let response = response.body(StreamBody::new(futures::stream::iter(frames))).unwrap();
            Answer::read(response).await.unwrap()
        }
        let whole = read(200, None, MAX_RESPONSE_BODY).await;
        assert_eq!(whole.body.map(|body| body.len()), Some(MAX_RESPONSE_BODY));
        let too_long = read(200, None, MAX_RESPONSE_BODY + 1).await;
        assert_eq!(too_long.body, None);
        assert_eq!(
            outcomes(too_long.status, None, None, 1),
            Err(RequestError::Uncertain(
                "HTTP 200 with a body of over 65536 bytes, not read".into()
            ))
        );
        let error_page = read(413, None, 10 * MAX_RESPONSE_BODY).await;
        assert!(matches!(
            outcomes(error_page.status, None, error_page.body.as_deref(), 1),
            Err(RequestError::TooLarge(detail)) if detail == "HTTP 413: a body of over 65536 bytes, not read"
        ));
        let throttled = read(400, Some("ThrottlingException"), 2 * MAX_RESPONSE_BODY).await;
        assert!(matches!(
            outcomes(
                throttled.status,
                throttled.error_type.as_deref(),
                throttled.body.as_deref(),
                1
            ),
            Err(RequestError::Throttled(_))
        ));
    }

    #[test]
    fn classifies_request_errors() {
        let throttled = answer(
            400,
            None,
            r#"{"__type":"com.amazonaws.events#ThrottlingException","message":"Rate exceeded"}"#,
            1,
        );
        assert_eq!(
            throttled,
            Err(RequestError::Throttled(
                "HTTP 400: ThrottlingException: Rate exceeded".into()
            ))
        );
        let missing_bus = answer(
            400,
            Some("ResourceNotFoundException:http://internal.amazon.com/"),
            r#"{"Message":"Event bus audit does not exist."}"#,
            1,
        );
        assert_eq!(
            missing_bus,
            Err(RequestError::Fatal(
                "HTTP 400: ResourceNotFoundException: Event bus audit does not exist.".into()
            ))
        );
        assert!(matches!(answer(503, None, "", 1), Err(RequestError::Transient(_))));
        assert!(matches!(answer(429, None, "", 1), Err(RequestError::Throttled(_))));
        assert!(matches!(
            answer(403, None, r#"{"__type":"AccessDeniedException"}"#, 1),
            Err(RequestError::Fatal(_))
        ));
        assert!(matches!(
            answer(413, None, r#"{"message":"Request Entity Too Large"}"#, 2),
            Err(RequestError::TooLarge(_))
        ));
    }
}
