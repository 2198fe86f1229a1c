//! The integration tests, one module per area, in one binary so that it links once: each talks to the real
//! services of `scripts/stack` (`make test` starts them). `tests/msk_iam.rs` stays a binary of its own: it rewrites
//! the process's AWS environment.

#[path = "../support/random.rs"]
mod random;
#[path = "../support/mod.rs"]
mod support;

mod alert_rules;
mod avro;
mod aws_secrets;
mod cluster;
mod config;
mod connect_clients;
mod connect_migration;
mod operations;
mod pattern_differential;
mod preview;
mod process;
mod processor;
mod receiver;
mod registry_auth;
mod rest;
mod schema_formats;
mod sink;
mod source;
mod stack;
mod threshold;
mod tls;
mod transport;
