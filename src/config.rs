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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::secret::Secret;
pub use crate::transport::TlsOptions;

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// TLS from the first byte (port 995, RFC 8314). The default.
    Implicit,
    /// Plain connection upgraded with STLS (port 110, RFC 2595); fails if the server cannot.
    Starttls,
    /// No encryption at all. Passwords are refused unless `allow_plaintext_password`.
    None,
}

impl std::fmt::Display for TlsMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TlsMode::Implicit => "implicit",
            TlsMode::Starttls => "starttls",
            TlsMode::None => "none",
        })
    }
}

impl TlsMode {
    /// The port used when none is configured.
    pub(crate) fn default_port(self) -> u16 {
        match self {
            TlsMode::Implicit => 995,
            TlsMode::Starttls | TlsMode::None => 110,
        }
    }
}

/// How to log in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    /// The best mechanism the server offers: SASL PLAIN, then USER/PASS. Never APOP.
    Auto,
    /// `USER` and `PASS`.
    User,
    /// SASL PLAIN (RFC 4616, RFC 5034).
    Plain,
    /// `APOP`: an MD5 digest instead of the password (only when asked for).
    Apop,
    /// SASL XOAUTH2 (Gmail, Microsoft 365) with a token from `oauth_token_command`.
    Xoauth2,
    /// SASL OAUTHBEARER (RFC 7628) with a token from `oauth_token_command`.
    Oauthbearer,
}

/// One account's settings as written in the file (or given on the command line); every key
/// is optional so that layers can be overlaid.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Server host name or address.
    pub host: Option<String>,
    /// Server port.
    pub port: Option<u16>,
    /// Mailbox user name.
    pub user: Option<String>,
    /// Connection security.
    pub tls: Option<TlsMode>,
    /// Extra CA certificates (PEM) to trust.
    pub ca_file: Option<PathBuf>,
    /// Login mechanism.
    pub auth: Option<AuthMethod>,
    /// A command whose first line of output is the password.
    pub password_command: Option<Vec<String>>,
    /// An environment variable holding the password.
    pub password_env: Option<String>,
    /// A file whose first line is the password.
    pub password_file: Option<PathBuf>,
    /// The password itself (the file should then be private); never shown, not even in errors.
    pub password: Option<Secret>,
    /// Allow sending the password over an unencrypted connection.
    pub allow_plaintext_password: Option<bool>,
    /// A command whose first line of output is a fresh OAuth2 access token.
    pub oauth_token_command: Option<Vec<String>>,
    /// Accept the server only if its certificate has this SHA-256 fingerprint (hex).
    pub tls_fingerprint: Option<String>,
    /// The oldest TLS version to accept: "1.2" (default) or "1.3".
    pub tls_min_version: Option<String>,
    /// A client certificate (PEM) to present.
    pub tls_client_cert: Option<PathBuf>,
    /// The private key (PEM) of `tls_client_cert`.
    pub tls_client_key: Option<PathBuf>,
    /// The name to check the server's certificate against, when it differs from `host`.
    pub tls_server_name: Option<String>,
    /// Seconds allowed for connecting and for every read and write.
    pub timeout: Option<u64>,
    /// Connect through this SOCKS5 proxy: `socks5://host:port`, or `socks5h://host:port` to
    /// let the proxy resolve the server's name.
    pub proxy: Option<String>,
    /// `fetch-all` delivers into this Maildir (the default target, `~/Maildir`).
    pub maildir: Option<PathBuf>,
    /// `fetch-all` appends to this mbox file instead.
    pub mbox: Option<PathBuf>,
    /// `fetch-all` pipes each message to this command instead (exit 0 = delivered).
    pub mda: Option<Vec<String>>,
    /// `fetch-all` hands each message to this LMTP server instead: `unix:/path` or `host:port`.
    pub lmtp: Option<String>,
    /// `fetch-all` hands each message to this SMTP server instead: `host[:port]`, or `true`
    /// for `localhost:25`.
    pub smtp: Option<crate::store::smtp::settings::SmtpKey>,
    /// The envelope recipient for `lmtp`/`smtp` (default: the local user).
    pub recipient: Option<String>,
    /// Delete messages the LMTP/SMTP server refuses permanently instead of leaving them.
    pub delete_rejected: Option<bool>,
    /// Delete messages from the server once they are safely delivered.
    pub delete: Option<bool>,
    /// Delete messages once they have been on the server this many days (0 = keep forever).
    pub keep_days: Option<u32>,
    /// Leave bigger messages on the server ("50M", "200K", or octets; 0 or unset = no limit).
    pub max_message_size: Option<ByteSize>,
    /// `fetch-all` downloads at most this many messages per run, oldest first; the rest wait
    /// for the next run (0 or unset = no limit).
    pub max_messages: Option<u32>,
    /// Delete messages bigger than this from the server without downloading them (mpop's
    /// `killsize`). Never set by default.
    pub delete_larger_than: Option<ByteSize>,
    /// Asked about each new message before it is downloaded, its header block on stdin: exit 0
    /// delivers it, 1 deletes it without downloading, 2 leaves it on the server for good.
    pub filter_command: Option<Vec<String>>,
    /// Seconds `filter_command` may take for one message (default 30).
    pub filter_timeout: Option<u64>,
    /// Run once after a `fetch-all` run that delivered at least one message.
    pub on_new_mail: Option<Vec<String>>,
    /// Where the per-account state (which messages were downloaded) lives.
    pub state_dir: Option<PathBuf>,
    /// Prepend a `Received:` header naming the server to each fetched message.
    pub add_received_header: Option<bool>,
}

