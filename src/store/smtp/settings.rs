//! The delivery keys of an account: `lmtp`, `smtp`, `recipient` and `delete_rejected`, parsed
//! into a [`DeliverySettings`]. Standalone, so that the config loader only has to pass the raw
//! values on.
//!
//! - `lmtp = "unix:/run/dovecot/lmtp"` or `lmtp = "host:port"` (LMTP has no standard port,
//!   RFC 2033 §5, so the port is required).
//! - `smtp = "host:port"` or `smtp = "host"` (port 25), or `smtp = true` for `localhost:25`,
//!   fetchmail's classic path into the local MTA. `smtp = false` is the same as leaving it out.
//! - `recipient = "alice"`: the envelope recipient; default the local user running `pop3`.
//! - `delete_rejected = true`: delete from the POP3 server a message the delivery server
//!   refuses permanently (5xx) instead of leaving it there.

use std::fmt;
use std::path::PathBuf;

use super::codec::check_address;

/// Which protocol the delivery server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// RFC 2033.
    Lmtp,
    /// RFC 5321.
    Smtp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Lmtp => "LMTP",
            Protocol::Smtp => "SMTP",
        })
    }
}

/// Where the delivery server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A TCP host name or address and port.
    Tcp {
        /// Name or address (IPv6 without brackets).
        host: String,
        /// Port.
        port: u16,
    },
    /// A Unix domain socket.
    Unix(PathBuf),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Endpoint::Tcp { host, port } => write!(f, "{host}:{port}"),
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// A delivery server: protocol and endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// LMTP or SMTP.
    pub protocol: Protocol,
    /// Where.
    pub endpoint: Endpoint,
}

/// The value of the `smtp` key: a string, or `true` for `localhost:25`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(untagged)]
pub enum SmtpKey {
    /// `smtp = true` / `false`.
    Enabled(bool),
    /// `smtp = "host:port"`.
    Address(String),
}

/// Resolved delivery settings of an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverySettings {
    /// The server.
    pub target: Target,
    /// The envelope recipient.
    pub recipient: String,
    /// Delete messages the server refuses permanently.
    pub delete_rejected: bool,
}

/// A wrong delivery setting; the message names the key and what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SettingError(pub String);

/// The port of `smtp = "host"`.
pub const SMTP_PORT: u16 = 25;

/// Resolves the raw keys. `Ok(None)` when neither `lmtp` nor `smtp` is set (and then
/// `recipient` and `delete_rejected` must not be either). `local_user` supplies the default
/// recipient (see [`super::local_user`]).
pub fn parse(
    lmtp: Option<&str>,
    smtp: Option<&SmtpKey>,
    recipient: Option<&str>,
    delete_rejected: Option<bool>,
    local_user: impl FnOnce() -> Option<String>,
) -> Result<Option<DeliverySettings>, SettingError> {
    let smtp = match smtp {
        None | Some(SmtpKey::Enabled(false)) => None,
        Some(SmtpKey::Enabled(true)) => Some(Endpoint::Tcp {
            host: "localhost".into(),
            port: SMTP_PORT,
        }),
        Some(SmtpKey::Address(text)) => Some(parse_endpoint("smtp", text, Some(SMTP_PORT))?),
    };
    let target = match (lmtp, smtp) {
        (Some(_), Some(_)) => {
            return Err(SettingError("set only one of lmtp and smtp".into()));
        }
        (Some(text), None) => Target {
            protocol: Protocol::Lmtp,
            endpoint: parse_endpoint("lmtp", text, None)?,
        },
        (None, Some(endpoint)) => Target {
            protocol: Protocol::Smtp,
            endpoint,
        },
        (None, None) => {
            if recipient.is_some() || delete_rejected.is_some() {
                return Err(SettingError(
                    "recipient and delete_rejected need lmtp or smtp".into(),
                ));
            }
            return Ok(None);
        }
    };
    let recipient = match recipient {
        Some(r) => r.to_owned(),
        None => local_user().ok_or_else(|| {
            SettingError("cannot tell the local user name; set recipient = \"NAME\"".into())
        })?,
    };
    check_address(&recipient)
        .map_err(|why| SettingError(format!("recipient {recipient:?} is not usable: {why}")))?;
    Ok(Some(DeliverySettings {
        target,
        recipient,
        delete_rejected: delete_rejected.unwrap_or(false),
    }))
}

