//! One command and its reply on the stream: commands written out, replies read line by line
//! within [`MAX_REPLY_LINE`], and the errors that name the server's protocol. Separate
//! because every step of the dialogue (greeting, hello, transaction, window) shares it.

use std::io::{self, BufRead, Read, Write};

use super::codec::{Command, MAX_REPLY_LINE, Reply, ReplyError, ReplyParser};
use super::{Deliverer, DeliveryError, Verdict};

impl<S: Read + Write> Deliverer<S> {
    pub(super) fn command(&mut self, command: &Command<'_>) -> Result<Reply, DeliveryError> {
        command.encode(&mut self.out);
        self.flush()?;
        self.read_reply()
    }

    pub(super) fn flush(&mut self) -> Result<(), DeliveryError> {
        let result = self.conn.get_mut().write_all(&self.out);
        self.out.clear();
        result
            .and_then(|()| self.conn.get_mut().flush())
            .map_err(|source| self.io(source))
    }

    /// Reads one complete reply, each line bounded by [`MAX_REPLY_LINE`].
    pub(super) fn read_reply(&mut self) -> Result<Reply, DeliveryError> {
        let mut parser = ReplyParser::new();
        let mut line = Vec::with_capacity(512);
        loop {
            line.clear();
            self.read_line(&mut line)?;
            match parser.push_line(&line) {
                Ok(Some(reply)) => return Ok(reply),
                Ok(None) => {}
                Err(e) => {
                    return Err(DeliveryError::Protocol {
                        protocol: self.protocol,
                        detail: e.to_string(),
                    });
                }
            }
        }
    }

    /// One line without its CRLF (a bare LF is accepted as the end of a line).
    fn read_line(&mut self, line: &mut Vec<u8>) -> Result<(), DeliveryError> {
        loop {
            let available = match self.conn.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io(e)),
            };
            if available.is_empty() {
                return Err(self.io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                )));
            }
            let (take, done) = match memchr::memchr(b'\n', available) {
                Some(i) => (i + 1, true),
                None => (available.len(), false),
            };
            if line.len() + take > MAX_REPLY_LINE + 2 {
                return Err(DeliveryError::Protocol {
                    protocol: self.protocol,
                    detail: ReplyError::LineTooLong.to_string(),
                });
            }
            line.extend_from_slice(&available[..take]);
            self.conn.consume(take);
            if done {
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(());
            }
        }
    }

    pub(super) fn verdict_of(&self, reply: Reply) -> Verdict {
        if reply.is_transient() {
            Verdict::Temporary(reply)
        } else {
            Verdict::Permanent(reply)
        }
    }

    fn io(&self, source: io::Error) -> DeliveryError {
        DeliveryError::Io {
            protocol: self.protocol,
            source,
        }
    }

    pub(super) fn refused(&self, reply: Reply) -> DeliveryError {
        DeliveryError::Refused {
            protocol: self.protocol,
            reply,
        }
    }

    pub(super) fn unexpected(&self, after: &str, reply: &Reply) -> DeliveryError {
        DeliveryError::Protocol {
            protocol: self.protocol,
            detail: format!("unexpected answer to {after}: {reply}"),
        }
    }
}
