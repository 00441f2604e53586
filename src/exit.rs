//! Exit codes (sysexits.h), so that scripts and cron can tell failures apart, and the one
//! mapping from errors to them ([`classify`]). The man page's table is generated from
//! [`ExitCode::ALL`]; the tables in README.md and docs/troubleshooting.md are checked against it.

use crate::commands::CommandError;
use crate::commands::fetch::FetchError;
use crate::commands::shared::select::SelectError;
use crate::config::ConfigError;
use crate::connect::ConnectError;
use crate::import::ImportError;
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
    /// EX_IOERR: a local file (or standard output) could not be written.
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
    /// Every exit code, in numeric order: the source of the man page's EXIT STATUS section,
    /// and what the tables in README.md and docs/troubleshooting.md are checked against.
    pub const ALL: [ExitCode; 11] = [
        ExitCode::Success,
        ExitCode::Usage,
        ExitCode::NoSuchMessage,
        ExitCode::NoHost,
        ExitCode::Unavailable,
        ExitCode::Software,
        ExitCode::IoError,
        ExitCode::TempFail,
        ExitCode::Protocol,
        ExitCode::AuthFailed,
        ExitCode::Config,
    ];

    /// The sysexits.h name (`EX_USAGE`), `None` for success.
    pub fn sysexits_name(self) -> Option<&'static str> {
        Some(match self {
            ExitCode::Success => return None,
            ExitCode::Usage => "EX_USAGE",
            ExitCode::NoSuchMessage => "EX_DATAERR",
            ExitCode::NoHost => "EX_NOHOST",
            ExitCode::Unavailable => "EX_UNAVAILABLE",
            ExitCode::Software => "EX_SOFTWARE",
            ExitCode::IoError => "EX_IOERR",
            ExitCode::TempFail => "EX_TEMPFAIL",
            ExitCode::Protocol => "EX_PROTOCOL",
            ExitCode::AuthFailed => "EX_NOPERM",
            ExitCode::Config => "EX_CONFIG",
        })
    }

    /// A few words saying what the code means, for the man page.
    pub fn summary(self) -> &'static str {
        match self {
            ExitCode::Success => "success",
            ExitCode::Usage => "usage",
            ExitCode::NoSuchMessage => "no such message",
            ExitCode::NoHost => "unknown host",
            ExitCode::Unavailable => "unavailable",
            ExitCode::Software => "internal error",
            ExitCode::IoError => "local I/O error",
            ExitCode::TempFail => "temporary failure",
            ExitCode::Protocol => "protocol or TLS error",
            ExitCode::AuthFailed => "login refused",
            ExitCode::Config => "configuration error",
        }
    }

    /// The man page's EXIT STATUS text: `0 success; 64 usage; …; 78 configuration error.`
    pub fn man_table() -> String {
        let entries: Vec<String> = ExitCode::ALL
            .iter()
            .map(|code| format!("{} {}", *code as u8, code.summary()))
            .collect();
        format!("{}.", entries.join("; "))
    }

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

/// The one line a person sees for `error`: its chain joined with `: `, where a cause whose text
/// the line already ends with is left out (many errors quote their cause in their own
/// message), and with the server's text made safe for the terminal.
pub fn describe(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    crate::message::display_safe(&line)
}

