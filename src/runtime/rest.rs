//! Kafka Connect 4.1's REST API, so that its tools and client libraries work unchanged (README "REST API" lists
//! each path): configurations in Kafka Connect's flat form (`config::flat`), answers in its entities' shapes
//! (`ServerInfo`, `ConnectorInfo`, `ConnectorStateInfo`, `TaskInfo`, `ConfigInfos`, ...), every error as its
//! `{"error_code", "message"}`, a trailing slash ignored. Plus ebconnect's `/ready` and `/metrics`. Secrets show as
//! placeholders or `[hidden]`.

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::cluster::{Instance, Peers, Reported};
use super::controller::{Action, ConnectorView, ControlError, ControlHandle, Published};
use super::definitions::{definitions, ConfigKey};
use super::readiness::Readiness;
use super::status::{ConnectorState, ConnectorStatus, StatusRegistry};
use crate::config::flat::FlatConfig;
use crate::config::{ConnectorName, InterpolationError, WorkerConfig, HIDDEN};
use crate::connector_state::Target;
use crate::connectors::ConnectorConfig;
use crate::connectors::ConnectorType;
use crate::kafka::committed::OffsetChange;
use crate::telemetry::log_levels::{LogLevels, LoggerLevel};
use crate::telemetry::metrics::metrics;

/// The Kafka Connect REST API this worker speaks, for tools that check the worker's version before using an
/// endpoint (kcctl needs 3.5 for stop and offsets). ebconnect's own version follows it.
pub(crate) const CONNECT_API_VERSION: &str = "4.1.1";

/// What the API serves.
#[derive(Clone)]
pub(crate) struct ApiState {
    pub(crate) worker_id: String,
    pub(crate) worker: Arc<WorkerConfig>,
    pub(crate) status: StatusRegistry,
    pub(crate) connectors: ConnectorView,
    pub(crate) control: ControlHandle,
    pub(crate) readiness: Readiness,
    /// Cluster mode: the other workers' connector states.
    pub(crate) peers: Option<Peers>,
    /// The Kafka cluster's id, asked once it is first needed.
    pub(crate) cluster_id: Arc<tokio::sync::OnceCell<String>>,
    /// The process's log filter, when this worker owns it.
    pub(crate) log_levels: Option<LogLevels>,
}

/// An error answer, Kafka Connect's `{"error_code", "message"}`. Its message may quote a configured value (a
/// parser's or client library's), so it is scrubbed.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let message = crate::redact::scrub(&message.into()).into_owned();
    (status, Json(json!({"error_code": status.as_u16(), "message": message}))).into_response()
}

/// An error answer not built yet, small enough to return in a `Result`.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        error(self.0, self.1)
    }
}

fn not_found(name: &str) -> Response {
    missing(name).into_response()
}

fn missing(name: &str) -> Refusal {
    Refusal(StatusCode::NOT_FOUND, format!("Connector {name} not found"))
}

fn control_error(failure: ControlError) -> Response {
    let status = match &failure {
        ControlError::NotFound(_) => StatusCode::NOT_FOUND,
        ControlError::Invalid(_) => StatusCode::BAD_REQUEST,
        ControlError::Conflict(_) => StatusCode::CONFLICT,
        ControlError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        ControlError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, failure.to_string())
}

impl ApiState {
    /// Kafka Connect's `ConnectorInfo`.
    fn info(&self, connector: &ConnectorConfig) -> Value {
        let tasks: Vec<Value> = (0..self.task_count(connector))
            .map(|task| json!({"connector": connector.name, "task": task}))
            .collect();
        json!({
            "name": connector.name,
            "config": connector.shown_config(),
            "tasks": tasks,
            "type": connector.kind.direction(),
        })
    }

    /// One task, or in cluster mode one per worker that runs the connector: as many as `status_of` lists, so that
    /// a client may ask for the status of each task it is told of.
    fn task_count(&self, connector: &ConnectorConfig) -> usize {
        1 + self
            .peers
            .as_ref()
            .map_or(0, |peers| peers.instances(connector.name.as_str()).len())
    }

