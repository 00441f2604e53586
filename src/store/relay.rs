//! Delivery of `fetch-all` through an LMTP or SMTP server (`lmtp`, `smtp`): each message is
//! spooled to an anonymous temporary file (complete and seekable before anything is sent, so
//! a POP3 failure mid-message sends nothing), then handed to one [`Deliverer`] kept for the
//! whole run. The server's verdict on each message is the caller's to act on: only the final
//! 2xx counts as delivered.

use std::fs::File;
use std::io::{self, BufWriter, Seek, Write};
use std::time::Duration;

use super::smtp::settings::DeliverySettings;
use super::smtp::{Deliverer, DeliveryError, Options, Stream, Verdict};

/// The open connection to the server of a run (made on the first message).
pub(crate) struct Relay {
    settings: DeliverySettings,
    options: Options,
    connection: Option<Deliverer<Stream>>,
}

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
        }
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

    /// Hands the complete message to the server. A connection that broke while idle (the
    /// server's own timeout during a long download) is replaced once, but only when the failure
    /// came before the message was complete on the wire: after the final `.` the server may
    /// have it ([`DeliveryError::Unconfirmed`]), and sending it again could deliver it twice.
    pub(crate) fn deliver(&mut self, message: RelayMessage) -> Result<Verdict, DeliveryError> {
        let mut spool = message
            .spool
            .into_inner()
            .map_err(|e| DeliveryError::Message(e.into_error()))?;
        let recipients = [self.settings.recipient.clone()];
        let reused = self.connection.is_some();
        let result = self.deliver_once(&mut spool, &recipients);
        match result {
            Err(DeliveryError::Io { .. }) if reused => {
                self.connection = None;
                self.deliver_once(&mut spool, &recipients)
            }
            other => other,
        }
    }

    fn deliver_once(
        &mut self,
        spool: &mut File,
        recipients: &[String],
    ) -> Result<Verdict, DeliveryError> {
        spool.rewind().map_err(DeliveryError::Message)?;
        let connection = match &mut self.connection {
            Some(connection) => connection,
            none => none.insert(Deliverer::connect(&self.settings.target, &self.options)?),
        };
        let result = connection.deliver(&mut *spool, recipients);
        if result.is_err() {
            // After an error the connection cannot be used any more.
            self.connection = None;
        }
        result
    }

    /// Ends the session politely (QUIT); its answer changes nothing, every verdict is in.
    pub(crate) fn quit(&mut self) {
        if let Some(connection) = self.connection.take() {
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
