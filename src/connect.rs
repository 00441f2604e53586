//! The one place where configuration, transport and protocol meet: an [`Account`] becomes an
//! authenticated [`Session`].
//!
//! Security rules enforced here: STLS is required when configured, never opportunistic; a
//! password never crosses an unencrypted connection unless the account allows it; and there is
//! exactly one login attempt per run (a second guess could lock the account on some servers).

use std::io::Read;
use std::process::{Command as Process, Stdio};

use base64::Engine;

use crate::config::{Account, AuthMethod, PasswordSource, TlsMode};
use crate::pop3::client::{Greeting, Tracer};
use crate::pop3::{self, Capabilities, Client, Session, StatusLine};
use crate::secret::Secret;
use crate::transport::{self, Stream, TlsConnector, TlsInfo, TransportError};

/// Milestones of connecting, reported as they happen (`login-check` prints them).
#[derive(Debug)]
pub enum Progress<'a> {
    /// TCP is connected to this peer address.
    Connected(std::net::SocketAddr),
    /// TLS is established (implicitly or after STLS).
    Tls(&'a TlsInfo),
    /// The server's greeting.
    Greeting(&'a StatusLine),
    /// Logged in with this mechanism.
    Authenticated(&'a str),
    /// The capabilities after login.
    Capabilities(&'a Capabilities),
}

/// Why a session could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// TCP or TLS failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The SOCKS5 proxy could not connect us.
    #[error(transparent)]
    Proxy(#[from] crate::proxy::ProxyError),
    /// The password could not be obtained.
    #[error("{0}")]
    Password(String),
    /// The account wants STLS and the server cannot do it.
    #[error(
        "{host} does not offer STLS, and tls = \"starttls\" requires it; use tls = \"implicit\" (port 995) if the server supports it"
    )]
    StlsUnavailable {
        /// The host.
        host: String,
    },
    /// Logging in would send the password in clear.
    #[error(
        "refusing to send the password for {user}@{host} over an unencrypted connection; use tls = \"implicit\" or \"starttls\", or set allow_plaintext_password = true if you accept the risk"
    )]
    PlaintextRefused {
        /// The user.
        user: String,
        /// The host.
        host: String,
    },
    /// A plain connection got no greeting: likely a port that expects TLS at once.
    #[error(
        "{host} port {port} sent no greeting; if this port expects TLS from the start (usually 995), use tls = \"implicit\""
    )]
    NoGreeting {
        /// The host.
        host: String,
        /// The port.
        port: u16,
    },
    /// The server offers no login mechanism this program may use.
    #[error("{host} offers no usable login mechanism ({offered}); try --auth user or --auth plain")]
    NoMechanism {
        /// The host.
        host: String,
        /// What the server offers.
        offered: String,
    },
    /// APOP was asked for but the greeting has no timestamp.
    #[error("{host} does not offer APOP (its greeting has no timestamp); use auth = \"auto\"")]
    ApopUnavailable {
        /// The host.
        host: String,
    },
    /// The server refused the credentials.
    #[error("login as {user} on {host} failed: {status}")]
    Authentication {
        /// The user.
        user: String,
        /// The host.
        host: String,
        /// The server's answer.
        status: StatusLine,
    },
    /// A protocol error while connecting or logging in.
    #[error("{host}: {error}")]
    Protocol {
        /// The host.
        host: String,
        /// The underlying error (in the message, so not a `source`).
        error: pop3::Error,
    },
}

/// An authenticated session and what was learned on the way.
pub struct Connection {
    /// The session in the TRANSACTION state.
    pub session: Session<Stream>,
    /// Capabilities as announced after login.
    pub capabilities: Capabilities,
    /// The greeting.
    pub greeting: Greeting,
    /// TLS details, when encrypted.
    pub tls: Option<TlsInfo>,
}

/// Whether the account logs in with an OAuth2 token rather than a password: when asked to, or
/// (with `auth = "auto"`) whenever a token command is configured.
pub fn uses_oauth(account: &Account) -> bool {
    match account.auth {
        AuthMethod::Xoauth2 | AuthMethod::Oauthbearer => true,
        AuthMethod::Auto => account.oauth_token_command.is_some(),
        AuthMethod::User | AuthMethod::Plain | AuthMethod::Apop => false,
    }
}

impl Connection {
    /// How many commands to keep in flight: a full window when the server announced
    /// PIPELINING (RFC 2449 §6.6), else one at a time.
    pub fn pipeline_window(&self) -> usize {
        if self.capabilities.pipelining() {
            crate::pop3::client::MAX_PIPELINE_WINDOW
        } else {
            1
        }
    }
}

