//! The POP3 client over any `Read + Write` stream: the only part of the protocol core that does
//! I/O. RFC 1939's states are types: a [`Client`] is in the AUTHORIZATION state and becomes a
//! [`Session`] (TRANSACTION) by logging in; [`Session::quit`] enters the UPDATE state, so
//! deletions become real only through it.

use std::io::{Read, Write};

use super::command::Command;
use super::multiline::{Line, MultilineDecoder, Sink, take_line, unstuff_line};
use super::response::{
    self, AuthReply, MAX_STATUS_LINE, StatusLine, parse_auth_reply, parse_status_line,
    trim_line_ending,
};
use super::{
    Capabilities, Error, MaildropStat, MessageNumber, Result, ScanListing, UniqueIdListing,
};

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

/// Lines of listings and capabilities are short; a generous bound keeps a hostile server from
/// growing one without limit.
const MAX_LISTING_LINE: usize = 4096;

/// Bounds on a listing (`LIST`, `UIDL`, `CAPA`): nothing the server sends may make the client
/// hold memory or loop without limit, and an endless listing must end in an error rather than
/// in a process that grows until the system kills it (read timeouts never fire while data keeps
/// flowing). The limits are far beyond any real maildrop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ListingLimits {
    /// What the listing is called in the error message.
    what: &'static str,
    /// At most this many data lines.
    lines: usize,
    /// At most this many octets, line endings included.
    octets: u64,
}

/// Scan listings: a million messages, 64 MiB of listing text. No real maildrop comes near
/// (servers take minutes just to list a hundred thousand), and the parsed listing then stays
/// near 100 MiB however hostile the server.
const SCAN_LISTING_LIMITS: ListingLimits = ListingLimits {
    what: "scan listing (LIST)",
    lines: 1_000_000,
    octets: 64 * 1024 * 1024,
};

/// Unique-id listings: as for scan listings.
const UNIQUE_ID_LISTING_LIMITS: ListingLimits = ListingLimits {
    what: "unique-id listing (UIDL)",
    ..SCAN_LISTING_LIMITS
};

/// A capability list (RFC 2449 §6) has a dozen lines; a thousand is already absurd.
const CAPABILITY_LIMITS: ListingLimits = ListingLimits {
    what: "capability list (CAPA)",
    lines: 1000,
    octets: 256 * 1024,
};

/// Size of the receive buffer: big enough for throughput, small enough to stay bounded.
const BUFFER_SIZE: usize = 64 * 1024;

/// The stream plus a receive buffer that the multi-line decoder reads from directly.
struct Connection<S> {
    stream: S,
    buffer: Box<[u8]>,
    start: usize,
    end: usize,
    tracer: Option<Tracer>,
    /// Commands sent ahead (pipelined behind the login) whose replies are not read yet, in
    /// order. Asking for one of them reads its reply instead of sending it again.
    ahead: std::collections::VecDeque<Command<'static>>,
    /// Whether a DELE was ever sent: only then can QUIT's reply tell anything about the
    /// maildrop (see [`Session::quit`]).
    dele_sent: bool,
    /// QUIT sent as the last command of a pipeline ([`Session::pipeline_with`]): `None` until
    /// its reply is read, then the reply, which [`Session::quit`] returns instead of sending
    /// QUIT again.
    pipelined_quit: Option<Option<Result<StatusLine>>>,
}

