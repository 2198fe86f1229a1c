//! A PutEvents endpoint that speaks EventBridge's real wire protocol (AWS JSON 1.1, `X-Amz-Target:
//! AWSEvents.PutEvents`) and injects the faults the emulator never produces: per-entry ThrottlingException and
//! InternalFailure, HTTP 500, request-level throttling, latency, responses too slow to wait for, by count or at
//! random rates, HTTP 413 for a request at or over a size limit, and an account quota: a token bucket in requests per
//! second shared by every client, over which a request is answered ThrottlingException, as PutEvents answers past
//! the account's quota.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

/// Which faults, by the request or entry count (1-based). Zero disables a fault.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Every n-th entry sent fails with ThrottlingException.
    pub throttle_every_entry: usize,
    /// Every n-th entry sent fails with InternalFailure.
    pub internal_failure_every_entry: usize,
    /// Every n-th entry sent is rejected with InvalidArgument (not retryable).
    pub reject_every_entry: usize,
    /// Every n-th request gets HTTP 500.
    pub http_500_every_request: usize,
    /// Every n-th request gets HTTP 400 ThrottlingException.
    pub throttle_every_request: usize,
    /// Every n-th request is answered only after this long (a client with a shorter timeout gives up).
    pub slow_every_request: usize,
    pub slow_delay: Duration,
    /// Each entry fails with ThrottlingException with this probability (drawn from a seeded generator).
    pub throttle_rate: f64,
    /// Each entry not throttled fails with InternalFailure with this probability.
    pub internal_failure_rate: f64,
    /// Each request gets HTTP 500 with this probability.
    pub http_500_rate: f64,
    /// Every request is answered after this long, like a far-away region; its results count as acknowledged.
    pub latency: Duration,
    /// A request whose entries add up to this many bytes or more, as EventBridge counts them, gets HTTP 413 (the
    /// service wants a request under its limit). Zero disables it.
    pub max_request_bytes: usize,
    /// The account's quota in requests per second, shared by every client (a token bucket holding a tenth of a
    /// second of it, so a burst passes but a second of it does not); a request that finds no token is answered
    /// HTTP 400 ThrottlingException. Zero disables it.
    pub quota_per_second: f64,
    /// With `latency`, every request is answered after a time drawn evenly from `latency..latency_max`.
    pub latency_max: Duration,
    /// The first this many requests are kept whole, headers and body, for checks of their signatures.
    pub keep_requests: usize,
}

/// The quota's token bucket.
struct Bucket {
    tokens: f64,
    refilled: std::time::Instant,
}

/// An entry's size as EventBridge counts it: 14 bytes for a time, plus the UTF-8 lengths of source, detail-type,
/// detail and each resource.
fn entry_size(entry: &Value) -> usize {
    let text = |field: &str| entry[field].as_str().map_or(0, str::len);
    let time = if entry.get("Time").is_some() { 14 } else { 0 };
    let resources: usize = entry["Resources"].as_array().map_or(0, |resources| {
        resources.iter().filter_map(Value::as_str).map(str::len).sum()
    });
    time + text("Source") + text("DetailType") + text("Detail") + resources
}

/// What the server saw. Entries are keyed by their `Detail` text.
#[derive(Debug, Default)]
pub struct Observed {
    pub requests: usize,
    pub entries_sent: usize,
    /// How often each entry was sent.
    pub sends: HashMap<String, usize>,
    /// How often each entry was acknowledged as delivered in a response the client waited for.
    pub acknowledged: HashMap<String, usize>,
    /// Entries rejected for good.
    pub rejected: HashMap<String, usize>,
    /// Sends of an entry that had already been acknowledged: must stay zero, since only failed entries are re-sent.
    pub resent_after_ack: usize,
    /// Requests per second of arrival, for rate checks.
    pub arrivals: Vec<(std::time::Instant, usize)>,
    /// Requests answered with HTTP 413.
    pub too_large: usize,
    /// The largest request taken (not answered 413), in bytes as EventBridge counts them.
    pub largest_request_bytes: usize,
    /// Arrival times of the requests the quota throttled.
    pub quota_throttled: Vec<std::time::Instant>,
    /// The first `Faults::keep_requests` requests as they arrived.
    pub kept: Vec<KeptRequest>,
}

/// A request as it arrived: its headers (names in lowercase, values as text) and its body.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeptRequest {
    pub headers: Vec<(String, String)>,
    pub body: String,
}

#[derive(Clone)]
struct Shared {
    faults: Faults,
    observed: Arc<Mutex<Observed>>,
    random: Arc<Mutex<rand::rngs::StdRng>>,
    bucket: Arc<Mutex<Bucket>>,
}

impl Shared {
    fn draw(&self, probability: f64) -> bool {
        use rand::Rng;
        probability > 0.0 && self.random.lock().unwrap().random_bool(probability)
    }

