//! The resolved [`Account`]: every setting checked, every default applied, paths expanded.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{AuthMethod, ByteSize, ConfigError, Settings, TlsMode, TlsOptions};
use super::{default_state_dir, expand_path};
use crate::secret::Secret;

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

/// The host and port of `host:port` (or `[v6]:port`), which some programs accept as a host;
/// `None` for a plain name or address (a bare IPv6 address has several colons).
pub fn port_in_host(text: &str) -> Option<(&str, u16)> {
    let (host, port) = text.rsplit_once(':')?;
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.strip_suffix(']')?,
        None if host.contains(':') => return None,
        None => host,
    };
    let port = port.parse::<u16>().ok().filter(|p| *p > 0)?;
    Some((host, port)).filter(|(h, _)| !h.is_empty())
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

pub(super) fn build_account(
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
    if let Some((bare, port)) = port_in_host(&host) {
        return Err(ConfigError::Invalid {
            account: name,
            message: format!("host {host:?} holds a port: write host = {bare:?} and port = {port}"),
        });
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{loaded, parse};

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
    fn host_with_a_port_says_to_use_the_port_key() {
        let config = loaded("[accounts.a]\nhost = \"localhost:40737\"\nuser = \"u\"\n");
        let err = config.resolve(None, Settings::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "account \"a\": host \"localhost:40737\" holds a port: write host = \"localhost\" and port = 40737"
        );
        assert_eq!(port_in_host("[::1]:995"), Some(("::1", 995)));
        assert_eq!(port_in_host("::1"), None);
        assert_eq!(port_in_host("pop.example.com"), None);
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
    fn max_message_size_has_no_default_limit() {
        let config = loaded("[accounts.a]\nhost = \"h\"\nuser = \"u\"\n");
        let account = config.resolve(None, Settings::default()).unwrap();
        assert_eq!(account.max_message_size, None);
    }
}