impl<S: Read + Write> Connection<S> {
    fn new(stream: S, tracer: Option<Tracer>) -> Connection<S> {
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

    fn trace(&mut self, direction: Direction, text: &str) {
        if let Some(tracer) = &mut self.tracer {
            tracer(direction, text);
        }
    }

    /// Sends commands in one write (several at once when pipelining).
    fn send(&mut self, commands: &[Command<'_>]) -> Result<()> {
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
    fn read_line(&mut self, limit: usize) -> Result<Vec<u8>> {
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
    fn read_status(&mut self, command: &Command<'_>) -> Result<StatusLine> {
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

    /// Reads the lines of a multi-line listing up to the terminator, within `limits`.
    fn read_listing(
        &mut self,
        limits: ListingLimits,
        mut each: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let mut lines = 0usize;
        let mut octets = 0u64;
        loop {
            let line = self.read_line(MAX_LISTING_LINE)?;
            lines += 1;
            // +2 for the line ending that read_line removed.
            octets += line.len() as u64 + 2;
            if lines > limits.lines || octets > limits.octets {
                return Err(Error::Protocol(format!(
                    "the server's {} goes on beyond {} lines or {} octets; giving up",
                    limits.what, limits.lines, limits.octets
                )));
            }
            match unstuff_line(&line) {
                Line::End => {
                    self.trace(Direction::Server, ".");
                    return Ok(());
                }
                Line::Data(data) => {
                    self.trace(Direction::Server, &String::from_utf8_lossy(data));
                    each(data)?;
                }
            }
        }
    }

    /// Streams the data of a multi-line response into `sink`, in bounded memory.
    fn read_multiline(&mut self, sink: &mut Sink<'_>) -> Result<u64> {
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
    fn command(&mut self, command: Command<'_>) -> Result<StatusLine> {
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
    fn skip_ahead(&mut self) -> Result<()> {
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

/// What the server said when the connection opened.
#[derive(Debug, Clone)]
pub struct Greeting {
    /// The greeting status line.
    pub status: StatusLine,
    /// The APOP timestamp (`<...@...>`, RFC 1939 §7), when the server offers APOP.
    pub apop_timestamp: Option<String>,
}

impl Greeting {
    fn new(status: StatusLine) -> Greeting {
        let apop_timestamp = status.text.find('<').and_then(|start| {
            let rest = &status.text[start..];
            rest.find('>').map(|end| rest[..=end].to_owned())
        });
        Greeting {
            status,
            apop_timestamp,
        }
    }
}

/// A connection in the AUTHORIZATION state.
pub struct Client<S> {
    connection: Connection<S>,
    /// Commands to send in the same write as the login (see [`Client::send_after_login`]).
    after_login: Vec<Command<'static>>,
}

impl<S: Read + Write> Client<S> {
    /// Wraps a freshly opened stream and reads the server's greeting.
    pub fn connect(stream: S, tracer: Option<Tracer>) -> Result<(Client<S>, Greeting)> {
        let mut connection = Connection::new(stream, tracer);
        let line = connection.read_line(MAX_STATUS_LINE)?;
        connection.trace(Direction::Server, &String::from_utf8_lossy(&line));
        let status = parse_status_line(&line)?;
        if !status.ok {
            return Err(Error::Server {
                command: "the connection".into(),
                status,
            });
        }
        Ok((
            Client {
                connection,
                after_login: Vec::new(),
            },
            Greeting::new(status),
        ))
    }

    /// Resumes after a TLS upgrade: no greeting follows STLS (RFC 2595 §4).
    pub(crate) fn resume(stream: S, tracer: Option<Tracer>) -> Client<S> {
        Client {
            connection: Connection::new(stream, tracer),
            after_login: Vec::new(),
        }
    }

    /// Pipelines `commands` behind the login (RFC 2449 §6.6): they leave in the same write as
    /// the login's last command, so that, say, the post-login CAPA, LIST and UIDL cost no
    /// round trip of their own. Their replies are read when the [`Session`] asks for them;
    /// should the login fail, they are never read (they were answered with `-ERR` or not at
    /// all). Only for servers that announced PIPELINING, and only for logins that take one
    /// exchange: a SASL mechanism without an initial response ignores this.
    pub(crate) fn send_after_login(&mut self, commands: &[Command<'static>]) {
        self.after_login = commands.to_vec();
    }

    /// Sends the login's last command(s) with the commands to pipeline behind them, which
    /// then wait in `ahead` for the session.
    fn send_login(&mut self, login: &[Command<'_>]) -> Result<()> {
        let tail = std::mem::take(&mut self.after_login);
        let mut commands = login.to_vec();
        commands.extend(tail.iter().cloned());
        self.connection.send(&commands)?;
        self.connection.ahead.extend(tail);
        Ok(())
    }

    fn into_session(self) -> Session<S> {
        Session {
            connection: self.connection,
        }
    }

    /// Asks for the capability list; a server without `CAPA` yields an empty list.
    pub(crate) fn capa(&mut self) -> Result<Capabilities> {
        capa(&mut self.connection)
    }

    /// Sends `STLS`. On `+OK` returns the bare stream and the tracer, ready for the TLS
    /// handshake; continue with [`Client::resume`] over the TLS stream.
    pub(crate) fn stls(mut self) -> Result<(S, Option<Tracer>)> {
        self.connection.command(Command::Stls)?;
        // Anything already received arrived before TLS: an attacker may have injected it.
        if self.connection.start != self.connection.end {
            return Err(Error::StlsInjection);
        }
        Ok((self.connection.stream, self.connection.tracer))
    }

    /// Logs in with `USER` and `PASS` (RFC 1939 §7).
    pub fn login_user(mut self, user: &str, password: &str) -> Result<Session<S>> {
        if self.after_login.is_empty() {
            self.connection.command(Command::User(user))?;
            self.connection.command(Command::Pass(password))?;
        } else {
            // Pipelined: a refused USER makes the server refuse PASS too, and is reported.
            let (user, pass) = (Command::User(user), Command::Pass(password));
            self.send_login(&[user.clone(), pass.clone()])?;
            self.connection.read_status(&user)?;
            self.connection.read_status(&pass)?;
        }
        Ok(self.into_session())
    }

    /// Logs in with `APOP` (RFC 1939 §7): the secret itself is never sent, only an MD5 digest
    /// over the greeting's timestamp and the secret.
    pub(crate) fn login_apop(
        mut self,
        user: &str,
        password: &str,
        timestamp: &str,
    ) -> Result<Session<S>> {
        use md5::{Digest, Md5};
        // md-5's `zeroize` feature wipes the hasher's buffered input (which holds the
        // password) when `finalize` consumes it.
        let mut hasher = Md5::new();
        hasher.update(timestamp.as_bytes());
        hasher.update(password.as_bytes());
        let hash = zeroize::Zeroizing::new(<[u8; 16]>::from(hasher.finalize()));
        // 32 hex digits, in a buffer that never grows and is wiped on drop.
        let mut digest = zeroize::Zeroizing::new(String::with_capacity(32));
        for b in hash.iter() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            digest.push(HEX[usize::from(b >> 4)] as char);
            digest.push(HEX[usize::from(b & 15)] as char);
        }
        let apop = Command::Apop {
            user,
            digest: &digest,
        };
        self.send_login(std::slice::from_ref(&apop))?;
        self.connection.read_status(&apop)?;
        Ok(self.into_session())
    }

    /// Authenticates with a SASL mechanism (RFC 5034). `initial_response` is the base64
    /// payload sent on the `AUTH` line, if any; `respond` answers each base64 challenge with
    /// the next base64 line. Payloads are secrets: never traced, and wiped once sent.
    pub(crate) fn authenticate(
        mut self,
        mechanism: &str,
        initial_response: Option<&str>,
        mut respond: impl FnMut(&str) -> zeroize::Zeroizing<String>,
    ) -> Result<Session<S>> {
        let auth = Command::Auth {
            mechanism,
            initial_response,
        };
        if initial_response.is_some() {
            self.send_login(std::slice::from_ref(&auth))?;
        } else {
            // A challenge-response exchange: nothing may follow AUTH until it is over.
            self.after_login.clear();
            self.connection.send(std::slice::from_ref(&auth))?;
        }
        loop {
            let line = self.connection.read_line(MAX_STATUS_LINE)?;
            match parse_auth_reply(&line)? {
                AuthReply::Continue(_) if !self.connection.ahead.is_empty() => {
                    // The server would take the pipelined commands for SASL answers.
                    return Err(Error::Protocol(
                        "the server asked for more after a complete SASL initial response".into(),
                    ));
                }
                AuthReply::Continue(challenge) => {
                    self.connection.trace(Direction::Server, "+ ***");
                    let answer = respond(&challenge);
                    self.connection.send(&[Command::SaslResponse(&answer)])?;
                }
                AuthReply::Status(status) => {
                    self.connection
                        .trace(Direction::Server, &String::from_utf8_lossy(&line));
                    if status.ok {
                        return Ok(self.into_session());
                    }
                    return Err(Error::Server {
                        command: auth.redacted(),
                        status,
                    });
                }
            }
        }
    }
}

/// A logged-in connection in the TRANSACTION state.
pub struct Session<S> {
    connection: Connection<S>,
}

impl<S: Read + Write> Session<S> {
    /// Asks for the capability list again: some servers announce more after login.
    pub(crate) fn capa(&mut self) -> Result<Capabilities> {
        capa(&mut self.connection)
    }

    /// `STAT`: message count and total size.
    pub fn stat(&mut self) -> Result<MaildropStat> {
        let status = self.connection.command(Command::Stat)?;
        response::parse_stat(&status.text)
    }

    /// `LIST`: the scan listing of every message.
    pub(crate) fn list(&mut self) -> Result<Vec<ScanListing>> {
        self.connection.command(Command::List(None))?;
        let mut listings = Vec::new();
        self.connection.read_listing(SCAN_LISTING_LIMITS, |line| {
            // As in UIDL: an unreadable line costs only its message, never the listing.
            listings.extend(response::parse_scan_listing(line).ok());
            Ok(())
        })?;
        Ok(listings)
    }

    /// `UIDL`: the unique-id listing of every message.
    pub(crate) fn uidl(&mut self) -> Result<Vec<UniqueIdListing>> {
        self.connection.command(Command::Uidl(None))?;
        let mut listings = Vec::new();
        self.connection
            .read_listing(UNIQUE_ID_LISTING_LIMITS, |line| {
                // A line naming no message costs only the message it was meant for, which is
                // then missing from the listing (fetch-all reports it); never the whole listing.
                listings.extend(response::parse_unique_id_listing(line).ok());
                Ok(())
            })?;
        Ok(listings)
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

fn capa<S: Read + Write>(connection: &mut Connection<S>) -> Result<Capabilities> {
    match connection.command(Command::Capa) {
        Ok(_) => {
            let mut lines = Vec::new();
            connection.read_listing(CAPABILITY_LIMITS, |line| {
                lines.push(String::from_utf8_lossy(line).into_owned());
                Ok(())
            })?;
            Ok(Capabilities::from_lines(lines))
        }
        // RFC 2449 §5: a server without CAPA answers -ERR; that only means "nothing known".
        Err(Error::Server { .. }) => Ok(Capabilities::default()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{self, Cursor};

    /// A stream that hands out the scripted server bytes one byte per read and records
    /// everything the client writes.
    struct OneByteStream {
        input: Cursor<Vec<u8>>,
        written: Vec<u8>,
    }

    impl OneByteStream {
        fn new(server: &[u8]) -> OneByteStream {
            OneByteStream {
                input: Cursor::new(server.to_vec()),
                written: Vec::new(),
            }
        }
    }

    impl Read for OneByteStream {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let len = buf.len().min(1);
            self.input.read(&mut buf[..len])
        }
    }

    impl Write for OneByteStream {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.written.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn session(server: &[u8]) -> Session<OneByteStream> {
        let (client, _) = Client::connect(OneByteStream::new(server), None).unwrap();
        client.login_user("alice", "pw").unwrap()
    }

    fn n(number: u32) -> MessageNumber {
        MessageNumber::new(number).unwrap()
    }

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

    /// A stream that serves scripted bytes and records what the client writes where the test
    /// can still read it after the session (consumed by `quit`) is gone.
    struct SharedStream {
        input: Cursor<Vec<u8>>,
        written: std::rc::Rc<std::cell::RefCell<Vec<u8>>>,
    }

    impl Read for SharedStream {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.input.read(buf)
        }
    }

    impl Write for SharedStream {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.written.borrow_mut().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn shared_session(
        server: &[u8],
    ) -> (
        Session<SharedStream>,
        std::rc::Rc<std::cell::RefCell<Vec<u8>>>,
    ) {
        let written = std::rc::Rc::default();
        let stream = SharedStream {
            input: Cursor::new(server.to_vec()),
            written: std::rc::Rc::clone(&written),
        };
        let (client, _) = Client::connect(stream, None).unwrap();
        (client.login_user("alice", "pw").unwrap(), written)
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

    #[test]
    fn greeting_timestamp_and_apop_digest() {
        // The example of RFC 1939 §7.
        let server = b"+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n+OK\r\n";
        let (client, greeting) = Client::connect(OneByteStream::new(server), None).unwrap();
        let timestamp = greeting.apop_timestamp.unwrap();
        assert_eq!(timestamp, "<1896.697170952@dbc.mtview.ca.us>");
        let session = client.login_apop("mrose", "tanstaaf", &timestamp).unwrap();
        assert_eq!(
            session.connection.stream.written,
            b"APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n"
        );
    }

    #[test]
    fn err_replies_carry_the_response_code() {
        let server = b"+OK hi\r\n+OK\r\n-ERR [IN-USE] locked\r\n";
        let (client, _) = Client::connect(OneByteStream::new(server), None).unwrap();
        let err = client.login_user("alice", "secret").err().unwrap();
        assert_eq!(
            err.response_code(),
            Some(&super::super::ResponseCode::InUse)
        );
        let text = err.to_string();
        assert!(
            text.contains("PASS ***") && !text.contains("secret"),
            "{text}"
        );
    }

    #[test]
    fn sasl_exchange_with_continuations() {
        let server = b"+OK hi\r\n+ \r\n+OK logged in\r\n";
        let (client, _) = Client::connect(OneByteStream::new(server), None).unwrap();
        let mut challenges = Vec::new();
        let session = client
            .authenticate("PLAIN", None, |c| {
                challenges.push(c.to_owned());
                zeroize::Zeroizing::new("AGFsaWNlAHB3".into())
            })
            .unwrap();
        assert_eq!(challenges, [""]);
        assert_eq!(
            session.connection.stream.written,
            b"AUTH PLAIN\r\nAGFsaWNlAHB3\r\n"
        );
    }

    #[test]
    fn capa_err_means_no_capabilities() {
        let server = b"+OK hi\r\n-ERR unknown command\r\n";
        let (mut client, _) = Client::connect(OneByteStream::new(server), None).unwrap();
        assert!(!client.capa().unwrap().is_known());
    }

    #[test]
    fn stls_refuses_bytes_sent_before_the_handshake() {
        let server = b"+OK hi\r\n+OK Begin TLS\r\n+OK injected\r\n";
        let (client, _) = Client::connect(OneByteStream::new(server), None).unwrap();
        // One byte per read means the injected bytes are not yet buffered: read them eagerly
        // with a stream that delivers everything at once instead.
        drop(client);
        struct AllAtOnce(Cursor<Vec<u8>>, Vec<u8>);
        impl Read for AllAtOnce {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.0.read(buf)
            }
        }
        impl Write for AllAtOnce {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.1.extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let (client, _) =
            Client::connect(AllAtOnce(Cursor::new(server.to_vec()), Vec::new()), None).unwrap();
        assert!(matches!(client.stls(), Err(Error::StlsInjection)));
    }

    #[test]
    fn status_line_over_512_octets_is_an_error() {
        let mut server = b"+OK ".to_vec();
        server.extend(std::iter::repeat_n(b'x', 600));
        server.extend_from_slice(b"\r\n");
        assert!(matches!(
            Client::connect(OneByteStream::new(&server), None),
            Err(Error::LineTooLong { limit: 512 })
        ));
    }

    #[test]
    fn endless_listings_end_in_an_error_at_the_line_limit() {
        let mut server = b"+OK hi\r\n".to_vec();
        for i in 1..=50 {
            server.extend_from_slice(format!("{i} 100\r\n").as_bytes());
        }
        let (mut client, _) = Client::connect(OneByteStream::new(&server), None).unwrap();
        let limits = ListingLimits {
            what: "scan listing (LIST)",
            lines: 10,
            octets: 1 << 20,
        };
        let mut seen = 0;
        let err = client
            .connection
            .read_listing(limits, |_| {
                seen += 1;
                Ok(())
            })
            .unwrap_err();
        assert_eq!(seen, 10, "no line beyond the limit is handed on");
        assert!(
            err.to_string()
                .contains("scan listing (LIST) goes on beyond 10 lines"),
            "{err}"
        );
    }

    #[test]
    fn endless_listings_end_in_an_error_at_the_octet_limit() {
        let mut server = b"+OK hi\r\n".to_vec();
        let long = format!("1 {}1\r\n", "0".repeat(4000));
        for _ in 0..10 {
            server.extend_from_slice(long.as_bytes());
        }
        let (mut client, _) = Client::connect(OneByteStream::new(&server), None).unwrap();
        let limits = ListingLimits {
            what: "unique-id listing (UIDL)",
            lines: 1000,
            octets: 10_000,
        };
        let err = client
            .connection
            .read_listing(limits, |_| Ok(()))
            .unwrap_err();
        assert!(matches!(err, Error::Protocol(_)), "{err}");
    }

    #[test]
    fn endless_capa_is_refused_not_collected() {
        let mut server = b"+OK hi\r\n+OK\r\n".to_vec();
        for i in 0..=CAPABILITY_LIMITS.lines {
            server.extend_from_slice(format!("X-CAP-{i}\r\n").as_bytes());
        }
        let (mut client, _) = Client::connect(OneByteStream::new(&server), None).unwrap();
        let err = client.capa().unwrap_err();
        assert!(err.to_string().contains("capability list (CAPA)"), "{err}");
    }

    #[test]
    fn closed_connection_is_reported() {
        let server = b"+OK hi\r\n+OK\r\n+OK\r\n+OK 2 messages\r\n1 120\r\n";
        let mut session = session(server);
        assert!(matches!(session.list(), Err(Error::ConnectionClosed)));
    }

    #[test]
    fn tracer_never_sees_secrets() {
        use std::sync::{Arc, Mutex};
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let tracer: Tracer = Box::new(move |direction, line| {
            log.lock().unwrap().push(format!("{direction:?} {line}"));
        });
        let server = b"+OK hi\r\n+OK\r\n+OK\r\n";
        let (client, _) = Client::connect(OneByteStream::new(server), Some(tracer)).unwrap();
        client.login_user("alice", "topsecret").unwrap();
        let seen = seen.lock().unwrap().join("\n");
        assert!(seen.contains("Client PASS ***"), "{seen}");
        assert!(!seen.contains("topsecret"));
    }
}