/// A size in octets, written as a number or as a string with a K, M or G suffix (powers of 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parses `"50M"`, `"200K"`, `"1G"` or `"123"`.
    pub fn parse(text: &str) -> Option<ByteSize> {
        let text = text.trim();
        let (digits, factor) = match text.char_indices().last()? {
            (i, 'k' | 'K') => (&text[..i], 1u64 << 10),
            (i, 'm' | 'M') => (&text[..i], 1 << 20),
            (i, 'g' | 'G') => (&text[..i], 1 << 30),
            _ => (text, 1),
        };
        digits
            .trim()
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(factor))
            .map(ByteSize)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Number(n) => Ok(ByteSize(n)),
            Raw::Text(text) => ByteSize::parse(&text).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "invalid size {text:?}: write it like \"50M\", \"200K\" or a number of octets"
                ))
            }),
        }
    }
}

impl Settings {
    /// `self` with every key that `over` sets replaced. Password sources form one group: a layer
    /// naming any source replaces all sources of the layers beneath it.
    pub(crate) fn overlay(self, over: Settings) -> Settings {
        let over_has_password = over.has_password_source();
        let over_has_target = over.has_target();
        let (command, env, file, password) = if over_has_password {
            (
                over.password_command,
                over.password_env,
                over.password_file,
                over.password,
            )
        } else {
            (
                self.password_command,
                self.password_env,
                self.password_file,
                self.password,
            )
        };
        Settings {
            host: over.host.or(self.host),
            port: over.port.or(self.port),
            user: over.user.or(self.user),
            tls: over.tls.or(self.tls),
            ca_file: over.ca_file.or(self.ca_file),
            auth: over.auth.or(self.auth),
            password_command: command,
            password_env: env,
            password_file: file,
            password,
            allow_plaintext_password: over
                .allow_plaintext_password
                .or(self.allow_plaintext_password),
            oauth_token_command: over.oauth_token_command.or(self.oauth_token_command),
            tls_fingerprint: over.tls_fingerprint.or(self.tls_fingerprint),
            tls_min_version: over.tls_min_version.or(self.tls_min_version),
            tls_client_cert: over.tls_client_cert.or(self.tls_client_cert),
            tls_client_key: over.tls_client_key.or(self.tls_client_key),
            tls_server_name: over.tls_server_name.or(self.tls_server_name),
            timeout: over.timeout.or(self.timeout),
            proxy: over.proxy.or(self.proxy),
            // The delivery target is one choice: a layer naming any target replaces the others.
            maildir: if over_has_target {
                over.maildir
            } else {
                self.maildir
            },
            mbox: if over_has_target {
                over.mbox
            } else {
                self.mbox
            },
            mda: if over_has_target { over.mda } else { self.mda },
            lmtp: if over_has_target {
                over.lmtp
            } else {
                self.lmtp
            },
            smtp: if over_has_target {
                over.smtp
            } else {
                self.smtp
            },
            recipient: over.recipient.or(self.recipient),
            delete_rejected: over.delete_rejected.or(self.delete_rejected),
            delete: over.delete.or(self.delete),
            keep_days: over.keep_days.or(self.keep_days),
            max_message_size: over.max_message_size.or(self.max_message_size),
            max_messages: over.max_messages.or(self.max_messages),
            delete_larger_than: over.delete_larger_than.or(self.delete_larger_than),
            filter_command: over.filter_command.or(self.filter_command),
            filter_timeout: over.filter_timeout.or(self.filter_timeout),
            on_new_mail: over.on_new_mail.or(self.on_new_mail),
            state_dir: over.state_dir.or(self.state_dir),
            add_received_header: over.add_received_header.or(self.add_received_header),
        }
    }

    fn has_target(&self) -> bool {
        self.maildir.is_some()
            || self.mbox.is_some()
            || self.mda.is_some()
            || self.lmtp.is_some()
            || self.smtp.is_some()
    }

    /// `self` without any password source or OAuth token command (nor an OAuth `auth`, which
    /// would need one): what `[defaults]` may lend to a host given on the command line.
    fn without_secrets(self) -> Settings {
        let auth = self
            .auth
            .filter(|a| !matches!(a, AuthMethod::Xoauth2 | AuthMethod::Oauthbearer));
        Settings {
            password_command: None,
            password_env: None,
            password_file: None,
            password: None,
            oauth_token_command: None,
            auth,
            ..self
        }
    }

