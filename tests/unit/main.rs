//! The tests that need no running service (`make unit`): the module layers, the README against the code, Kafka
//! Connect's form, hostile inputs, event-ruler's recorded cases, the alert rules against the metrics, and `ebconnect
//! test` on connectors that need no service.

#[path = "../support/random.rs"]
mod random;

mod alert_rules;
mod config_tests;
mod flat_config;
mod hostile_input;
mod layers;
mod pattern_conformance;
mod readme;
mod symbol_order;
mod systemd_unit;
