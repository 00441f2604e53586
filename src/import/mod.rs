//! `pop3 import`: read the config of mpop, fetchmail or getmail and its record of messages
//! already fetched, and turn them into `[accounts.NAME]` TOML and entries in pop3's state.
//!
//! Each tool module ([`mpop`], [`fetchmail`], [`getmail`]) parses its tool's files into
//! [`ImportedAccount`]s: the settings pop3 understands, a note for every setting it does not (a
//! setting is never dropped silently), and the unique-ids the tool already fetched. This module
//! renders the TOML and records the unique-ids; it opens no connection and runs none of the
//! commands it finds in the files.

pub mod fetchmail;
pub mod getmail;
pub mod mpop;

use std::path::{Path, PathBuf};

use crate::pop3::Uid;
use crate::store::lock::{AccountLock, LockError};
use crate::store::state::{State, StateError};

/// The tool whose setup is imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Tool {
    /// mpop (`~/.mpoprc`, UIDLs in `~/.mpop_uidls/`)
    Mpop,
    /// fetchmail (`~/.fetchmailrc`, UIDs in `~/.fetchids`)
    Fetchmail,
    /// getmail 6 (`~/.config/getmail/` or `~/.getmail/`: `getmailrc` and `oldmail-*`)
    Getmail,
}

impl std::fmt::Display for Tool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Tool::Mpop => "mpop",
            Tool::Fetchmail => "fetchmail",
            Tool::Getmail => "getmail",
        })
    }
}

/// Importing failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// No config file was named and none is at the tool's default places.
    #[error("no {tool} config found (looked for {}); name the file: pop3 import {tool} FILE", list(.looked))]
    NoConfig {
        /// The tool.
        tool: Tool,
        /// Where it looked.
        looked: Vec<PathBuf>,
    },
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A file is not in the tool's format.
    #[error("{}:{line}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The pop3 state could not be updated.
    #[error(transparent)]
    State(#[from] StateError),
    /// The account's lock could not be taken.
    #[error(transparent)]
    Lock(#[from] LockError),
}

fn list(paths: &[PathBuf]) -> String {
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    names.join(", ")
}

/// One line of an imported account.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// A pop3 key and its value.
    Set(&'static str, toml::Value),
    /// A comment: a setting without an equivalent, or something the user should check.
    Note(String),
}

/// An account read from another tool.
#[derive(Debug, Clone, Default)]
pub struct ImportedAccount {
    /// The name for `[accounts.NAME]`.
    pub name: String,
    /// Server host, as the tool wrote it (its state is keyed by it).
    pub host: String,
    /// Mailbox user.
    pub user: String,
    /// The settings, in order.
    pub lines: Vec<Line>,
    /// Unique-ids the tool already fetched, with when it first saw each (when it recorded that).
    pub seen: Vec<(Uid, Option<u64>)>,
    /// Where `seen` came from.
    pub seen_from: Option<PathBuf>,
    /// The password is written in the config in clear.
    pub plaintext_password: bool,
    /// Things to say on stderr about this account: a setting imported that may not work as
    /// the tool's did (the comment under the account says more).
    pub warnings: Vec<String>,
}

impl ImportedAccount {
    /// An account named `name` for `user` at `host`, its first lines setting both (`user` only
    /// when the tool named one: pop3 then says it is missing, rather than `user = ""`).
    fn new(name: &str, host: &str, user: &str) -> ImportedAccount {
        let mut account = ImportedAccount {
            name: name.to_owned(),
            host: host.to_owned(),
            user: user.to_owned(),
            ..ImportedAccount::default()
        };
        account.set("host", host);
        if !user.is_empty() {
            account.set("user", user);
        }
        account
    }

    fn set(&mut self, key: &'static str, value: impl Into<toml::Value>) {
        self.lines.push(Line::Set(key, value.into()));
    }

    fn note(&mut self, text: impl Into<String>) {
        self.lines.push(Line::Note(text.into()));
    }

    fn warn(&mut self, text: impl Into<String>) {
        self.warnings.push(text.into());
    }

    /// The port set, if any.
    fn port(&self) -> Option<i64> {
        self.lines.iter().find_map(|line| match line {
            Line::Set("port", toml::Value::Integer(port)) => Some(*port),
            _ => None,
        })
    }

    /// The value set for `key`, if any.
    #[cfg(test)]
    pub fn get(&self, key: &str) -> Option<&toml::Value> {
        self.lines.iter().find_map(|line| match line {
            Line::Set(k, v) if *k == key => Some(v),
            _ => None,
        })
    }

    /// The `[accounts.NAME]` table as TOML, notes as comments.
    pub fn to_toml(&self) -> String {
        let mut out = format!("[accounts.{}]\n", toml_key(&self.name));
        for line in &self.lines {
            match line {
                Line::Set(key, value) => out.push_str(&format!("{key} = {value}\n")),
                Line::Note(text) => {
                    for part in text.lines() {
                        out.push_str(&format!("# {part}\n"));
                    }
                }
            }
        }
        out
    }
}

/// What was read from one tool.
#[derive(Debug, Clone, Default)]
pub struct Imported {
    /// The config files read.
    pub sources: Vec<PathBuf>,
    /// The accounts found.
    pub accounts: Vec<ImportedAccount>,
    /// Things to report: state entries of unknown accounts, accounts that cannot be imported.
    pub warnings: Vec<String>,
    /// The account the tool uses when none is named (mpop's account `default`), for pop3's
    /// `default_account`.
    pub default_account: Option<String>,
}

impl Imported {
    /// All accounts as TOML, for printing or appending to the config file, after
    /// `default_account` when one is given (a top-level key must come before any table).
    pub fn to_toml(
        &self,
        tool: Tool,
        accounts: &[&ImportedAccount],
        default_account: Option<&str>,
    ) -> String {
        let mut out = format!(
            "# Imported from {} ({tool}) by pop3 import\n",
            list(&self.sources)
        );
        if let Some(name) = default_account {
            out.push_str(&format!("\n{}\n", default_account_line(name)));
        }
        for account in accounts {
            out.push('\n');
            out.push_str(&account.to_toml());
        }
        out
    }
}

impl Imported {
    /// Drops every account that is the same mailbox (host, port, user) as an earlier one: both
    /// would share one state file and one lock, so the second could never fetch while the first
    /// does, and `--all-accounts` would fetch the mailbox twice. The account kept says so in a
    /// comment, and a warning names the one dropped. Returns the pairs (dropped, kept).
    fn drop_same_mailboxes(&mut self, tool: Tool) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        let mut kept: Vec<ImportedAccount> = Vec::new();
        for account in std::mem::take(&mut self.accounts) {
            let twin = kept.iter_mut().find(|k| {
                k.host.eq_ignore_ascii_case(&account.host)
                    && k.user == account.user
                    && k.port() == account.port()
            });
            match twin {
                Some(twin) => {
                    let mailbox = format!(
                        "{}@{} port {}",
                        account.user,
                        account.host,
                        account.port().unwrap_or_default()
                    );
                    twin.note(format!(
                        "{tool} account {} is the same mailbox ({mailbox}): not imported, pop3 keeps one account per mailbox",
                        account.name
                    ));
                    self.warnings.push(format!(
                        "{tool} account {} is the same mailbox as {} ({mailbox}): not imported",
                        account.name, twin.name
                    ));
                    let known: std::collections::HashSet<Uid> =
                        twin.seen.iter().map(|(uid, _)| uid.clone()).collect();
                    twin.seen.extend(
                        account
                            .seen
                            .into_iter()
                            .filter(|(uid, _)| !known.contains(uid)),
                    );
                    pairs.push((account.name, twin.name.clone()));
                }
                None => kept.push(account),
            }
        }
        self.accounts = kept;
        pairs
    }
}