    fn has_password_source(&self) -> bool {
        self.password_command.is_some()
            || self.password_env.is_some()
            || self.password_file.is_some()
            || self.password.is_some()
    }
}

/// The file as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The account used when `--account` is not given.
    pub default_account: Option<String>,
    /// Settings every account inherits.
    #[serde(default)]
    pub defaults: Settings,
    /// The named accounts.
    #[serde(default)]
    pub accounts: BTreeMap<String, Settings>,
}

/// Where the password comes from.
#[derive(Debug, Clone)]
pub enum PasswordSource {
    /// Run this command; its first line of output is the password.
    Command(Vec<String>),
    /// Read this environment variable.
    Env(String),
    /// Read the first line of this file.
    File(PathBuf),
    /// Given in the configuration file.
    Inline(Secret),
    /// Ask on the terminal.
    Prompt,
}

/// Built-in default for `timeout`.
pub(crate) const DEFAULT_TIMEOUT_SECS: u64 = 60;

/// A fully resolved account: everything needed to connect and log in.
#[derive(Debug, Clone)]
pub struct Account {
    /// The account's name in the file, or `command-line`.
    pub name: String,
    /// Server host.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// Mailbox user.
    pub user: String,
    /// Connection security.
    pub tls: TlsMode,
    /// Extra trusted CA certificates.
    pub ca_file: Option<PathBuf>,
    /// Login mechanism.
    pub auth: AuthMethod,
    /// Where the password comes from.
    pub password: PasswordSource,
    /// Whether a password may cross an unencrypted connection.
    pub allow_plaintext_password: bool,
    /// The OAuth2 token command, when OAuth is used.
    pub oauth_token_command: Option<Vec<String>>,
    /// TLS details beyond the mode.
    pub tls_options: TlsOptions,
    /// For connecting and for every read and write.
    pub timeout: Duration,
    /// The SOCKS5 proxy to connect through, if any.
    pub proxy: Option<crate::proxy::Proxy>,
    /// Where `fetch-all` delivers.
    pub target: DeliveryTarget,
    /// Delete from the server after delivery.
    pub delete: bool,
    /// Delete from the server after this many days (0 = never).
    pub keep_days: u32,
    /// Leave messages bigger than this on the server (`None` = no limit).
    pub max_message_size: Option<u64>,
    /// Download at most this many messages per run (`None` = no limit).
    pub max_messages: Option<usize>,
    /// Delete messages bigger than this without downloading them (`None` = never).
    pub delete_larger_than: Option<u64>,
    /// The filter asked about each new message before download, if any.
    pub filter_command: Option<Vec<String>>,
    /// How long the filter may take for one message.
    pub filter_timeout: Duration,
    /// The command run after a run that delivered messages, if any.
    pub on_new_mail: Option<Vec<String>>,
    /// Directory of the per-account state files.
    pub state_dir: PathBuf,
    /// Prepend a `Received:` header to each fetched message.
    pub add_received_header: bool,
}

/// Parses a SHA-256 fingerprint written as hex, with or without colons, optionally prefixed
/// by `sha256:` (as `login-check` prints it).
pub fn parse_fingerprint(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    let text = text
        .strip_prefix("sha256:")
        .or_else(|| text.strip_prefix("SHA256:"))
        .unwrap_or(text);
    let hex: String = text.chars().filter(|c| *c != ':').collect();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Where `fetch-all` puts messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryTarget {
    /// A Maildir (created when missing).
    Maildir(PathBuf),
    /// An mbox file (mboxrd quoting).
    Mbox(PathBuf),
    /// A command that reads one message on stdin.
    Mda(Vec<String>),
    /// An LMTP or SMTP server (`lmtp`, `smtp`), with the envelope recipient.
    Server(crate::store::smtp::settings::DeliverySettings),
}

/// The platform's state directory for pop3 (`~/.local/state/pop3` on Linux).
pub(crate) fn default_state_dir() -> PathBuf {
    dirs::state_dir()
        .or_else(dirs::data_local_dir)
        .unwrap_or_else(|| PathBuf::from("."))
        .join("pop3")
}

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

/// The file to read: `--config`, else `POP3_CONFIG` (clap folds both into `explicit`), else the
/// platform default. Returns the path and whether it was asked for explicitly.
pub(crate) fn config_path(explicit: Option<&Path>) -> Option<(PathBuf, bool)> {
    match explicit {
        Some(path) => Some((path.to_owned(), true)),
        None => dirs::config_dir().map(|dir| (dir.join("pop3").join("config.toml"), false)),
    }
}

/// A loaded configuration file and where it came from.
#[derive(Debug, Clone, Default)]
pub struct LoadedConfig {
    /// The parsed file (empty when there is none).
    pub file: ConfigFile,
    /// The file's path, when one was read.
    pub path: Option<PathBuf>,
    /// Things the user should know, e.g. a password in a file others can read.
    pub warnings: Vec<String>,
}

/// Reads the configuration file. A missing default file is not an error (everything can come
/// from the command line); a missing explicit one is.
pub(crate) fn load(explicit: Option<&Path>) -> Result<LoadedConfig, ConfigError> {
    let Some((path, is_explicit)) = config_path(explicit) else {
        return Ok(LoadedConfig::default());
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !is_explicit => {
            return Ok(LoadedConfig::default());
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ConfigError::NotFound(path));
        }
        Err(source) => return Err(ConfigError::Read { path, source }),
    };
    let file = parse(&text, &path)?;
    let mut warnings = Vec::new();
    let has_inline_password =
        file.defaults.password.is_some() || file.accounts.values().any(|a| a.password.is_some());
    if has_inline_password && readable_by_others(&path) {
        warnings.push(format!(
            "{} holds a password and is readable by other users; run: chmod 600 {}",
            path.display(),
            path.display()
        ));
    }
    Ok(LoadedConfig {
        file,
        path: Some(path),
        warnings,
    })
}