    /// Kafka Connect's `ConnectorStateInfo`; the connector and its one task share a state. `shown` replaces the
    /// state, for a restart's answer.
    fn status_of(
        &self,
        name: &ConnectorName,
        direction: &str,
        status: Option<ConnectorStatus>,
        shown: Option<ConnectorState>,
    ) -> Value {
        let (state, trace) = match status {
            Some(status) => (shown.unwrap_or(status.state).as_str(), status.trace),
            None => (shown.map_or("UNASSIGNED", ConnectorState::as_str), None),
        };
        let mut head = json!({"state": state, "worker_id": self.worker_id});
        if let Some(trace) = &trace {
            head["trace"] = json!(trace);
        }
        // In cluster mode, one task per worker that runs the connector, in the order of their ids so that every
        // worker numbers them alike.
        let mut instances = vec![Instance {
            worker_id: self.worker_id.clone(),
            reported: Reported {
                state: state.to_owned(),
                trace,
            },
        }];
        if let Some(peers) = &self.peers {
            instances.extend(peers.instances(name.as_str()));
            instances.sort_by(|one, other| one.worker_id.cmp(&other.worker_id));
        }
        let tasks: Vec<Value> = instances
            .into_iter()
            .enumerate()
            .map(|(id, instance)| {
                let mut task = json!({"id": id, "state": instance.reported.state, "worker_id": instance.worker_id});
                if let Some(trace) = instance.reported.trace {
                    task["trace"] = json!(trace);
                }
                task
            })
            .collect();
        json!({"name": name, "connector": head, "tasks": tasks, "type": direction})
    }

    fn published(&self) -> std::sync::RwLockReadGuard<'_, Published> {
        self.connectors.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lookup(&self, name: &str) -> Option<(ConnectorName, Arc<ConnectorConfig>)> {
        self.published()
            .connectors
            .iter()
            .find(|(key, _)| key.as_str() == name)
            .map(|(key, connector)| (key.clone(), connector.clone()))
    }

    /// A connector whose status this worker answers, with its Kafka Connect type: one it runs, or in cluster mode
    /// one of the config topic that it cannot load (`unknown` where the document names no type).
    fn lookup_status(&self, name: &str) -> Option<(ConnectorName, &'static str)> {
        if let Some((key, connector)) = self.lookup(name) {
            return Some((key, connector.kind.direction()));
        }
        self.published()
            .unloadable
            .iter()
            .find(|(key, _)| key.as_str() == name)
            .map(|(key, kind)| (key.clone(), kind.map_or("unknown", ConnectorType::direction)))
    }

    fn all(&self) -> Vec<(ConnectorName, Arc<ConnectorConfig>)> {
        self.published()
            .connectors
            .iter()
            .map(|(key, connector)| (key.clone(), connector.clone()))
            .collect()
    }
}

/// Kafka Connect's `ServerInfo`.
async fn root(State(state): State<ApiState>) -> Json<Value> {
    let kafka = state.worker.kafka.clone();
    let cluster_id = state
        .cluster_id
        .get_or_try_init(|| async move {
            tokio::task::spawn_blocking(move || crate::kafka::cluster_id(&kafka))
                .await
                .map_err(|panic| panic.to_string())?
        })
        .await
        .ok()
        .cloned();
    Json(json!({
        "version": format!("{CONNECT_API_VERSION}-ebconnect.{}", env!("CARGO_PKG_VERSION")),
        "commit": option_env!("EBCONNECT_COMMIT").unwrap_or(""),
        "kafka_cluster_id": cluster_id,
    }))
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
            entry.insert(
                "status".into(),
                state.status_of(name, connector.kind.direction(), state.status.get(name), None),
            );
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

/// Kafka Connect's `Map<String, String>`: the keys as written, secrets hidden.
async fn config(State(state): State<ApiState>, Path(name): Path<String>) -> Response {
    match state.lookup(&name) {
        Some((_, connector)) => Json(connector.shown_config()).into_response(),
        None => not_found(&name),
    }
}

async fn status(State(state): State<ApiState>, Path(name): Path<String>) -> Response {
    match state.lookup_status(&name) {
        Some((key, direction)) => Json(state.status_of(&key, direction, state.status.get(&key), None)).into_response(),
        None => not_found(&name),
    }
}

/// Kafka Connect's `TaskInfo` list, each task with the connector's configuration: task 0, or in cluster mode one
/// task per worker that runs the connector.
async fn tasks(State(state): State<ApiState>, Path(name): Path<String>) -> Response {
    match state.lookup(&name) {
        Some((_, connector)) => {
            let config = connector.shown_config();
            let tasks: Vec<Value> = (0..state.task_count(&connector))
                .map(|task| json!({"id": {"connector": connector.name, "task": task}, "config": config}))
                .collect();
            Json(tasks).into_response()
        }
        None => not_found(&name),
    }
}

fn task_zero(name: &str, task: &str) -> Result<(), Refusal> {
    match task.parse::<u32>() {
        Ok(0) => Ok(()),
        _ => Err(Refusal(
            StatusCode::NOT_FOUND,
            format!("Task {name}-{task} not found (a connector runs task 0)"),
        )),
    }
}

/// The status of task `task`: task 0, or in cluster mode the task of each worker that runs the connector.
fn task_of(state: &ApiState, name: &str, task: &str) -> Result<Value, Refusal> {
    if state.peers.is_none() {
        task_zero(name, task)?;
    }
    let (key, direction) = state.lookup_status(name).ok_or_else(|| missing(name))?;
    let status = state.status_of(&key, direction, state.status.get(&key), None);
    task.parse::<usize>()
        .ok()
        .and_then(|index| status["tasks"].get(index).cloned())
        .ok_or_else(|| Refusal(StatusCode::NOT_FOUND, format!("Task {name}-{task} not found")))
}

async fn task_status(State(state): State<ApiState>, Path((name, task)): Path<(String, String)>) -> Response {
    match task_of(&state, &name, &task) {
        Ok(status) => Json(status).into_response(),
        Err(refused) => refused.into_response(),
    }
}

/// Restarts the connector, with its task (in cluster mode: on every worker; a task is a worker's instance).
async fn task_restart(State(state): State<ApiState>, Path((name, task)): Path<(String, String)>) -> Response {
    if let Err(refused) = task_of(&state, &name, &task) {
        return refused.into_response();
    }
    match state.control.act(&name, Action::Restart).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(failure) => control_error(failure),
    }
}

