//! The REST API, in Kafka Connect's shape so that its tools and habits work: `GET /` (version), `GET /connectors`
//! (with `?expand=status` or `?expand=info`), `GET /connectors/{name}`, `GET /connectors/{name}/status`, and
//! `GET /health`. Configuration is shown as written, so secrets resolved from the environment never appear.

use std::collections::BTreeMap;

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::status::{ConnectorStatus, StatusRegistry};
use crate::config::{ConnectorConfig, ConnectorName};

/// What the API serves.
#[derive(Clone)]
pub struct ApiState {
    pub worker_id: String,
    pub status: StatusRegistry,
    pub connectors: Arc<BTreeMap<ConnectorName, ConnectorConfig>>,
}

fn not_found(name: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error_code": 404, "message": format!("Connector {name} not found")})),
    )
        .into_response()
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

    fn status(&self, name: &ConnectorName, status: Option<ConnectorStatus>) -> Value {
        let (state, trace) = match status {
            Some(status) => (json!(status.state), status.trace),
            None => (json!("UNASSIGNED"), None),
        };
        let mut connector = json!({"state": state, "worker_id": self.worker_id});
        if let Some(trace) = &trace {
            connector["trace"] = json!(trace);
        }
        let mut task = json!({"id": 0, "state": state, "worker_id": self.worker_id});
        if let Some(trace) = trace {
            task["trace"] = json!(trace);
        }
        let kind = self.connectors.get(name).map(|connector| connector.kind.as_str());
        json!({"name": name, "connector": connector, "tasks": [task], "type": kind})
    }

    fn lookup(&self, name: &str) -> Option<(&ConnectorName, &ConnectorConfig)> {
        self.connectors.iter().find(|(key, _)| key.as_str() == name)
    }
}

async fn root(State(state): State<ApiState>) -> Json<Value> {
    Json(
        json!({"version": env!("CARGO_PKG_VERSION"), "commit": "", "kafka_cluster_id": null, "worker_id": state.worker_id}),
    )
}

async fn connectors(State(state): State<ApiState>, Query(query): Query<Vec<(String, String)>>) -> Json<Value> {
    let expand: Vec<&str> = query
        .iter()
        .filter(|(key, _)| key == "expand")
        .map(|(_, value)| value.as_str())
        .collect();
    if expand.is_empty() {
        return Json(json!(state.connectors.keys().collect::<Vec<_>>()));
    }
    let mut all = serde_json::Map::new();
    for (name, connector) in state.connectors.iter() {
        let mut entry = serde_json::Map::new();
        if expand.contains(&"status") {
            entry.insert("status".into(), state.status(name, state.status.get(name)));
        }
        if expand.contains(&"info") {
            entry.insert("info".into(), state.info(connector));
        }
        all.insert(name.to_string(), Value::Object(entry));
    }
    Json(Value::Object(all))
}

async fn connector(State(state): State<ApiState>, Path(name): Path<String>) -> Response {
    match state.lookup(&name) {
        Some((_, connector)) => Json(state.info(connector)).into_response(),
        None => not_found(&name),
    }
}

async fn connector_status(State(state): State<ApiState>, Path(name): Path<String>) -> Response {
    match state.lookup(&name) {
        Some((key, _)) => Json(state.status(key, state.status.get(key))).into_response(),
        None => not_found(&name),
    }
}

async fn health() -> Json<Value> {
    Json(json!({"status": "UP"}))
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/health", get(health))
        .route("/connectors", get(connectors))
        .route("/connectors/{name}", get(connector))
        .route("/connectors/{name}/status", get(connector_status))
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