/// Parses configuration text; errors name the file, the line and the key.
pub fn parse(text: &str, path: &Path) -> Result<ConfigFile, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let start = e.span().map_or(0, |span| span.start.min(text.len()));
        let line = text[..start].matches('\n').count() + 1;
        let line_text = text.lines().nth(line - 1).unwrap_or("");
        // Whatever the parser says about a `password` line may quote the password itself.
        let message = if assigns_secret(line_text) {
            "the value of password is not valid: write it as a string in quotes, e.g. password = \"...\" (value not shown)".to_owned()
        } else {
            e.message().trim().replace("field", "key")
        };
        ConfigError::Parse {
            path: path.to_owned(),
            line,
            message,
        }
    })
}

/// Keys whose values are never shown, not even in an error.
const SECRET_KEYS: &[&str] = &["password"];

/// Whether a line of TOML assigns a secret key (`password = ...`, also quoted, dotted or
/// inside an inline table).
fn assigns_secret(line: &str) -> bool {
    SECRET_KEYS.iter().any(|key| {
        line.match_indices(key).any(|(at, _)| {
            let before = line[..at].chars().next_back();
            let after = line[at + key.len()..].trim_start_matches(['"', '\'', ' ', '\t']);
            !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-')
                && after.starts_with('=')
        })
    })
}

/// Whether group or others may read `path`.
pub(crate) fn readable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o044 != 0)
}

impl LoadedConfig {
    /// Resolves the account to use: `account` (from `-a`), else the command line alone when it
    /// names a host, else `default_account`, else the only account in the file.
    pub fn resolve(
        &self,
        account: Option<&str>,
        command_line: Settings,
    ) -> Result<Account, ConfigError> {
        let file = &self.file;
        let known = || file.accounts.keys().cloned().collect::<Vec<_>>();
        let no_file = || match config_path(None) {
            Some((path, _)) => format!("there is no config file at {}", path.display()),
            None => "there is no config file".into(),
        };
        let name = match account {
            Some(name) => Some(name.to_owned()),
            None if command_line.host.is_some() => None,
            None => match (&file.default_account, file.accounts.len()) {
                (Some(name), _) => Some(name.clone()),
                (None, 1) => file.accounts.keys().next().cloned(),
                (None, 0) => {
                    let hint = match &self.path {
                        Some(path) => format!("{} defines no accounts", path.display()),
                        None => no_file(),
                    };
                    return Err(ConfigError::NoAccount(format!(
                        "{hint}; create one (see config.example.toml) or pass --host and --user"
                    )));
                }
                (None, _) => {
                    return Err(ConfigError::NoAccount(format!(
                        "several accounts are configured ({}) and no default_account is set; pass -a NAME",
                        known().join(", ")
                    )));
                }
            },
        };
        let account_settings = match &name {
            Some(name) => file.accounts.get(name).cloned().ok_or_else(|| {
                match &self.path {
                    Some(_) => ConfigError::UnknownAccount {
                        name: name.clone(),
                        known: known(),
                    },
                    None => ConfigError::NoAccount(format!(
                        "account {name:?} needs a config file, but {}; create one (see config.example.toml) or pass --config",
                        no_file()
                    )),
                }
            })?,
            None => Settings::default(),
        };
        // A host from the command line is not one the file's secrets were written for.
        let defaults = if name.is_none() {
            file.defaults.clone().without_secrets()
        } else {
            file.defaults.clone()
        };
        let settings = defaults.overlay(account_settings).overlay(command_line);
        let name = name.unwrap_or_else(|| "command-line".into());
        let base_dir = self.path.as_deref().and_then(Path::parent);
        build_account(name, settings, base_dir)
    }
}

