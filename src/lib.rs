//! `pop3`: a POP3 mail-fetching client.
//!
//! # Architecture
//!
//! - [`pop3`] is the protocol core (RFC 1939, 2449, 5034): command encoding, status lines and
//!   response codes, listings, multi-line decoding with byte-unstuffing, capabilities, and a
//!   typed client (`Client` in AUTHORIZATION, `Session` in TRANSACTION) over any `Read + Write`.
//!   It opens no sockets, reads no configuration and prints nothing.
//! - [`transport`] opens TCP connections and does TLS (rustls; system roots plus an optional
//!   CA file), for implicit TLS and the STLS upgrade, with timeouts.
//! - [`config`] reads the TOML file and the command-line layer into one resolved `Account`.
//! - [`connect`] is the one place where config, transport and protocol meet: it turns an
//!   `Account` into a logged-in `Session`, enforcing the security rules.
//! - [`commands`] holds one module per subcommand; [`cli`] is the clap syntax; [`exit`] maps
//!   errors to sysexits codes; [`ui`] formats for people; [`secret`] hides passwords.
//!
//! Dependencies point one way: `main -> commands -> connect -> {transport, pop3, config}`.
//! `pop3`, `transport` and `ui` import none of the others.

// The library serves the binary and its contributors, so its docs are built with
// `--document-private-items` (see .ci/run), where links to crate-private items resolve.
#![allow(rustdoc::private_intra_doc_links)]

pub mod cli;
pub mod commands;
pub mod config;
pub(crate) mod connect;
pub mod exit;
pub(crate) mod import;
pub mod message;
pub mod pop3;
pub(crate) mod proxy;
pub(crate) mod secret;
pub mod store;
pub(crate) mod transport;
pub mod ui;
