//! The worker configuration: how to reach Kafka, the Schema Registry and AWS, and how the worker itself runs.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::interpolate::{Interpolated, Secret};
use super::InvalidSetting;

/// `config/worker.yaml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    /// This worker's name in the status API and in logs. Default: the host name.
    #[serde(default)]
    pub(crate) worker_id: Option<String>,
    /// The Kafka cluster every connector reads from or writes to.
    pub kafka: KafkaConfig,
    /// The Confluent-compatible Schema Registry, needed by connectors that use `avro`.
    #[serde(default)]
    pub(crate) schema_registry: Option<SchemaRegistryConfig>,
    /// Where and as whom to call AWS.
    #[serde(default)]
    pub(crate) aws: AwsConfig,
    /// The REST API (status, metrics, health).
    #[serde(default)]
    pub rest: RestConfig,
    /// `text` (default) or `json` log lines. `--log-format` overrides it.
    #[serde(default)]
    pub log_format: LogFormat,
    /// How long an orderly shutdown may take before in-flight work is abandoned. Default: 30s.
    #[serde(default = "default_shutdown_timeout", with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// How a failed connector is restarted.
    #[serde(default)]
    pub(crate) restart: RestartPolicy,
    /// Named rate limits that connectors share by naming a group (`rate_limit: <group>`).
    #[serde(default)]
    pub(crate) rate_limits: BTreeMap<String, crate::rate_limit::RateLimitConfig>,
    /// How often the connector files are re-read: a new file starts its connector, an edited one restarts it, a
    /// removed one stops it. `0s` turns reloading off. Default: 5s.
    #[serde(default = "default_reload_interval", with = "humantime_serde")]
    pub(crate) reload_interval: Duration,
    /// How often each connector logs its one-line summary (records/s, lag, errors). `0s` turns it off.
    /// Default: 60s.
    #[serde(default = "default_summary_interval", with = "humantime_serde")]
    pub(crate) summary_interval: Duration,
    /// Cluster mode: every worker with the same `cluster.group_id` shares one set of connectors and their states,
    /// kept in Kafka. Default: none (each worker runs the files it reads).
    #[serde(default)]
    pub(crate) cluster: Option<ClusterConfig>,
}

/// `cluster:`, Kafka Connect's distributed mode: connector documents and target states in a compacted config topic,
/// each worker's connector states in a compacted status topic.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// The workers of one cluster; names the topics' defaults. Required.
    pub(crate) group_id: String,
    /// Connector documents and target states (RUNNING/PAUSED/STOPPED), keyed by connector: one partition,
    /// compacted. Created if missing. Default: `<group_id>-configs`.
    #[serde(default)]
    pub(crate) config_topic: Option<String>,
    /// Each worker's connector states, keyed by worker: compacted. Created if missing. Default:
    /// `<group_id>-status`.
    #[serde(default)]
    pub(crate) status_topic: Option<String>,
    /// Replicas of the two topics when this worker creates them. Default: the broker's
    /// `default.replication.factor`.
    #[serde(default)]
    pub(crate) replication_factor: Option<i16>,
    /// `write` (default): the connector files are written to the config topic at start and whenever one changes,
    /// so a file wins over a change made through the REST API. `ignore`: the files are not read.
    #[serde(default)]
    pub(crate) files: ClusterFiles,
    /// How often this worker publishes its connectors' states. Default: 2s.
    #[serde(default = "default_status_interval", with = "humantime_serde")]
    pub(crate) status_interval: Duration,
    /// A worker not heard from for this long is shown as gone. Default: 10s.
    #[serde(default = "default_worker_timeout", with = "humantime_serde")]
    pub(crate) worker_timeout: Duration,
    /// Join the connectors' consumer groups as static members (`group.instance.id`: the worker id), so that a
    /// restarted worker gets its partitions back without waiting for the session timeout.
    /// Requires a `worker_id` that stays the same across restarts and differs between workers. Default: true.
    #[serde(default = "default_true")]
    pub(crate) static_membership: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterFiles {
    #[default]
    Write,
    Ignore,
}