/// Obtains the secret to log in with: an OAuth2 access token from `oauth_token_command`, or the
/// password from its configured source.
pub fn credential(account: &Account) -> Result<Secret, ConnectError> {
    if uses_oauth(account)
        && let Some(argv) = &account.oauth_token_command
    {
        return run_secret_command(argv, "oauth_token_command", "token");
    }
    password(account)
}

fn password(account: &Account) -> Result<Secret, ConnectError> {
    match &account.password {
        PasswordSource::Inline(secret) => Ok(secret.clone()),
        PasswordSource::Env(var) => match std::env::var(var) {
            Ok(value) if !value.is_empty() => Ok(Secret::new(value)),
            _ => Err(ConnectError::Password(format!(
                "password_env names {var}, but that environment variable is not set"
            ))),
        },
        PasswordSource::File(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConnectError::Password(format!("cannot read password_file {}: {e}", path.display()))
            })?;
            first_line(text).ok_or_else(|| {
                ConnectError::Password(format!("password_file {} is empty", path.display()))
            })
        }
        PasswordSource::Command(argv) => run_secret_command(argv, "password_command", "password"),
        PasswordSource::Prompt => {
            use std::io::IsTerminal;
            if !std::io::stdin().is_terminal() {
                return Err(ConnectError::Password(format!(
                    "no password for {}@{}: not on a terminal, so set password_command, password_env or password_file",
                    account.user, account.host
                )));
            }
            let prompt = format!("Password for {}@{}: ", account.user, account.host);
            rpassword::prompt_password(prompt)
                .map(Secret::new)
                .map_err(|e| ConnectError::Password(format!("cannot read the password: {e}")))
        }
    }
}

fn first_line(text: String) -> Option<Secret> {
    let line = text.lines().next().unwrap_or("");
    (!line.is_empty()).then(|| Secret::new(line.to_owned()))
}

/// Runs `argv` and takes the first line of its output as the secret. `key` names the setting
/// and `what` the secret in error messages.
fn run_secret_command(argv: &[String], key: &str, what: &str) -> Result<Secret, ConnectError> {
    let shown = argv.join(" ");
    let fail = |why: String| ConnectError::Password(format!("{key} `{shown}` {why}"));
    // stdin and stderr stay with the user: helpers like `pass` may ask for a passphrase.
    let mut child = Process::new(&argv[0])
        .args(&argv[1..])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run: {e}")))?;
    let mut output = String::new();
    let read = child
        .stdout
        .take()
        .map(|mut out| out.read_to_string(&mut output));
    let status = child.wait().map_err(|e| fail(format!("cannot run: {e}")))?;
    if !status.success() {
        return Err(fail(format!("failed ({status})")));
    }
    if let Some(Err(e)) = read {
        return Err(fail(format!("printed something unreadable: {e}")));
    }
    first_line(output).ok_or_else(|| fail(format!("printed no {what}")))
}

/// Refuses, before anything is asked or sent, a login that would put the password on an
/// unencrypted connection (APOP sends only a digest, so it may).
pub fn check_plaintext_policy(account: &Account) -> Result<(), ConnectError> {
    if account.tls == TlsMode::None
        && !account.allow_plaintext_password
        && account.auth != AuthMethod::Apop
    {
        return Err(ConnectError::PlaintextRefused {
            user: account.user.clone(),
            host: account.host.clone(),
        });
    }
    Ok(())
}

