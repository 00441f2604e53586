//! Test support: servers and helpers shared by the integration tests.

pub mod cli;
pub mod dovecot;
pub mod fetch;
pub mod hostile;
pub mod kill_campaign;
pub mod postfix;
pub mod pty;
pub mod scripted;
