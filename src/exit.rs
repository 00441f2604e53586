//! Exit codes (sysexits.h), so that scripts and cron can tell failures apart, and the mapping
//! from errors to them. The README lists them.

use crate::commands::fetch::FetchError;
use crate::config::ConfigError;
use crate::connect::ConnectError;
use crate::pop3;
use crate::transport::TransportError;

/// Why the program stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// Everything worked.
    Success = 0,
    /// EX_USAGE: the command line is wrong.
    Usage = 64,
    /// EX_DATAERR: a message number or UID that the mailbox does not have.
    NoSuchMessage = 65,
    /// EX_NOHOST: the host name does not resolve.
    NoHost = 68,
    /// EX_UNAVAILABLE: the server cannot be reached or cannot provide what is required.
    Unavailable = 69,
    /// EX_SOFTWARE: a bug.
    Software = 70,
    /// EX_IOERR: a local file could not be written.
    IoError = 74,
    /// EX_TEMPFAIL: try again later (timeout, dropped connection, `[IN-USE]`, `[LOGIN-DELAY]`,
    /// `[SYS/TEMP]`, another run holds the lock).
    TempFail = 75,
    /// EX_PROTOCOL: the server broke the protocol, or TLS could not be established.
    Protocol = 76,
    /// EX_NOPERM: the server refused the login.
    AuthFailed = 77,
    /// EX_CONFIG: the configuration is wrong or incomplete.
    Config = 78,
}

impl ExitCode {
    /// How serious the failure is, to pick the worst of several (`--all-accounts`): a bug or
    /// a local disk problem outranks a wrong setting, which outranks a server problem, which
    /// outranks "try again later".
    pub fn severity(self) -> u8 {
        match self {
            ExitCode::Success => 0,
            ExitCode::TempFail => 1,
            ExitCode::NoHost | ExitCode::Unavailable => 2,
            ExitCode::Protocol | ExitCode::NoSuchMessage => 3,
            ExitCode::AuthFailed => 4,
            ExitCode::Config | ExitCode::Usage => 5,
            ExitCode::IoError => 6,
            ExitCode::Software => 7,
        }
    }
}

/// A failure that already knows its exit code (used by commands for their own errors).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    /// The exit code.
    pub code: ExitCode,
    /// One line saying what is wrong and what to do.
    pub message: String,
}

impl Failure {
    /// A failure with this code and message.
    pub fn new(code: ExitCode, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }
}

/// The exit code for an error: the first error in the chain that has a known meaning decides.
pub fn classify(error: &anyhow::Error) -> ExitCode {
    for cause in error.chain() {
        if let Some(failure) = cause.downcast_ref::<Failure>() {
            return failure.code;
        }
        if cause.is::<ConfigError>() {
            return ExitCode::Config;
        }
        if let Some(e) = cause.downcast_ref::<ConnectError>() {
            return connect_code(e);
        }
        if let Some(e) = cause.downcast_ref::<TransportError>() {
            return transport_code(e);
        }
        if let Some(e) = cause.downcast_ref::<pop3::Error>() {
            return protocol_code(e);
        }
        if let Some(e) = cause.downcast_ref::<FetchError>() {
            return fetch_code(e);
        }
        if cause.is::<crate::store::state::StateError>() {
            return ExitCode::IoError;
        }
    }
    ExitCode::Software
}

fn connect_code(error: &ConnectError) -> ExitCode {
    match error {
        ConnectError::Transport(e) => transport_code(e),
        ConnectError::Proxy(e) => proxy_code(e),
        ConnectError::Password(_) | ConnectError::PlaintextRefused { .. } => ExitCode::Config,
        ConnectError::NoGreeting { .. } => ExitCode::TempFail,
        ConnectError::ImplicitTlsPort { .. } | ConnectError::NeedsStarttls { .. } => {
            ExitCode::Config
        }
        ConnectError::StlsUnavailable { .. }
        | ConnectError::NoMechanism { .. }
        | ConnectError::ApopUnavailable { .. } => ExitCode::Unavailable,
        ConnectError::Authentication { status, .. } => match &status.code {
            Some(code) if code.is_temporary() => ExitCode::TempFail,
            Some(pop3::ResponseCode::SysPerm) => ExitCode::Unavailable,
            _ => ExitCode::AuthFailed,
        },
        ConnectError::Protocol { error, .. } => protocol_code(error),
    }
}

