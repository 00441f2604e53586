//! The configuration: a TOML file of named accounts plus `[defaults]`, overlaid by command-line
//! settings, resolved once into an [`Account`] that the rest of the program uses.
//!
//! Precedence, highest first: command line, `[accounts.NAME]`, `[defaults]`, built-in defaults.
//! With `--host` and no `--account`, no account is read from the file at all, and of
//! `[defaults]` everything but the secrets: a password source or an OAuth token command must
//! never follow a user to another host.
//!
//! Relative paths follow one rule: on the command line they are relative to the current
//! directory (as every other program's), in the config file relative to the file's folder (so
//! they do not depend on where cron starts the program).
//!
//! The parts: [`settings`] is the file as written (every key optional, so layers overlay) and
//! its key list; [`size`] reads sizes such as `"50M"`; [`file`](mod@file) finds, reads and parses the
//! file; [`resolve`] picks the account and overlays the layers; [`account`] checks the result
//! into an [`Account`]; [`paths`] expands `~` and relative paths.

mod account;
mod explain;
mod file;
mod paths;
mod resolve;
mod settings;
mod size;

use std::path::PathBuf;

pub use crate::transport::TlsOptions;
pub use account::{
    Account, DEFAULT_FILTER_TIMEOUT_SECS, DeliveryTarget, PasswordSource, parse_fingerprint,
    port_in_host,
};
pub use file::{LoadedConfig, parse};
pub(crate) use file::{config_path, load};
pub(crate) use paths::{default_state_dir, expand_path};
pub use settings::{AuthMethod, ConfigFile, Settings, TlsMode, keys};
pub use size::ByteSize;

/// A configuration problem. Each says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// An explicitly named configuration file does not exist.
    #[error("config file {} does not exist", .0.display())]
    NotFound(PathBuf),
    /// The file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has an unknown key or a bad value.
    #[error("{}:{line}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line of the problem.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// `--account` or `default_account` names an account the file does not have.
    #[error("unknown account {name:?}{}", known_accounts(.known))]
    UnknownAccount {
        /// The requested name.
        name: String,
        /// The accounts the file has.
        known: Vec<String>,
    },
    /// Nothing says which server to use.
    #[error("no account to use: {0}")]
    NoAccount(String),
    /// A required key is missing.
    #[error("account {account:?} has no {key}: set {key} in the config file or pass --{key}")]
    Missing {
        /// The account.
        account: String,
        /// The missing key.
        key: &'static str,
    },
    /// More than one password source is configured for one account.
    #[error(
        "account {0:?} has more than one of password_command, password_env, password_file and password: keep one"
    )]
    ConflictingPasswordSources(String),
    /// A value is out of range.
    #[error("account {account:?}: {message}")]
    Invalid {
        /// The account.
        account: String,
        /// What is wrong.
        message: String,
    },
}

fn known_accounts(known: &[String]) -> String {
    if known.is_empty() {
        "; the config file defines no accounts".into()
    } else {
        format!("; configured accounts: {}", known.join(", "))
    }
}

#[cfg(test)]
/// A config file as if read from `/etc/pop3.toml`, for the tests of resolving.
pub(crate) fn loaded(text: &str) -> LoadedConfig {
    LoadedConfig {
        file: parse(text, std::path::Path::new("/etc/pop3.toml")).unwrap(),
        path: Some("/etc/pop3.toml".into()),
        warnings: Vec::new(),
    }
}
