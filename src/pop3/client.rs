//! The POP3 client over any `Read + Write` stream: the only part of the protocol core that does
//! I/O. RFC 1939's states are types: a [`Client`] is in the AUTHORIZATION state and becomes a
//! [`Session`] (TRANSACTION) by logging in; [`Session::quit`] enters the UPDATE state, so
//! deletions become real only through it.
//!
//! This file holds the [`Session`] and its one-command verbs; the rest is split by concern:
//! - [`connection`]: the stream and its receive buffer; sending commands, reading status
//!   lines and multi-line responses, tracing. Shared by both states.
//! - [`authorization`]: the greeting, STLS and the logins (USER/PASS, APOP, SASL), which
//!   make a [`Client`] into a [`Session`].
//! - [`listing`]: LIST, UIDL and CAPA, the replies collected into memory, and their bounds.
//! - [`pipeline`]: many commands in flight, replies handed on as events in order.

mod authorization;
mod connection;
mod listing;
mod pipeline;
#[cfg(test)]
mod test_streams;

use std::io::{Read, Write};

pub use authorization::{Client, Greeting};
use connection::Connection;
pub use connection::{Direction, Tracer};
pub use pipeline::MAX_PIPELINE_WINDOW;
pub(crate) use pipeline::{PipelineDriver, Reply};

use super::command::Command;
use super::multiline::Sink;
use super::response::{self, StatusLine};
use super::{Error, MaildropStat, MessageNumber, Result};

/// A logged-in connection in the TRANSACTION state.
pub struct Session<S> {
    connection: Connection<S>,
}

impl<S> Session<S> {
    /// The stream underneath, e.g. to shut its socket down from another thread.
    pub(crate) fn stream(&self) -> &S {
        &self.connection.stream
    }
}

impl<S: Read + Write> Session<S> {
    /// `STAT`: message count and total size.
    pub fn stat(&mut self) -> Result<MaildropStat> {
        let status = self.connection.command(Command::Stat)?;
        response::parse_stat(&status.text)
    }

    /// `RETR msg`: streams the message (byte-stuffing removed) into `sink`; returns its size.
    pub fn retr(&mut self, number: MessageNumber, sink: &mut Sink<'_>) -> Result<u64> {
        self.connection.command(Command::Retr(number))?;
        self.connection.read_multiline(sink)
    }

    /// `DELE msg`: marks a message as deleted; it is removed only by a successful
    /// [`Session::quit`].
    pub(crate) fn dele(&mut self, number: MessageNumber) -> Result<()> {
        self.connection.command(Command::Dele(number)).map(drop)
    }

    /// `RSET`: unmarks every message marked as deleted.
    pub(crate) fn rset(&mut self) -> Result<()> {
        self.connection.command(Command::Rset).map(drop)
    }

