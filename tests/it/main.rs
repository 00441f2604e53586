//! The one integration-test binary: the real `pop3` binary run end to end against a scripted
//! in-process POP3 server (for faults a real server will not produce) and a real Dovecot.

mod config_files;
mod config_tools;
mod delivery_lmtp;
mod delivery_smtp;
mod delivery_window;
mod docs_console;
mod docs_examples;
mod dovecot_cli;
mod dovecot_daemon;
mod dovecot_fetch;
mod dovecot_harness;
mod dovecot_import;
mod dovecot_kill_delivery;
mod dovecot_kill_lmtp;
mod dovecot_limits;
mod dovecot_messages;
mod dovecot_proxy;
mod dovecot_round_trips;
mod fetch_lmtp_smtp;
mod hostile_bounds;
mod hostile_fuzz;
mod proptest_parsers;
mod scripted_cli;
mod scripted_fetch_deletion;
mod scripted_fetch_delivery;
mod scripted_fetch_faults;
mod scripted_fetch_identity;
mod scripted_listings;
mod scripted_messages;
mod scripted_oauth;
mod scripted_quit;
mod scripted_round_trips;
mod scripted_selftest;
mod secrets_and_trust;
mod support;
