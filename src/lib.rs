//! `pop3`: a POP3 mail-fetching client.
pub mod cli;
pub mod commands;
pub mod config;
pub mod connect;
pub mod exit;
pub mod pop3;
pub mod secret;
pub mod transport;
pub mod ui;
