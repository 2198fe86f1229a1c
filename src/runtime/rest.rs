//! The REST API, in Kafka Connect's shape so that its tools and habits work.
//!
//! Reading: `GET /`, `/connectors[?expand=status|info]`, `/connectors/{name}`, `.../config`, `.../status`,
//! `.../offsets`, `/connector-plugins`. Acting: `PUT .../pause`, `.../resume`, `.../stop`, `POST .../restart`,
//! `DELETE /connectors/{name}`, `PUT /connector-plugins/{type}/config/validate`. Changing: `POST /connectors` and
//! `PUT /connectors/{name}/config`, which write the connector's YAML file. Operating: `GET /health` (always, without
//! auth), `/ready`, `/metrics`. Configuration is shown as written, and secrets as placeholders or `[hidden]`.

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

use super::controller::{Action, ConnectorView, ControlError, ControlHandle};
use super::readiness::Readiness;
use super::status::{ConnectorStatus, StatusRegistry};
use crate::config::{ConnectorConfig, ConnectorName, WorkerConfig};
use crate::connectors::ConnectorType;
use crate::telemetry::metrics::metrics;

/// What the API serves.
#[derive(Clone)]
pub struct ApiState {
    pub worker_id: String,
    pub worker: Arc<WorkerConfig>,
    pub status: StatusRegistry,
    pub connectors: ConnectorView,
    pub control: ControlHandle,
    pub readiness: Readiness,
}

/// An error answer. Its message may quote a configured value (a parser's or client library's), so it is scrubbed.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let message = crate::redact::scrub(&message.into()).into_owned();
    (status, Json(json!({"error_code": status.as_u16(), "message": message}))).into_response()
}

fn not_found(name: &str) -> Response {
    error(StatusCode::NOT_FOUND, format!("Connector {name} not found"))
}

fn control_error(failure: ControlError) -> Response {
    let status = match &failure {
        ControlError::NotFound(_) => StatusCode::NOT_FOUND,
        ControlError::Invalid(_) => StatusCode::BAD_REQUEST,
        ControlError::Conflict(_) => StatusCode::CONFLICT,
        ControlError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
    };
    error(status, failure.to_string())
}

/// The connector's document as it is written in its file, with secrets redacted.
fn document(connector: &ConnectorConfig) -> Value {
    json!({
        "name": connector.name,
        "type": connector.kind.as_str(),
        "config": connector.settings,
        "transforms": connector.transforms_written,
        "errors": connector.errors,
    })
}

impl ApiState {
    fn info(&self, connector: &ConnectorConfig) -> Value {
        json!({
            "name": connector.name,
            "type": connector.kind.as_str(),
            "config": connector.settings,
            "tasks": [{"connector": connector.name, "task": 0}],
        })
    }

    fn status_of(&self, connector: &ConnectorConfig, status: Option<ConnectorStatus>) -> Value {
        let (state, trace) = match status {
            Some(status) => (json!(status.state), status.trace),
            None => (json!("UNASSIGNED"), None),
        };
        let mut head = json!({"state": state, "worker_id": self.worker_id});
        let mut task = json!({"id": 0, "state": state, "worker_id": self.worker_id});
        if let Some(trace) = trace {
            head["trace"] = json!(trace);
            task["trace"] = json!(trace);
        }
        json!({"name": connector.name, "connector": head, "tasks": [task], "type": connector.kind.as_str()})
    }

    fn lookup(&self, name: &str) -> Option<(ConnectorName, Arc<ConnectorConfig>)> {
        self.connectors
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .find(|(key, _)| key.as_str() == name)
            .map(|(key, connector)| (key.clone(), connector.clone()))
    }

    fn all(&self) -> Vec<(ConnectorName, Arc<ConnectorConfig>)> {
        self.connectors
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .map(|(key, connector)| (key.clone(), connector.clone()))
            .collect()
    }
}