/// `unix:/path`, `host:port`, `[v6]:port`, or (with a default port) `host` / `[v6]`.
pub fn parse_endpoint(
    key: &str,
    text: &str,
    default_port: Option<u16>,
) -> Result<Endpoint, SettingError> {
    let text = text.trim();
    if let Some(path) = text.strip_prefix("unix:") {
        if !path.starts_with('/') {
            return Err(SettingError(format!(
                "{key} = \"unix:{path}\": the socket path must be absolute, e.g. \"unix:/run/dovecot/lmtp\""
            )));
        }
        return Ok(Endpoint::Unix(PathBuf::from(path)));
    }
    let example = match default_port {
        Some(_) => "\"localhost:25\"",
        None => "\"unix:/run/dovecot/lmtp\" or \"localhost:24\"",
    };
    let bad = |why: &str| SettingError(format!("{key} = {text:?}: {why}; e.g. {key} = {example}"));
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => return Err(bad("unexpected text after ']'")),
        }
    } else {
        match text.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => {
                return Err(bad("write an IPv6 address in brackets, [::1]:port"));
            }
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err(bad("not a host name or address"));
    }
    let port = match (port, default_port) {
        (Some(port), _) => match port.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => return Err(bad("the port must be a number from 1 to 65535")),
        },
        (None, Some(default)) => default,
        (None, None) => return Err(bad("the port is missing (LMTP has no standard port)")),
    };
    Ok(Endpoint::Tcp {
        host: host.to_owned(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Option<String> {
        Some("alice".into())
    }

    fn tcp(host: &str, port: u16) -> Endpoint {
        Endpoint::Tcp {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn endpoints() {
        let ok = |key, text, default| parse_endpoint(key, text, default).unwrap();
        assert_eq!(
            ok("lmtp", "unix:/run/dovecot/lmtp", None),
            Endpoint::Unix("/run/dovecot/lmtp".into())
        );
        assert_eq!(ok("lmtp", "localhost:24", None), tcp("localhost", 24));
        assert_eq!(ok("smtp", "mx.example", Some(25)), tcp("mx.example", 25));
        assert_eq!(ok("smtp", "[::1]:2525", Some(25)), tcp("::1", 2525));
        assert_eq!(ok("smtp", "[::1]", Some(25)), tcp("::1", 25));
        assert_eq!(tcp("::1", 24).to_string(), "[::1]:24");
        for (text, default) in [
            ("localhost", None),
            ("unix:relative", None),
            ("host:0", Some(25)),
            ("host:99999", Some(25)),
            ("host:x", Some(25)),
            ("::1:25", Some(25)),
            ("[::1", Some(25)),
            (":25", Some(25)),
            ("a b:25", Some(25)),
        ] {
            let err = parse_endpoint("lmtp", text, default).unwrap_err();
            assert!(err.0.starts_with("lmtp = "), "{text}: {err}");
        }
    }

    #[test]
    fn smtp_true_means_localhost_25_and_recipient_defaults_to_the_local_user() {
        let settings = parse(None, Some(&SmtpKey::Enabled(true)), None, None, alice)
            .unwrap()
            .unwrap();
        assert_eq!(
            settings,
            DeliverySettings {
                target: Target {
                    protocol: Protocol::Smtp,
                    endpoint: tcp("localhost", 25),
                },
                recipient: "alice".into(),
                delete_rejected: false,
            }
        );
        assert_eq!(
            parse(None, Some(&SmtpKey::Enabled(false)), None, None, alice),
            Ok(None)
        );
        assert_eq!(parse(None, None, None, None, alice), Ok(None));
    }

    #[test]
    fn conflicting_or_orphan_keys_are_errors() {
        let smtp = SmtpKey::Address("localhost".into());
        assert!(parse(Some("unix:/x"), Some(&smtp), None, None, alice).is_err());
        assert!(parse(None, None, Some("bob"), None, alice).is_err());
        assert!(parse(None, None, None, Some(true), alice).is_err());
        assert!(parse(Some("unix:/x"), None, None, None, || None).is_err());
        assert!(parse(Some("unix:/x"), None, Some("a>b"), None, alice).is_err());
        let lmtp = parse(Some("unix:/x"), None, Some("bob"), Some(true), alice)
            .unwrap()
            .unwrap();
        assert_eq!(lmtp.recipient, "bob");
        assert!(lmtp.delete_rejected);
        assert_eq!(lmtp.target.protocol, Protocol::Lmtp);
    }

    #[test]
    fn toml_values_deserialize() {
        #[derive(serde::Deserialize)]
        struct Keys {
            smtp: SmtpKey,
        }
        let keys: Keys = toml::from_str("smtp = true").unwrap();
        assert_eq!(keys.smtp, SmtpKey::Enabled(true));
        let keys: Keys = toml::from_str("smtp = \"mx:2525\"").unwrap();
        assert_eq!(keys.smtp, SmtpKey::Address("mx:2525".into()));
    }
}
