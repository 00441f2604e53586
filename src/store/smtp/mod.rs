//! Delivery of fetched messages to a mail server over LMTP (RFC 2033) or SMTP (RFC 5321), the
//! way fetchmail hands mail to the local MTA.
//!
//! [`codec`] is the sans-I/O core (replies, commands, DATA encoding, the message scan);
//! [`settings`] parses the config keys; this file is the driver: it opens the connection (TCP
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

pub mod codec;
pub mod settings;

use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Duration;

pub use codec::{EnhancedCode, Extensions, Reply, ReplyError};
pub use settings::{Endpoint, Protocol, Target};

use codec::{Command, DataEncoder, MAX_REPLY_LINE, ReplyParser, check_address, scan_message};

/// Octets of the message read per chunk, and the most kept in the send buffer before it is
/// written out: memory stays bounded whatever the message size.
const CHUNK: usize = 64 * 1024;

/// Messages sent and not yet answered, at most, on a pipelining connection: the most a kill
/// can deliver twice (the server may have taken them before their answer was read and
/// recorded). Small, because the gain stops once the server's answers overlap the sending.
pub const WINDOW: usize = 4;

/// A message sent whose answers are still to be read, in order.
#[derive(Debug)]
struct Pending {
    /// An RSET went before its MAIL.
    rset: bool,
    kind: PendingKind,
}

#[derive(Debug)]
enum PendingKind {
    /// `MAIL`, `RCPT` (one recipient) and `BDAT n LAST` with the message: three answers.
    Bdat,
    /// The envelope was answered and the message sent after DATA: its final answers (LMTP:
    /// one per recipient).
    Final { answers: usize },
}

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The server took responsibility for it: the final 2xx (LMTP: for every recipient).
    Delivered,
    /// A 4xx answer: leave the message on the POP3 server and try again next run.
    Temporary(Reply),
    /// A 5xx answer: the server will not take this message as it is.
    Permanent(Reply),
}

/// Why delivery could not go on. After any of these the connection is closed; a new
/// [`Deliverer`] starts a new one.
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

/// How to talk to the server, besides where.
#[derive(Debug, Clone)]
pub struct Options {
    /// For connecting and for every read and write.
    pub timeout: Duration,
    /// Use PIPELINING when the server offers it (`false` forces one round trip per command).
    pub pipelining: bool,
    /// How many messages may be sent and still wait for their final answer when pipelining
    /// ([`WINDOW`] by default; 0 waits for each message's answer before the next is sent).
    /// With CHUNKING the whole message goes out behind its envelope (`BDAT n LAST`); without
    /// it, the next envelope goes out before the previous message's final answer is read.
    pub window: usize,
    /// Use CHUNKING (`BDAT`) when the server offers it (`false`: DATA, for tests and for a
    /// server whose CHUNKING is broken).
    pub chunking: bool,
    /// The name given in LHLO/EHLO/HELO.
    pub client_name: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout: Duration::from_secs(60),
            pipelining: true,
            window: WINDOW,
            chunking: true,
            client_name: client_name(),
        }
    }
}

/// A stream to the server: TCP or a Unix socket.
#[derive(Debug)]
pub enum Stream {
    /// `host:port`.
    Tcp(TcpStream),
    /// `unix:/path`.
    Unix(UnixStream),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Unix(s) => s.flush(),
        }
    }
}

/// Opens a connection to `endpoint` with `timeout` for connecting, reading and writing.
pub fn open(endpoint: &Endpoint, timeout: Duration) -> io::Result<Stream> {
    match endpoint {
        Endpoint::Tcp { host, port } => {
            let stream = crate::transport::connect_tcp(host, *port, timeout)
                .map_err(|e| io::Error::other(e.to_string()))?;
            stream.set_nodelay(true)?;
            Ok(Stream::Tcp(stream))
        }
        Endpoint::Unix(path) => {
            let stream = UnixStream::connect(path)?;
            stream.set_read_timeout(Some(timeout))?;
            stream.set_write_timeout(Some(timeout))?;
            Ok(Stream::Unix(stream))
        }
    }
}

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