/// The `default_account` line for `name`.
pub fn default_account_line(name: &str) -> String {
    format!("default_account = {}", toml::Value::String(name.to_owned()))
}

/// `name` as a TOML key: bare when it can be, quoted otherwise.
pub fn toml_key(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if bare {
        name.to_owned()
    } else {
        toml::Value::String(name.to_owned()).to_string()
    }
}

/// A list of strings as a TOML value (a command line).
fn argv<S: AsRef<str>>(words: &[S]) -> toml::Value {
    toml::Value::Array(
        words
            .iter()
            .map(|w| toml::Value::String(w.as_ref().to_owned()))
            .collect(),
    )
}

/// A shell command line as an argv that runs it the same way the tool did (through `sh -c`).
fn shell(command: &str) -> toml::Value {
    argv(&["sh", "-c", command])
}

/// A `password_command` that reads the password for `host` from `~/.netrc`.
fn netrc_command(host: &str) -> toml::Value {
    argv(&[
        "python3",
        "-c",
        "import netrc, sys; print(netrc.netrc().authenticators(sys.argv[1])[2])",
        host,
    ])
}

/// Whether `~/.netrc` has an entry for `host` (a `machine` line naming it).
fn netrc_has(host: &str) -> bool {
    let Some(home) = dirs::home_dir() else {
        return false;
    };
    let Ok(text) = std::fs::read_to_string(home.join(".netrc")) else {
        return false;
    };
    let mut words = text.split_whitespace();
    while let Some(word) = words.next() {
        if word == "machine" && words.next() == Some(host) {
            return true;
        }
    }
    false
}

/// `~/rest`, or `$XDG_CONFIG_HOME/rest`-style paths: the home directory joined with `rest`.
fn home(rest: &str) -> PathBuf {
    dirs::home_dir().unwrap_or_default().join(rest)
}

/// Expands a leading `~` as the tools do.
fn expand(path: &str) -> PathBuf {
    crate::config::expand_path(Path::new(path), None)
}