/// The `lmtp`/`smtp` target with its `recipient` and `delete_rejected`, checked by the
/// settings parser (`store::smtp::settings`); `None` when neither key is set.
fn delivery_server(
    name: &str,
    lmtp: Option<&str>,
    smtp: Option<&crate::store::smtp::settings::SmtpKey>,
    recipient: Option<&str>,
    delete_rejected: Option<bool>,
) -> Result<Option<crate::store::smtp::settings::DeliverySettings>, ConfigError> {
    crate::store::smtp::settings::parse(
        lmtp,
        smtp,
        recipient,
        delete_rejected,
        crate::store::smtp::local_user,
    )
    .map_err(|e| ConfigError::Invalid {
        account: name.to_owned(),
        message: e.0,
    })
}

fn build_account(
    name: String,
    settings: Settings,
    base_dir: Option<&Path>,
) -> Result<Account, ConfigError> {
    let missing = |key| ConfigError::Missing {
        account: name.clone(),
        key,
    };
    let host = settings
        .host
        .filter(|h| !h.is_empty())
        .ok_or_else(|| missing("host"))?;
    let user = settings
        .user
        .filter(|u| !u.is_empty())
        .ok_or_else(|| missing("user"))?;
    let tls = settings.tls.unwrap_or(TlsMode::Implicit);
    let port = settings.port.unwrap_or(tls.default_port());
    if port == 0 {
        return Err(ConfigError::Invalid {
            account: name,
            message: "port must be between 1 and 65535".into(),
        });
    }
    let timeout = settings.timeout.unwrap_or(DEFAULT_TIMEOUT_SECS);
    if timeout == 0 {
        return Err(ConfigError::Invalid {
            account: name,
            message: "timeout must be at least 1 second".into(),
        });
    }
    let sources = [
        settings.password_command.is_some(),
        settings.password_env.is_some(),
        settings.password_file.is_some(),
        settings.password.is_some(),
    ];
    if sources.iter().filter(|s| **s).count() > 1 {
        return Err(ConfigError::ConflictingPasswordSources(name));
    }
    let password = if let Some(command) = settings.password_command {
        if command.is_empty() || command[0].is_empty() {
            return Err(ConfigError::Invalid {
                account: name,
                message:
                    "password_command must name a program, e.g. [\"pass\", \"show\", \"mail\"]"
                        .into(),
            });
        }
        PasswordSource::Command(command)
    } else if let Some(var) = settings.password_env {
        // Take it out of the environment now, before any thread or child process starts.
        let _ = crate::secret::from_env(&var);
        PasswordSource::Env(var)
    } else if let Some(file) = settings.password_file {
        PasswordSource::File(expand_path(&file, base_dir))
    } else if let Some(password) = settings.password {
        PasswordSource::Inline(password)
    } else {
        PasswordSource::Prompt
    };
    let server = delivery_server(
        &name,
        settings.lmtp.as_deref(),
        settings.smtp.as_ref(),
        settings.recipient.as_deref(),
        settings.delete_rejected,
    )?;
    let targets = [
        settings.maildir.is_some(),
        settings.mbox.is_some(),
        settings.mda.is_some(),
        server.is_some(),
    ];
    if targets.iter().filter(|t| **t).count() > 1 {
        return Err(ConfigError::Invalid {
            account: name,
            message: "set only one of maildir, mbox, mda, lmtp and smtp".into(),
        });
    }
    let target = if let Some(server) = server {
        DeliveryTarget::Server(server)
    } else if let Some(mbox) = settings.mbox {
        DeliveryTarget::Mbox(expand_path(&mbox, base_dir))
    } else if let Some(mda) = settings.mda {
        if mda.is_empty() || mda[0].is_empty() {
            return Err(ConfigError::Invalid {
                account: name,
                message: "mda must name a program, e.g. [\"procmail\", \"-d\", \"alice\"]".into(),
            });
        }
        DeliveryTarget::Mda(mda)
    } else {
        let maildir = settings
            .maildir
            .unwrap_or_else(|| PathBuf::from("~/Maildir"));
        DeliveryTarget::Maildir(expand_path(&maildir, base_dir))
    };
    let invalid = |message: &str| ConfigError::Invalid {
        account: name.clone(),
        message: message.to_owned(),
    };
    let fingerprint = match &settings.tls_fingerprint {
        Some(text) => Some(parse_fingerprint(text).ok_or_else(|| {
            invalid("tls_fingerprint must be a SHA-256 fingerprint: 64 hex digits, colons allowed (login-check prints it)")
        })?),
        None => None,
    };
    let tls13_only = match settings.tls_min_version.as_deref() {
        None | Some("1.2") => false,
        Some("1.3") => true,
        Some(_) => return Err(invalid("tls_min_version must be \"1.2\" or \"1.3\"")),
    };
    let client_cert = match (settings.tls_client_cert, settings.tls_client_key) {
        (Some(cert), Some(key)) => {
            Some((expand_path(&cert, base_dir), expand_path(&key, base_dir)))
        }
        (None, None) => None,
        _ => {
            return Err(invalid(
                "tls_client_cert and tls_client_key go together: set both",
            ));
        }
    };
    let auth = settings.auth.unwrap_or(AuthMethod::Auto);
    if matches!(auth, AuthMethod::Xoauth2 | AuthMethod::Oauthbearer)
        && settings.oauth_token_command.is_none()
    {
        return Err(invalid(
            "auth = \"xoauth2\" and \"oauthbearer\" need oauth_token_command",
        ));
    }
    if settings
        .oauth_token_command
        .as_ref()
        .is_some_and(|c| c.is_empty() || c[0].is_empty())
    {
        return Err(invalid("oauth_token_command must name a program"));
    }
    let proxy = match &settings.proxy {
        Some(url) => Some(
            url.parse()
                .map_err(|e: crate::proxy::ProxyUrlError| invalid(&e.to_string()))?,
        ),
        None => None,
    };
    // No default limit: memory stays bounded whatever the size (messages are streamed), and a
    // limit nobody chose would leave mail on the server silently.
    let max_message_size = match settings.max_message_size {
        Some(ByteSize(0)) | None => None,
        Some(ByteSize(n)) => Some(n),
    };
    let limits = limits(
        (settings.max_messages, settings.delete_larger_than),
        (settings.filter_command, settings.filter_timeout),
        settings.on_new_mail,
        &invalid,
    )?;
    Ok(Account {
        target,
        delete: settings.delete.unwrap_or(false),
        keep_days: settings.keep_days.unwrap_or(0),
        max_message_size,
        max_messages: limits.max_messages,
        delete_larger_than: limits.delete_larger_than,
        filter_command: limits.filter_command,
        filter_timeout: limits.filter_timeout,
        on_new_mail: limits.on_new_mail,
        add_received_header: settings.add_received_header.unwrap_or(false),
        state_dir: settings
            .state_dir
            .map(|p| expand_path(&p, base_dir))
            .unwrap_or_else(default_state_dir),
        name,
        host,
        port,
        user,
        tls,
        ca_file: settings.ca_file.map(|p| expand_path(&p, base_dir)),
        auth,
        oauth_token_command: settings.oauth_token_command,
        tls_options: TlsOptions {
            fingerprint,
            tls13_only,
            client_cert,
            server_name: settings.tls_server_name,
        },
        password,
        allow_plaintext_password: settings.allow_plaintext_password.unwrap_or(false),
        timeout: Duration::from_secs(timeout),
        proxy,
    })
}