impl Deliverer<Stream> {
    /// Connects to `target` and greets it.
    pub fn connect(target: &Target, options: &Options) -> Result<Deliverer<Stream>, DeliveryError> {
        let stream =
            open(&target.endpoint, options.timeout).map_err(|source| DeliveryError::Connect {
                protocol: target.protocol,
                endpoint: target.endpoint.clone(),
                source,
            })?;
        Deliverer::start(stream, target.protocol, options)
    }
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

    /// Sends `message` (read twice or three times: to learn its envelope, to size a BDAT
    /// chunk, to send it) to `recipients`, and appends to `settled`, in the order they were
    /// sent, the verdicts that arrived meanwhile: for earlier messages, and for this one when
    /// its answer had to be awaited. At most [`Options::window`] messages stay in flight;
    /// [`Deliverer::settle`] reads the rest. The envelope sender is the message's `Return-Path`
    /// (the null sender when it has none). After `Err` the connection cannot be used any more,
    /// and the messages still in flight may or may not have been delivered.
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

        // The first refusal decides the verdict; 4xx wins over 5xx among the recipients, since
        // the whole message is tried again later anyway.
        let refusal = if !mail_reply.is_positive() {
            Some(mail_reply)
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
            settled.push(self.verdict_of(refusal));
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
            Protocol::Lmtp => recipients.len(),
            Protocol::Smtp => 1,
        };
        if self.pipelining && self.window > 0 {
            // The final answer is read behind the next envelope (RFC 2920 §3.1 lets the
            // message content lead a group of commands).
            self.pending.push_back(Pending {
                rset: false,
                kind: PendingKind::Final { answers },
            });
        } else {
            let verdict = self.read_final(answers)?;
            settled.push(verdict);
        }
        Ok(())
    }

    /// Reads the answers of every message in flight, appending their verdicts to `settled`.
    pub fn settle(&mut self, settled: &mut Vec<Verdict>) -> Result<(), DeliveryError> {
        while !self.pending.is_empty() {
            settled.push(self.settle_one()?);
        }
        Ok(())
    }

    /// Reads the answers of the oldest message in flight. The message was sent in full, so a
    /// connection lost now leaves its fate unknown ([`DeliveryError::Unconfirmed`]).
    fn settle_one(&mut self) -> Result<Verdict, DeliveryError> {
        let pending = self.pending.pop_front().expect("a message in flight");
        self.read_pending(&pending).map_err(|e| match e {
            DeliveryError::Io { protocol, source } => {
                DeliveryError::Unconfirmed { protocol, source }
            }
            other => other,
        })
    }

    fn read_pending(&mut self, pending: &Pending) -> Result<Verdict, DeliveryError> {
        if pending.rset {
            let reply = self.read_reply()?;
            if !reply.is_positive() {
                return Err(self.unexpected("RSET", &reply));
            }
        }
        match pending.kind {
            PendingKind::Final { answers } => self.read_final(answers),
            PendingKind::Bdat => {
                let mail = self.read_reply()?;
                let rcpt = self.read_reply()?;
                // One answer to BDAT LAST whether or not the recipient was accepted (RFC 2033
                // §4.2 for LMTP: one per accepted recipient, else the command fails once).
                let last = self.read_reply()?;
                let refusal = [mail, rcpt].into_iter().find(|r| !r.is_positive());
                if let Some(refusal) = refusal {
                    if last.is_positive() {
                        return Err(DeliveryError::Protocol {
                            protocol: self.protocol,
                            detail: format!(
                                "it accepted the message after refusing the envelope ({refusal})"
                            ),
                        });
                    }
                    if !refusal.is_transient() && !refusal.is_permanent() {
                        return Err(self.unexpected("the envelope", &refusal));
                    }
                    return Ok(self.verdict_of(refusal));
                }
                if last.is_positive() {
                    Ok(Verdict::Delivered)
                } else if last.is_transient() || last.is_permanent() {
                    Ok(self.verdict_of(last))
                } else {
                    Err(self.unexpected("BDAT", &last))
                }
            }
        }
    }

    /// Reads the `answers` final replies after a message sent with DATA; the worst decides.
    fn read_final(&mut self, answers: usize) -> Result<Verdict, DeliveryError> {
        let mut worst: Option<Reply> = None;
        for _ in 0..answers {
            let reply = self.read_reply().map_err(|e| match e {
                DeliveryError::Io { protocol, source } => {
                    DeliveryError::Unconfirmed { protocol, source }
                }
                other => other,
            })?;
            if reply.is_positive() {
                continue;
            }
            if !reply.is_transient() && !reply.is_permanent() {
                return Err(self.unexpected("the end of the message", &reply));
            }
            let replace = match &worst {
                None => true,
                Some(w) => reply.is_transient() && !w.is_transient(),
            };
            if replace {
                worst = Some(reply);
            }
        }
        Ok(match worst {
            None => Verdict::Delivered,
            Some(reply) => self.verdict_of(reply),
        })
    }

    /// Sends QUIT and waits for its answer; the connection closes either way.
    pub fn quit(mut self) -> Result<(), DeliveryError> {
        let reply = self.command(&Command::Quit)?;
        if reply.code != 221 {
            return Err(self.unexpected("QUIT", &reply));
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
    /// MAIL fails and before DATA when a RCPT fails (DATA is then left to the caller).
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
            let stop = !reply.is_positive();
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
            let n = match message.read(&mut self.chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(DeliveryError::Message(e)),
            };
            encoder.encode(&self.chunk[..n], &mut self.out);
            if self.out.len() >= CHUNK {
                self.flush()?;
            }
        }
        encoder.finish(&mut self.out);
        self.flush()
    }

    fn command(&mut self, command: &Command<'_>) -> Result<Reply, DeliveryError> {
        command.encode(&mut self.out);
        self.flush()?;
        self.read_reply()
    }

    fn flush(&mut self) -> Result<(), DeliveryError> {
        let result = self.conn.get_mut().write_all(&self.out);
        self.out.clear();
        result
            .and_then(|()| self.conn.get_mut().flush())
            .map_err(|source| self.io(source))
    }

    /// Reads one complete reply, each line bounded by [`MAX_REPLY_LINE`].
    fn read_reply(&mut self) -> Result<Reply, DeliveryError> {
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

    fn verdict_of(&self, reply: Reply) -> Verdict {
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

    fn refused(&self, reply: Reply) -> DeliveryError {
        DeliveryError::Refused {
            protocol: self.protocol,
            reply,
        }
    }

    fn unexpected(&self, after: &str, reply: &Reply) -> DeliveryError {
        DeliveryError::Protocol {
            protocol: self.protocol,
            detail: format!("unexpected answer to {after}: {reply}"),
        }
    }
}

/// The size of `message` as a BDAT chunk: its octets once every line ends in CRLF.
fn bdat_size(message: &mut impl Read) -> io::Result<u64> {
    let mut encoder = DataEncoder::for_bdat();
    let mut buf = vec![0u8; CHUNK];
    let mut out = Vec::with_capacity(CHUNK + CHUNK / 16);
    let mut size = 0u64;
    loop {
        let n = match message.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        encoder.encode(&buf[..n], &mut out);
        size += out.len() as u64;
        out.clear();
    }
    encoder.finish(&mut out);
    Ok(size + out.len() as u64)
}

/// The name this host gives in LHLO/EHLO: its host name when that is a plausible domain,
/// else `localhost`.
pub fn client_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = &buf[..end];
    let plausible = !name.is_empty()
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if ok && plausible {
        String::from_utf8_lossy(name).into_owned()
    } else {
        "localhost".to_owned()
    }
}

/// The login name of the user running this process (from the password database, else `$USER`),
/// the default envelope recipient.
pub fn local_user() -> Option<String> {
    // SAFETY: getpwuid_r writes into the buffers given; `result` points into `pwd` or is null.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 4096];
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(
            libc::geteuid(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        );
        if rc == 0 && !result.is_null() && !pwd.pw_name.is_null() {
            let name = std::ffi::CStr::from_ptr(pwd.pw_name).to_string_lossy();
            if !name.is_empty() {
                return Some(name.into_owned());
            }
        }
    }
    std::env::var("USER").ok().filter(|u| !u.is_empty())
}
