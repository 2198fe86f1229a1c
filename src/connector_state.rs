//! Kafka Connect's connector states, the words the status API, the supervisor and the metrics share, and its target
//! states; a leaf, so that telemetry can name them without importing the runtime.

use serde::{Deserialize, Serialize};

/// What the operator wants a connector to be doing: a new connector's `initial_state` (KIP-980), and in cluster mode
/// the target state in the config topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Target {
    Running,
    Paused,
    Stopped,
}

/// Kafka Connect's connector states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConnectorState {
    Unassigned,
    Running,
    Paused,
    Restarting,
    Failed,
    Stopped,
}

impl ConnectorState {
    pub(crate) const ALL: [ConnectorState; 6] = [
        Self::Unassigned,
        Self::Running,
        Self::Paused,
        Self::Restarting,
        Self::Failed,
        Self::Stopped,
    ];

    /// Where the operator would have it: running, or paused or stopped as asked. `GET /ready` and systemd's
    /// READY=1 wait for every connector to be in one of these.
    pub(crate) fn is_settled(self) -> bool {
        matches!(self, Self::Running | Self::Paused | Self::Stopped)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unassigned => "UNASSIGNED",
            Self::Running => "RUNNING",
            Self::Paused => "PAUSED",
            Self::Restarting => "RESTARTING",
            Self::Failed => "FAILED",
            Self::Stopped => "STOPPED",
        }
    }
}