async fn offsets(State(state): State<ApiState>, Path(name): Path<String>) -> Response {
    let Some((_, connector)) = state.lookup(&name) else {
        return not_found(&name);
    };
    let worker = state.worker.clone();
    let offsets = move || match connector.settings.consumer_group(&connector.name) {
        Some(group) => crate::kafka::committed::group_offsets(&group, &worker),
        None => Ok(Vec::new()),
    };
    match tokio::task::spawn_blocking(offsets).await {
        Ok(Ok(offsets)) => Json(json!({ "offsets": offsets })).into_response(),
        Ok(Err(reason)) => error(StatusCode::SERVICE_UNAVAILABLE, reason),
        Err(panic) => error(StatusCode::INTERNAL_SERVER_ERROR, panic.to_string()),
    }
}

/// `PATCH .../offsets` (KIP-875): `{"offsets": [{"partition": {"kafka_topic", "kafka_partition"}, "offset":
/// {"kafka_offset"} | null}]}`; a `null` offset removes the partition's, so it starts from `auto_offset_reset`.
async fn alter_offsets(State(state): State<ApiState>, Path(name): Path<String>, text: String) -> Response {
    let changes = body(&text).and_then(|value| offset_changes(&value));
    match changes {
        Ok(changes) => match state.control.change_offsets(&name, changes).await {
            Ok(()) => Json(json!({"message": "The offsets for this connector have been altered successfully"}))
                .into_response(),
            Err(failure) => control_error(failure),
        },
        Err(failure) => control_error(failure),
    }
}

/// `DELETE .../offsets`: removes every committed offset of a stopped connector.
async fn reset_offsets(State(state): State<ApiState>, Path(name): Path<String>) -> Response {
    match state.control.change_offsets(&name, Vec::new()).await {
        Ok(()) => {
            Json(json!({"message": "The offsets for this connector have been reset successfully"})).into_response()
        }
        Err(failure) => control_error(failure),
    }
}