fn proxy_code(error: &crate::proxy::ProxyError) -> ExitCode {
    use crate::proxy::ProxyError;
    match error {
        ProxyError::Resolve(e) | ProxyError::Unreachable { source: e, .. } => match e {
            TransportError::Connect { .. } => ExitCode::TempFail,
            other => transport_code(other),
        },
        ProxyError::NoAcceptableMethod { .. } | ProxyError::AuthenticationFailed { .. } => {
            ExitCode::Config
        }
        ProxyError::Protocol { .. } => ExitCode::Protocol,
        refused @ ProxyError::Refused { .. } if refused.is_temporary() => ExitCode::TempFail,
        ProxyError::Refused { .. } => ExitCode::Unavailable,
        ProxyError::Io { .. } => ExitCode::TempFail,
    }
}

fn transport_code(error: &TransportError) -> ExitCode {
    match error {
        TransportError::Resolve { .. } => ExitCode::NoHost,
        TransportError::Connect { .. } => ExitCode::Unavailable,
        TransportError::Timeout { .. } | TransportError::Io { .. } => ExitCode::TempFail,
        TransportError::CaFile { .. }
        | TransportError::ClientCertificate { .. }
        | TransportError::NoRootCertificates
        | TransportError::ServerName { .. }
        | TransportError::PlaintextPort { .. } => ExitCode::Config,
        TransportError::Tls { .. } => ExitCode::Protocol,
    }
}

fn protocol_code(error: &pop3::Error) -> ExitCode {
    match error {
        pop3::Error::Server { status, .. } => match &status.code {
            Some(code) if code.is_temporary() => ExitCode::TempFail,
            Some(pop3::ResponseCode::SysPerm) => ExitCode::Unavailable,
            _ => ExitCode::Protocol,
        },
        pop3::Error::Timeout | pop3::Error::ConnectionClosed | pop3::Error::Io(_) => {
            ExitCode::TempFail
        }
        pop3::Error::Protocol(_) | pop3::Error::LineTooLong { .. } | pop3::Error::StlsInjection => {
            ExitCode::Protocol
        }
        pop3::Error::InvalidArgument { .. } => ExitCode::Usage,
        pop3::Error::Sink(_) => ExitCode::IoError,
    }
}

fn fetch_code(error: &FetchError) -> ExitCode {
    match error {
        FetchError::MdaWithoutCommand | FetchError::AllAccountsWithAccount => ExitCode::Usage,
        FetchError::Busy { .. }
        | FetchError::QuitUnconfirmed { .. }
        | FetchError::Withheld { .. } => ExitCode::TempFail,
        FetchError::Lock(_) | FetchError::State(_) => ExitCode::IoError,
        FetchError::Deliver(e) => deliver_code(e),
        FetchError::NoUidlNorTop => ExitCode::Unavailable,
        FetchError::FilterNeedsTop => ExitCode::Config,
        FetchError::Interrupted(e) => protocol_code(e),
    }
}

fn deliver_code(error: &crate::store::deliver::DeliverError) -> ExitCode {
    use crate::store::deliver::DeliverError;
    match error {
        // A full disk does not cure itself by waiting; other write failures (an MDA that
        // failed, for one) may.
        DeliverError::Write(_) if error.is_disk_full() => ExitCode::IoError,
        DeliverError::Write(_) => ExitCode::TempFail,
        DeliverError::Open { .. } | DeliverError::Commit(_) | DeliverError::State(_) => {
            ExitCode::IoError
        }
    }
}
