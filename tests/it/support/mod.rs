//! Test support: servers and helpers shared by the integration tests.

pub mod cli;
pub mod dovecot;
pub mod hostile;
pub mod pty;
pub mod scripted;
