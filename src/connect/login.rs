//! The login: which mechanism (USER/PASS, SASL PLAIN, APOP, XOAUTH2, OAUTHBEARER) the account
//! and the server's capabilities allow, whether the secret may cross this connection at all,
//! and the one login attempt with its payload. Separate from the connection flow because this
//! is where the secret is encoded and sent, and where a mechanism's quirks are kept.

use std::io::{Read, Write};

use base64::Engine;
use zeroize::Zeroizing;

use super::{ConnectError, uses_oauth};
use crate::config::{Account, AuthMethod, TlsMode};
use crate::pop3::client::Greeting;
use crate::pop3::{self, Capabilities, Client, Command, Session};

/// Refuses, before anything is asked or sent, a login that would put the password on an
/// unencrypted connection. APOP counts too: its digest over a server-chosen timestamp can be
/// brute-forced offline by anyone who sees it.
pub fn check_plaintext_policy(account: &Account) -> Result<(), ConnectError> {
    if account.tls == TlsMode::None && !account.allow_plaintext_password {
        return Err(plaintext_refused(account));
    }
    Ok(())
}

fn plaintext_refused(account: &Account) -> ConnectError {
    let what = if uses_oauth(account) {
        "the OAuth token"
    } else if account.auth == AuthMethod::Apop {
        "an APOP digest of the password (it can be cracked offline)"
    } else {
        "the password"
    };
    ConnectError::PlaintextRefused {
        what,
        user: account.user.clone(),
        host: account.host.clone(),
    }
}

/// Base64 of the concatenated `parts` (a SASL payload, which holds the secret), built in
/// buffers sized up front (so no reallocation leaves a copy behind) and wiped when dropped.
fn sasl_payload(parts: &[&str]) -> Zeroizing<String> {
    let len = parts.iter().map(|p| p.len()).sum();
    let mut raw = Zeroizing::new(Vec::with_capacity(len));
    for part in parts {
        raw.extend_from_slice(part.as_bytes());
    }
    let mut encoded = Zeroizing::new(String::with_capacity(
        base64::encoded_len(len, true).unwrap_or(0),
    ));
    base64::engine::general_purpose::STANDARD.encode_string(&*raw, &mut encoded);
    encoded
}

/// A login mechanism this program implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mechanism {
    User,
    Plain,
    Apop,
    Xoauth2,
    Oauthbearer,
}

impl Mechanism {
    pub(super) fn name(self) -> &'static str {
        match self {
            Mechanism::User => "USER/PASS",
            Mechanism::Plain => "SASL PLAIN",
            Mechanism::Apop => "APOP",
            Mechanism::Xoauth2 => "SASL XOAUTH2",
            Mechanism::Oauthbearer => "SASL OAUTHBEARER",
        }
    }
}

pub(super) fn choose_mechanism(
    account: &Account,
    capabilities: &Capabilities,
    greeting: &Greeting,
) -> Result<Mechanism, ConnectError> {
    match account.auth {
        AuthMethod::User => Ok(Mechanism::User),
        AuthMethod::Plain => Ok(Mechanism::Plain),
        AuthMethod::Apop if greeting.apop_timestamp.is_some() => Ok(Mechanism::Apop),
        AuthMethod::Apop => Err(ConnectError::ApopUnavailable {
            host: account.host.clone(),
        }),
        AuthMethod::Xoauth2 => Ok(Mechanism::Xoauth2),
        AuthMethod::Oauthbearer => Ok(Mechanism::Oauthbearer),
        AuthMethod::Auto if account.oauth_token_command.is_some() => {
            if capabilities.sasl("OAUTHBEARER") && !capabilities.sasl("XOAUTH2") {
                Ok(Mechanism::Oauthbearer)
            } else {
                Ok(Mechanism::Xoauth2)
            }
        }
        AuthMethod::Auto => {
            if capabilities.sasl("PLAIN") {
                Ok(Mechanism::Plain)
            } else if capabilities.user() || !capabilities.is_known() {
                // RFC 1939 servers without CAPA all take USER/PASS.
                Ok(Mechanism::User)
            } else {
                let offered = capabilities.arguments("SASL").join(" ");
                let offered = if offered.is_empty() {
                    "no USER, no SASL".into()
                } else {
                    format!("SASL {offered}")
                };
                let host = account.host.clone();
                // Such a server (Dovecot's default) allows logins only after STLS: the fix is
                // the TLS mode, not another mechanism.
                if account.tls == TlsMode::None && capabilities.stls() {
                    Err(ConnectError::NeedsStarttls { host, offered })
                } else {
                    Err(ConnectError::NoMechanism { host, offered })
                }
            }
        }
    }
}