/// The exit code for an error: the first error in the chain that has a known meaning decides.
pub fn classify(error: &anyhow::Error) -> ExitCode {
    for cause in error.chain() {
        // Wherever it surfaces, standard output that cannot be written is a local I/O error.
        if cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(crate::ui::is_stdout_error)
        {
            return ExitCode::IoError;
        }
        if let Some(e) = cause.downcast_ref::<CommandError>() {
            return command_code(e);
        }
        if let Some(e) = cause.downcast_ref::<SelectError>() {
            return select_code(e);
        }
        if let Some(e) = cause.downcast_ref::<ImportError>() {
            return import_code(e);
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

fn command_code(error: &CommandError) -> ExitCode {
    match error {
        CommandError::NoSuchSubcommand { .. }
        | CommandError::ReadRange
        | CommandError::AllAccountsWithAccount
        | CommandError::DeleteWhat
        | CommandError::DeleteUnconfirmed
        | CommandError::ImportOneFile { .. }
        | CommandError::ImportFlag { .. }
        | CommandError::InitWithoutHost { .. } => ExitCode::Usage,
        CommandError::TooBigToShow { .. } => ExitCode::Unavailable,
        CommandError::CannotWrite { .. }
        | CommandError::CannotSaveIn { .. }
        | CommandError::NoFreeName { .. } => ExitCode::IoError,
        CommandError::SomeAccountsFailed { worst } => *worst,
        CommandError::WorkerPanicked | CommandError::ImportedConfigInvalid(_) => ExitCode::Software,
        CommandError::ConfigCheck { .. } | CommandError::NoConfigDir => ExitCode::Config,
        CommandError::DeleteRefused { .. } | CommandError::ReplyTooLong { .. } => {
            ExitCode::Protocol
        }
        // QUIT unconfirmed: whether the server committed is unknown, so look again later.
        CommandError::DeletionUnknown { .. } | CommandError::BrowseQuitUnconfirmed { .. } => {
            ExitCode::TempFail
        }
        CommandError::Import(e) => import_code(e),
    }
}

fn select_code(error: &SelectError) -> ExitCode {
    match error {
        e if e.is_usage() => ExitCode::Usage,
        SelectError::NoUidl => ExitCode::Unavailable,
        _ => ExitCode::NoSuchMessage,
    }
}

fn import_code(error: &ImportError) -> ExitCode {
    match error {
        ImportError::NoConfig { .. } | ImportError::Parse { .. } => ExitCode::Config,
        ImportError::Read { .. } | ImportError::State(_) | ImportError::Lock(_) => {
            ExitCode::IoError
        }
    }
}

fn connect_code(error: &ConnectError) -> ExitCode {
    match error {
        ConnectError::Transport(e) => transport_code(e),
        ConnectError::Proxy(e) => proxy_code(e),
        ConnectError::Password(_) | ConnectError::PlaintextRefused { .. } => ExitCode::Config,
        ConnectError::NoGreeting { .. } | ConnectError::ClosedDuringPrompt { .. } => {
            ExitCode::TempFail
        }
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
        | TransportError::CaFileUnreadable { .. }
        | TransportError::ClientCertificate { .. }
        | TransportError::NoRootCertificates
        | TransportError::ServerName { .. }
        | TransportError::PlaintextPort { .. }
        | TransportError::NotTls { .. } => ExitCode::Config,
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
        FetchError::MdaWithoutCommand => ExitCode::Usage,
        FetchError::Busy { .. }
        | FetchError::QuitUnconfirmed { .. }
        | FetchError::Withheld { .. } => ExitCode::TempFail,
        FetchError::BadServer(_) => ExitCode::Usage,
        // 4xx: tried again next run. 5xx only: EX_DATAERR, once, so cron and systemd notice;
        // later runs skip the rejected messages and succeed.
        FetchError::RefusedByServer { temporary, .. } => {
            if *temporary {
                ExitCode::TempFail
            } else {
                ExitCode::NoSuchMessage
            }
        }
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
        // A full disk or a read-only file system does not cure itself by waiting; other
        // failures here (an MDA that failed, for one) may.
        DeliverError::Write(cause) if is_local_failure(cause) => ExitCode::IoError,
        DeliverError::Write(_) => ExitCode::TempFail,
        // Another program holds the mbox's lock: it lets go eventually.
        DeliverError::Local { cause, .. } if cause.kind() == std::io::ErrorKind::WouldBlock => {
            ExitCode::TempFail
        }
        DeliverError::Open { .. } | DeliverError::Local { .. } | DeliverError::State(_) => {
            ExitCode::IoError
        }
        DeliverError::Server(e) => server_code(e),
        DeliverError::Misaddressed { .. } | DeliverError::MdaNotStarted { .. } => ExitCode::Config,
    }
}

/// Whether `error` is a local file system refusing a write (EX_IOERR), whichever file it was:
/// read-only, full, over quota, not permitted, the wrong kind of file, or broken. Waiting does
/// not cure these, so they are never "try again later".
pub(crate) fn is_local_failure(error: &std::io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(
            libc::EROFS
                | libc::ENOSPC
                | libc::EDQUOT
                | libc::EFBIG
                | libc::EACCES
                | libc::EPERM
                | libc::EISDIR
                | libc::ENOTDIR
                | libc::ENOENT
                | libc::ELOOP
                | libc::ENAMETOOLONG
                | libc::EMLINK
                | libc::EIO
        )
    )
}

/// An LMTP/SMTP session that failed: temporary (the network, the server's 4xx greeting, a
/// message that may have been delivered) is 75, a recipient the envelope cannot carry is a
/// configuration error, a server breaking the protocol is 76.
fn server_code(error: &crate::store::smtp::DeliveryError) -> ExitCode {
    use crate::store::smtp::DeliveryError;
    match error {
        e if e.is_temporary() => ExitCode::TempFail,
        DeliveryError::Recipient { .. } => ExitCode::Config,
        DeliveryError::Protocol { .. } => ExitCode::Protocol,
        DeliveryError::Message(_) => ExitCode::IoError,
        _ => ExitCode::Unavailable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_quoted_by_its_error_is_said_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot read config file /tmp: {source}")]
        struct Quoting {
            source: std::io::Error,
        }
        let io = || std::io::Error::other("Is a directory (os error 21)");
        let quoting = anyhow::Error::new(Quoting { source: io() });
        assert_eq!(
            describe(&quoting),
            "cannot read config file /tmp: Is a directory (os error 21)"
        );
        // A context that does not quote its cause still shows it, and server text is filtered.
        let context = anyhow::Error::new(io()).context("the download stopped\x1b[2J");
        assert_eq!(
            describe(&context),
            "the download stopped[2J: Is a directory (os error 21)"
        );
    }

    /// Trial item 3: a Maildir on a read-only file system was 75 ("try again later") because
    /// its EROFS came as a `DeliverError::Write`; by cause, local write failures are 74.
    #[test]
    fn a_read_only_file_system_is_a_local_io_error_not_a_temporary_one() {
        use crate::store::deliver::DeliverError;
        let os = std::io::Error::from_raw_os_error;
        for errno in [
            libc::EROFS,
            libc::ENOSPC,
            libc::EACCES,
            libc::EDQUOT,
            libc::EIO,
        ] {
            let write = anyhow::Error::new(FetchError::Deliver(DeliverError::Write(os(errno))));
            assert_eq!(classify(&write), ExitCode::IoError, "errno {errno}");
            let local = anyhow::Error::new(FetchError::Deliver(DeliverError::Local {
                path: "/m".into(),
                cause: os(errno),
            }));
            assert_eq!(classify(&local), ExitCode::IoError, "errno {errno}");
            assert!(describe(&local).starts_with("cannot write /m: "));
        }
        // An MDA that failed, or a network error, may cure itself: still 75.
        let mda = std::io::Error::other("mda `false` failed (exit status: 1)");
        let mda = anyhow::Error::new(FetchError::Deliver(DeliverError::Write(mda)));
        assert_eq!(classify(&mda), ExitCode::TempFail);
        let timeout = std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out");
        let network = anyhow::Error::new(pop3::Error::Io(timeout));
        assert_eq!(classify(&network), ExitCode::TempFail);
        let reset = anyhow::Error::new(pop3::Error::Io(os(libc::ECONNRESET)));
        assert_eq!(classify(&reset), ExitCode::TempFail);
    }

    #[test]
    fn all_lists_every_code_once_in_numeric_order() {
        let numbers: Vec<u8> = ExitCode::ALL.iter().map(|c| *c as u8).collect();
        assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
    }

    #[test]
    fn the_man_page_table_is_generated_from_the_enum() {
        assert_eq!(
            ExitCode::man_table(),
            "0 success; 64 usage; 65 no such message; 68 unknown host; 69 unavailable; \
             70 internal error; 74 local I/O error; 75 temporary failure; 76 protocol or TLS error; \
             77 login refused; 78 configuration error."
        );
    }

    /// The `| code | name | when |` rows of the first table under `heading` in `doc`.
    fn documented_codes(doc: &str, heading: &str) -> Vec<(u8, String)> {
        let section = doc
            .split_once(heading)
            .unwrap_or_else(|| panic!("no {heading:?}"))
            .1;
        section
            .lines()
            .skip_while(|line| !line.starts_with('|'))
            .take_while(|line| line.starts_with('|'))
            .filter_map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                Some((cells.get(1)?.parse().ok()?, cells.get(2)?.to_string()))
            })
            .collect()
    }

    #[test]
    fn the_exit_code_tables_in_the_docs_match_the_enum() {
        let expected: Vec<(u8, String)> = ExitCode::ALL
            .iter()
            .map(|c| (*c as u8, c.sysexits_name().unwrap_or("").to_owned()))
            .collect();
        let readme = include_str!("../README.md");
        assert_eq!(
            documented_codes(readme, "## Exit codes"),
            expected,
            "README.md"
        );
        let troubleshooting = include_str!("../docs/troubleshooting.md");
        assert_eq!(
            documented_codes(troubleshooting, "## Exit codes"),
            expected,
            "docs/troubleshooting.md"
        );
    }
}