fn offset_changes(value: &Value) -> Result<Vec<OffsetChange>, ControlError> {
    let entries = value
        .get("offsets")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("offsets: required, a list of {partition, offset}"))?;
    if entries.is_empty() {
        return Err(invalid(
            "offsets: the list is empty; DELETE .../offsets resets them all",
        ));
    }
    entries
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            let at = |key: &str| format!("offsets[{index}].{key}");
            let partition = entry
                .get("partition")
                .ok_or_else(|| invalid(format!("{}: required", at("partition"))))?;
            let topic = partition
                .get("kafka_topic")
                .and_then(Value::as_str)
                .filter(|topic| !topic.is_empty())
                .ok_or_else(|| invalid(format!("{}: a topic name is required", at("partition.kafka_topic"))))?;
            let number = partition
                .get("kafka_partition")
                .and_then(Value::as_i64)
                .and_then(|number| i32::try_from(number).ok())
                .filter(|number| *number >= 0)
                .ok_or_else(|| {
                    invalid(format!(
                        "{}: a partition number is required",
                        at("partition.kafka_partition")
                    ))
                })?;
            let offset = match entry.get("offset") {
                None | Some(Value::Null) => None,
                Some(offset) => Some(
                    offset
                        .get("kafka_offset")
                        .and_then(Value::as_i64)
                        .filter(|offset| *offset >= 0)
                        .ok_or_else(|| {
                            invalid(format!(
                                "{}: a non-negative offset is required",
                                at("offset.kafka_offset")
                            ))
                        })?,
                ),
            };
            Ok(OffsetChange {
                topic: topic.to_owned(),
                partition: number,
                offset,
            })
        })
        .collect()
}

async fn act(state: &ApiState, name: &str, action: Action, answer: StatusCode) -> Response {
    match state.control.act(name, action).await {
        Ok(()) => answer.into_response(),
        Err(failure) => control_error(failure),
    }
}

async fn pause(State(state): State<ApiState>, Path(name): Path<String>) -> Response {
    act(&state, &name, Action::Pause, StatusCode::ACCEPTED).await
}

async fn resume(State(state): State<ApiState>, Path(name): Path<String>) -> Response {
    act(&state, &name, Action::Resume, StatusCode::ACCEPTED).await
}