impl ClusterConfig {
    pub(crate) fn check(&self) -> Result<(), InvalidSetting> {
        let topic_name = |name: &str| {
            !name.is_empty()
                && name.len() <= 249
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        };
        if !topic_name(&self.group_id) {
            return Err(InvalidSetting::new(
                "cluster.group_id",
                "must be 1 to 249 letters, digits, `.`, `_` or `-`: it names the cluster's topics",
            ));
        }
        for (key, topic) in [
            ("cluster.config_topic", &self.config_topic),
            ("cluster.status_topic", &self.status_topic),
        ] {
            if topic.as_deref().is_some_and(|topic| !topic_name(topic)) {
                return Err(InvalidSetting::new(
                    key,
                    "must be a Kafka topic name: 1 to 249 letters, digits, `.`, `_` or `-`",
                ));
            }
        }
        if self.config_topic() == self.status_topic() {
            return Err(InvalidSetting::new(
                "cluster.status_topic",
                "must differ from cluster.config_topic",
            ));
        }
        if self.status_interval.is_zero() {
            return Err(InvalidSetting::new("cluster.status_interval", "must be more than 0s"));
        }
        if self.worker_timeout <= self.status_interval {
            return Err(InvalidSetting::new(
                "cluster.worker_timeout",
                format!(
                    "must be longer than cluster.status_interval ({:?}), or every worker would show as gone between \
                     its reports",
                    self.status_interval
                ),
            ));
        }
        Ok(())
    }

    pub(crate) fn config_topic(&self) -> String {
        self.config_topic
            .clone()
            .unwrap_or_else(|| format!("{}-configs", self.group_id))
    }

    pub(crate) fn status_topic(&self) -> String {
        self.status_topic
            .clone()
            .unwrap_or_else(|| format!("{}-status", self.group_id))
    }
}

fn default_status_interval() -> Duration {
    Duration::from_secs(2)
}

fn default_worker_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_reload_interval() -> Duration {
    Duration::from_secs(5)
}

fn default_summary_interval() -> Duration {
    Duration::from_secs(60)
}

impl WorkerConfig {
    /// `worker_id`, or the host name.
    pub fn worker_id(&self) -> String {
        self.worker_id.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|name| name.trim().to_owned())
                .unwrap_or_else(|_| "ebconnect".to_owned())
        })
    }

    /// Whether the connector files are read: always, but in cluster mode with `cluster.files: ignore`.
    pub fn reads_connector_files(&self) -> bool {
        self.cluster
            .as_ref()
            .is_none_or(|cluster| cluster.files == ClusterFiles::Write)
    }

    /// This worker's `group.instance.id` in the connectors' consumer groups (cluster mode with
    /// `static_membership`); none otherwise. Unique per group, since a worker runs a connector once.
    pub(crate) fn static_member_id(&self) -> Option<String> {
        self.cluster
            .as_ref()
            .filter(|cluster| cluster.static_membership)
            .map(|_| self.worker_id())
    }
}

