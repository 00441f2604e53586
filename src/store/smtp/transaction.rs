//! One message's mail transaction: the recipients checked, the envelope (MAIL, RCPT, then DATA
//! or BDAT) and the message streamed in bounded chunks, with or without pipelining and
//! CHUNKING. Separate because it decides what goes on the wire for a message; the answers that
//! are not awaited at once are left to [`super::window`].

use std::io::{self, Read, Seek, SeekFrom, Write};

use super::codec::{Command, DataEncoder, Reply, check_address, read_some, scan_message};
use super::settings::Protocol;
use super::window::{Pending, PendingKind, partly};
use super::{CHUNK, Deliverer, DeliveryError, Verdict};

impl<S: Read + Write> Deliverer<S> {
    /// Sends `message` (read twice or three times: to learn its envelope, to size a BDAT
    /// chunk, to send it) to `recipients`, and appends to `settled`, in the order they were
    /// sent, the verdicts that arrived meanwhile: for earlier messages, and for this one when
    /// its answer had to be awaited. At most [`Options::window`](super::Options::window)
    /// messages stay in flight; [`Deliverer::settle`] reads the rest. The envelope sender is
    /// the message's `Return-Path` (the null sender when it has none). After `Err` the
    /// connection cannot be used any more, and the messages still in flight may or may not
    /// have been delivered.
    pub fn submit<R: Read + Seek>(
        &mut self,
        mut message: R,
        recipients: &[String],
        settled: &mut Vec<Verdict>,
    ) -> Result<(), DeliveryError> {
        self.check_recipients(recipients)?;
        let scan = scan_message(&mut message).map_err(DeliveryError::Message)?;
        message
            .seek(SeekFrom::Start(0))
            .map_err(DeliveryError::Message)?;
        let ascii = |s: &str| s.is_ascii();
        let sender = match scan.return_path {
            // Without SMTPUTF8 a non-ASCII sender cannot be given; the null sender loses only
            // the bounce address of a message that has already been delivered once.
            Some(ref path) if ascii(path) || self.extensions.smtputf8 => path.as_str(),
            _ => "",
        };
        let smtputf8 =
            self.extensions.smtputf8 && !(ascii(sender) && recipients.iter().all(|r| ascii(r)));
        let mail = Command::MailFrom {
            sender,
            size: self.extensions.size.map(|_| scan.size),
            eight_bit: scan.eight_bit && self.extensions.eight_bit_mime,
            smtputf8,
        };

        // CHUNKING and PIPELINING: envelope and message in one write, answers read later
        // (RFC 3030 §4.2). One recipient only: with several, an LMTP server's answer count
        // after BDAT depends on which were accepted, and a partial acceptance would already
        // have delivered the message to some.
        if self.pipelining && self.extensions.chunking && recipients.len() == 1 && self.window > 0 {
            while self.pending.len() >= self.window {
                settled.push(self.settle_one()?);
            }
            let size = bdat_size(&mut message).map_err(DeliveryError::Message)?;
            message
                .seek(SeekFrom::Start(0))
                .map_err(DeliveryError::Message)?;
            // The previous transaction's outcome is not known yet: RSET is harmless after a
            // complete one and needed after a failed one.
            let rset = self.needs_rset || self.transactions > 0;
            if rset {
                Command::Rset.encode(&mut self.out);
            }
            mail.encode(&mut self.out);
            Command::RcptTo(&recipients[0]).encode(&mut self.out);
            Command::BdatLast(size).encode(&mut self.out);
            self.transactions += 1;
            self.needs_rset = false;
            self.send_body(&mut message, DataEncoder::for_bdat())?;
            self.pending.push_back(Pending {
                rset,
                kind: PendingKind::Bdat,
            });
            return Ok(());
        }

        // The envelope: MAIL, RCPT..., DATA; in one write when pipelining.
        let mut commands = Vec::with_capacity(recipients.len() + 3);
        if self.needs_rset {
            commands.push(Command::Rset);
        }
        commands.push(mail);
        commands.extend(recipients.iter().map(|r| Command::RcptTo(r)));
        commands.push(Command::Data);
        self.transactions += 1;
        let replies = self.send_envelope(&commands, settled)?;
        let mut replies = replies.into_iter();
        if self.needs_rset {
            // An RSET refused says the session is unusable.
            let reply = replies.next().expect("one reply per command");
            if !reply.is_positive() {
                return Err(self.unexpected("RSET", &reply));
            }
            self.needs_rset = false;
        }
        let mail_reply = replies.next().expect("one reply per command");
        let rcpt_replies: Vec<Reply> = replies.by_ref().take(recipients.len()).collect();
        let data_reply = replies.next();

        // With several recipients, some accepted and the others refused for good (5xx): the
        // message goes to those accepted (RFC 5321 §3.3, RFC 2033 §4.2), and the refused are
        // reported, not held against the message. A 4xx among them still defers the whole
        // message, lest the accepted get it twice when it is sent again.
        let sender_refused = !mail_reply.is_positive();
        let accepted = rcpt_replies.iter().filter(|r| r.is_positive()).count();
        let partial = !sender_refused
            && accepted > 0
            && rcpt_replies
                .iter()
                .all(|r| r.is_positive() || r.is_permanent());
        let refused: Vec<(String, Reply)> = if partial {
            recipients
                .iter()
                .zip(&rcpt_replies)
                .filter(|(_, r)| !r.is_positive())
                .map(|(who, r)| (who.clone(), r.clone()))
                .collect()
        } else {
            Vec::new()
        };
        // Otherwise the first refusal decides the verdict; 4xx wins over 5xx among the
        // recipients, since the whole message is tried again later anyway.
        let refusal = if sender_refused {
            Some(mail_reply)
        } else if partial {
            None
        } else {
            rcpt_replies
                .iter()
                .find(|r| r.is_transient())
                .or_else(|| rcpt_replies.iter().find(|r| !r.is_positive()))
                .cloned()
        };
        if let Some(refusal) = refusal {
            if !refusal.is_transient() && !refusal.is_permanent() {
                return Err(self.unexpected("the envelope", &refusal));
            }
            match data_reply {
                Some(reply) if reply.code == 354 => {
                    // The server wants the message although the envelope failed (RFC 2920
                    // §3.1 forbids that when no recipient is valid, but a recipient may have
                    // been). Sending nothing would deliver an empty message; hang up instead.
                    return Err(DeliveryError::Protocol {
                        protocol: self.protocol,
                        detail: format!("it accepted DATA after refusing the envelope ({refusal})"),
                    });
                }
                _ => {}
            }
            self.needs_rset = true;
            settled.push(self.envelope_verdict(refusal, sender_refused));
            return Ok(());
        }
        let data_reply = match data_reply {
            Some(reply) => reply,
            // Without pipelining, DATA goes only after every RCPT succeeded.
            None => self.command(&Command::Data)?,
        };
        if data_reply.code != 354 {
            if data_reply.is_transient() || data_reply.is_permanent() {
                self.needs_rset = true;
                settled.push(self.verdict_of(data_reply));
                return Ok(());
            }
            return Err(self.unexpected("DATA", &data_reply));
        }

        self.send_body(&mut message, DataEncoder::new())?;
        // LMTP: one reply per accepted recipient, in order (RFC 2033 §4.2); SMTP: one.
        let answers = match self.protocol {
            Protocol::Lmtp => accepted,
            Protocol::Smtp => 1,
        };
        if self.pipelining && self.window > 0 {
            // The final answer is read behind the next envelope (RFC 2920 §3.1 lets the
            // message content lead a group of commands).
            self.pending.push_back(Pending {
                rset: false,
                kind: PendingKind::Final { answers, refused },
            });
        } else {
            let verdict = self.read_final(answers)?;
            settled.push(partly(verdict, &refused));
        }
        Ok(())
    }

