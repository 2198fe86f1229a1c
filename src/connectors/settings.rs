//! Settings more than one connector type takes, written the same way in each.

use serde::{Deserialize, Serialize};

use crate::config::StringOrMap;
use crate::json_path::JsonPath;

/// Where a consumer group with no committed offset starts: `earliest` (default) or `latest`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum OffsetReset {
    #[default]
    Earliest,
    Latest,
}

impl OffsetReset {
    pub(crate) fn as_librdkafka(self) -> &'static str {
        match self {
            Self::Earliest => "earliest",
            Self::Latest => "latest",
        }
    }
}

/// How a connector that writes to Kafka what it reads from Kafka commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Processing {
    /// Output records and input offsets in one Kafka transaction: a `read_committed` consumer of the output sees
    /// each result once, across crashes and rebalances.
    ExactlyOnce,
    /// Offsets committed after the output is acknowledged: after a crash, some output may be written again.
    AtLeastOnce,
}

impl Processing {
    pub(crate) fn exactly_once() -> Self {
        Self::ExactlyOnce
    }

    pub(crate) fn at_least_once() -> Self {
        Self::AtLeastOnce
    }
}

/// Where a record's time comes from: the sink's event `time`, threshold-alert's `event_time`.
#[derive(Debug, Clone, Default)]
pub enum TimeConfig {
    #[default]
    RecordTimestamp,
    None,
    JsonPath(JsonPath),
}

/// As it is written (`record_timestamp`, `none`, `{json_path: ...}`), so that what the API shows can be sent back.
impl Serialize for TimeConfig {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Self::RecordTimestamp => serializer.serialize_str("record_timestamp"),
            Self::None => serializer.serialize_str("none"),
            Self::JsonPath(path) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("json_path", path)?;
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for TimeConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Path {
            json_path: JsonPath,
        }
        match StringOrMap::<Path>::deserialize(deserializer)? {
            StringOrMap::String(word) => match word.as_str() {
                "record_timestamp" => Ok(Self::RecordTimestamp),
                "none" => Ok(Self::None),
                other => Err(serde::de::Error::custom(format!(
                    "unknown time source `{other}`, expected `record_timestamp`, `none` or `{{json_path: ...}}`"
                ))),
            },
            StringOrMap::Map(Path { json_path }) => Ok(Self::JsonPath(json_path)),
        }
    }
}