async fn root(State(state): State<ApiState>) -> Json<Value> {
    Json(
        json!({"version": env!("CARGO_PKG_VERSION"), "commit": "", "kafka_cluster_id": null, "worker_id": state.worker_id}),
    )
}

async fn list(State(state): State<ApiState>, Query(query): Query<Vec<(String, String)>>) -> Json<Value> {
    let expand: Vec<&str> = query
        .iter()
        .filter(|(key, _)| key == "expand")
        .map(|(_, value)| value.as_str())
        .collect();
    let connectors = state.all();
    if expand.is_empty() {
        return Json(json!(connectors.iter().map(|(name, _)| name).collect::<Vec<_>>()));
    }
    let mut all = serde_json::Map::new();
    for (name, connector) in &connectors {
        let mut entry = serde_json::Map::new();
        if expand.contains(&"status") {
            entry.insert("status".into(), state.status_of(connector, state.status.get(name)));
        }
        if expand.contains(&"info") {
            entry.insert("info".into(), state.info(connector));
        }
        all.insert(name.to_string(), Value::Object(entry));
    }
    Json(Value::Object(all))
}

async fn info(State(state): State<ApiState>, Path(name): Path<String>) -> Response {
    match state.lookup(&name) {
        Some((_, connector)) => Json(state.info(&connector)).into_response(),
        None => not_found(&name),
    }
}

async fn config(State(state): State<ApiState>, Path(name): Path<String>) -> Response {
    match state.lookup(&name) {
        Some((_, connector)) => Json(document(&connector)).into_response(),
        None => not_found(&name),
    }
}

async fn status(State(state): State<ApiState>, Path(name): Path<String>) -> Response {
    match state.lookup(&name) {
        Some((key, connector)) => Json(state.status_of(&connector, state.status.get(&key))).into_response(),
        None => not_found(&name),
    }
}

async fn offsets(State(state): State<ApiState>, Path(name): Path<String>) -> Response {
    let Some((_, connector)) = state.lookup(&name) else {
        return not_found(&name);
    };
    let worker = state.worker.clone();
    match tokio::task::spawn_blocking(move || crate::kafka::committed::connector_offsets(&connector, &worker)).await {
        Ok(Ok(offsets)) => Json(json!({ "offsets": offsets })).into_response(),
        Ok(Err(reason)) => error(StatusCode::SERVICE_UNAVAILABLE, reason),
        Err(panic) => error(StatusCode::INTERNAL_SERVER_ERROR, panic.to_string()),
    }
}

async fn act(state: &ApiState, name: &str, action: Action) -> Response {
    match state.control.act(name, action).await {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(failure) => control_error(failure),
    }
}

async fn pause(State(state): State<ApiState>, Path(name): Path<String>) -> Response {
    act(&state, &name, Action::Pause).await
}

async fn resume(State(state): State<ApiState>, Path(name): Path<String>) -> Response {
    act(&state, &name, Action::Resume).await
}

async fn stop(State(state): State<ApiState>, Path(name): Path<String>) -> Response {
    act(&state, &name, Action::Stop).await
}

async fn restart(State(state): State<ApiState>, Path(name): Path<String>) -> Response {
    act(&state, &name, Action::Restart).await
}

async fn delete(State(state): State<ApiState>, Path(name): Path<String>) -> Response {
    match state.control.act(&name, Action::Delete).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(failure) => control_error(failure),
    }
}

/// `POST /connectors` with the connector document (JSON or YAML): writes `<name>.yaml` and starts it.
async fn create(State(state): State<ApiState>, text: String) -> Response {
    match state.control.write(None, text, true).await {
        Ok((connector, _)) => (StatusCode::CREATED, Json(state.info(&connector))).into_response(),
        Err(failure) => control_error(failure),
    }
}