    fn check_recipients(&self, recipients: &[String]) -> Result<(), DeliveryError> {
        if recipients.is_empty() {
            return Err(DeliveryError::Recipient {
                recipient: String::new(),
                reason: "no recipient given".into(),
            });
        }
        for recipient in recipients {
            let reason = if let Err(reason) = check_address(recipient) {
                reason.to_owned()
            } else if !recipient.is_ascii() && !self.extensions.smtputf8 {
                "it is not ASCII and the server does not offer SMTPUTF8".to_owned()
            } else {
                continue;
            };
            return Err(DeliveryError::Recipient {
                recipient: recipient.clone(),
                reason,
            });
        }
        Ok(())
    }

    /// Sends the envelope commands and returns their replies. Pipelined: everything at once,
    /// every reply read (RFC 2920 §3.1). Otherwise one at a time, stopping before RCPT when
    /// MAIL fails; DATA is left to the caller, who knows which recipients were accepted.
    /// The answers to the messages still in flight come first and go to `settled`.
    fn send_envelope(
        &mut self,
        commands: &[Command<'_>],
        settled: &mut Vec<Verdict>,
    ) -> Result<Vec<Reply>, DeliveryError> {
        if self.pipelining {
            for command in commands {
                command.encode(&mut self.out);
            }
            self.flush()?;
            self.settle(settled)?;
            return commands.iter().map(|_| self.read_reply()).collect();
        }
        self.settle(settled)?;
        let mut replies = Vec::with_capacity(commands.len());
        for command in commands {
            if *command == Command::Data {
                break;
            }
            let reply = self.command(command)?;
            // Every RCPT is asked: with several recipients, some may be accepted.
            let stop = !reply.is_positive() && !matches!(command, Command::RcptTo(_));
            replies.push(reply);
            if stop {
                break;
            }
        }
        Ok(replies)
    }

    /// Streams the message through `encoder` in chunks, then its end (DATA: the final `.`).
    fn send_body<R: Read>(
        &mut self,
        message: &mut R,
        mut encoder: DataEncoder,
    ) -> Result<(), DeliveryError> {
        self.chunk.resize(CHUNK, 0);
        loop {
            let n = match read_some(message, &mut self.chunk).map_err(DeliveryError::Message)? {
                0 => break,
                n => n,
            };
            encoder.encode(&self.chunk[..n], &mut self.out);
            if self.out.len() >= CHUNK {
                self.flush()?;
            }
        }
        encoder.finish(&mut self.out);
        self.flush()
    }
}

/// The size of `message` as a BDAT chunk: its octets once every line ends in CRLF.
fn bdat_size(message: &mut impl Read) -> io::Result<u64> {
    let mut encoder = DataEncoder::for_bdat();
    let mut buf = vec![0u8; CHUNK];
    let mut out = Vec::with_capacity(CHUNK + CHUNK / 16);
    let mut size = 0u64;
    loop {
        let n = match read_some(message, &mut buf)? {
            0 => break,
            n => n,
        };
        encoder.encode(&buf[..n], &mut out);
        size += out.len() as u64;
        out.clear();
    }
    encoder.finish(&mut out);
    Ok(size + out.len() as u64)
}
