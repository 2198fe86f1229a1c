//! The tests that need no running service (`make unit`): the module layers, the README against the code, Kafka
//! Connect's form, hostile inputs, event-ruler's recorded cases, and the alert rules against the metrics.

#[path = "../support/random.rs"]
mod random;

mod alert_rules;
mod flat_config;
mod hostile_input;
mod layers;
mod pattern_conformance;
mod readme;
mod systemd_unit;
