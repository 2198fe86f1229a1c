//! Migration: the configuration of AWS's Java EventBridge sink connector for Kafka Connect
//! (`software.amazon.event.kafkaconnector.EventBridgeSinkConnector`, awslabs/eventbridge-kafka-connector), read
//! unchanged and run as an `eventbridge-sink` that sends the same events: `source` `kafka-connect.<connector.id>`,
//! the same `detail-type` rules, the same envelope as `detail`, and no `time` unless a mapper sets one.
//!
//! Each key maps to ebconnect's own; a key with no equivalent is an error that names it. ebconnect takes AWS
//! settings (region, endpoint, credentials) from the worker file, for every connector: a connector that asks for
//! other ones is refused, naming the worker key to set.

use super::flat::{FlatConfig, FlatError};
use super::WorkerConfig;

pub(crate) const SINK_CLASS: &str = "software.amazon.event.kafkaconnector.EventBridgeSinkConnector";

const PREFIX: &str = "aws.eventbridge.";
const MAPPING: &str = "software.amazon.event.kafkaconnector.mapping.";
const DEFAULT_RETRIES: u32 = 2;
const DEFAULT_RETRY_DELAY_MS: u64 = 200;

/// Kafka Connect's keys that mean the same in ebconnect's flat form.
const CONNECT_KEYS: [&str; 4] = ["name", "tasks.max", "topics", "topics.regex"];

fn error(key: &str, message: impl std::fmt::Display) -> FlatError {
    FlatError(format!("{key}: {message}"))
}

/// ebconnect's flat configuration for the AWS connector's. `worker` is checked against the AWS settings the
/// connector names, when given.
pub(crate) fn translate(aws: &FlatConfig, worker: Option<&WorkerConfig>) -> Result<FlatConfig, FlatError> {
    let mut flat = FlatConfig::new();
    flat.insert("connector.class".into(), "eventbridge-sink".into());
    let get = |key: &str| {
        aws.get(&format!("{PREFIX}{key}"))
            .map(|value| value.trim())
            .filter(|value| !value.is_empty())
    };
    let required = |key: &str| get(key).ok_or_else(|| error(&format!("{PREFIX}{key}"), "required"));

    flat.insert("source".into(), format!("kafka-connect.{}", required("connector.id")?));
    flat.insert("event_bus".into(), required("eventbus.arn")?.to_owned());
    check_worker_setting(
        "region",
        required("region")?,
        worker.and_then(|worker| worker.aws.region.as_ref().map(|region| region.value().to_owned())),
        "aws.region",
    )?;
    if let Some(endpoint) = get("endpoint.uri") {
        check_worker_setting(
            "endpoint.uri",
            endpoint,
            worker.and_then(|worker| worker.aws.endpoint_url.as_ref().map(|url| url.value().to_owned())),
            "aws.endpoint_url",
        )?;
    }
    if let Some(id) = get("eventbus.global.endpoint.id") {
        flat.insert("endpoint_id".into(), id.to_owned());
    }
    if let Some(resources) = get("eventbus.resources") {
        let resources: Vec<&str> = resources
            .split(',')
            .map(str::trim)
            .filter(|arn| !arn.is_empty())
            .collect();
        flat.insert("resources".into(), resources.join(","));
    }
    flat.insert("detail_type".into(), detail_type(aws)?);
    match get("time.mapper.class") {
        None => {}
        Some(class) if class == format!("{MAPPING}DefaultTimeMapper") => {}
        Some(class) => {
            return Err(error(
                &format!("{PREFIX}time.mapper.class"),
                format!("`{class}` is a Java class ebconnect cannot run; use ebconnect's `time` setting instead"),
            ))
        }
    }
    // The AWS connector leaves `time` to EventBridge unless a time mapper sets it.
    flat.insert("time".into(), "none".into());
    retries(aws, &mut flat)?;
    credentials(aws, worker)?;
    offloading(aws, &mut flat)?;

    for (key, value) in aws {
        if key.starts_with(PREFIX) || key == "connector.class" {
            continue;
        }
        let same =
            CONNECT_KEYS.contains(&key.as_str()) || key.starts_with("errors.") || key.starts_with("consumer.override.");
        if same {
            flat.insert(key.clone(), value.clone());
        } else if key == "auto.offset.reset" {
            flat.insert("auto_offset_reset".into(), value.trim().to_owned());
        } else if let Some(side) = ["key", "value"]
            .into_iter()
            .find(|side| key.starts_with(&format!("{side}.converter")))
        {
            if key == &format!("{side}.converter") {
                converter(aws, side, value, worker, &mut flat)?;
            } else if !aws.contains_key(&format!("{side}.converter")) {
                return Err(error(key, format!("is set but `{side}.converter` is not")));
            }
        } else {
            return Err(error(
                key,
                "not a setting of the AWS EventBridge sink connector or of Kafka Connect that ebconnect has an \
                 equivalent for",
            ));
        }
    }
    let known = known_aws_keys();
    if let Some(unknown) = aws
        .keys()
        .find(|key| key.starts_with(PREFIX) && !known.contains(&&key[PREFIX.len()..]))
    {
        return Err(error(unknown, "not a setting of the AWS EventBridge sink connector"));
    }
    Ok(flat)
}

