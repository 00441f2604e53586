//! Helpers several subcommands share; none of them is a subcommand itself.
//!
//! - [`select`] turns message names from the command line (`3`, `3-7`, `--uid ID`) into the
//!   messages of the current session.
//! - [`top`] fetches header blocks (`TOP n 0`, pipelined, with a `RETR` fallback).

pub mod select;
pub(crate) mod top;
