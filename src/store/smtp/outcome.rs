//! Why delivery over LMTP or SMTP stops, and what became of each message: the [`Verdict`] on a
//! message and the [`DeliveryError`] that ends a connection. Separate so that the callers
//! (`store::deliver`, `exit`) see the outcomes without the driver's workings.

use std::io;

use super::codec::Reply;
use super::settings::{Endpoint, Protocol};

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The server took responsibility for it: the final 2xx (LMTP: for every recipient).
    Delivered,
    /// Of several recipients, the server refused these (5xx to RCPT) and took the message for
    /// the others (the final 2xx for each of them). Delivered, so it must not be sent again;
    /// the refused recipients are a matter of configuration for the caller to report.
    PartlyDelivered {
        /// The refused recipients, with the server's answer to each.
        refused: Vec<(String, Reply)>,
    },
    /// A 4xx answer: leave the message on the POP3 server and try again next run.
    Temporary(Reply),
    /// A 5xx answer about the message itself (to its content, after DATA or BDAT; or to its
    /// size or its sender's address in the envelope): the server will not take this message
    /// as it is.
    Permanent(Reply),
    /// A 5xx answer to MAIL FROM or RCPT TO that is about the envelope, not the message (an
    /// unknown recipient, relaying denied): every message would get it, so it is a matter of
    /// configuration and says nothing about this message. The connection goes on.
    EnvelopeRefused {
        /// True when MAIL FROM was refused, false for RCPT TO.
        sender: bool,
        /// The server's answer.
        reply: Reply,
    },
}

/// Why delivery could not go on. After any of these the connection is closed; a new
/// [`Deliverer`](super::Deliverer) starts a new one.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The server could not be reached.
    #[error("cannot connect to the {protocol} server {endpoint}: {source}")]
    Connect {
        /// LMTP or SMTP.
        protocol: Protocol,
        /// Where.
        endpoint: Endpoint,
        /// Why.
        source: io::Error,
    },
    /// The server refused the session (its greeting or the answer to LHLO/EHLO/HELO).
    #[error("the {protocol} server refused the session: {reply}")]
    Refused {
        /// LMTP or SMTP.
        protocol: Protocol,
        /// Its answer.
        reply: Reply,
    },
    /// Reading from or writing to the server failed (including a timeout).
    #[error("talking to the {protocol} server: {source}")]
    Io {
        /// LMTP or SMTP.
        protocol: Protocol,
        /// Why.
        source: io::Error,
    },
    /// The connection failed after the whole message was sent and before the server's final
    /// answer: the server may or may not have accepted it.
    #[error(
        "the connection to the {protocol} server failed after the message was sent, before its answer: it may have been delivered ({source})"
    )]
    Unconfirmed {
        /// LMTP or SMTP.
        protocol: Protocol,
        /// Why.
        source: io::Error,
    },
    /// The server broke the protocol.
    #[error("the {protocol} server broke the protocol: {detail}")]
    Protocol {
        /// LMTP or SMTP.
        protocol: Protocol,
        /// What it did.
        detail: String,
    },
    /// The local message could not be read.
    #[error("cannot read the message to deliver: {0}")]
    Message(io::Error),
    /// The recipient cannot be used in an envelope.
    #[error("recipient {recipient:?} cannot be used: {reason}")]
    Recipient {
        /// The configured recipient.
        recipient: String,
        /// Why not.
        reason: String,
    },
}

impl DeliveryError {
    /// True when trying again later may work (the server or the network), false for a problem
    /// that needs a change of configuration or a local fix.
    pub fn is_temporary(&self) -> bool {
        match self {
            DeliveryError::Connect { .. }
            | DeliveryError::Io { .. }
            | DeliveryError::Unconfirmed { .. } => true,
            DeliveryError::Refused { reply, .. } => reply.is_transient(),
            DeliveryError::Protocol { .. }
            | DeliveryError::Message(_)
            | DeliveryError::Recipient { .. } => false,
        }
    }
}
