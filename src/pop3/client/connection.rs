//! The connection under both client states: the stream, its receive buffer, and the reading
//! and writing of commands, status lines and multi-line responses that every command shares.
//! Separate from the states ([`super::Client`], [`super::Session`]) because it knows nothing
//! of them: it only sends what it is given and reads what comes back, bounded and traced.

use std::io::{Read, Write};

use crate::pop3::command::Command;
use crate::pop3::multiline::{MultilineDecoder, Sink, take_line};
use crate::pop3::response::{MAX_STATUS_LINE, StatusLine, parse_status_line, trim_line_ending};
use crate::pop3::{Error, Result};

/// Who sent a traced line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The client sent it.
    Client,
    /// The server sent it.
    Server,
}

/// Sees the protocol dialogue, secrets already replaced by `***`. Used by `--debug`.
pub type Tracer = Box<dyn FnMut(Direction, &str) + Send>;

/// Size of the receive buffer: big enough for throughput, small enough to stay bounded.
const BUFFER_SIZE: usize = 64 * 1024;

/// The stream plus a receive buffer that the multi-line decoder reads from directly.
pub(super) struct Connection<S> {
    pub(super) stream: S,
    buffer: Box<[u8]>,
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) tracer: Option<Tracer>,
    /// Commands sent ahead (pipelined behind the login) whose replies are not read yet, in
    /// order. Asking for one of them reads its reply instead of sending it again.
    pub(super) ahead: std::collections::VecDeque<Command<'static>>,
    /// Whether a DELE was ever sent: only then can QUIT's reply tell anything about the
    /// maildrop (see [`Session::quit`](super::Session::quit)).
    pub(super) dele_sent: bool,
    /// QUIT sent as the last command of a pipeline
    /// ([`Session::pipeline_with`](super::Session::pipeline_with)): `None` until its reply is
    /// read, then the reply, which [`Session::quit`](super::Session::quit) returns instead of
    /// sending QUIT again.
    pub(super) pipelined_quit: Option<Option<Result<StatusLine>>>,
}

impl<S: Read + Write> Connection<S> {
    pub(super) fn new(stream: S, tracer: Option<Tracer>) -> Connection<S> {
        Connection {
            stream,
            buffer: vec![0; BUFFER_SIZE].into_boxed_slice(),
            start: 0,
            end: 0,
            tracer,
            ahead: std::collections::VecDeque::new(),
            dele_sent: false,
            pipelined_quit: None,
        }
    }

    pub(super) fn trace(&mut self, direction: Direction, text: &str) {
        if let Some(tracer) = &mut self.tracer {
            tracer(direction, text);
        }
    }

    /// Sends commands in one write (several at once when pipelining).
    pub(super) fn send(&mut self, commands: &[Command<'_>]) -> Result<()> {
        // The buffer may carry a password or SASL payload: sized exactly (no reallocation
        // leaves a copy behind) and wiped once written.
        let mut bytes = zeroize::Zeroizing::new(Vec::with_capacity(
            commands.iter().map(Command::encoded_len).sum(),
        ));
        for command in commands {
            command.encode_into(&mut bytes)?;
        }
        for command in commands {
            let line = command.redacted();
            self.trace(Direction::Client, &line);
        }
        self.dele_sent |= commands.iter().any(|c| matches!(c, Command::Dele(_)));
        self.stream.write_all(&bytes).map_err(Error::from_io)?;
        self.stream.flush().map_err(Error::from_io)
    }

    /// Reads more bytes into the buffer; the connection closing is an error here because a
    /// reply is always pending when this is called.
    fn fill(&mut self) -> Result<()> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buffer.len() {
            self.buffer.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let read = loop {
            match self.stream.read(&mut self.buffer[self.end..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::from_io(e)),
            }
        };
        if read == 0 {
            return Err(Error::ConnectionClosed);
        }
        self.end += read;
        Ok(())
    }

    /// Reads one line (bare LF tolerated) and returns it without its line ending.
    pub(super) fn read_line(&mut self, limit: usize) -> Result<Vec<u8>> {
        loop {
            if let Some(len) = take_line(&self.buffer[self.start..self.end], limit)? {
                let line = trim_line_ending(&self.buffer[self.start..self.start + len]).to_vec();
                self.start += len;
                return Ok(line);
            }
            self.fill()?;
        }
    }

    /// Reads a status line; `-ERR` becomes [`Error::Server`] naming `command`.
    pub(super) fn read_status(&mut self, command: &Command<'_>) -> Result<StatusLine> {
        let line = self.read_line(MAX_STATUS_LINE)?;
        self.trace(Direction::Server, &String::from_utf8_lossy(&line));
        let status = parse_status_line(&line)?;
        if status.ok {
            Ok(status)
        } else {
            Err(Error::Server {
                command: command.redacted(),
                status,
            })
        }
    }

    /// Streams the data of a multi-line response into `sink`, in bounded memory.
    pub(super) fn read_multiline(&mut self, sink: &mut Sink<'_>) -> Result<u64> {
        let mut decoder = MultilineDecoder::new();
        let mut octets = 0u64;
        let mut counting_sink = |data: &[u8]| {
            octets += data.len() as u64;
            sink(data)
        };
        loop {
            if self.start < self.end {
                let used =
                    decoder.decode(&self.buffer[self.start..self.end], &mut counting_sink)?;
                self.start += used;
                if decoder.is_done() {
                    break;
                }
            }
            self.fill()?;
        }
        self.trace(Direction::Server, &format!("[{octets} octets of data]"));
        self.trace(Direction::Server, ".");
        Ok(octets)
    }

    /// Sends one command and reads its status line. A command already sent ahead is not sent
    /// again: its reply is next in the stream.
    pub(super) fn command(&mut self, command: Command<'_>) -> Result<StatusLine> {
        if self.ahead.front() == Some(&command) {
            self.ahead.pop_front();
            return self.read_status(&command);
        }
        self.skip_ahead()?;
        self.send(std::slice::from_ref(&command))?;
        self.read_status(&command)
    }

    /// Reads and drops the replies to commands sent ahead that nobody asked for, so that the
    /// next reply read belongs to the next command sent.
    pub(super) fn skip_ahead(&mut self) -> Result<()> {
        while let Some(command) = self.ahead.pop_front() {
            match self.read_status(&command) {
                Ok(_) if command.has_multiline_reply() => {
                    self.read_multiline(&mut |_| Ok(()))?;
                }
                Ok(_) | Err(Error::Server { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pop3::client::test_streams::*;

    #[test]
    fn closed_connection_is_reported() {
        let server = b"+OK hi\r\n+OK\r\n+OK\r\n+OK 2 messages\r\n1 120\r\n";
        let mut session = session(server);
        assert!(matches!(session.list(), Err(Error::ConnectionClosed)));
    }
}
