//! The file as written: [`Settings`] for `[defaults]` and each `[accounts.NAME]`, every key
//! optional so that layers (defaults, account, command line) can be overlaid, and [`keys`], the
//! list of every key, taken from serde so that the man page and the tests cannot drift from it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::ByteSize;
use crate::secret::Secret;

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
    pub(super) fn without_secrets(self) -> Settings {
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

/// Every key of an account (and of `[defaults]`), in the order `Settings` declares them: the
/// names serde accepts, so a new field appears here (and in the man page) by itself.
pub fn keys() -> &'static [&'static str] {
    static KEYS: std::sync::OnceLock<&'static [&'static str]> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let mut fields = FieldNames(None);
        // The derived `Deserialize` hands its field names to `deserialize_struct`, which stops
        // there; the error is expected.
        let _ = Settings::deserialize(&mut fields);
        fields.0.unwrap_or_default()
    })
}

/// A deserializer that records the field names a struct asks for, and reads nothing.
struct FieldNames(Option<&'static [&'static str]>);

impl<'de> serde::Deserializer<'de> for &mut FieldNames {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom("field names only"))
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0 = Some(fields);
        Err(serde::de::Error::custom("field names only"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_fields_serde_accepts() {
        let keys = keys();
        assert_eq!(keys.first(), Some(&"host"), "{keys:?}");
        assert_eq!(keys.last(), Some(&"add_received_header"), "{keys:?}");
        for key in [
            "max_messages",
            "delete_larger_than",
            "filter_command",
            "proxy",
            "lmtp",
        ] {
            assert!(keys.contains(&key), "{key} missing from {keys:?}");
        }
        // Each key is accepted in an account, and nothing else is.
        for key in keys {
            let text = format!("[accounts.a]\n{key} = 1\n");
            if let Err(e) = super::super::parse(&text, std::path::Path::new("/c")) {
                assert!(!e.to_string().contains("unknown key"), "{key}: {e}");
            }
        }
        let err = super::super::parse("[accounts.a]\nhots = 1\n", std::path::Path::new("/c"));
        assert!(err.unwrap_err().to_string().contains("unknown key"));
    }
}