fn default_shutdown_timeout() -> Duration {
    Duration::from_secs(30)
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// `host:port[,host:port...]`, librdkafka's `bootstrap.servers`.
    pub bootstrap_servers: Interpolated,
    /// `plaintext` (default), `ssl`, `sasl_plaintext` or `sasl_ssl`.
    #[serde(default)]
    pub(crate) security_protocol: SecurityProtocol,
    /// Credentials for `sasl_plaintext` and `sasl_ssl` (Confluent Cloud uses `sasl_ssl` with `PLAIN`).
    #[serde(default)]
    pub sasl: Option<SaslConfig>,
    /// TLS settings for `ssl` and `sasl_ssl`.
    #[serde(default)]
    pub(crate) tls: Option<TlsConfig>,
    /// librdkafka settings for every consumer, like Kafka Connect's worker-level `consumer.*`.
    #[serde(default, with = "crate::config::client_settings")]
    pub(crate) consumer: BTreeMap<String, Interpolated>,
    /// librdkafka settings for every producer, like Kafka Connect's worker-level `producer.*`.
    #[serde(default, with = "crate::config::client_settings")]
    pub(crate) producer: BTreeMap<String, Interpolated>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityProtocol {
    #[default]
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub(crate) fn as_librdkafka(self) -> &'static str {
        match self {
            Self::Plaintext => "plaintext",
            Self::Ssl => "ssl",
            Self::SaslPlaintext => "sasl_plaintext",
            Self::SaslSsl => "sasl_ssl",
        }
    }

    pub(crate) fn uses_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }

    pub(crate) fn uses_tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SaslConfig {
    /// `PLAIN` (default), `SCRAM-SHA-256`, `SCRAM-SHA-512`, `OAUTHBEARER` (OIDC client credentials) or `AWS_MSK_IAM`.
    #[serde(default)]
    pub(crate) mechanism: SaslMechanism,
    /// For `PLAIN` and the SCRAM mechanisms (Confluent Cloud: the API key).
    #[serde(default)]
    pub(crate) username: Option<Interpolated>,
    /// For `PLAIN` and the SCRAM mechanisms (Confluent Cloud: the API secret).
    #[serde(default)]
    pub password: Option<Secret>,
    /// For `OAUTHBEARER`: the identity provider and the client's credentials.
    #[serde(default)]
    pub(crate) oauth: Option<OAuthConfig>,
}