fn known_aws_keys() -> [&'static str; 18] {
    [
        "connector.id",
        "region",
        "eventbus.arn",
        "endpoint.uri",
        "eventbus.global.endpoint.id",
        "eventbus.resources",
        "detail.types",
        "detail.types.mapper.class",
        "detail.types.jsonpathmapper.fieldref",
        "time.mapper.class",
        "retries.max",
        "retries.delay",
        "auth.credentials_provider.class",
        "iam.profile.name",
        "iam.role.arn",
        "iam.external.id",
        "offloading.default.s3.bucket",
        "offloading.default.fieldref",
    ]
}

/// An AWS setting the worker decides for all its connectors: it must be the worker's, when the worker's is known.
fn check_worker_setting(key: &str, wanted: &str, worker: Option<String>, worker_key: &str) -> Result<(), FlatError> {
    match worker {
        Some(actual) if actual != wanted => Err(error(
            &format!("{PREFIX}{key}"),
            format!(
                "`{wanted}`, but this worker's {worker_key} is `{actual}`: ebconnect takes AWS settings from the worker \
                 file, for every connector"
            ),
        )),
        _ => Ok(()),
    }
}

/// `detail.types` (a template, or `topic:type` pairs) or the JSON path mapper, as ebconnect's `detail_type`.
fn detail_type(aws: &FlatConfig) -> Result<String, FlatError> {
    let key = |name: &str| format!("{PREFIX}{name}");
    let mapper = aws.get(&key("detail.types.mapper.class")).map(|class| class.trim());
    let field = aws
        .get(&key("detail.types.jsonpathmapper.fieldref"))
        .map(|path| path.trim());
    match mapper {
        Some(class) if class == format!("{MAPPING}JsonPathDetailTypeMapper") => {
            let path = field.filter(|path| !path.is_empty()).ok_or_else(|| {
                error(
                    &key("detail.types.jsonpathmapper.fieldref"),
                    "required with the JsonPathDetailTypeMapper",
                )
            })?;
            // The mapper falls back to the record's topic when the path gives no string.
            return Ok(serde_json::json!({"json_path": path, "default": "${topic}"}).to_string());
        }
        None => {}
        Some(class) if class == format!("{MAPPING}DefaultDetailTypeMapper") => {}
        Some(class) => {
            return Err(error(
                &key("detail.types.mapper.class"),
                format!("`{class}` is a Java class ebconnect cannot run; use ebconnect's `detail_type` instead"),
            ))
        }
    }
    if field.is_some() {
        return Err(error(
            &key("detail.types.jsonpathmapper.fieldref"),
            "applies only with detail.types.mapper.class JsonPathDetailTypeMapper",
        ));
    }
    let types: Vec<&str> = aws
        .get(&key("detail.types"))
        .map_or(vec!["kafka-connect-${topic}"], |types| {
            types.split(',').map(str::trim).collect()
        });
    if types.len() == 1 && !types[0].contains(':') {
        return Ok(types[0].to_owned());
    }
    let mut by_topic = serde_json::Map::new();
    for pair in types {
        let (topic, detail_type) = pair
            .split_once(':')
            .filter(|(topic, detail_type)| !topic.trim().is_empty() && !detail_type.trim().is_empty())
            .ok_or_else(|| error(&key("detail.types"), format!("`{pair}` is not `<topic>:<detail-type>`")))?;
        by_topic.insert(topic.trim().to_owned(), detail_type.trim().into());
    }
    Ok(serde_json::json!({ "by_topic": by_topic }).to_string())
}