/// Built-in default for `filter_timeout`, in seconds.
pub const DEFAULT_FILTER_TIMEOUT_SECS: u64 = 30;

/// The `fetch-all` limits, filter and hook of an account, checked.
struct Limits {
    max_messages: Option<usize>,
    delete_larger_than: Option<u64>,
    filter_command: Option<Vec<String>>,
    filter_timeout: Duration,
    on_new_mail: Option<Vec<String>>,
}

fn limits(
    (max_messages, delete_larger_than): (Option<u32>, Option<ByteSize>),
    (filter_command, filter_timeout): (Option<Vec<String>>, Option<u64>),
    on_new_mail: Option<Vec<String>>,
    invalid: &dyn Fn(&str) -> ConfigError,
) -> Result<Limits, ConfigError> {
    let delete_larger_than = match delete_larger_than {
        None => None,
        // Deleting every message unread is never what a size limit means.
        Some(ByteSize(0)) => {
            return Err(invalid(
                "delete_larger_than must be more than 0 (0 would delete every message unread)",
            ));
        }
        Some(ByteSize(n)) => Some(n),
    };
    let command = |key: &str, argv: Option<Vec<String>>| match argv {
        Some(argv) if argv.is_empty() || argv[0].is_empty() => Err(invalid(&format!(
            "{key} must name a program, e.g. [\"notmuch\", \"new\"]"
        ))),
        other => Ok(other),
    };
    let filter_timeout = filter_timeout.unwrap_or(DEFAULT_FILTER_TIMEOUT_SECS);
    if filter_timeout == 0 {
        return Err(invalid("filter_timeout must be at least 1 second"));
    }
    Ok(Limits {
        max_messages: max_messages.filter(|&n| n > 0).map(|n| n as usize),
        delete_larger_than,
        filter_command: command("filter_command", filter_command)?,
        filter_timeout: Duration::from_secs(filter_timeout),
        on_new_mail: command("on_new_mail", on_new_mail)?,
    })
}