/// Connects, secures and logs in: one attempt, no fallbacks that weaken security.
pub fn open(
    account: &Account,
    password: &Secret,
    tracer: Option<Tracer>,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Connection, ConnectError> {
    let host = account.host.as_str();
    let protocol = |error: pop3::Error| ConnectError::Protocol {
        host: host.to_owned(),
        error,
    };
    let tcp = match &account.proxy {
        Some(proxy) => crate::proxy::connect(proxy, host, account.port, account.timeout)?,
        None => transport::connect_tcp(host, account.port, account.timeout)?,
    };
    if let Ok(peer) = tcp.peer_addr() {
        progress(Progress::Connected(peer));
    }
    // The connector loads the trusted roots; only build it when TLS is used.
    let connector = || TlsConnector::new(account.ca_file.as_deref(), &account.tls_options);
    let mut tls_info = None;
    let stream = match account.tls {
        TlsMode::Implicit => {
            let tls = connector()?.handshake(tcp, host)?;
            let info = tls_info.insert(tls.info());
            progress(Progress::Tls(info));
            Stream::Tls(Box::new(tls))
        }
        TlsMode::Starttls | TlsMode::None => Stream::Plain(tcp),
    };
    let (mut client, greeting) = Client::connect(stream, tracer).map_err(|e| match e {
        // A TLS port waits for our handshake while we wait for its greeting.
        pop3::Error::Timeout if account.tls != TlsMode::Implicit => ConnectError::NoGreeting {
            host: host.to_owned(),
            port: account.port,
        },
        other => protocol(other),
    })?;
    progress(Progress::Greeting(&greeting.status));
    let mut capabilities = client.capa().map_err(protocol)?;

    if account.tls == TlsMode::Starttls {
        // Without CAPA we still try STLS: the server's answer decides, and -ERR stops us.
        if capabilities.is_known() && !capabilities.stls() {
            return Err(ConnectError::StlsUnavailable {
                host: host.to_owned(),
            });
        }
        let (stream, tracer) = client.stls().map_err(|e| match e {
            pop3::Error::Server { .. } => ConnectError::StlsUnavailable {
                host: host.to_owned(),
            },
            other => protocol(other),
        })?;
        let Stream::Plain(tcp) = stream else {
            unreachable!("STLS is only sent on a plain connection")
        };
        let tls = connector()?.handshake(tcp, host)?;
        let info = tls_info.insert(tls.info());
        progress(Progress::Tls(info));
        client = Client::resume(Stream::Tls(Box::new(tls)), tracer);
        // RFC 2595 §4: capabilities may differ once TLS is active; forget the old list.
        capabilities = client.capa().map_err(protocol)?;
    }

    let mechanism = choose_mechanism(account, &capabilities, &greeting)?;
    let encrypted = account.tls != TlsMode::None;
    if !encrypted && mechanism != Mechanism::Apop && !account.allow_plaintext_password {
        return Err(ConnectError::PlaintextRefused {
            user: account.user.clone(),
            host: host.to_owned(),
        });
    }
    let user = account.user.as_str();
    let secret = password.expose();
    let login = match mechanism {
        Mechanism::User => client.login_user(user, secret),
        Mechanism::Plain => {
            // RFC 4616: authzid (empty) NUL authcid NUL passwd.
            let payload =
                base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{secret}"));
            // The initial response goes on the AUTH line (RFC 5034 §4); should the server
            // still send a challenge, an empty answer is the right reply to an unexpected one.
            client.authenticate("PLAIN", Some(&payload), |_| String::new())
        }
        Mechanism::Apop => {
            let timestamp = greeting.apop_timestamp.clone().unwrap_or_default();
            client.login_apop(user, secret, &timestamp)
        }
        Mechanism::Xoauth2 => {
            // Microsoft's servers refuse the token on the AUTH line; every server takes it as
            // the answer to an empty challenge, so that form is always used. After a failure
            // the server sends an error challenge, which gets an empty answer (Google's docs).
            let payload = base64::engine::general_purpose::STANDARD
                .encode(format!("user={user}\x01auth=Bearer {secret}\x01\x01"));
            let mut answers = std::iter::once(payload);
            client.authenticate("XOAUTH2", None, |_| answers.next().unwrap_or_default())
        }
        Mechanism::Oauthbearer => {
            // RFC 7628 §3.1: the GS2 header, then host, port and the bearer token.
            let payload = base64::engine::general_purpose::STANDARD.encode(format!(
                "n,a={user},\x01host={host}\x01port={}\x01auth=Bearer {secret}\x01\x01",
                account.port
            ));
            // RFC 7628 §3.2.3: an error challenge is answered with a single %x01.
            let dummy = base64::engine::general_purpose::STANDARD.encode("\x01");
            client.authenticate("OAUTHBEARER", Some(&payload), |_| dummy.clone())
        }
    };
    let mut session = login.map_err(|e| match e {
        pop3::Error::Server { status, .. } => ConnectError::Authentication {
            user: user.to_owned(),
            host: host.to_owned(),
            status,
        },
        other => protocol(other),
    })?;
    progress(Progress::Authenticated(mechanism.name()));
    // Some servers (Dovecot among them) announce more after login, e.g. PIPELINING.
    let after_login = session.capa().map_err(protocol)?;
    if after_login.is_known() {
        capabilities = after_login;
    }
    progress(Progress::Capabilities(&capabilities));
    Ok(Connection {
        session,
        capabilities,
        greeting,
        tls: tls_info,
    })
}

/// A login mechanism this program implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mechanism {
    User,
    Plain,
    Apop,
    Xoauth2,
    Oauthbearer,
}

impl Mechanism {
    fn name(self) -> &'static str {
        match self {
            Mechanism::User => "USER/PASS",
            Mechanism::Plain => "SASL PLAIN",
            Mechanism::Apop => "APOP",
            Mechanism::Xoauth2 => "SASL XOAUTH2",
            Mechanism::Oauthbearer => "SASL OAUTHBEARER",
        }
    }
}

fn choose_mechanism(
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
                Err(ConnectError::NoMechanism {
                    host: account.host.clone(),
                    offered: if offered.is_empty() {
                        "no USER, no SASL".into()
                    } else {
                        format!("SASL {offered}")
                    },
                })
            }
        }
    }
}
