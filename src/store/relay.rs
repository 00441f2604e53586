//! Delivery of `fetch-all` through an LMTP or SMTP server (`lmtp`, `smtp`): each message is
//! spooled to an anonymous temporary file (complete and seekable before anything is sent, so
//! a POP3 failure mid-message sends nothing), then handed to one [`Deliverer`] kept for the
//! whole run. The server's verdict on each message is the caller's to act on: only the final
//! 2xx counts as delivered.
//!
//! Verdicts may come later than their messages: on a pipelining connection up to
//! [`super::smtp::WINDOW`] messages are sent before the oldest one's answer is read (with
//! CHUNKING, `BDAT n LAST` right behind each envelope; without it, each envelope ahead of the
//! previous message's final answer). Verdicts always come in the order the messages were handed
//! over, and [`Relay::settle`] reads those still outstanding; a message is recorded only once
//! its own verdict is in, so a kill re-sends at most the window.

use std::fs::File;
use std::io::{self, BufWriter, Seek, Write};
use std::time::{Duration, Instant};

use super::smtp::settings::DeliverySettings;
use super::smtp::{Deliverer, DeliveryError, Options, Stream, Verdict};

/// The open connection to the server of a run (made on the first message).
pub(crate) struct Relay {
    settings: DeliverySettings,
    options: Options,
    connection: Option<Deliverer<Stream>>,
    /// A failure that came after some verdicts: those were returned first, this comes next.
    failure: Option<DeliveryError>,
    /// When the last message went out.
    sent_at: Option<Instant>,
}

/// Messages in flight this long are answered before the next is sent: a slow download neither
/// leaves them unrecorded for long nor lets the server's idle timeout break a connection that
/// still owes answers (an idle connection that broke is replaced, one with answers owed is not).
const SETTLE_AFTER: Duration = Duration::from_secs(1);

/// A message being spooled for the server.
pub(crate) struct RelayMessage {
    spool: BufWriter<File>,
}

impl Relay {
    /// A relay to `settings`' server, with `timeout` for connecting and every read and write.
    pub(crate) fn new(settings: &DeliverySettings, timeout: Duration) -> Relay {
        Relay {
            settings: settings.clone(),
            options: Options {
                timeout,
                pipelining: std::env::var_os(NO_PIPELINING).is_none(),
                ..Options::default()
            },
            connection: None,
            failure: None,
            sent_at: None,
        }
    }

    /// Where and to whom this relay delivers.
    pub(crate) fn settings(&self) -> &DeliverySettings {
        &self.settings
    }

    /// Whether permanently refused messages are deleted from the POP3 server.
    pub(crate) fn delete_rejected(&self) -> bool {
        self.settings.delete_rejected
    }

    /// Starts spooling a message.
    pub(crate) fn start() -> io::Result<RelayMessage> {
        // Unlinked at once (tempfile()), so nothing is left behind whatever happens.
        Ok(RelayMessage {
            spool: BufWriter::with_capacity(64 * 1024, tempfile::tempfile()?),
        })
    }

    /// Hands the complete message to the server and returns the verdicts that came in
    /// meanwhile, oldest first: for messages handed over before, and maybe for this one. A
    /// connection that broke while idle (the server's own timeout during a long download) is
    /// replaced once, but only when nothing was in flight and the failure came before the
    /// message was complete on the wire: after that the server may have it
    /// ([`DeliveryError::Unconfirmed`]), and sending it again could deliver it twice.
    pub(crate) fn deliver(&mut self, message: RelayMessage) -> Result<Vec<Verdict>, DeliveryError> {
        if let Some(failure) = self.failure.take() {
            return Err(failure);
        }
        let mut spool = message
            .spool
            .into_inner()
            .map_err(|e| DeliveryError::Message(e.into_error()))?;
        let recipients = [self.settings.recipient.clone()];
        let mut settled = Vec::new();
        if self.sent_at.is_some_and(|at| at.elapsed() >= SETTLE_AFTER)
            && let Some(connection) = &mut self.connection
            && let Err(failure) = connection.settle(&mut settled)
        {
            return self.outcome(Err(failure), settled);
        }
        let idle = self.connection.as_ref().map(|c| c.in_flight() == 0);
        self.sent_at = Some(Instant::now());
        let mut result = self.submit_once(&mut spool, &recipients, &mut settled);
        if let Err(DeliveryError::Io { .. }) = result
            && idle == Some(true)
            && settled.is_empty()
        {
            result = self.submit_once(&mut spool, &recipients, &mut settled);
        }
        self.outcome(result, settled)
    }

    /// Reads the verdicts still outstanding, oldest first; empty when there are none.
    pub(crate) fn settle(&mut self) -> Result<Vec<Verdict>, DeliveryError> {
        if let Some(failure) = self.failure.take() {
            return Err(failure);
        }
        let mut settled = Vec::new();
        let result = match &mut self.connection {
            Some(connection) => connection.settle(&mut settled),
            None => Ok(()),
        };
        self.outcome(result, settled)
    }

    /// Verdicts first: a failure after some of them waits for the next call.
    fn outcome(
        &mut self,
        result: Result<(), DeliveryError>,
        settled: Vec<Verdict>,
    ) -> Result<Vec<Verdict>, DeliveryError> {
        match result {
            Ok(()) => Ok(settled),
            Err(failure) => {
                // After an error the connection cannot be used any more.
                self.connection = None;
                if settled.is_empty() {
                    Err(failure)
                } else {
                    self.failure = Some(failure);
                    Ok(settled)
                }
            }
        }
    }

    fn submit_once(
        &mut self,
        spool: &mut File,
        recipients: &[String],
        settled: &mut Vec<Verdict>,
    ) -> Result<(), DeliveryError> {
        spool.rewind().map_err(DeliveryError::Message)?;
        let connection = match &mut self.connection {
            Some(connection) => connection,
            none => none.insert(Deliverer::connect(&self.settings.target, &self.options)?),
        };
        let result = connection.submit(&mut *spool, recipients, settled);
        if result.is_err() {
            self.connection = None;
        }
        result
    }

    /// Ends the session politely (QUIT); its answer changes nothing, every verdict is in.
    /// With messages still in flight it only hangs up: their verdicts are unknown, so they
    /// stay unrecorded and are sent again next run.
    pub(crate) fn quit(&mut self) {
        if let Some(connection) = self.connection.take()
            && connection.in_flight() == 0
        {
            let _ = connection.quit();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.quit();
    }
}

/// Set (to anything) to send one command at a time although the server offers PIPELINING:
/// for tests and for a server whose PIPELINING is broken.
pub const NO_PIPELINING: &str = "POP3_SMTP_NO_PIPELINING";

impl RelayMessage {
    /// Spools message data as received; the encoder normalises line endings when sending.
    pub(crate) fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.spool.write_all(data)
    }

    /// Gives up on this message: the server never sees it.
    pub(crate) fn abort(self) {}
}
