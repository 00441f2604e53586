//! The one place where configuration, transport and protocol meet: an [`Account`] becomes an
//! authenticated [`Session`].
//!
//! Security rules enforced here: STLS is required when configured, never opportunistic; a
//! password (nor an APOP digest of it, nor a token) never crosses an unencrypted connection
//! unless the account allows it; a wrong TLS mode is recognised and named, not waited out; and
//! there is exactly one login attempt per run (a second guess could lock the account on some
//! servers). Every copy of a secret made here is wiped when dropped.
//!
//! This file holds the flow of [`open`] (TCP, TLS or STLS, greeting, capabilities, login,
//! capabilities again) and what it returns; its steps live apart:
//! - [`secret_source`]: where the password or token comes from (a prompt is shown only once
//!   the connection is up and the login about to be sent).
//! - [`tcp`]: the TCP path (maybe through the proxy) and the wait for a plain greeting, which
//!   recognises a port that speaks implicit TLS.
//! - [`login`]: the plaintext policy, the choice of mechanism and the login itself.

mod login;
mod secret_source;
mod tcp;

use crate::config::{Account, TlsMode};
use crate::pop3::client::Tracer;
use crate::pop3::{self, Capabilities, Client, Command, Session, StatusLine};
use crate::transport::{Stream, TlsConnector, TlsInfo, TransportError};

pub use login::check_plaintext_policy;
use login::{choose_mechanism, log_in, pipeline_behind_login};
pub use secret_source::{Credential, TypedPassword, prepare, uses_oauth};
use tcp::{await_greeting, open_tcp};

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
    /// The server closed the connection (an idle timeout) while the password was being typed;
    /// nothing of the login was sent.
    #[error(
        "{host} closed the connection while the password was being typed (servers wait only a few minutes for a login, Dovecot 3); nothing was sent: run again"
    )]
    ClosedDuringPrompt {
        /// The host.
        host: String,
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
    /// Where to keep a password typed at the prompt once the server accepted it (`fetch-all
    /// --every` asks once, not at every cycle).
    pub keep_typed: Option<&'a TypedPassword>,
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

/// Connects, secures and logs in: one attempt, no fallbacks that weaken security. See
/// [`Options`] for the round trips a caller can save. The secret is obtained from `credential`
/// only when the login needs it, so that a password prompt comes after every connection, TLS
/// and capability error.
pub fn open(
    account: &Account,
    credential: &Credential,
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
            let tls = connector()?.handshake(tcp, host, account.port)?;
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
        let tls = connector()?
            .handshake(tcp, host, account.port)
            .map_err(|e| match e {
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
    // Checked again although commands check it first: the rule must hold for every caller.
    check_plaintext_policy(account)?;
    // Asked only now, before anything of the login is queued. A prompt may take minutes: RFC
    // 1939 §3 asks servers to wait ten, but Dovecot hangs up on a client that has not logged in
    // after three, which the check below catches.
    let password = credential.obtain()?;
    if matches!(credential, Credential::Prompt(_)) && client.spoke_unasked(Stream::input_pending) {
        // Sending the login now would read the server's goodbye as the answer to USER and
        // report a refused login (77) where only time ran out.
        return Err(ConnectError::ClosedDuringPrompt {
            host: host.to_owned(),
        });
    }
    let secret = password.expose();
    pipeline_behind_login(&mut client, mechanism, &capabilities, prefetch);
    let login = log_in(client, mechanism, account, secret, &greeting);
    let mut session = login.map_err(|e| match e {
        pop3::Error::Server { status, .. } => ConnectError::Authentication {
            user: account.user.clone(),
            host: host.to_owned(),
            status,
        },
        other => protocol(other),
    })?;
    progress(Progress::Authenticated(mechanism.name()));
    if let (Some(keep), Credential::Prompt(_)) = (options.keep_typed, credential) {
        keep.keep(account, password);
    }
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