    /// `QUIT`: enters the UPDATE state. Messages marked as deleted are gone only when this
    /// returns `Ok(Some(_))` (the server answered `+OK`); on any error nothing was deleted.
    ///
    /// When no `DELE` was sent in this session, QUIT is sent and its reply not awaited:
    /// `Ok(None)`. Only DELE marks a message (RFC 1939 §5), so the UPDATE state then removes
    /// nothing and the reply could not change what the caller knows; the server still gets
    /// the QUIT, in order, and a session that ends without it is not an error either (RFC 1939
    /// §6: it just skips the UPDATE state). That saves a round trip on every run that deletes
    /// nothing, e.g. a `fetch-all` that finds no new mail.
    ///
    /// When QUIT was already sent as the last command of a [`Session::pipeline_with`] (in the
    /// same write as the last DELEs: one round trip for both), its reply as read there is
    /// returned, and nothing is sent.
    pub fn quit(mut self) -> Result<Option<StatusLine>> {
        match self.connection.pipelined_quit.take() {
            Some(Some(reply)) => return reply.map(Some),
            // Sent, but the exchange broke off before its reply could be read.
            Some(None) => return Err(Error::ConnectionClosed),
            None => {}
        }
        if !self.connection.dele_sent {
            // Replies to commands sent ahead are read first (they came with the login's reply,
            // so this costs no wait): closing a socket with unread data makes the kernel reset
            // the connection, and the server might then drop the QUIT unread.
            self.connection.skip_ahead()?;
            self.connection.send(&[Command::Quit])?;
            return Ok(None);
        }
        self.connection.command(Command::Quit).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pop3::client::test_streams::*;

    #[test]
    fn login_stat_list_uidl_retr_quit() {
        let server = b"+OK ready <1896.697170952@dbc.mtview.ca.us>\r\n+OK\r\n+OK\r\n\
            +OK 2 320\r\n\
            +OK 2 messages\r\n1 120\r\n2 200\r\n.\r\n\
            +OK\r\n1 whqtswO00WBw418f9t5JxYwZ\r\n2 QhdPYR:00WBw1Ph7x7\r\n.\r\n\
            +OK 120 octets\r\nSubject: x\r\n\r\n..hi\r\n.\r\n\
            +OK bye\r\n";
        let mut session = session(server);
        assert_eq!(session.stat().unwrap().messages, 2);
        let list = session.list().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[1].size, 200);
        let uids = session.uidl().unwrap();
        assert_eq!(uids[0].uid.as_str(), "whqtswO00WBw418f9t5JxYwZ");
        let mut message = Vec::new();
        session
            .retr(n(1), &mut |d| {
                message.extend_from_slice(d);
                Ok(())
            })
            .unwrap();
        assert_eq!(message, b"Subject: x\r\n\r\n.hi\r\n");
        assert_eq!(
            session.connection.stream.written,
            b"USER alice\r\nPASS pw\r\nSTAT\r\nLIST\r\nUIDL\r\nRETR 1\r\n"
        );
        // Nothing was marked: QUIT leaves without waiting for "+OK bye".
        assert!(session.quit().unwrap().is_none());
    }

    #[test]
    fn quit_without_deletions_sends_quit_and_does_not_wait_for_the_reply() {
        // The server never answers QUIT (the stream ends): waiting would be an error.
        let (mut session, written) = shared_session(b"+OK hi\r\n+OK\r\n+OK\r\n+OK 2 320\r\n");
        session.stat().unwrap();
        assert!(session.quit().unwrap().is_none());
        assert_eq!(
            written.borrow().as_slice(),
            b"USER alice\r\nPASS pw\r\nSTAT\r\nQUIT\r\n"
        );
    }

    #[test]
    fn quit_after_a_dele_waits_for_the_server_to_confirm() {
        let (mut session, _) = shared_session(b"+OK hi\r\n+OK\r\n+OK\r\n+OK marked\r\n+OK bye\r\n");
        session.dele(n(1)).unwrap();
        assert_eq!(session.quit().unwrap().unwrap().text, "bye");

        // No reply to QUIT after a DELE: the deletion is unconfirmed, so an error.
        let (mut session, _) = shared_session(b"+OK hi\r\n+OK\r\n+OK\r\n+OK marked\r\n");
        session.dele(n(1)).unwrap();
        assert!(matches!(session.quit(), Err(Error::ConnectionClosed)));
    }

    #[test]
    fn client_writes_exact_bytes() {
        let server = b"+OK hi\r\n+OK\r\n+OK\r\n+OK 1 5\r\n+OK bye\r\n";
        let (client, _) = Client::connect(OneByteStream::new(server), None).unwrap();
        let mut session = client.login_user("alice", "pw").unwrap();
        session.stat().unwrap();
        session.dele(n(1)).unwrap();
        assert_eq!(
            session.connection.stream.written,
            b"USER alice\r\nPASS pw\r\nSTAT\r\nDELE 1\r\n"
        );
    }
}
