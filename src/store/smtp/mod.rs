//! Delivery of fetched messages to a mail server over LMTP (RFC 2033) or SMTP (RFC 5321), the
//! way fetchmail hands mail to the local MTA.
//!
//! [`codec`] is the sans-I/O core (replies, commands, DATA encoding, the message scan);
//! [`settings`] parses the config keys. The driver, a [`Deliverer`], opens the connection (TCP
//! `host:port` or a Unix socket), greets with LHLO or EHLO (falling back to HELO), and sends one
//! message per [`Deliverer::submit`] call. When the server offers PIPELINING (RFC 2920) up to
//! [`WINDOW`] messages are sent before the oldest one's answers are read: with CHUNKING
//! (RFC 3030) the envelope and `BDAT n LAST` with the message in one write, without it MAIL,
//! RCPT and DATA in one write, ahead of the previous message's final answer. Verdicts come back
//! in the order the messages were sent. The connection is reused across messages.
//!
//! A message counts as delivered only after the final 2xx for it; with LMTP, after a 2xx for
//! every recipient (RFC 2033 §4.2). Every read and write has a timeout, and nothing the server
//! sends makes this side allocate more than a bounded amount. See docs/delivery.md.
//!
//! This file holds the [`Deliverer`] and the session around the messages: the greeting, the
//! hello (where LMTP and SMTP differ), QUIT. The driver's other parts:
//! - [`connection`]: [`Options`], the [`Stream`] and opening it.
//! - [`transaction`]: one message's envelope and content on the wire.
//! - [`window`]: the messages in flight and the reading of their answers.
//! - [`exchange`]: one command, one reply, bounded.
//! - [`outcome`]: the [`Verdict`] on a message and the [`DeliveryError`] that ends a
//!   connection.
//! - [`identity`]: the host and user names this side gives.

pub mod codec;
mod connection;
mod exchange;
mod identity;
mod outcome;
pub mod settings;
mod transaction;
mod window;

use std::io::{BufReader, Read, Seek, Write};

pub use codec::{EnhancedCode, Extensions, Reply, ReplyError};
pub use connection::{Options, Stream};
pub use identity::local_user;
pub use outcome::{DeliveryError, Verdict};
pub use settings::{Endpoint, Protocol, Target};

use codec::Command;
use window::Pending;

/// Octets of the message read per chunk, and the most kept in the send buffer before it is
/// written out: memory stays bounded whatever the message size.
const CHUNK: usize = 64 * 1024;

/// Messages sent and not yet answered, at most, on a pipelining connection: the most a kill
/// can deliver twice (the server may have taken them before their answer was read and
/// recorded). Small, because the gain stops once the server's answers overlap the sending.
pub const WINDOW: usize = 4;

/// One connection to an LMTP or SMTP server, delivering messages one after another.
pub struct Deliverer<S: Read + Write> {
    conn: BufReader<S>,
    protocol: Protocol,
    extensions: Extensions,
    pipelining: bool,
    /// A transaction was left half done (MAIL accepted, then a failure): RSET before the next.
    needs_rset: bool,
    /// See [`Options::window`].
    window: usize,
    /// Messages sent and not yet answered, oldest first.
    pending: std::collections::VecDeque<Pending>,
    /// Transactions started on this connection.
    transactions: u64,
    out: Vec<u8>,
    /// Reused buffer for reading message chunks.
    chunk: Vec<u8>,
}

impl<S: Read + Write> Deliverer<S> {
    /// Reads the greeting and sends LHLO (LMTP) or EHLO, falling back to HELO when the server
    /// does not know EHLO (SMTP only: RFC 2033 has no HELO). The stream's timeouts are the
    /// caller's.
    pub fn start(
        stream: S,
        protocol: Protocol,
        options: &Options,
    ) -> Result<Deliverer<S>, DeliveryError> {
        let mut deliverer = Deliverer {
            conn: BufReader::with_capacity(8 * 1024, stream),
            protocol,
            extensions: Extensions::default(),
            pipelining: false,
            needs_rset: false,
            window: options.window,
            pending: std::collections::VecDeque::new(),
            transactions: 0,
            out: Vec::with_capacity(CHUNK + 1024),
            chunk: Vec::new(),
        };
        let greeting = deliverer.read_reply()?;
        if greeting.code != 220 {
            return Err(deliverer.refused(greeting));
        }
        let name = options.client_name.as_str();
        let hello = match protocol {
            Protocol::Lmtp => Command::Lhlo(name),
            Protocol::Smtp => Command::Ehlo(name),
        };
        let reply = deliverer.command(&hello)?;
        if reply.is_positive() {
            deliverer.extensions = Extensions::from_ehlo(&reply);
        } else if protocol == Protocol::Smtp && reply.is_permanent() {
            // RFC 5321 §3.2: a server that does not know EHLO answers 500/502; try HELO.
            let reply = deliverer.command(&Command::Helo(name))?;
            if !reply.is_positive() {
                return Err(deliverer.refused(reply));
            }
        } else {
            return Err(deliverer.refused(reply));
        }
        deliverer.pipelining = options.pipelining && deliverer.extensions.pipelining;
        deliverer.extensions.chunking &= options.chunking;
        Ok(deliverer)
    }

    /// What the server announced.
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    /// Whether commands are pipelined on this connection.
    pub fn is_pipelining(&self) -> bool {
        self.pipelining
    }

    /// Messages sent whose answers have not been read yet.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Delivers `message` and waits for the server's verdict on it (and on any message still
    /// in flight before it, whose verdicts are dropped: use [`Deliverer::submit`] for those).
    /// After `Err` the connection cannot be used any more.
    pub fn deliver<R: Read + Seek>(
        &mut self,
        message: R,
        recipients: &[String],
    ) -> Result<Verdict, DeliveryError> {
        let mut settled = Vec::new();
        self.submit(message, recipients, &mut settled)?;
        self.settle(&mut settled)?;
        Ok(settled.pop().expect("a verdict for the message just sent"))
    }

    /// Sends QUIT and waits for its answer; the connection closes either way.
    pub fn quit(mut self) -> Result<(), DeliveryError> {
        let reply = self.command(&Command::Quit)?;
        if reply.code != 221 {
            return Err(self.unexpected("QUIT", &reply));
        }
        Ok(())
    }
}