    /// Takes a token of the quota, if it has one now.
    fn within_quota(&self) -> bool {
        let per_second = self.faults.quota_per_second;
        if per_second <= 0.0 {
            return true;
        }
        let mut bucket = self.bucket.lock().unwrap();
        let now = std::time::Instant::now();
        let elapsed = now.duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(per_second / 10.0);
        bucket.refilled = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn latency(&self) -> Duration {
        use rand::Rng;
        let Faults {
            latency, latency_max, ..
        } = self.faults;
        if latency_max > latency {
            self.random.lock().unwrap().random_range(latency..latency_max)
        } else {
            latency
        }
    }
}

pub struct FaultServer {
    pub url: String,
    pub observed: Arc<Mutex<Observed>>,
}

fn every(n: usize, count: usize) -> bool {
    n != 0 && count.is_multiple_of(n)
}

async fn put_events(State(shared): State<Shared>, headers: HeaderMap, body: String) -> Response {
    {
        let mut observed = shared.observed.lock().unwrap();
        if observed.kept.len() < shared.faults.keep_requests {
            let headers = headers
                .iter()
                .map(|(name, value)| (name.to_string(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
                .collect();
            observed.kept.push(KeptRequest {
                headers,
                body: body.clone(),
            });
        }
    }
    let target = headers
        .get("x-amz-target")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if target != "AWSEvents.PutEvents" {
        return (
            StatusCode::BAD_REQUEST,
            json!({"__type": "UnknownOperationException", "message": target}).to_string(),
        )
            .into_response();
    }
    let request: Value = match serde_json::from_str(&body) {
        Ok(value) => value,
        Err(error) => {
            return (
                StatusCode::BAD_REQUEST,
                json!({"__type": "SerializationException", "message": error.to_string()}).to_string(),
            )
                .into_response()
        }
    };
    let entries = request["Entries"].as_array().cloned().unwrap_or_default();
    let request_bytes: usize = entries.iter().map(entry_size).sum();
    let aws_json = [("content-type", "application/x-amz-json-1.1")];
    if shared.faults.max_request_bytes != 0 && request_bytes >= shared.faults.max_request_bytes {
        shared.observed.lock().unwrap().too_large += 1;
        let body = json!({"message": "Request Entity Too Large"}).to_string();
        return (StatusCode::PAYLOAD_TOO_LARGE, aws_json, body).into_response();
    }
    if !shared.within_quota() {
        shared
            .observed
            .lock()
            .unwrap()
            .quota_throttled
            .push(std::time::Instant::now());
        tokio::time::sleep(shared.latency()).await;
        let body = json!({"__type": "ThrottlingException", "message": "Rate exceeded"}).to_string();
        return (StatusCode::BAD_REQUEST, aws_json, body).into_response();
    }
    let (request_number, slow) = {
        let mut observed = shared.observed.lock().unwrap();
        observed.requests += 1;
        observed.largest_request_bytes = observed.largest_request_bytes.max(request_bytes);
        observed.arrivals.push((std::time::Instant::now(), entries.len()));
        let number = observed.requests;
        for entry in &entries {
            let detail = entry["Detail"].as_str().unwrap_or_default();
            if observed.acknowledged.contains_key(detail) {
                observed.resent_after_ack += 1;
            }
            *observed
                .sends
                .entry(entry["Detail"].as_str().unwrap_or_default().to_owned())
                .or_default() += 1;
        }
        (number, every(shared.faults.slow_every_request, number))
    };
    let faults = shared.faults;
    let latency = shared.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if every(faults.http_500_every_request, request_number) || shared.draw(faults.http_500_rate) {
        let body = json!({"__type": "InternalException", "message": "injected 500"}).to_string();
        return (StatusCode::INTERNAL_SERVER_ERROR, aws_json, body).into_response();
    }
    if every(faults.throttle_every_request, request_number) {
        let body = json!({"__type": "ThrottlingException", "message": "Rate exceeded"}).to_string();
        return (StatusCode::BAD_REQUEST, aws_json, body).into_response();
    }
    if slow {
        tokio::time::sleep(faults.slow_delay).await;
    }
    let mut results = Vec::new();
    let mut failed = 0;
    let mut observed = shared.observed.lock().unwrap();
    for entry in &entries {
        observed.entries_sent += 1;
        let count = observed.entries_sent;
        let detail = entry["Detail"].as_str().unwrap_or_default().to_owned();
        let result = if every(faults.throttle_every_entry, count) || shared.draw(faults.throttle_rate) {
            json!({"ErrorCode": "ThrottlingException", "ErrorMessage": "Rate exceeded"})
        } else if every(faults.internal_failure_every_entry, count) || shared.draw(faults.internal_failure_rate) {
            json!({"ErrorCode": "InternalFailure", "ErrorMessage": "injected"})
        } else if every(faults.reject_every_entry, count) {
            *observed.rejected.entry(detail).or_default() += 1;
            json!({"ErrorCode": "InvalidArgument", "ErrorMessage": "injected rejection"})
        } else {
            // A slow response is one the client has given up on: its successes are not acknowledgements.
            if !slow {
                *observed.acknowledged.entry(detail).or_default() += 1;
            }
            json!({"EventId": format!("fault-{count}")})
        };
        if result.get("ErrorCode").is_some() {
            failed += 1;
        }
        results.push(result);
    }
    let body = json!({"FailedEntryCount": failed, "Entries": results}).to_string();
    (StatusCode::OK, aws_json, body).into_response()
}

impl FaultServer {
    pub async fn start(faults: Faults) -> Self {
        let observed = Arc::new(Mutex::new(Observed::default()));
        let app = Router::new().route("/", post(put_events)).with_state(Shared {
            faults,
            observed: observed.clone(),
            random: Arc::new(Mutex::new(rand::SeedableRng::seed_from_u64(0xfa17))),
            bucket: Arc::new(Mutex::new(Bucket {
                tokens: faults.quota_per_second / 10.0,
                refilled: std::time::Instant::now(),
            })),
        });
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, observed }
    }
}
