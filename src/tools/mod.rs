//! The operator's commands besides `run`: `preview` shows what a connector makes of real records, `test` checks a
//! connector against the outcomes its test file expects. Both run the connector's own record path
//! (`connectors::preview`) and have no effect outside, but `preview --send`.

pub mod config_test;
pub mod preview;