async fn stop(State(state): State<ApiState>, Path(name): Path<String>) -> Response {
    act(&state, &name, Action::Stop, StatusCode::NO_CONTENT).await
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RestartQuery {
    #[serde(default)]
    include_tasks: Option<String>,
    #[serde(default)]
    only_failed: Option<String>,
}

/// A query flag as Kafka Connect reads it (Java's `Boolean.valueOf`): set only by `true`, in any case.
fn flag(value: &Option<String>) -> bool {
    value.as_deref().is_some_and(|value| value.eq_ignore_ascii_case("true"))
}

/// Without a query, Kafka Connect's plain restart: 204. With `includeTasks` or `onlyFailed`: 202 and the
/// `ConnectorStateInfo`, RESTARTING for what restarts; with `onlyFailed`, a connector that has not failed is left
/// running. The connector and its task restart as one.
async fn restart(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    Query(query): Query<RestartQuery>,
) -> Response {
    if !flag(&query.include_tasks) && !flag(&query.only_failed) {
        return act(&state, &name, Action::Restart, StatusCode::NO_CONTENT).await;
    }
    let Some((key, direction)) = state.lookup_status(&name) else {
        return not_found(&name);
    };
    let current = state.status.get(&key);
    let failed = current
        .as_ref()
        .is_some_and(|status| status.state == ConnectorState::Failed);
    if flag(&query.only_failed) && !failed {
        return (
            StatusCode::ACCEPTED,
            Json(state.status_of(&key, direction, current, None)),
        )
            .into_response();
    }
    if let Err(failure) = state.control.act(&name, Action::Restart).await {
        return control_error(failure);
    }
    let shown = state.status_of(&key, direction, current, Some(ConnectorState::Restarting));
    (StatusCode::ACCEPTED, Json(shown)).into_response()
}

async fn delete(State(state): State<ApiState>, Path(name): Path<String>) -> Response {
    act(&state, &name, Action::Delete, StatusCode::NO_CONTENT).await
}

fn invalid(message: impl Into<String>) -> ControlError {
    ControlError::Invalid(message.into())
}

/// A request body as a JSON value, within the document limits; JSON or YAML.
fn body(text: &str) -> Result<Value, ControlError> {
    if text.trim().is_empty() {
        return Err(invalid("the request has no body"));
    }
    crate::config::parse_untrusted(text).map_err(|message| invalid(format!("the body is not JSON: {message}")))
}

/// Kafka Connect's `Map<String, String>`. Numbers and booleans are taken as their text, as Kafka Connect's JSON
/// reader does; `[hidden]`, what the API shows of a secret, is refused.
fn string_map(value: &Value) -> Result<FlatConfig, ControlError> {
    let map = crate::config::flat::string_map(value).map_err(ControlError::Invalid)?;
    match map.iter().find(|(_, text)| *text == HIDDEN) {
        Some((key, _)) => Err(invalid(format!("{key}: {}", InterpolationError::HiddenWrittenBack))),
        None => Ok(map),
    }
}

/// The connector file for a configuration in Kafka Connect's form.
fn flat_document(name: &str, mut config: FlatConfig) -> Value {
    config.remove("name");
    json!({"name": name, "config": config})
}

/// A nested connector document (it has `type`), as ebconnect's own files are written.
fn is_nested(value: &Value) -> bool {
    value.get("type").is_some()
}

async fn answer_written(state: &ApiState, written: Result<(Arc<ConnectorConfig>, bool), ControlError>) -> Response {
    match written {
        Ok((connector, created)) => {
            let status = if created { StatusCode::CREATED } else { StatusCode::OK };
            (status, Json(state.info(&connector))).into_response()
        }
        Err(failure) => control_error(failure),
    }
}

/// `POST /connectors`: Kafka Connect's `{name, config, initial_state}`, or a nested connector document. Checked like
/// `validate`, written to `<name>.yaml` in the first connectors directory, started.
async fn create(State(state): State<ApiState>, text: String) -> Response {
    let request = (|| {
        let value = body(&text)?;
        if is_nested(&value) {
            return Ok((value, None));
        }
        let object = value.as_object().ok_or_else(|| invalid("the body must be an object"))?;
        if let Some(unknown) = object
            .keys()
            .find(|key| !matches!(key.as_str(), "name" | "config" | "initial_state"))
        {
            return Err(invalid(format!(
                "{unknown}: unknown field; the body is {{\"name\", \"config\", \"initial_state\"}}"
            )));
        }
        let config = string_map(object.get("config").unwrap_or(&Value::Null))?;
        let name = match (object.get("name").and_then(Value::as_str), config.get("name")) {
            (Some(name), Some(named)) if name.trim() != named => {
                return Err(invalid(format!(
                    "Connector name configuration ({named}) doesn't match connector name in the request ({name})"
                )))
            }
            (Some(name), _) => name.trim().to_owned(),
            (None, Some(named)) => named.clone(),
            (None, None) => return Err(invalid("name: required")),
        };
        let initial = match object.get("initial_state") {
            None | Some(Value::Null) => None,
            Some(initial) => Some(serde_json::from_value::<Target>(initial.clone()).map_err(|_| {
                invalid(format!(
                    "initial_state: {initial} is not one of RUNNING, PAUSED, STOPPED"
                ))
            })?),
        };
        Ok((flat_document(&name, config), initial))
    })();
    match request {
        Ok((document, initial)) => {
            answer_written(&state, state.control.write(None, document, true, initial).await).await
        }
        Err(failure) => control_error(failure),
    }
}

/// `PUT /connectors/{name}/config`: Kafka Connect's map, or a nested document. Creates or replaces the connector's
/// file, then (re)starts it; a paused or stopped connector stays so.
async fn replace(State(state): State<ApiState>, Path(name): Path<String>, text: String) -> Response {
    let document = body(&text).and_then(|value| {
        if is_nested(&value) {
            return Ok(value);
        }
        let config = string_map(&value)?;
        if let Some(named) = config.get("name").filter(|named| **named != name) {
            return Err(invalid(format!(
                "Connector name configuration ({named}) doesn't match connector name in the URL ({name})"
            )));
        }
        Ok(flat_document(&name, config))
    });
    match document {
        Ok(document) => answer_written(&state, state.control.write(Some(&name), document, false, None).await).await,
        Err(failure) => control_error(failure),
    }
}

/// `PATCH /connectors/{name}/config` (KIP-477): merges the given keys into the configuration; a key set to
/// `null` is removed.
async fn patch(State(state): State<ApiState>, Path(name): Path<String>, text: String) -> Response {
    let Some((_, connector)) = state.lookup(&name) else {
        return not_found(&name);
    };
    let merged = body(&text).and_then(|value| {
        let mut changes = value
            .as_object()
            .cloned()
            .ok_or_else(|| invalid("the body must be an object"))?;
        let mut config = connector.written.clone();
        changes.retain(|key, value| {
            let removed = value.is_null();
            if removed {
                config.remove(key);
            }
            !removed
        });
        config.extend(string_map(&Value::Object(changes))?);
        if config.get("name").is_some_and(|named| *named != name) {
            return Err(invalid(format!("name: a patch cannot rename connector {name}")));
        }
        Ok(flat_document(&name, config))
    });
    match merged {
        Ok(document) => match state.control.write(Some(&name), document, false, None).await {
            Ok((connector, _)) => Json(state.info(&connector)).into_response(),
            Err(failure) => control_error(failure),
        },
        Err(failure) => control_error(failure),
    }
}

/// Kafka Connect's `ActiveTopicsInfo`, keyed by the connector's name.
async fn topics(State(state): State<ApiState>, Path(name): Path<String>) -> Response {
    match state.lookup(&name) {
        Some((key, _)) => Json(json!({ name: {"topics": state.status.topics(&key).list()} })).into_response(),
        None => not_found(&name),
    }
}

async fn reset_topics(State(state): State<ApiState>, Path(name): Path<String>) -> Response {
    match state.lookup(&name) {
        Some((key, _)) => {
            state.status.topics(&key).reset();
            StatusCode::ACCEPTED.into_response()
        }
        None => not_found(&name),
    }
}

fn log_levels(state: &ApiState) -> Result<&LogLevels, Refusal> {
    state.log_levels.as_ref().ok_or_else(|| {
        Refusal(
            StatusCode::NOT_FOUND,
            "this worker does not own its process's log filter".into(),
        )
    })
}

fn logger_level(level: &LoggerLevel) -> Value {
    json!({"level": level.level, "last_modified": level.last_modified})
}

/// Kafka Connect's `GET /admin/loggers`: every logger with a level of its own, and `root`.
async fn loggers(State(state): State<ApiState>) -> Response {
    match log_levels(&state) {
        Ok(levels) => {
            let all: serde_json::Map<String, Value> = levels
                .all()
                .iter()
                .map(|(name, level)| (name.clone(), logger_level(level)))
                .collect();
            Json(Value::Object(all)).into_response()
        }
        Err(refused) => refused.into_response(),
    }
}

async fn logger(State(state): State<ApiState>, Path(name): Path<String>) -> Response {
    match log_levels(&state) {
        Ok(levels) => Json(logger_level(&levels.level(&name))).into_response(),
        Err(refused) => refused.into_response(),
    }
}

/// `PUT /admin/loggers/{name}` with `{"level": "DEBUG"}`: answers the loggers whose level changed. One worker's
/// filter changes whatever `scope` asks: each worker owns its own.
async fn set_logger(State(state): State<ApiState>, Path(name): Path<String>, text: String) -> Response {
    let levels = match log_levels(&state) {
        Ok(levels) => levels,
        Err(refused) => return refused.into_response(),
    };
    let level = match body(&text) {
        Ok(value) => match value.get("level").and_then(Value::as_str) {
            Some(level) => level.to_owned(),
            None => return error(StatusCode::BAD_REQUEST, "level: required, e.g. {\"level\": \"DEBUG\"}"),
        },
        Err(failure) => return control_error(failure),
    };
    match levels.set(&name, &level) {
        Ok(affected) => Json(affected).into_response(),
        Err(message) => error(StatusCode::BAD_REQUEST, message),
    }
}

/// Kafka Connect's `PluginInfo` list.
async fn plugins() -> Json<Value> {
    let plugins: Vec<Value> = ConnectorType::ALL
        .iter()
        .map(|kind| json!({"class": kind.class(), "type": kind.direction(), "version": env!("CARGO_PKG_VERSION")}))
        .collect();
    Json(json!(plugins))
}

/// The type a plugin path names; the AWS sink connector's class is the sink it runs as, so that its configuration can
/// be validated before it is migrated.
fn plugin(class: &str) -> Result<ConnectorType, Refusal> {
    let migrated = (class == crate::config::aws_connector::SINK_CLASS).then_some(ConnectorType::EventbridgeSink);
    migrated
        .or_else(|| crate::config::flat::connector_type(class))
        .ok_or_else(|| {
            Refusal(
                StatusCode::NOT_FOUND,
                format!("Failed to find any class that implements Connector and which name matches {class}"),
            )
        })
}

/// `GET /connector-plugins/{type}/config`: a `ConfigKeyInfo` for every key of the type.
async fn plugin_config(Path(class): Path<String>) -> Response {
    match plugin(&class) {
        Ok(kind) => Json(definitions(kind).iter().map(ConfigKey::info).collect::<Vec<_>>()).into_response(),
        Err(refused) => refused.into_response(),
    }
}

/// The most problems one `validate` reports, each found by checking the configuration once more.
const MAX_VALIDATE_PROBLEMS: usize = 16;

/// Kafka Connect's `ConfigInfos` for a configuration (its map, or a nested document), without writing it. Each
/// problem is attached to the key it names; one that names no key is attached to `connector.class`. Kafka Connect
/// reports every key's problem at once, so a configuration in its form is checked again without each key found
/// wrong, until it passes or a problem names no key that can be left out.
async fn validate(State(state): State<ApiState>, Path(class): Path<String>, text: String) -> Response {
    let kind = match plugin(&class) {
        Ok(kind) => kind,
        Err(refused) => return refused.into_response(),
    };
    let (document, submitted) = match body(&text).and_then(|value| {
        if is_nested(&value) {
            return Ok((Some(value), FlatConfig::new()));
        }
        let mut config = string_map(&value)?;
        config
            .entry("connector.class".into())
            .or_insert_with(|| kind.as_str().to_owned());
        Ok((None, config))
    }) {
        Ok(parts) => parts,
        Err(failure) => return control_error(failure),
    };
    // Parsing and checking take CPU in proportion to the body: off the runtime's threads, so that other requests
    // and the connectors' tasks keep their pace.
    let worker = state.worker.clone();
    let flat = submitted.clone();
    let checked = tokio::task::spawn_blocking(move || match document {
        Some(nested) => check_for(kind, &nested, &worker).into_iter().collect(),
        None => flat_problems(kind, flat, &worker),
    })
    .await;
    let problems = checked.unwrap_or_else(|failed| vec![format!("the check failed: {failed}")]);
    let mut keys = definitions(kind);
    for key in submitted.keys() {
        if !keys.iter().any(|known| known.name == *key) {
            keys.push(ConfigKey::undocumented(key));
        }
    }
    let blamed: Vec<(String, &String)> = problems
        .iter()
        .map(|problem| {
            let named = blamed_key(problem);
            let key = if keys.iter().any(|key| key.name == named) {
                named
            } else {
                "connector.class".to_owned()
            };
            (key, problem)
        })
        .collect();
    let shown = crate::config::flat::shown(&submitted, &Value::Null);
    let configs: Vec<Value> = keys
        .iter()
        .map(|key| {
            let errors: Vec<&String> = blamed
                .iter()
                .filter(|(blamed, _)| *blamed == key.name)
                .map(|(_, problem)| *problem)
                .collect();
            json!({
                "definition": key.info(),
                "value": {
                    "name": key.name,
                    "value": shown.get(&key.name).cloned().or_else(|| key.default.clone()),
                    "recommended_values": [],
                    "errors": errors,
                    "visible": true,
                },
            })
        })
        .collect();
    let groups: Vec<&str> = {
        let mut groups: Vec<&str> = keys.iter().map(|key| key.group).collect();
        groups.dedup();
        groups
    };
    Json(json!({"name": kind.class(), "error_count": problems.len(), "groups": groups, "configs": configs}))
        .into_response()
}

/// The problem with a connector document for a plugin of type `kind`, if it has one, its secrets scrubbed.
fn check_for(kind: ConnectorType, document: &Value, worker: &WorkerConfig) -> Option<String> {
    match crate::connectors::check_document(&document.to_string(), Some(worker)) {
        Ok(found) if found != kind => Some(format!(
            "connector.class: `{}` is not `{}`",
            found.as_str(),
            kind.as_str()
        )),
        Ok(_) => None,
        Err(message) => Some(crate::redact::scrub(&message).into_owned()),
    }
}

/// The problems of a configuration in Kafka Connect's form: each one found is about a key, and the configuration is
/// checked again without that key. It stops at a problem that names no submitted key (a missing one, or the
/// connector class), or that names a key already left out, whose absence is then the problem.
fn flat_problems(kind: ConnectorType, mut config: FlatConfig, worker: &WorkerConfig) -> Vec<String> {
    let name = config.get("name").cloned().unwrap_or_else(|| "validate".into());
    let mut problems = Vec::new();
    let mut left_out = Vec::new();
    while problems.len() < MAX_VALIDATE_PROBLEMS {
        let Some(problem) = check_for(kind, &flat_document(&name, config.clone()), worker) else {
            break;
        };
        let key = blamed_key(&problem);
        if left_out.contains(&key) {
            break;
        }
        problems.push(problem);
        if key == "connector.class" || key == "name" || config.remove(&key).is_none() {
            break;
        }
        left_out.push(key);
    }
    problems
}

/// The key a problem is about: the one its message starts with (`batch.max_entries: ...`), or a missing one
/// (`offload: missing field `s3_bucket`` is `offload.s3_bucket`).
fn blamed_key(problem: &str) -> String {
    let (at, message) = problem.split_once(": ").unwrap_or(("", problem));
    let at = at.trim();
    let at = at
        .strip_prefix("config.")
        .or_else(|| at.strip_prefix("config"))
        .unwrap_or(at);
    let missing = message
        .strip_prefix("missing field `")
        .or_else(|| problem.strip_prefix("missing field `"))
        .and_then(|rest| rest.split('`').next());
    // An unknown field is blamed on the flat key that named it (`batch: unknown field `max_entris`` is
    // `batch.max_entris`), like a missing one.
    let field = missing.or_else(|| {
        message
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split('`').next())
    });
    match field {
        Some(field) if problem.starts_with("missing field") || at.is_empty() => field.to_owned(),
        Some(field) => format!("{at}.{field}"),
        None => at.to_owned(),
    }
}

