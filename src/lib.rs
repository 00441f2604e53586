//! `pop3`: a POP3 mail-fetching client. The library exists for the `pop3` binary and its
//! tests; this note is the map.
//!
//! # Modules
//!
//! The protocol and its transport:
//! - [`pop3`] is the protocol core (RFC 1939, 2449, 5034): command encoding, status lines and
//!   response codes, listings, multi-line decoding with byte-unstuffing, capabilities, and a
//!   typed client (`Client` in AUTHORIZATION, `Session` in TRANSACTION, `quit` for UPDATE)
//!   over any `Read + Write`. It opens no sockets, reads no configuration and prints nothing.
//!   Only [`pop3::client`] does I/O; its folder splits it into the buffered connection, the
//!   AUTHORIZATION state (logins), the listings and pipelining.
//! - [`transport`] opens TCP connections and does TLS (rustls; system roots plus an optional
//!   CA file), for implicit TLS and the STLS upgrade, with timeouts; [`proxy`] tunnels the TCP
//!   connection through SOCKS5 first when asked.
//!
//! Settings and their meeting point:
//! - [`config`] reads the TOML file and the command-line layer into one resolved `Account`;
//!   [`secret`] holds passwords so that no `Debug` or `Display` can show them.
//! - [`connect`] is the one place where config, transport and protocol meet: it turns an
//!   `Account` into a logged-in `Session`, enforcing the security rules (no plaintext password
//!   without TLS unless allowed, no silent fallback). Its folder holds the steps of that flow:
//!   where the secret comes from, the TCP path (with the probe for an implicit-TLS port) and
//!   the login.
//!
//! What happens to mail:
//! - [`store`] is where `fetch-all` puts mail: Maildir, mbox, an MDA command (and LMTP/SMTP
//!   through [`store::smtp`]: a sans-I/O codec, and a pipelining driver split into the
//!   connection, one message's transaction and the window of messages in flight), the
//!   per-account state journal of delivered unique-ids, and the per-account lock.
//! - [`message`] is the only user of `mail-parser`: header summaries and readable bodies, every
//!   string made safe for a terminal.
//! - [`import`] reads mpop's, fetchmail's and getmail's setups into accounts and state.
//!
//! The program:
//! - [`cli`] is the clap syntax; [`commands`] resolves it once into a `Context` and holds one
//!   module per subcommand (`fetch`, `list`, `read`, `delete`, ...), plus `commands::shared`
//!   for helpers several use: `select` (message numbers, ranges and unique ids from the command
//!   line, resolved against one session's listings) and `top` (header blocks via `TOP n 0`).
//!   These are not subcommands.
//! - [`ui`] is everything that faces a person: sizes, counts and columns ([`ui::human_size`]),
//!   questions, the password prompt and terminal checks. stdout carries data only; prompts,
//!   progress, warnings and errors go to stderr.
//! - [`exit`] owns the exit codes (sysexits) and the one mapping from errors to them
//!   ([`exit::classify`]): the library returns typed errors (thiserror), `anyhow` is used only
//!   at the edge (`main.rs` and the commands' `run` functions), and `main.rs` prints one line.
//!
//! # Data flow of `fetch-all`
//!
//! The socket ([`transport`], maybe through [`proxy`]) carries the server's bytes to the
//! client in [`pop3::client`], which sends pipelined commands (LIST, UIDL, then RETR for the
//! messages the state journal has not seen) and feeds each reply to the multi-line decoder
//! ([`pop3::multiline`]): it removes byte-stuffing, finds the `.` terminator and hands the
//! message in chunks to a sink. The sink writes into a [`store`] target (Maildir, mbox, an MDA,
//! LMTP or SMTP), which makes the message durable (fsync, or the server's final 2xx) before the
//! unique-id is appended to the per-account state journal ([`store::state`]). Only a message that is both delivered
//! and recorded is marked with DELE (when deleting is asked for), and deletions become real
//! only at QUIT (RFC 1939 UPDATE state): a failure anywhere before that leaves the mail on the
//! server, so mail is fetched twice at worst, never lost.
//!
//! # Dependency rules
//!
//! Dependencies point one way: `main -> commands -> connect -> {transport, proxy, pop3,
//! config}`, and `commands -> {store, message, import, ui, exit}`. `pop3`, `transport`,
//! `message` and `secret` import nothing else of the crate; `ui` imports only `secret`;
//! `store` imports only `pop3` (message numbers, unique-ids), `transport` and `ui` (an MDA
//! command shown with shell quoting, as `connect` shows a password command); `import` builds
//! on `config` and `store` (and `ui`'s shell quoting for the commands it writes). Nothing below `commands` prints to stdout, and only `exit` maps
//! errors to exit codes.

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
mod signals;
pub mod store;
pub(crate) mod transport;
pub mod ui;