/// Pipelines the post-login CAPA and the caller's first commands (`prefetch`) behind the login
/// when the server announced PIPELINING, so that the login tail costs one round trip.
pub(super) fn pipeline_behind_login<S: Read + Write>(
    client: &mut Client<S>,
    mechanism: Mechanism,
    capabilities: &Capabilities,
    prefetch: &[Command<'static>],
) {
    // OAuth mechanisms answer a refused token with a challenge, which would swallow pipelined
    // commands as SASL answers: they log in alone.
    if capabilities.pipelining()
        && matches!(
            mechanism,
            Mechanism::User | Mechanism::Plain | Mechanism::Apop
        )
    {
        let mut tail = vec![Command::Capa];
        // Nothing the server said it lacks: UIDL then waits for the post-login CAPA to decide.
        tail.extend(
            prefetch
                .iter()
                .filter(|c| capabilities.uidl() || !matches!(c, Command::Uidl(_)))
                .cloned(),
        );
        client.send_after_login(&tail);
    }
}

/// The one login attempt with `mechanism`, for the account's user and `secret` (a password
/// or an OAuth2 token). The greeting supplies APOP's timestamp.
pub(super) fn log_in<S: Read + Write>(
    client: Client<S>,
    mechanism: Mechanism,
    account: &Account,
    secret: &str,
    greeting: &Greeting,
) -> pop3::Result<Session<S>> {
    let user = account.user.as_str();
    let host = account.host.as_str();
    match mechanism {
        Mechanism::User => client.login_user(user, secret),
        Mechanism::Plain => {
            // RFC 4616: authzid (empty) NUL authcid NUL passwd.
            let payload = sasl_payload(&["\0", user, "\0", secret]);
            // The initial response goes on the AUTH line (RFC 5034 §4); should the server
            // still send a challenge, an empty answer is the right reply to an unexpected one.
            client.authenticate("PLAIN", Some(&payload), |_| Zeroizing::new(String::new()))
        }
        Mechanism::Apop => {
            let timestamp = greeting.apop_timestamp.clone().unwrap_or_default();
            client.login_apop(user, secret, &timestamp)
        }
        Mechanism::Xoauth2 => {
            // Microsoft's servers refuse the token on the AUTH line; every server takes it as
            // the answer to an empty challenge, so that form is always used. After a failure
            // the server sends an error challenge, which gets an empty answer (Google's docs).
            let payload = sasl_payload(&["user=", user, "\x01auth=Bearer ", secret, "\x01\x01"]);
            let mut answers = std::iter::once(payload);
            client.authenticate("XOAUTH2", None, |_| {
                answers
                    .next()
                    .unwrap_or_else(|| Zeroizing::new(String::new()))
            })
        }
        Mechanism::Oauthbearer => {
            // RFC 7628 §3.1: the GS2 header, then host, port and the bearer token.
            let port = account.port.to_string();
            let payload = sasl_payload(&[
                "n,a=",
                user,
                ",\x01host=",
                host,
                "\x01port=",
                &port,
                "\x01auth=Bearer ",
                secret,
                "\x01\x01",
            ]);
            // RFC 7628 §3.2.3: an error challenge is answered with a single %x01.
            let dummy = sasl_payload(&["\x01"]);
            client.authenticate("OAUTHBEARER", Some(&payload), |_| dummy.clone())
        }
    }
}