impl SaslConfig {
    /// Which keys each mechanism needs and refuses; messages name the key.
    pub(crate) fn check(&self, protocol: SecurityProtocol) -> Result<(), InvalidSetting> {
        let mechanism = self.mechanism.as_written();
        let credentials = self.username.is_some() || self.password.is_some();
        match self.mechanism {
            SaslMechanism::Plain | SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512 => {
                if self.username.is_none() {
                    return Err(InvalidSetting::new(
                        "kafka.sasl.username",
                        format!("required with mechanism {mechanism}"),
                    ));
                }
                if self.password.is_none() {
                    return Err(InvalidSetting::new(
                        "kafka.sasl.password",
                        format!("required with mechanism {mechanism}"),
                    ));
                }
                if self.oauth.is_some() {
                    return Err(InvalidSetting::new(
                        "kafka.sasl.oauth",
                        format!("only for mechanism OAUTHBEARER, not {mechanism}"),
                    ));
                }
            }
            SaslMechanism::OAuthBearer => {
                let Some(oauth) = &self.oauth else {
                    return Err(InvalidSetting::new(
                        "kafka.sasl.oauth",
                        "required with mechanism OAUTHBEARER (token_endpoint_url, client_id, client_secret)",
                    ));
                };
                if credentials {
                    return Err(InvalidSetting::new(
                        "kafka.sasl",
                        "username and password are not used with mechanism OAUTHBEARER; the client's credentials \
                         go in kafka.sasl.oauth",
                    ));
                }
                oauth.check()?;
            }
            SaslMechanism::AwsMskIam => {
                if credentials || self.oauth.is_some() {
                    return Err(InvalidSetting::new(
                        "kafka.sasl",
                        "mechanism AWS_MSK_IAM takes no username, password or oauth: it signs with the worker's AWS \
                         credentials (the aws section)",
                    ));
                }
                if protocol != SecurityProtocol::SaslSsl {
                    return Err(InvalidSetting::new(
                        "kafka.security_protocol",
                        format!(
                            "AWS_MSK_IAM needs `sasl_ssl` (MSK's IAM listeners are TLS), not `{}`",
                            protocol.as_librdkafka()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Client credentials (RFC 6749 section 4.4) against an OIDC identity provider, as librdkafka's
/// `sasl.oauthbearer.method=oidc` does them: Confluent Cloud's OAuth, or a self-managed broker validating JWTs.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthConfig {
    /// The identity provider's token endpoint, e.g. `https://login.example.com/oauth2/token`.
    pub(crate) token_endpoint_url: Interpolated,
    pub(crate) client_id: Interpolated,
    pub(crate) client_secret: Secret,
    /// The scope to ask for. Default: none.
    #[serde(default)]
    pub(crate) scope: Option<Interpolated>,
    /// SASL extensions sent to the broker with the token; Confluent Cloud wants `logicalCluster` (the cluster id)
    /// and `identityPoolId`. Default: none.
    #[serde(default)]
    pub(crate) extensions: BTreeMap<String, Interpolated>,
}

impl OAuthConfig {
    fn check(&self) -> Result<(), InvalidSetting> {
        for (name, value) in &self.extensions {
            // RFC 7628: a key is letters only; librdkafka joins the pairs with `,`.
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphabetic()) {
                return Err(InvalidSetting::new(
                    format!("kafka.sasl.oauth.extensions.{name}"),
                    "an extension's name is letters only",
                ));
            }
            if value.value().contains(',') {
                return Err(InvalidSetting::new(
                    format!("kafka.sasl.oauth.extensions.{name}"),
                    "a value cannot hold `,`",
                ));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum SaslMechanism {
    #[default]
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
    #[serde(rename = "OAUTHBEARER")]
    OAuthBearer,
    #[serde(rename = "AWS_MSK_IAM")]
    AwsMskIam,
}

impl SaslMechanism {
    /// librdkafka's `sasl.mechanism`: MSK IAM is OAUTHBEARER with a token that the client's context signs.
    pub(crate) fn as_librdkafka(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
            Self::OAuthBearer | Self::AwsMskIam => "OAUTHBEARER",
        }
    }

    pub(crate) fn as_written(self) -> &'static str {
        match self {
            Self::AwsMskIam => "AWS_MSK_IAM",
            other => other.as_librdkafka(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// A PEM file of CA certificates to trust instead of the system's. Default: the system's.
    #[serde(default)]
    pub(crate) ca_location: Option<Interpolated>,
    /// This client's certificate (PEM), for a cluster that authenticates clients by certificate (mTLS; MSK's TLS
    /// client authentication). Default: none.
    #[serde(default)]
    pub(crate) certificate_location: Option<Interpolated>,
    /// The certificate's private key (PEM); required with `certificate_location`.
    #[serde(default)]
    pub(crate) key_location: Option<Interpolated>,
    /// The private key's password, when it is encrypted.
    #[serde(default)]
    pub(crate) key_password: Option<Secret>,
    /// Check that the broker's certificate names the host connected to. Default: true; `false` is logged as a
    /// warning at start.
    #[serde(default = "default_true")]
    pub(crate) verify_hostname: bool,
}

fn default_true() -> bool {
    true
}

impl TlsConfig {
    /// Rules serde cannot express; each message names the key.
    pub(crate) fn check(&self) -> Result<(), InvalidSetting> {
        match (&self.certificate_location, &self.key_location) {
            (Some(_), None) => {
                return Err(InvalidSetting::new(
                    "kafka.tls.key_location",
                    "required with kafka.tls.certificate_location",
                ))
            }
            (None, Some(_)) => {
                return Err(InvalidSetting::new(
                    "kafka.tls.certificate_location",
                    "required with kafka.tls.key_location",
                ))
            }
            _ => {}
        }
        if self.key_password.is_some() && self.key_location.is_none() {
            return Err(InvalidSetting::new(
                "kafka.tls.key_password",
                "set without kafka.tls.key_location",
            ));
        }
        for (key, file) in [
            ("ca_location", &self.ca_location),
            ("certificate_location", &self.certificate_location),
            ("key_location", &self.key_location),
        ] {
            if let Some(file) = file {
                std::fs::File::open(file.value()).map_err(|error| {
                    InvalidSetting::new(
                        format!("kafka.tls.{key}"),
                        format!("cannot read `{}`: {error}", file.as_written()),
                    )
                })?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaRegistryConfig {
    /// Base URL, e.g. `https://psrc-xxxx.region.aws.confluent.cloud` or `http://127.0.0.1:8081/apis/ccompat/v7`.
    pub(crate) url: Interpolated,
    /// HTTP Basic credentials (Confluent Cloud: the Schema Registry API key and secret).
    #[serde(default)]
    pub(crate) basic_auth: Option<BasicAuth>,
    /// A fixed bearer token, for a registry behind OAuth when the token is managed outside ebconnect.
    #[serde(default)]
    pub(crate) bearer_token: Option<Secret>,
    /// Bearer tokens fetched with OAuth client credentials and renewed before they expire (Confluent Cloud's
    /// OAuth for Schema Registry).
    #[serde(default)]
    pub(crate) oauth: Option<RegistryOAuthConfig>,
    /// A PEM file of CA certificates to trust for an `https` URL, in addition to the system's. Default: the
    /// system's only.
    #[serde(default)]
    pub(crate) ca_location: Option<Interpolated>,
}

impl SchemaRegistryConfig {
    /// Rules serde cannot express; each message names the key.
    pub(crate) fn check(&self) -> Result<(), InvalidSetting> {
        let ways = [
            self.basic_auth.is_some(),
            self.bearer_token.is_some(),
            self.oauth.is_some(),
        ];
        if ways.iter().filter(|set| **set).count() > 1 {
            return Err(InvalidSetting::new(
                "schema_registry",
                "set one of basic_auth, bearer_token and oauth, not several",
            ));
        }
        if let Some(ca) = &self.ca_location {
            std::fs::File::open(ca.value()).map_err(|error| {
                InvalidSetting::new(
                    "schema_registry.ca_location",
                    format!("cannot read `{}`: {error}", ca.as_written()),
                )
            })?;
        }
        Ok(())
    }
}

/// OAuth client credentials for the registry, and Confluent Cloud's routing headers.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryOAuthConfig {
    /// The identity provider's token endpoint.
    pub(crate) token_endpoint_url: Interpolated,
    pub(crate) client_id: Interpolated,
    pub(crate) client_secret: Secret,
    /// The scope to ask for. Default: none.
    #[serde(default)]
    pub(crate) scope: Option<Interpolated>,
    /// Sent as `target-sr-cluster` (Confluent Cloud: the registry's `lsrc-` id). Default: not sent.
    #[serde(default)]
    pub(crate) logical_cluster: Option<Interpolated>,
    /// Sent as `Confluent-Identity-Pool-Id`. Default: not sent.
    #[serde(default)]
    pub(crate) identity_pool_id: Option<Interpolated>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub(crate) username: Interpolated,
    pub(crate) password: Secret,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AwsConfig {
    /// Region. Default: from the environment (`AWS_REGION`) or the profile.
    #[serde(default)]
    pub(crate) region: Option<Interpolated>,
    /// Endpoint override, for emulators and VPC endpoints. Default: the AWS endpoint of the region
    /// (or `AWS_ENDPOINT_URL`, which the SDK reads).
    #[serde(default)]
    pub(crate) endpoint_url: Option<Interpolated>,
    /// Endpoint overrides for single services, over `endpoint_url`, as the `services` section of `~/.aws/config`
    /// gives them: a VPC interface endpoint for one service, or another SQS server. Default: none.
    #[serde(default)]
    pub(crate) service_endpoints: ServiceEndpoints,
    /// A named profile from `~/.aws/config`. Default: the default credential chain.
    #[serde(default)]
    pub(crate) profile: Option<Interpolated>,
    /// A role to assume with the credentials found.
    #[serde(default)]
    pub(crate) assume_role: Option<AssumeRoleConfig>,
    /// How often the secrets that `${aws-secretsmanager:}` and `${aws-ssm:}` placeholders name are read again; what
    /// uses a changed one restarts with its new value. `0s` reads them only at load. Default: 5m.
    #[serde(default = "default_secrets_refresh_interval", with = "humantime_serde")]
    pub(crate) secrets_refresh_interval: Duration,
}

fn default_secrets_refresh_interval() -> Duration {
    Duration::from_secs(300)
}

impl Default for AwsConfig {
    fn default() -> Self {
        Self {
            region: None,
            endpoint_url: None,
            service_endpoints: ServiceEndpoints::default(),
            profile: None,
            assume_role: None,
            secrets_refresh_interval: default_secrets_refresh_interval(),
        }
    }
}

/// Each `None` falls back to `aws.endpoint_url`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceEndpoints {
    /// EventBridge: PutEvents, and the rule a source provisions.
    #[serde(default)]
    pub(crate) events: Option<Interpolated>,
    /// SQS: the queue a source reads.
    #[serde(default)]
    pub(crate) sqs: Option<Interpolated>,
    /// S3: the sink's offloaded large details.
    #[serde(default)]
    pub(crate) s3: Option<Interpolated>,
    /// Secrets Manager: `${aws-secretsmanager:}` placeholders.
    #[serde(default)]
    pub(crate) secretsmanager: Option<Interpolated>,
    /// SSM Parameter Store: `${aws-ssm:}` placeholders.
    #[serde(default)]
    pub(crate) ssm: Option<Interpolated>,
    /// Glue: the schemas of `format: glue` records (AWS Glue Schema Registry).
    #[serde(default)]
    pub(crate) glue: Option<Interpolated>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AssumeRoleConfig {
    pub(crate) role_arn: Interpolated,
    /// Default: `ebconnect`.
    #[serde(default)]
    pub(crate) session_name: Option<Interpolated>,
    #[serde(default)]
    pub(crate) external_id: Option<Secret>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RestConfig {
    /// Address of the REST API. Default: `127.0.0.1:8083`, Kafka Connect's port, on loopback only.
    #[serde(default = "default_rest_listen")]
    pub listen: SocketAddr,
    /// Basic auth for every endpoint but `/health`. Default: none. Required when `listen` is not a loopback
    /// address, unless `allow_unauthenticated` is set.
    #[serde(default)]
    pub(crate) basic_auth: Option<BasicAuth>,
    /// Serve the API without `basic_auth` on a non-loopback address (anyone who reaches the port can then create
    /// connectors). Logged as a warning at start. Default: false.
    #[serde(default)]
    pub(crate) allow_unauthenticated: bool,
}

fn default_rest_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8083))
}

impl Default for RestConfig {
    fn default() -> Self {
        Self {
            listen: default_rest_listen(),
            basic_auth: None,
            allow_unauthenticated: false,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// A failed connector is restarted after a delay that doubles from `initial_backoff` up to `max_backoff`. After
/// `max_restarts` failures in a row it stays FAILED until it is restarted by hand or its file changes.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RestartPolicy {
    /// Default: 1s.
    #[serde(default = "default_initial_backoff", with = "humantime_serde")]
    pub(crate) initial_backoff: Duration,
    /// Default: 60s.
    #[serde(default = "default_max_backoff", with = "humantime_serde")]
    pub(crate) max_backoff: Duration,
    /// Default: 10. A run that lasted longer than `max_backoff` resets the count.
    #[serde(default = "default_max_restarts")]
    pub(crate) max_restarts: u32,
}

fn default_initial_backoff() -> Duration {
    Duration::from_secs(1)
}

fn default_max_backoff() -> Duration {
    Duration::from_secs(60)
}

fn default_max_restarts() -> u32 {
    10
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            initial_backoff: default_initial_backoff(),
            max_backoff: default_max_backoff(),
            max_restarts: default_max_restarts(),
        }
    }
}
