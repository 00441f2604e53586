//! The one place where configuration, transport and protocol meet: an [`Account`] becomes an
//! authenticated [`Session`].
//!
//! Security rules enforced here: STLS is required when configured, never opportunistic; a
//! password (nor an APOP digest of it, nor a token) never crosses an unencrypted connection
//! unless the account allows it; a wrong TLS mode is recognised and named, not waited out; and
//! there is exactly one login attempt per run (a second guess could lock the account on some
//! servers). Every copy of a secret made here is wiped when dropped.

use std::io::Read;
use std::net::TcpStream;
use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use zeroize::Zeroizing;

use crate::config::{Account, AuthMethod, PasswordSource, TlsMode};
use crate::pop3::client::{Greeting, Tracer};
use crate::pop3::{self, Capabilities, Client, Command, Session, StatusLine};
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
    /// Logging in would send the password (or something derived from it) in clear.
    #[error(
        "refusing to send {what} for {user}@{host} over an unencrypted connection; use tls = \"implicit\" or \"starttls\", or set allow_plaintext_password = true if you accept the risk"
    )]
    PlaintextRefused {
        /// What would be sent: the password, an APOP digest, a token.
        what: &'static str,
        /// The user.
        user: String,
        /// The host.
        host: String,
    },
    /// A plain connection got no greeting within the timeout, and the port does not speak TLS
    /// either: a slow or stuck server.
    #[error(
        "{host} port {port} sent no greeting; if this port expects TLS from the start (usually 995), use tls = \"implicit\""
    )]
    NoGreeting {
        /// The host.
        host: String,
        /// The port.
        port: u16,
    },
    /// The port speaks implicit TLS but a plain connection (`none` or `starttls`) was asked for.
    #[error(
        "{host} port {port} sent no greeting but answers a TLS handshake: this port speaks implicit TLS: use --tls implicit (tls = \"implicit\")"
    )]
    ImplicitTlsPort {
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
    /// With `tls = "none"` the server offers no login but does offer STLS: it wants TLS first.
    #[error(
        "{host} offers no login on an unencrypted connection ({offered}) but offers STLS: use --tls starttls (tls = \"starttls\")"
    )]
    NeedsStarttls {
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
    /// The capabilities announced before login, when they were asked for this time (not when
    /// remembered ones were used): what a caller may remember for the next run.
    pub learned: Option<Capabilities>,
}

/// What a caller asks of [`open`] beyond the account.
#[derive(Debug, Default)]
pub struct Options<'a> {
    /// The commands the caller will send first (e.g. LIST and UIDL): when the server announced
    /// PIPELINING they leave in the same write as the login, together with the post-login
    /// CAPA, so the whole login tail costs one round trip; the session then reads their
    /// replies when asked.
    pub prefetch: &'a [Command<'static>],
    /// The server's pre-login capabilities as a previous run saw them. Used only over
    /// implicit TLS and when they include PIPELINING: the login then leaves right after the
    /// greeting, saving the CAPA round trip. Should the server have changed, the login may
    /// fail once; the caller then forgets them.
    pub remembered: Option<Capabilities>,
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
        PasswordSource::Env(var) => match crate::secret::from_env(var) {
            Some(secret) if !secret.expose().is_empty() => Ok(secret),
            _ => Err(ConnectError::Password(format!(
                "password_env names {var}, but that environment variable is not set"
            ))),
        },
        PasswordSource::File(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConnectError::Password(format!("cannot read password_file {}: {e}", path.display()))
            })?;
            first_line(Zeroizing::new(text)).ok_or_else(|| {
                ConnectError::Password(format!("password_file {} is empty", path.display()))
            })
        }
        PasswordSource::Command(argv) => run_secret_command(argv, "password_command", "password"),
        PasswordSource::Prompt => {
            if !crate::ui::stdin_is_terminal() {
                return Err(ConnectError::Password(format!(
                    "no password for {}@{}: not on a terminal, so set password_command, password_env or password_file",
                    account.user, account.host
                )));
            }
            let prompt = format!("Password for {}@{}: ", account.user, account.host);
            crate::ui::prompt_password(&prompt)
                .map_err(|e| ConnectError::Password(format!("cannot read the password: {e}")))
        }
    }
}