/// Expands a leading `~/` to the home directory; a relative path is taken relative to the
/// directory of the config file (so it does not depend on where cron starts the program).
pub(crate) fn expand_path(path: &Path, base_dir: Option<&Path>) -> PathBuf {
    if let Ok(rest) = path.strip_prefix("~")
        && let Some(home) = dirs::home_dir()
    {
        return home.join(rest);
    }
    match base_dir {
        Some(base) if path.is_relative() => base.join(path),
        _ => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(text: &str) -> LoadedConfig {
        LoadedConfig {
            file: parse(text, Path::new("/etc/pop3.toml")).unwrap(),
            path: Some("/etc/pop3.toml".into()),
            warnings: Vec::new(),
        }
    }

    const TWO_ACCOUNTS: &str = r#"
default_account = "work"

[defaults]
timeout = 30
password_env = "DEFAULT_PW"

[accounts.work]
host = "pop.example.com"
user = "alice"
password_command = ["pass", "show", "work"]

[accounts.home]
host = "mail.example.org"
port = 1110
user = "al"
tls = "starttls"
ca_file = "certs/ca.pem"
auth = "plain"
"#;

    #[test]
    fn resolves_default_and_named_accounts() {
        let config = loaded(TWO_ACCOUNTS);
        let work = config.resolve(None, Settings::default()).unwrap();
        assert_eq!(work.name, "work");
        assert_eq!((work.host.as_str(), work.port), ("pop.example.com", 995));
        assert_eq!(work.timeout, Duration::from_secs(30));
        assert!(matches!(work.password, PasswordSource::Command(ref c) if c[0] == "pass"));

        let home = config.resolve(Some("home"), Settings::default()).unwrap();
        assert_eq!(home.port, 1110);
        assert_eq!(home.tls, TlsMode::Starttls);
        assert_eq!(home.auth, AuthMethod::Plain);
        assert_eq!(home.ca_file.unwrap(), Path::new("/etc/certs/ca.pem"));
        assert!(matches!(home.password, PasswordSource::Env(ref v) if v == "DEFAULT_PW"));
    }

    #[test]
    fn command_line_overrides_the_file() {
        let config = loaded(TWO_ACCOUNTS);
        let cli = Settings {
            user: Some("bob".into()),
            timeout: Some(5),
            ..Settings::default()
        };
        let account = config.resolve(Some("work"), cli).unwrap();
        assert_eq!(account.user, "bob");
        assert_eq!(account.timeout, Duration::from_secs(5));
    }

    #[test]
    fn host_on_the_command_line_ignores_the_accounts() {
        let config = loaded(TWO_ACCOUNTS);
        let cli = Settings {
            host: Some("other.example".into()),
            user: Some("eve".into()),
            tls: Some(TlsMode::None),
            ..Settings::default()
        };
        let account = config.resolve(None, cli).unwrap();
        assert_eq!(account.name, "command-line");
        assert_eq!(account.port, 110);
        // Neither the work account's password command nor the password source of [defaults]
        // may follow the user to another host: pop3 asks instead.
        assert!(matches!(account.password, PasswordSource::Prompt));
        assert_eq!(
            account.timeout,
            Duration::from_secs(30),
            "other defaults apply"
        );
    }

    #[test]
    fn unknown_keys_name_the_line_and_key() {
        let text = "[accounts.work]\nhost = \"x\"\nhots = \"y\"\n";
        let err = parse(text, Path::new("/c.toml")).unwrap_err().to_string();
        assert!(err.starts_with("/c.toml:3: unknown key `hots`"), "{err}");
        let err = parse("bogus = 1\n", Path::new("/c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/c.toml:1") && err.contains("bogus"), "{err}");
        let err = parse("[accounts.a]\ntls = \"maybe\"\n", Path::new("/c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(":2:") && err.contains("maybe"), "{err}");
    }

    #[test]
    fn clear_errors_for_missing_and_unknown_accounts() {
        let config = loaded(TWO_ACCOUNTS);
        let err = config
            .resolve(Some("nope"), Settings::default())
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "unknown account \"nope\"; configured accounts: home, work"
        );
        let empty = LoadedConfig::default();
        let err = empty
            .resolve(Some("work"), Settings::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("account \"work\" needs a config file") && err.contains("--config"),
            "{err}"
        );
        let err = empty.resolve(None, Settings::default()).unwrap_err();
        assert!(err.to_string().contains("pass --host and --user"), "{err}");
        let err = empty
            .resolve(
                None,
                Settings {
                    host: Some("h".into()),
                    ..Settings::default()
                },
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "account \"command-line\" has no user: set user in the config file or pass --user"
        );
    }

    #[test]
    fn delivery_settings() {
        let config = loaded(
            "[defaults]\nmaildir = \"mail\"\nmax_message_size = \"10M\"\n\
             [accounts.a]\nhost = \"h\"\nuser = \"u\"\nmbox = \"~/inbox\"\ndelete = true\n\
             [accounts.b]\nhost = \"h\"\nuser = \"u\"\nkeep_days = 7\nmax_message_size = 0\n",
        );
        let a = config.resolve(Some("a"), Settings::default()).unwrap();
        assert!(matches!(a.target, DeliveryTarget::Mbox(ref p) if p.ends_with("inbox")));
        assert!(a.delete);
        assert_eq!(a.max_message_size, Some(10 << 20));
        let b = config.resolve(Some("b"), Settings::default()).unwrap();
        assert_eq!(b.target, DeliveryTarget::Maildir("/etc/mail".into()));
        assert_eq!(
            (b.delete, b.keep_days, b.max_message_size),
            (false, 7, None)
        );
        assert_eq!(ByteSize::parse("200K"), Some(ByteSize(200 << 10)));
        assert_eq!(ByteSize::parse("12"), Some(ByteSize(12)));
        assert_eq!(ByteSize::parse("lots"), None);
        let err = parse("[defaults]\nmax_message_size = \"big\"\n", Path::new("/c"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/c:2") && err.contains("invalid size"),
            "{err}"
        );
        let both =
            loaded("[accounts.a]\nhost = \"h\"\nuser = \"u\"\nmbox = \"x\"\nmda = [\"y\"]\n");
        assert!(both.resolve(None, Settings::default()).is_err());
    }

    #[test]
    fn one_password_source_per_account() {
        let config = loaded(
            "[accounts.a]\nhost = \"h\"\nuser = \"u\"\npassword = \"x\"\npassword_env = \"Y\"\n",
        );
        assert!(matches!(
            config.resolve(None, Settings::default()),
            Err(ConfigError::ConflictingPasswordSources(_))
        ));
    }

    #[test]
    fn a_config_error_never_echoes_the_password() {
        for (text, secret) in [
            ("[accounts.a]\npassword = 8675309\n", "8675309"),
            ("[defaults]\npassword = true\n", "true"),
            ("[defaults]\npassword = 3.14159\n", "3.14159"),
            ("[defaults]\n\"password\" = [\"s3cr3t\"]\n", "s3cr3t"),
            ("[defaults]\npassword = { x = \"s3cr3t\" }\n", "s3cr3t"),
            ("accounts.a.password = 8675309\n", "8675309"),
            (
                "[accounts]\na = { host = \"h\", password = 8675309 }\n",
                "8675309",
            ),
            ("[defaults]\npassword = s3cr3t\n", "s3cr3t"),
            ("[defaults]\npassword = \"s3cr3t\n", "s3cr3t"),
        ] {
            let err = parse(text, Path::new("/c.toml")).unwrap_err().to_string();
            assert!(!err.contains(secret), "{text:?} gave {err}");
            assert!(err.contains("password"), "{text:?} gave {err}");
        }
        // Other keys still say what is wrong.
        let err = parse("[defaults]\nport = \"x\"\n", Path::new("/c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid type"), "{err}");
    }

    #[test]
    fn the_password_is_a_secret_from_the_moment_it_is_read() {
        let file = parse("[defaults]\npassword = \"hunter2\"\n", Path::new("/c")).unwrap();
        assert!(!format!("{file:?}").contains("hunter2"));
        assert_eq!(file.defaults.password.unwrap().expose(), "hunter2");
    }

    #[test]
    fn defaults_secrets_do_not_follow_host_to_another_server() {
        for source in [
            "password_command = [\"pass\", \"mail\"]",
            "password_env = \"PW\"",
            "password_file = \"pw.txt\"",
            "password = \"hunter2\"",
        ] {
            let config = loaded(&format!(
                "[defaults]\n{source}\noauth_token_command = [\"tok\"]\nauth = \"xoauth2\"\n\
                 [accounts.a]\nhost = \"h\"\nuser = \"u\"\n"
            ));
            let cli = Settings {
                host: Some("other.example".into()),
                user: Some("eve".into()),
                ..Settings::default()
            };
            let account = config.resolve(None, cli.clone()).unwrap();
            assert!(
                matches!(account.password, PasswordSource::Prompt),
                "{source}"
            );
            assert_eq!(account.oauth_token_command, None);
            assert_eq!(account.auth, AuthMethod::Auto);
            // With -a the account (and its defaults) is meant, whatever the host.
            let named = config.resolve(Some("a"), cli).unwrap();
            assert!(
                !matches!(named.password, PasswordSource::Prompt),
                "{source}"
            );
            assert!(named.oauth_token_command.is_some());
        }
    }

    #[test]
    fn max_message_size_has_no_default_limit() {
        let config = loaded("[accounts.a]\nhost = \"h\"\nuser = \"u\"\n");
        let account = config.resolve(None, Settings::default()).unwrap();
        assert_eq!(account.max_message_size, None);
    }

    #[test]
    fn several_accounts_without_default_need_a_choice() {
        let config = loaded(
            "[accounts.a]\nhost = \"h\"\nuser = \"u\"\n[accounts.b]\nhost = \"h\"\nuser = \"u\"\n",
        );
        let err = config.resolve(None, Settings::default()).unwrap_err();
        assert!(err.to_string().contains("pass -a NAME"), "{err}");
    }
}
