//! Pipelining (RFC 2449 §6.6): many commands in flight on one connection, their replies handed
//! to the caller in order as events. Separate from the one-command-at-a-time verbs of
//! [`Session`] because it owns the window (how much may be unanswered, when to refill) and the
//! driver interface through which `fetch-all` decides what to send next while replies arrive.

use std::io::{Read, Write};

use super::Session;
use super::connection::Direction;
use crate::pop3::command::Command;
use crate::pop3::response::{MAX_STATUS_LINE, StatusLine, parse_status_line};
use crate::pop3::{Error, Result};

/// One event of a pipelined command's reply, in order: `Accepted`, then for multi-line replies
/// any number of `Data` chunks and `End`; or just `Refused`.
#[derive(Debug)]
pub(crate) enum Reply<'a> {
    /// The server answered `+OK`.
    // No caller reads the +OK text yet; the client's tests check it.
    #[allow(dead_code)]
    Accepted(&'a StatusLine),
    /// A chunk of a multi-line response, byte-stuffing removed.
    Data(&'a [u8]),
    /// The multi-line response is complete.
    End,
    /// The server answered `-ERR`; nothing else follows for this command.
    Refused(&'a StatusLine),
}

/// Supplies the commands of a pipelined exchange and receives their replies
/// ([`Session::pipeline_with`]). `Tag` identifies a command when its reply comes back.
pub(crate) trait PipelineDriver<'c> {
    /// What identifies a command.
    type Tag;
    /// The next command to send, if there is one now (asked again later when `None`).
    /// `idle` says that no command is unanswered: returning `None` then ends the exchange, so
    /// a driver still expecting work (e.g. from another thread) should wait for it.
    fn next_command(&mut self, idle: bool) -> Option<(Command<'c>, Self::Tag)>;
    /// One event of the reply to the command tagged `tag`.
    fn on_reply(&mut self, tag: &Self::Tag, reply: Reply<'_>) -> std::io::Result<()>;
}

/// How many commands may be in flight at most. Commands are short (at most 15 octets for RETR
/// and DELE), so a full window (under 8 KiB) fits in any socket send buffer: writing it can
/// never block while the server waits for us to read, which is what rules out a pipelining
/// deadlock with blocking I/O. It is large because on a slow link the short replies of DELE
/// cost a round trip per window: 3000 deletions at 25 ms each way take 0.3 s, not 1.5 s.
pub const MAX_PIPELINE_WINDOW: usize = 500;

impl<S: Read + Write> Session<S> {
    /// Sends `commands`, keeping up to `window` of them unanswered (RFC 2449 §6.6
    /// PIPELINING; pass 1 for servers without it), and hands every reply to `on_reply` with the
    /// command's index, in order. A `-ERR` to one command does not stop the others; an error
    /// from `on_reply` stops everything and is returned as [`Error::Sink`].
    pub(crate) fn pipeline(
        &mut self,
        commands: &[Command<'_>],
        window: usize,
        on_reply: &mut dyn FnMut(usize, Reply<'_>) -> std::io::Result<()>,
    ) -> Result<()> {
        struct Fixed<'c, 'r> {
            commands: &'c [Command<'c>],
            next: usize,
            on_reply: &'r mut dyn FnMut(usize, Reply<'_>) -> std::io::Result<()>,
        }
        impl<'c> PipelineDriver<'c> for Fixed<'c, '_> {
            type Tag = usize;
            fn next_command(&mut self, _idle: bool) -> Option<(Command<'c>, usize)> {
                let command = self.commands.get(self.next)?.clone();
                self.next += 1;
                Some((command, self.next - 1))
            }
            fn on_reply(&mut self, index: &usize, reply: Reply<'_>) -> std::io::Result<()> {
                (self.on_reply)(*index, reply)
            }
        }
        self.pipeline_with(
            window,
            &mut Fixed {
                commands,
                next: 0,
                on_reply,
            },
        )
    }

    /// Like [`Session::pipeline`], but the commands come from `driver` as the exchange goes
    /// on, so that what is sent can depend on replies already handled (`fetch-all` sends the
    /// DELE of a message once it is safely stored, in the same stream as the next RETRs).
    /// The exchange ends when the driver has no command to offer and none is unanswered.
    pub(crate) fn pipeline_with<'c, D: PipelineDriver<'c>>(
        &mut self,
        window: usize,
        driver: &mut D,
    ) -> Result<()> {
        let window = window.clamp(1, MAX_PIPELINE_WINDOW);
        self.connection.skip_ahead()?;
        let mut in_flight: std::collections::VecDeque<(Command<'c>, D::Tag)> =
            std::collections::VecDeque::new();
        loop {
            // Refill when half the window has been answered: fewer, larger writes. With a
            // window of 1 that means strictly one command at a time.
            if in_flight.len() <= window / 2 {
                let mut batch = Vec::new();
                while in_flight.len() + batch.len() < window
                    && self.connection.pipelined_quit.is_none()
                {
                    match driver.next_command(in_flight.is_empty() && batch.is_empty()) {
                        Some(next) => {
                            if next.0 == Command::Quit {
                                // Nothing may follow QUIT (RFC 1939 §6).
                                self.connection.pipelined_quit = Some(None);
                            }
                            batch.push(next);
                        }
                        None => break,
                    }
                }
                if !batch.is_empty() {
                    let commands: Vec<Command<'c>> =
                        batch.iter().map(|(command, _)| command.clone()).collect();
                    self.connection.send(&commands)?;
                    in_flight.extend(batch);
                }
            }
            let Some((command, tag)) = in_flight.pop_front() else {
                return Ok(());
            };
            if command == Command::Quit {
                // The end of the session: its reply is kept for `quit`, which says what it
                // means (a lost reply is not a broken exchange: every other reply was read).
                let reply = self.connection.read_status(&command);
                self.connection.pipelined_quit = Some(Some(reply));
                return Ok(());
            }
            let line = self.connection.read_line(MAX_STATUS_LINE)?;
            self.connection
                .trace(Direction::Server, &String::from_utf8_lossy(&line));
            let status = parse_status_line(&line)?;
            if !status.ok {
                driver
                    .on_reply(&tag, Reply::Refused(&status))
                    .map_err(Error::Sink)?;
                continue;
            }
            driver
                .on_reply(&tag, Reply::Accepted(&status))
                .map_err(Error::Sink)?;
            if command.has_multiline_reply() {
                self.connection
                    .read_multiline(&mut |data| driver.on_reply(&tag, Reply::Data(data)))?;
                driver.on_reply(&tag, Reply::End).map_err(Error::Sink)?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pop3::Client;
    use crate::pop3::client::test_streams::*;
    use std::io::{self, Cursor};

    #[test]
    fn quit_after_a_pipelined_dele_waits_for_the_server_to_confirm() {
        let (mut session, _) = shared_session(b"+OK hi\r\n+OK\r\n+OK\r\n+OK marked\r\n");
        let commands = [Command::Dele(n(1))];
        session.pipeline(&commands, 1, &mut |_, _| Ok(())).unwrap();
        assert!(matches!(session.quit(), Err(Error::ConnectionClosed)));
    }

    #[test]
    fn pipelined_quit_leaves_with_the_deles_and_quit_returns_its_reply() {
        let (mut session, written) =
            shared_session(b"+OK hi\r\n+OK\r\n+OK\r\n+OK\r\n-ERR busy\r\n+OK bye\r\n");
        let commands = [Command::Dele(n(1)), Command::Dele(n(2)), Command::Quit];
        let mut replies = Vec::new();
        session
            .pipeline(&commands, 10, &mut |i, reply| {
                replies.push((i, matches!(reply, Reply::Accepted(_))));
                Ok(())
            })
            .unwrap();
        // The DELE replies go to the caller, QUIT's is kept for `quit`.
        assert_eq!(replies, [(0, true), (1, false)]);
        assert_eq!(session.quit().unwrap().unwrap().text, "bye");
        // One write for DELEs and QUIT, and no second QUIT.
        assert_eq!(
            written.borrow().as_slice(),
            b"USER alice\r\nPASS pw\r\nDELE 1\r\nDELE 2\r\nQUIT\r\n"
        );
    }

    #[test]
    fn pipelined_quit_refused_or_lost_is_an_error_of_quit() {
        let (mut session, _) = shared_session(b"+OK hi\r\n+OK\r\n+OK\r\n+OK\r\n-ERR no\r\n");
        let commands = [Command::Dele(n(1)), Command::Quit];
        session.pipeline(&commands, 10, &mut |_, _| Ok(())).unwrap();
        assert!(matches!(session.quit(), Err(Error::Server { .. })));

        // The connection closes before QUIT's reply: the exchange itself completed.
        let (mut session, _) = shared_session(b"+OK hi\r\n+OK\r\n+OK\r\n+OK\r\n");
        session.pipeline(&commands, 10, &mut |_, _| Ok(())).unwrap();
        assert!(matches!(session.quit(), Err(Error::ConnectionClosed)));

        // It closes before a DELE's reply: the exchange broke off, and QUIT is not sent again.
        let (mut session, written) = shared_session(b"+OK hi\r\n+OK\r\n+OK\r\n");
        assert!(session.pipeline(&commands, 10, &mut |_, _| Ok(())).is_err());
        assert!(matches!(session.quit(), Err(Error::ConnectionClosed)));
        assert!(written.borrow().ends_with(b"DELE 1\r\nQUIT\r\n"));
    }

    #[test]
    fn pipeline_keeps_order_and_survives_a_refusal() {
        let server = b"+OK hi\r\n+OK\r\n+OK\r\n\
            +OK\r\nSubject: one\r\n\r\n.\r\n\
            -ERR [SYS/TEMP] no such message\r\n\
            +OK\r\n..Subject: three\r\n.\r\n\
            +OK marked\r\n";
        let mut session = session(server);
        let commands = [
            Command::Top(n(1), 0),
            Command::Top(n(2), 0),
            Command::Top(n(3), 0),
            Command::Dele(n(3)),
        ];
        let mut events = String::new();
        session
            .pipeline(&commands, 10, &mut |i, reply| {
                // Data arrives in chunks of any size; show it as one piece per message.
                match reply {
                    Reply::Accepted(s) => events += &format!("|{i} ok {}|", s.text),
                    Reply::Data(d) => events += &String::from_utf8_lossy(d),
                    Reply::End => events += &format!("|{i} end"),
                    Reply::Refused(s) => events += &format!("|{i} refused {}", s.text),
                }
                Ok(())
            })
            .unwrap();
        assert_eq!(
            events,
            "|0 ok |Subject: one\r\n\r\n|0 end\
             |1 refused no such message\
             |2 ok |.Subject: three\r\n|2 end\
             |3 ok marked|"
        );
        // All four commands went out in one write.
        assert!(
            session
                .connection
                .stream
                .written
                .ends_with(b"TOP 1 0\r\nTOP 2 0\r\nTOP 3 0\r\nDELE 3\r\n")
        );
    }

    #[test]
    fn pipeline_window_of_one_waits_for_each_reply() {
        /// Fails the test if the client writes a command before the previous reply was read.
        struct Lockstep {
            replies: Vec<&'static [u8]>,
            pending: Cursor<Vec<u8>>,
            unanswered: usize,
            written: Vec<u8>,
        }
        impl Read for Lockstep {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.pending.read(buf)?;
                if n > 0 {
                    return Ok(n);
                }
                assert!(
                    self.unanswered > 0,
                    "client waits for a reply it did not ask for"
                );
                self.unanswered -= 1;
                self.pending = Cursor::new(self.replies.remove(0).to_vec());
                self.pending.read(buf)
            }
        }
        impl Write for Lockstep {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                let commands = buf.iter().filter(|&&b| b == b'\n').count();
                assert!(
                    self.unanswered + commands <= 1,
                    "more than one command in flight"
                );
                self.unanswered += commands;
                self.written.extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let stream = Lockstep {
            replies: vec![b"+OK\r\n", b"+OK\r\n", b"+OK\r\n", b"+OK\r\n"],
            pending: Cursor::new(b"+OK hi\r\n".to_vec()),
            unanswered: 0,
            written: Vec::new(),
        };
        let (client, _) = Client::connect(stream, None).unwrap();
        let mut session = client.login_user("a", "b").unwrap();
        let commands = [Command::Dele(n(1)), Command::Dele(n(2))];
        session.pipeline(&commands, 1, &mut |_, _| Ok(())).unwrap();
        assert!(
            session
                .connection
                .stream
                .written
                .ends_with(b"DELE 1\r\nDELE 2\r\n")
        );
    }
}