fn first_line(text: Zeroizing<String>) -> Option<Secret> {
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
    // Room for any sane secret up front: growing would leave unwiped copies behind.
    let mut output = Zeroizing::new(String::with_capacity(8192));
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

/// How long a plain connection waits for the greeting before a second connection checks
/// whether the port expects TLS instead (a TLS port waits for our handshake in silence).
const TLS_PROBE_AFTER: Duration = Duration::from_secs(3);
/// The longest the probe's TLS handshake may take.
const TLS_PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Waits for the first byte of the greeting on a plain connection. When none comes within a
/// few seconds, a second connection tries a TLS handshake: if the port speaks TLS, that is the
/// mistake to name; if not, the server is merely slow and is waited for up to the timeout.
fn await_greeting(tcp: &TcpStream, account: &Account) -> Result<(), ConnectError> {
    let started = Instant::now();
    let first_wait = TLS_PROBE_AFTER.min(account.timeout);
    let restore = |tcp: &TcpStream| {
        let _ = tcp.set_read_timeout(Some(account.timeout));
    };
    if byte_arrives(tcp, first_wait) {
        restore(tcp);
        return Ok(());
    }
    let remaining = account.timeout.saturating_sub(started.elapsed());
    if !remaining.is_zero() {
        let probe = remaining.min(TLS_PROBE_TIMEOUT);
        // The probe takes the same way as the session (through the proxy, if any): a direct
        // connection could leak the server's name or be blocked where only the proxy gets out.
        if let Ok(tcp) = open_tcp(account, probe)
            && transport::speaks_tls(tcp, &account.host)
        {
            return Err(ConnectError::ImplicitTlsPort {
                host: account.host.clone(),
                port: account.port,
            });
        }
    }
    let remaining = account.timeout.saturating_sub(started.elapsed());
    let arrived = !remaining.is_zero() && byte_arrives(tcp, remaining);
    restore(tcp);
    if arrived {
        Ok(())
    } else {
        Err(ConnectError::NoGreeting {
            host: account.host.clone(),
            port: account.port,
        })
    }
}

/// Whether a byte (or the end of the stream, or an error, which the client then reports) can
/// be read within `wait`; nothing is consumed.
fn byte_arrives(tcp: &TcpStream, wait: Duration) -> bool {
    if tcp.set_read_timeout(Some(wait)).is_err() {
        return true;
    }
    loop {
        match tcp.peek(&mut [0u8; 1]) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            _ => return true,
        }
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

/// A TCP connection to the account's server, through its proxy if it has one, with `timeout`
/// for connecting and for every read and write.
fn open_tcp(account: &Account, timeout: Duration) -> Result<TcpStream, ConnectError> {
    Ok(match &account.proxy {
        Some(proxy) => crate::proxy::connect(proxy, &account.host, account.port, timeout)?,
        None => transport::connect_tcp(&account.host, account.port, timeout)?,
    })
}

/// Connects, secures and logs in: one attempt, no fallbacks that weaken security. See
/// [`Options`] for the round trips a caller can save.
pub fn open(
    account: &Account,
    password: &Secret,
    tracer: Option<Tracer>,
    options: Options<'_>,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Connection, ConnectError> {
    let prefetch = options.prefetch;
    let host = account.host.as_str();
    let protocol = |error: pop3::Error| ConnectError::Protocol {
        host: host.to_owned(),
        error,
    };
    let tcp = open_tcp(account, account.timeout)?;
    if let Ok(peer) = tcp.peer_addr() {
        progress(Progress::Connected(peer));
    }
    // The connector loads the trusted roots; only build it when TLS is used.
    let connector = || TlsConnector::new(account.ca_file.as_deref(), &account.tls_options);
    let stream = match account.tls {
        TlsMode::Implicit => {
            let tls = connector()?.handshake(tcp, host)?;
            progress(Progress::Tls(&tls.info()));
            Stream::Tls(Box::new(tls))
        }
        TlsMode::Starttls | TlsMode::None => {
            await_greeting(&tcp, account)?;
            Stream::Plain(tcp)
        }
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
    // Remembered capabilities stand in for CAPA only where nothing rides on them but speed:
    // over implicit TLS (STLS needs a fresh answer) and with PIPELINING (else nothing is
    // saved).
    let remembered = options
        .remembered
        .filter(|c| account.tls == TlsMode::Implicit && c.pipelining());
    let (mut capabilities, mut learned) = match remembered {
        Some(remembered) => (remembered, None),
        None => {
            let capabilities = client.capa().map_err(protocol)?;
            let worth_remembering = account.tls == TlsMode::Implicit;
            (
                capabilities.clone(),
                worth_remembering.then_some(capabilities),
            )
        }
    };

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
        let tls = connector()?.handshake(tcp, host).map_err(|e| match e {
            // STLS was accepted, so the port is right: the server broke the protocol.
            TransportError::PlaintextPort { greeting, .. } => protocol(pop3::Error::Protocol(
                format!("after accepting STLS the server sent plain text ({greeting:?})"),
            )),
            other => other.into(),
        })?;
        progress(Progress::Tls(&tls.info()));
        client = Client::resume(Stream::Tls(Box::new(tls)), tracer);
        // RFC 2595 §4: capabilities may differ once TLS is active; forget the old list.
        capabilities = client.capa().map_err(protocol)?;
    }

    let mechanism = match choose_mechanism(account, &capabilities, &greeting) {
        // Remembered capabilities that no longer fit the settings: ask the server after all.
        Err(_) if learned.is_none() && account.tls == TlsMode::Implicit => {
            capabilities = client.capa().map_err(protocol)?;
            learned = Some(capabilities.clone());
            choose_mechanism(account, &capabilities, &greeting)?
        }
        chosen => chosen?,
    };
    if account.tls == TlsMode::None && !account.allow_plaintext_password {
        return Err(plaintext_refused(account));
    }
    let user = account.user.as_str();
    let secret = password.expose();
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
    let login = match mechanism {
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
        learned,
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