/// `PUT /connectors/{name}/config`: creates or replaces the connector's file, then (re)starts it.
async fn replace(State(state): State<ApiState>, Path(name): Path<String>, text: String) -> Response {
    match state.control.write(Some(&name), text, false).await {
        Ok((connector, created)) => {
            let status = if created { StatusCode::CREATED } else { StatusCode::OK };
            (status, Json(state.info(&connector))).into_response()
        }
        Err(failure) => control_error(failure),
    }
}

async fn plugins() -> Json<Value> {
    let plugins: Vec<Value> = ConnectorType::ALL
        .iter()
        .map(|kind| json!({"class": kind.as_str(), "type": kind.direction(), "version": env!("CARGO_PKG_VERSION")}))
        .collect();
    Json(json!(plugins))
}

/// Checks a connector document without writing it. The answer has Kafka Connect's `error_count`; each problem is
/// one entry of `configs` with its message.
async fn validate(State(state): State<ApiState>, Path(kind): Path<String>, text: String) -> Response {
    let Some(expected) = ConnectorType::ALL.iter().find(|known| known.as_str() == kind) else {
        return error(StatusCode::NOT_FOUND, format!("no connector plugin `{kind}`"));
    };
    // Parsing and checking take CPU in proportion to the body: off the runtime's threads, so that other requests
    // and the connectors' tasks keep their pace.
    let worker = state.worker.clone();
    let checked = tokio::task::spawn_blocking(move || crate::config::check_document(&text, Some(&worker))).await;
    let problems = match checked {
        Ok(Ok(found)) if found != *expected => vec![format!("type: `{}` is not `{kind}`", found.as_str())],
        Ok(Ok(_)) => Vec::new(),
        Ok(Err(message)) => vec![crate::redact::scrub(&message).into_owned()],
        Err(failed) => vec![format!("the check failed: {failed}")],
    };
    let configs: Vec<Value> = problems
        .iter()
        .map(|problem| json!({"definition": null, "value": {"name": "document", "errors": [problem]}}))
        .collect();
    Json(json!({"name": kind, "error_count": problems.len(), "groups": [], "configs": configs})).into_response()
}

async fn health() -> Json<Value> {
    Json(json!({"status": "UP"}))
}

async fn ready(State(state): State<ApiState>) -> Response {
    let report = state.readiness.check(&state.status).await;
    let status = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report)).into_response()
}

async fn prometheus() -> Response {
    (
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics().render(),
    )
        .into_response()
}

/// Basic auth on every route it wraps, when `rest.basic_auth` is set; compared in constant time.
async fn authenticate(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let Some(auth) = &state.worker.rest.basic_auth else {
        return next.run(request).await;
    };
    let expected = format!("{}:{}", auth.username.value(), auth.password.expose());
    let given = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .and_then(|(_, encoded)| base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok())
        .unwrap_or_default();
    if bool::from(given.ct_eq(expected.as_bytes())) {
        return next.run(request).await;
    }
    let mut response = error(StatusCode::UNAUTHORIZED, "authentication required");
    if let Ok(value) = "Basic realm=\"ebconnect\"".parse() {
        response.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
    response
}

pub fn router(state: ApiState) -> Router {
    let guarded = Router::new()
        .route("/", get(root))
        .route("/ready", get(ready))
        .route("/metrics", get(prometheus))
        .route("/connectors", get(list).post(create))
        .route("/connectors/{name}", get(info).delete(delete))
        .route("/connectors/{name}/config", get(config).put(replace))
        .route("/connectors/{name}/status", get(status))
        .route("/connectors/{name}/offsets", get(offsets))
        .route("/connectors/{name}/pause", put(pause))
        .route("/connectors/{name}/resume", put(resume))
        .route("/connectors/{name}/stop", put(stop))
        .route("/connectors/{name}/restart", post(restart))
        .route("/connector-plugins", get(plugins))
        .route("/connector-plugins/{kind}/config/validate", put(validate))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .route("/health", get(health))
        .merge(guarded)
        .with_state(state)
}

/// Serves the API on a bound listener until `shutdown` is cancelled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
