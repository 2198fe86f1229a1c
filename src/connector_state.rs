//! Kafka Connect's connector states, the words the status API, the supervisor and the metrics share; a leaf, so that
//! telemetry can name them without importing the runtime.

use serde::Serialize;

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
