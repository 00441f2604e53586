//! The POP3 protocol core (RFC 1939, RFC 2449 extensions, RFC 5034 SASL).
//!
//! Everything here is pure except [`client`]: commands are encoded to bytes, replies are parsed
//! from bytes, and multi-line responses are decoded by a state machine that is fed whatever
//! chunks the transport happened to deliver. [`client`] drives those pieces over any
//! `Read + Write` stream; it opens no sockets, reads no configuration and prints nothing (a
//! caller may install a [`client::Tracer`] to see the dialogue).

pub mod capability;
pub mod client;
pub mod command;
pub mod multiline;
pub mod response;
#[cfg(test)]
mod transcript;
#[cfg(test)]
mod transcript_tests;

use std::fmt;

pub use capability::Capabilities;
pub(crate) use client::Reply;
pub use client::{Client, Session};
pub use command::Command;
pub use response::{ResponseCode, StatusLine};

/// A message number: valid only within one POP3 session, because the server renumbers the
/// maildrop at every login (RFC 1939 §4). Kept apart from [`Uid`] so the two cannot be mixed up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageNumber(u32);

impl MessageNumber {
    /// A message number; `None` for 0, which RFC 1939 never assigns.
    pub fn new(number: u32) -> Option<MessageNumber> {
        (number > 0).then_some(MessageNumber(number))
    }

    /// The number as the server counts it (1-based).
    pub fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for MessageNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Delegate so that width and alignment flags work in tables.
        fmt::Display::fmt(&self.0, f)
    }
}

/// A unique-id (RFC 1939 §7, UIDL): persistent across sessions, 1 to 70 characters in the
/// range 0x21 to 0x7E, or the digest form of an id that breaks those rules
/// ([`Uid::from_listing`]). The server chooses it, so it must be treated as untrusted text (it
/// may look like `../../x`), and it need not be unique: servers such as popa3d give copies of
/// one message the same id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uid(String);

impl Uid {
    /// A unique-id, or `None` when `text` is empty, longer than 70 octets or holds characters
    /// outside 0x21..=0x7E.
    pub fn new(text: &str) -> Option<Uid> {
        let valid = !text.is_empty()
            && text.len() <= 70
            && text.bytes().all(|b| (0x21..=0x7e).contains(&b));
        valid.then(|| Uid(text.to_owned()))
    }

    /// The unique-id as the server sent it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// One line of a scan listing (`LIST`): a message and its size in octets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanListing {
    /// The message number in this session.
    pub number: MessageNumber,
    /// Size in octets as the server counts it (with CRLF line endings).
    pub size: u64,
}

/// One line of a unique-id listing (`UIDL`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniqueIdListing {
    /// The message number in this session.
    pub number: MessageNumber,
    /// The message's persistent unique-id.
    pub uid: Uid,
}

/// The answer to `STAT`: the maildrop's message count and total size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaildropStat {
    /// Number of messages (not counting those marked as deleted).
    pub messages: u32,
    /// Total size in octets.
    pub octets: u64,
}

/// Errors of the protocol core and of the client that drives it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered `-ERR` (the status line says why, maybe with a response code).
    #[error("server refused {command}: {status}")]
    Server {
        /// The command that was refused, with secrets masked.
        command: String,
        /// The server's status line.
        status: StatusLine,
    },
    /// The server sent something that is not valid POP3.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A line from the server was longer than allowed (RFC 2449 §4: 512 octets for status lines).
    #[error("the server sent a line longer than {limit} octets")]
    LineTooLong {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// A command argument held CR, LF or NUL, which would let it smuggle a second command.
    #[error("invalid argument for {command}: it must not contain CR, LF or NUL")]
    InvalidArgument {
        /// The command name.
        command: &'static str,
    },
    /// The server closed the connection while a reply was expected.
    #[error("the server closed the connection unexpectedly")]
    ConnectionClosed,
    /// No data arrived (or could be sent) within the configured timeout.
    #[error("timed out waiting for the server")]
    Timeout,
    /// After `+OK` to `STLS` the server had already sent more bytes: they were not protected by
    /// TLS and could be injected by an attacker (CVE-2011-0411 and kin), so the session stops.
    #[error("the server sent data before the TLS handshake (possible response injection)")]
    StlsInjection,
    /// A sink refused the data of a multi-line response (for example a full disk).
    #[error("could not store the data received")]
    Sink(#[source] std::io::Error),
    /// Any other transport error.
    #[error("connection error")]
    Io(#[source] std::io::Error),
}

impl Error {
    /// The server's response code, when the server refused a command with one.
    pub fn response_code(&self) -> Option<&ResponseCode> {
        match self {
            Error::Server { status, .. } => status.code.as_ref(),
            _ => None,
        }
    }

    pub(crate) fn from_io(err: std::io::Error) -> Error {
        use std::io::ErrorKind;
        match err.kind() {
            ErrorKind::WouldBlock | ErrorKind::TimedOut => Error::Timeout,
            ErrorKind::UnexpectedEof
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe => Error::ConnectionClosed,
            _ => Error::Io(err),
        }
    }
}

/// Result type of the protocol core.
pub type Result<T, E = Error> = std::result::Result<T, E>;
