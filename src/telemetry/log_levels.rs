//! The log filter, changed at run time through Kafka Connect's `/admin/loggers`. A logger is a target (`rdkafka`,
//! `ebconnect::connectors::sink`; Kafka Connect's dotted spelling `ebconnect.connectors.sink` is read alike), and
//! `root` is the default level. The filter is the one `RUST_LOG` set at start, with each change applied on top.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// Applies a filter, written as `RUST_LOG` is, to the running subscriber.
pub type ApplyFilter = Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// A logger's level, and when it was last changed through the API (milliseconds since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LoggerLevel {
    pub(crate) level: String,
    pub(crate) last_modified: Option<u128>,
}

#[derive(Clone)]
pub struct LogLevels {
    inner: Arc<Mutex<Filter>>,
    apply: ApplyFilter,
}

struct Filter {
    root: LoggerLevel,
    targets: BTreeMap<String, LoggerLevel>,
    /// Directives with span or field filters, kept as written and not shown as loggers.
    others: Vec<String>,
}

const LEVELS: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "OFF"];

impl LogLevels {
    /// `initial` is the filter in effect, e.g. `info,rdkafka=warn`.
    pub fn new(initial: &str, apply: ApplyFilter) -> Self {
        let mut filter = Filter {
            root: LoggerLevel {
                level: "ERROR".into(),
                last_modified: None,
            },
            targets: BTreeMap::new(),
            others: Vec::new(),
        };
        for directive in initial
            .split(',')
            .map(str::trim)
            .filter(|directive| !directive.is_empty())
        {
            match directive.split_once('=') {
                _ if directive.contains('[') || directive.contains('{') => filter.others.push(directive.to_owned()),
                Some((target, level)) => {
                    filter.targets.insert(
                        target.to_owned(),
                        LoggerLevel {
                            level: level.to_ascii_uppercase(),
                            last_modified: None,
                        },
                    );
                }
                None if LEVELS.contains(&directive.to_ascii_uppercase().as_str()) => {
                    filter.root.level = directive.to_ascii_uppercase();
                }
                // A bare target enables everything of it.
                None => {
                    filter.targets.insert(
                        directive.to_owned(),
                        LoggerLevel {
                            level: "TRACE".into(),
                            last_modified: None,
                        },
                    );
                }
            }
        }
        Self {
            inner: Arc::new(Mutex::new(filter)),
            apply,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Filter> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every logger with a level of its own, and `root`.
    pub(crate) fn all(&self) -> BTreeMap<String, LoggerLevel> {
        let filter = self.lock();
        let mut all = filter.targets.clone();
        all.insert("root".into(), filter.root.clone());
        all
    }

    /// The level in effect for a logger: its own, or that of the nearest parent with one, or root's.
    pub(crate) fn level(&self, logger: &str) -> LoggerLevel {
        let target = target(logger);
        let filter = self.lock();
        if target == "root" {
            return filter.root.clone();
        }
        filter
            .targets
            .iter()
            .filter(|(known, _)| target == **known || target.starts_with(&format!("{known}::")))
            .max_by_key(|(known, _)| known.len())
            .map_or_else(|| filter.root.clone(), |(_, level)| level.clone())
    }

    /// Sets a logger's level (Kafka Connect's names: TRACE, DEBUG, INFO, WARN, ERROR, FATAL, OFF); returns the
    /// loggers whose level changed: the logger and those beneath it, which take its level, as in Kafka Connect.
    pub(crate) fn set(&self, logger: &str, level: &str) -> Result<Vec<String>, String> {
        let level = match level.trim().to_ascii_uppercase().as_str() {
            "FATAL" => "ERROR".to_owned(),
            known if LEVELS.contains(&known) => known.to_owned(),
            other => {
                return Err(format!(
                    "level: `{other}` is not one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL, OFF"
                ))
            }
        };
        let target = target(logger);
        if target.is_empty() || target.contains([',', '=', '[', '{', ' ']) {
            return Err(format!("`{logger}` is not a logger name"));
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_millis());
        let changed = LoggerLevel {
            level,
            last_modified: Some(now),
        };
        let mut filter = self.lock();
        let mut affected = Vec::new();
        if target == "root" {
            filter.root = changed.clone();
            for (name, level) in filter.targets.iter_mut() {
                *level = changed.clone();
                affected.push(name.clone());
            }
            affected.push("root".into());
        } else {
            for (name, level) in filter.targets.iter_mut() {
                if name.starts_with(&format!("{target}::")) {
                    *level = changed.clone();
                    affected.push(name.clone());
                }
            }
            filter.targets.insert(target.clone(), changed);
            affected.push(target);
        }
        (self.apply)(&filter.directives())?;
        affected.sort();
        Ok(affected)
    }
}

impl Filter {
    fn directives(&self) -> String {
        std::iter::once(self.root.level.to_ascii_lowercase())
            .chain(
                self.targets
                    .iter()
                    .map(|(target, level)| format!("{target}={}", level.level.to_ascii_lowercase())),
            )
            .chain(self.others.iter().cloned())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A target from a logger name: Rust's `a::b`, or Kafka Connect's dotted `a.b`.
fn target(logger: &str) -> String {
    logger.trim().replace('.', "::")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn levels() -> (LogLevels, Arc<Mutex<Vec<String>>>) {
        let applied = Arc::new(Mutex::new(Vec::new()));
        let seen = applied.clone();
        let apply: ApplyFilter = Arc::new(move |filter: &str| {
            seen.lock().unwrap().push(filter.to_owned());
            Ok(())
        });
        (
            LogLevels::new("info,rdkafka=warn,ebconnect::sink=debug", apply),
            applied,
        )
    }

    #[test]
    fn a_logger_takes_its_nearest_level() {
        let (levels, _) = levels();
        assert_eq!(levels.level("rdkafka").level, "WARN");
        assert_eq!(levels.level("ebconnect.sink.batch").level, "DEBUG");
        assert_eq!(levels.level("hyper").level, "INFO");
        assert_eq!(levels.all().len(), 3);
    }

    #[test]
    fn setting_a_level_applies_the_whole_filter() {
        let (levels, applied) = levels();
        assert_eq!(
            levels.set("ebconnect", "trace").unwrap(),
            vec!["ebconnect", "ebconnect::sink"]
        );
        assert_eq!(
            applied.lock().unwrap().last().unwrap(),
            "info,ebconnect=trace,ebconnect::sink=trace,rdkafka=warn"
        );
        assert!(levels.set("ebconnect", "loud").unwrap_err().contains("not one of"));
        assert!(levels.level("ebconnect").last_modified.is_some());
    }
}