fn retries(aws: &FlatConfig, flat: &mut FlatConfig) -> Result<(), FlatError> {
    let number = |name: &str, default: u64| -> Result<u64, FlatError> {
        let key = format!("{PREFIX}{name}");
        match aws.get(&key) {
            None => Ok(default),
            Some(text) => text
                .trim()
                .parse()
                .map_err(|_| error(&key, format!("`{text}` is not a whole number"))),
        }
    };
    let retries = number("retries.max", u64::from(DEFAULT_RETRIES))?;
    let delay = number("retries.delay", DEFAULT_RETRY_DELAY_MS)?;
    // The AWS connector counts retries; ebconnect counts sends, the first included.
    flat.insert("retry.max_attempts".into(), (retries + 1).to_string());
    flat.insert("retry.initial_backoff".into(), format!("{delay}ms"));
    Ok(())
}

fn credentials(aws: &FlatConfig, worker: Option<&WorkerConfig>) -> Result<(), FlatError> {
    let get = |name: &str| {
        aws.get(&format!("{PREFIX}{name}"))
            .map(|value| value.trim())
            .filter(|value| !value.is_empty())
    };
    if let Some(class) = get("auth.credentials_provider.class") {
        let default = [
            "software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider",
            "software.amazon.awssdk.services.sts.auth.StsAssumeRoleCredentialsProvider",
        ];
        if !default.contains(&class) {
            return Err(error(
                &format!("{PREFIX}auth.credentials_provider.class"),
                format!(
                    "`{class}` is a Java class ebconnect cannot run; set the worker's aws.profile or aws.assume_role"
                ),
            ));
        }
    }
    let worker_aws = worker.map(|worker| &worker.aws);
    if let Some(profile) = get("iam.profile.name") {
        check_worker_setting(
            "iam.profile.name",
            profile,
            worker_aws.map(|aws| {
                aws.profile
                    .as_ref()
                    .map_or_else(String::new, |profile| profile.value().to_owned())
            }),
            "aws.profile",
        )?;
    }
    let role = worker_aws.and_then(|aws| aws.assume_role.as_ref());
    if let Some(arn) = get("iam.role.arn") {
        check_worker_setting(
            "iam.role.arn",
            arn,
            worker_aws.map(|_| role.map_or_else(String::new, |role| role.role_arn.value().to_owned())),
            "aws.assume_role.role_arn",
        )?;
    }
    if let Some(external_id) = get("iam.external.id") {
        let matches = role
            .and_then(|role| role.external_id.as_ref())
            .is_some_and(|id| id.expose() == external_id);
        if worker.is_some() && !matches {
            return Err(error(
                &format!("{PREFIX}iam.external.id"),
                "differs from this worker's aws.assume_role.external_id: ebconnect takes AWS settings from the \
                 worker file, for every connector",
            ));
        }
    }
    Ok(())
}