/// Kafka Connect's `/health`: the worker has started once it serves requests.
async fn health() -> Json<Value> {
    Json(json!({"status": "healthy", "message": "Worker has completed startup and is ready to handle requests."}))
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

/// Every error in Kafka Connect's JSON shape, those of the router (404, 405) and of request parsing included.
async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let message = if text.trim().is_empty() {
        format!(
            "HTTP {} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or_default()
        )
    } else {
        text.trim().to_owned()
    };
    let mut answer = error(status, message);
    for (name, value) in parts
        .headers
        .iter()
        .filter(|(name, _)| *name == WWW_AUTHENTICATE || *name == axum::http::header::ALLOW)
    {
        answer.headers_mut().insert(name.clone(), value.clone());
    }
    answer
}

/// Basic auth on every route it wraps, when `rest.basic_auth` is set; compared in constant time.
async fn authenticate(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let Some(auth) = &state.worker.rest.basic_auth else {
        return next.run(request).await;
    };
    let admitted = crate::basic_auth::admits(
        request.headers().get(AUTHORIZATION),
        auth.username.value().as_bytes(),
        auth.password.expose().as_bytes(),
    );
    if admitted {
        return next.run(request).await;
    }
    let mut response = error(StatusCode::UNAUTHORIZED, "authentication required");
    if let Ok(value) = "Basic realm=\"ebconnect\"".parse() {
        response.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
    response
}

pub(crate) fn router(state: ApiState) -> Router {
    let guarded = Router::new()
        .route("/", get(root))
        .route("/ready", get(ready))
        .route("/metrics", get(prometheus))
        .route("/connectors", get(list).post(create))
        .route("/connectors/{name}", get(info).delete(delete))
        .route("/connectors/{name}/config", get(config).put(replace).patch(patch))
        .route("/connectors/{name}/status", get(status))
        .route("/connectors/{name}/tasks", get(tasks))
        .route("/connectors/{name}/tasks/{task}/status", get(task_status))
        .route("/connectors/{name}/tasks/{task}/restart", post(task_restart))
        .route("/connectors/{name}/topics", get(topics))
        .route("/connectors/{name}/topics/reset", put(reset_topics))
        .route("/admin/loggers", get(loggers))
        .route("/admin/loggers/{name}", get(logger).put(set_logger))
        .route(
            "/connectors/{name}/offsets",
            get(offsets).patch(alter_offsets).delete(reset_offsets),
        )
        .route("/connectors/{name}/pause", put(pause))
        .route("/connectors/{name}/resume", put(resume))
        .route("/connectors/{name}/stop", put(stop))
        .route("/connectors/{name}/restart", post(restart))
        .route("/connector-plugins", get(plugins))
        .route("/connector-plugins/{kind}/config", get(plugin_config))
        .route("/connector-plugins/{kind}/config/validate", put(validate))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .route("/health", get(health))
        .merge(guarded)
        .with_state(state)
        .layer(axum::middleware::from_fn(json_errors))
}

/// Serves the API on a bound listener until `shutdown` is cancelled. A trailing slash is ignored
/// (`/connectors/` is `/connectors`), as Kafka Connect ignores it.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = tower::Layer::layer(
        &tower_http::normalize_path::NormalizePathLayer::trim_trailing_slash(),
        router(state),
    );
    axum::serve(listener, axum::ServiceExt::<Request>::into_make_service(app))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
