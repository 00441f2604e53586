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

    /// The verdict on a message whose envelope was refused (`sender`: by MAIL FROM, else by
    /// RCPT TO). A 5xx there is about the configured recipient or this client, so every message
    /// would get it; recording it as the message's own verdict would silence mail for good
    /// (trial 2: Dovecot's `550 5.1.1 <root> User doesn't exist`). Only the enhanced codes that
    /// name the message (X.3.4 too big, X.6.x content, X.1.7/X.1.8 its sender's address, taken
    /// from its Return-Path) or MAIL FROM's 552 (RFC 1870 SIZE) keep it the message's own.
    pub(super) fn envelope_verdict(&self, reply: Reply, sender: bool) -> Verdict {
        envelope_verdict(reply, sender)
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

/// See [`Deliverer::envelope_verdict`].
fn envelope_verdict(reply: Reply, sender: bool) -> Verdict {
    if reply.is_transient() {
        return Verdict::Temporary(reply);
    }
    let about_the_message = match reply.enhanced {
        Some(e) => {
            (e.subject, e.detail) == (3, 4)
                || e.subject == 6
                || (e.subject == 1 && matches!(e.detail, 7 | 8))
        }
        None => sender && reply.code == 552,
    };
    if about_the_message {
        Verdict::Permanent(reply)
    } else {
        Verdict::EnvelopeRefused { sender, reply }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::smtp::codec::ReplyParser;

    fn reply(line: &str) -> Reply {
        ReplyParser::new()
            .push_line(line.as_bytes())
            .unwrap()
            .unwrap()
    }

    #[test]
    fn a_refused_recipient_is_the_envelope_but_a_refused_message_stays_its_own_verdict() {
        let envelope = |line: &str, sender| {
            matches!(
                envelope_verdict(reply(line), sender),
                Verdict::EnvelopeRefused { .. }
            )
        };
        let permanent = |line: &str, sender| {
            matches!(envelope_verdict(reply(line), sender), Verdict::Permanent(_))
        };
        // Dovecot's unknown user, Postfix's relay denial, an MTA refusing this client.
        assert!(envelope("550 5.1.1 <root> User doesn't exist: root", false));
        assert!(envelope("554 5.7.1 Relay access denied", false));
        assert!(envelope("550 no such user", false));
        assert!(envelope("530 5.7.0 Authentication required", true));
        // About the message: its size (RFC 1870), its sender (the Return-Path), its content.
        assert!(permanent(
            "552 5.3.4 Message size exceeds fixed limit",
            true
        ));
        assert!(permanent("552 message too big", true));
        assert!(permanent("553 5.1.7 bad sender address syntax", true));
        assert!(permanent(
            "550 5.1.8 Sender address rejected: Domain not found",
            false
        ));
        assert!(permanent("554 5.6.0 content refused", false));
        assert!(matches!(
            envelope_verdict(reply("450 4.2.0 try again later"), false),
            Verdict::Temporary(_)
        ));
    }
}