fn offloading(aws: &FlatConfig, flat: &mut FlatConfig) -> Result<(), FlatError> {
    let bucket = aws
        .get(&format!("{PREFIX}offloading.default.s3.bucket"))
        .map(|bucket| bucket.trim())
        .filter(|bucket| !bucket.is_empty());
    let field = aws.get(&format!("{PREFIX}offloading.default.fieldref"));
    match (bucket, field) {
        (Some(bucket), field) => {
            flat.insert("offload.s3_bucket".into(), bucket.to_owned());
            if let Some(field) = field {
                flat.insert("offload.json_path".into(), field.trim().to_owned());
            }
            Ok(())
        }
        (None, Some(_)) => Err(error(
            &format!("{PREFIX}offloading.default.fieldref"),
            "applies only with aws.eventbridge.offloading.default.s3.bucket",
        )),
        (None, None) => Ok(()),
    }
}

/// A Kafka Connect converter as ebconnect's `key.format` / `value.format`.
fn converter(
    aws: &FlatConfig,
    side: &str,
    class: &str,
    worker: Option<&WorkerConfig>,
    flat: &mut FlatConfig,
) -> Result<(), FlatError> {
    let key = format!("{side}.converter");
    let setting = |name: &str| aws.get(&format!("{key}.{name}")).map(|value| value.trim());
    let allowed: &[&str];
    let format = match class.trim() {
        "org.apache.kafka.connect.storage.StringConverter" => {
            allowed = &["encoding"];
            if setting("encoding").is_some_and(|encoding| !encoding.eq_ignore_ascii_case("UTF-8")) {
                return Err(error(
                    &format!("{key}.encoding"),
                    "ebconnect reads strings as UTF-8 only",
                ));
            }
            "string"
        }
        "org.apache.kafka.connect.converters.ByteArrayConverter" => {
            allowed = &[];
            "bytes"
        }
        "org.apache.kafka.connect.json.JsonConverter" => {
            allowed = &["schemas.enable"];
            // Kafka Connect's JsonConverter expects the {schema, payload} envelope unless schemas.enable is false.
            if !setting("schemas.enable").is_some_and(|enabled| enabled.eq_ignore_ascii_case("false")) {
                return Err(error(
                    &format!("{key}.schemas.enable"),
                    "must be `false`: ebconnect reads JSON as it is, not in the {schema, payload} envelope",
                ));
            }
            "json"
        }
        converter @ ("io.confluent.connect.avro.AvroConverter"
        | "io.confluent.connect.protobuf.ProtobufConverter"
        | "io.confluent.connect.json.JsonSchemaConverter") => {
            allowed = &["schema.registry.url"];
            let short = converter.rsplit('.').next().unwrap_or(converter);
            let url = setting("schema.registry.url").ok_or_else(|| {
                error(
                    &format!("{key}.schema.registry.url"),
                    format!("required with the {short}"),
                )
            })?;
            let registry = worker.and_then(|worker| worker.schema_registry.as_ref());
            if let Some(registry) = registry {
                if registry.url.value().trim_end_matches('/') != url.trim_end_matches('/') {
                    return Err(error(
                        &format!("{key}.schema.registry.url"),
                        format!(
                            "`{url}`, but this worker's schema_registry.url is `{}`: ebconnect reads one registry, \
                             set in the worker file",
                            registry.url.value()
                        ),
                    ));
                }
            }
            match short {
                "ProtobufConverter" => "protobuf",
                "JsonSchemaConverter" => "json_schema",
                _ => "avro",
            }
        }
        other => {
            return Err(error(
                &key,
                format!(
                    "`{other}`: ebconnect reads StringConverter, ByteArrayConverter, JsonConverter, AvroConverter, \
                     ProtobufConverter and JsonSchemaConverter data"
                ),
            ))
        }
    };
    let prefix = format!("{key}.");
    if let Some(unknown) = aws
        .keys()
        .filter_map(|name| name.strip_prefix(&prefix))
        .find(|name| !allowed.contains(name))
    {
        return Err(error(
            &format!("{prefix}{unknown}"),
            format!("not a setting ebconnect has for `{class}`"),
        ));
    }
    flat.insert(format!("{side}.format"), format.into());
    Ok(())
}