fn read(path: &Path) -> Result<Vec<u8>, ImportError> {
    std::fs::read(path).map_err(|source| ImportError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The first existing path of `candidates`, or the error naming them all.
fn first_existing(tool: Tool, candidates: Vec<PathBuf>) -> Result<PathBuf, ImportError> {
    candidates
        .iter()
        .find(|p| p.exists())
        .cloned()
        .ok_or(ImportError::NoConfig {
            tool,
            looked: candidates,
        })
}

/// Reads `tool`'s config (`files`, or its default places) and its record of fetched messages.
pub fn read_tool(tool: Tool, files: &[PathBuf]) -> Result<Imported, ImportError> {
    let mut imported = match tool {
        Tool::Mpop => mpop::import(files.first().map(PathBuf::as_path))?,
        Tool::Fetchmail => fetchmail::import(files.first().map(PathBuf::as_path))?,
        Tool::Getmail => getmail::import(files)?,
    };
    let pairs = imported.drop_same_mailboxes(tool);
    if tool == Tool::Mpop {
        imported.default_account = mpop::default_account(&imported, &pairs);
    }
    Ok(imported)
}

/// Records `seen` as delivered in the state file at `state_path`, under the account lock beside
/// it (as `fetch-all` takes it). Unique-ids already recorded are left alone, so importing twice
/// changes nothing. State files older versions named for `mailbox` (host, user) are adopted
/// first, as `fetch-all` does. Returns how many were new.
pub fn record_seen(
    state_path: &Path,
    lock_path: &Path,
    mailbox: (&str, &str),
    seen: &[(Uid, Option<u64>)],
    now: u64,
) -> Result<usize, ImportError> {
    let _lock = AccountLock::acquire(lock_path, false)?;
    let (host, user) = mailbox;
    crate::store::adopt::adopt(state_path, host, user, false).map_err(|error| match error {
        crate::store::adopt::AdoptError::Lock(cause) => ImportError::from(cause),
        crate::store::adopt::AdoptError::State(cause) => ImportError::from(cause),
    })?;
    let mut state = State::open(state_path)?;
    // Grouped by first-seen time, so `keep_days` counts from when the old tool got the message
    // (getmail records it; the others don't, and their messages count from now).
    let mut groups: std::collections::BTreeMap<u64, Vec<Uid>> = Default::default();
    let mut fresh = std::collections::HashSet::new();
    for (uid, when) in seen {
        if !state.is_delivered(uid) && fresh.insert(uid.clone()) {
            groups
                .entry(when.unwrap_or(now).min(now))
                .or_default()
                .push(uid.clone());
        }
    }
    for (when, uids) in &groups {
        state.record_delivered(uids, *when)?;
    }
    state.compact(|_| true)?;
    Ok(fresh.len())
}

/// Parses a unique-id read from a tool's file; `None` for text no POP3 server can send.
fn uid(text: &str) -> Option<Uid> {
    Uid::new(text.trim())
}

/// The password lines for an account whose tool reads a keyring: `secret-tool` with the
/// attributes the tool stores, or `~/.netrc` when it has the host.
fn keyring_or_netrc(
    account: &mut ImportedAccount,
    tool: Tool,
    attributes: &[&str],
    netrc_too: bool,
) {
    if netrc_too && netrc_has(&account.host) {
        let host = account.host.clone();
        netrc_password(account, tool, &host);
    } else {
        let mut words = vec!["secret-tool", "lookup"];
        words.extend_from_slice(attributes);
        account.set("password_command", argv(&words));
        account.note(format!(
            "{tool} had no password setting: it asks the keyring{}; this reads the GNOME keyring (libsecret), change it for another keyring",
            if netrc_too { " or ~/.netrc" } else { "" }
        ));
    }
}

/// The password line for an account whose tool read `~/.netrc`: a command reading it there.
fn netrc_password(account: &mut ImportedAccount, tool: Tool, host: &str) {
    account.set("password_command", netrc_command(host));
    account.note(format!(
        "{tool} read the password from ~/.netrc; this command reads it from there too"
    ));
}

/// The bytes of `path`, `None` when it does not exist (a tool that never fetched has no record).
fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, ImportError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ImportError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

fn plaintext(account: &mut ImportedAccount, tool: Tool, password: &str) {
    account.set("password", password);
    account.plaintext_password = true;
    account.note(format!(
        "the password was written in clear in the {tool} config: consider password_command (e.g. [\"pass\", \"show\", \"mail\"]) and chmod 600 this file"
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_quoted_only_when_needed() {
        assert_eq!(toml_key("work"), "work");
        assert_eq!(toml_key("a.b"), "\"a.b\"");
        assert_eq!(toml_key("alice@example.com"), "\"alice@example.com\"");
    }

    #[test]
    fn importing_twice_records_nothing_new() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let lock = dir.path().join("state.lock");
        let seen = vec![
            (Uid::new("a").unwrap(), Some(100)),
            (Uid::new("b").unwrap(), None),
            (Uid::new("a").unwrap(), Some(100)),
        ];
        assert_eq!(
            record_seen(&state, &lock, ("h", "u"), &seen, 500).unwrap(),
            2
        );
        assert_eq!(
            record_seen(&state, &lock, ("h", "u"), &seen, 600).unwrap(),
            0
        );
        let text = std::fs::read_to_string(&state).unwrap();
        assert_eq!(text, "pop3-state 1\n+ a 100\n+ b 500\n");
    }
}
