//! Test support: servers and helpers shared by the integration tests.

pub mod dovecot;
pub mod scripted;
pub mod cli;
