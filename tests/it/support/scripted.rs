//! An in-process scripted POP3 server, for faults a real server will not produce: odd response
//! codes, disconnects, bare LF, fragmented replies, STLS injection, wrong-host certificates,
//! timeouts.
//!
//! A test writes a transcript (in the spirit of imap-codec's `C:`/`S:` transcripts), starts a
//! [`ScriptedServer`] on `127.0.0.1:<port>`, runs the `pop3` binary against it and then calls
//! [`ScriptedServer::finish`], which panics (showing the transcript so far) if the client did not
//! follow the script, and returns every byte the client sent.
//!
//! # Script syntax
//!
//! A script is a transcript: `S:` lines the server sends, `C:` lines it expects from the
//! client, and `!` directives (`!quiet`, `!close`, `!abort`, `!starttls`, ...), one step per
//! line. The syntax is described once, in `tests/fixtures/transcripts/README.md`, and parsed
//! once, by `src/pop3/transcript.rs`, which the client's unit tests use as well: a canonical
//! dialogue is a fixture file in that folder, loaded with [`transcript`], and replayed by both.
//!
//! When the script ends without `!close`/`!abort`, the server closes the connection as `!close`
//! does. After closing cleanly it keeps reading until the client closes (or 10 s pass), so bytes
//! the client sends after the last scripted step (a final `QUIT`, say) are in the returned bytes.
//!
//! The bytes returned by `finish` are the client's plaintext: raw bytes before TLS, decrypted
//! application data after a handshake (TLS records themselves are not included).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustls::{ServerConfig, ServerConnection, StreamOwned};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

// The transcript parser of the library's unit tests, so that a fixture means the same to both.
#[path = "../../../src/pop3/transcript.rs"]
mod transcript;
use transcript::{Script, Step};

/// How long the server waits for the client to connect, and (plus the script's sleeps) how long
/// `finish` waits for the script to end.
const OVERALL_TIMEOUT: Duration = Duration::from_secs(20);
/// Read timeout on the accepted socket: a hung client cannot hang a test.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Read timeout when draining after the script failed.
const DRAIN_AFTER_ERROR_TIMEOUT: Duration = Duration::from_secs(2);

/// Script steps for the usual opening: greeting, CAPA announcing `capabilities` (separated by
/// spaces), USER alice / PASS pw, and CAPA again after login.
pub fn login_script(capabilities: &str) -> String {
    let capa: String = capabilities
        .split_whitespace()
        .map(|c| format!("S: {c}\n"))
        .collect();
    format!(
        "S: +OK ready
         C: CAPA
         S: +OK
         {capa}
         S: .
         C: USER alice
         S: +OK
         C: PASS pw
         S: +OK
         C: CAPA
         S: +OK
         {capa}
         S: .
"
    )
}

/// The canonical transcript `tests/fixtures/transcripts/NAME.txt`, to pass to
/// [`ScriptedServer::start`] (or `start_tls`) as it is or with steps added.
pub fn transcript(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/transcripts")
        .join(format!("{name}.txt"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("transcript fixture {}: {e}", path.display()))
}

/// Lossy UTF-8 view of bytes, for assertions on what the client sent.
pub fn text_of(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Bytes shown readably: printable ASCII as is, `\r` `\n` `\t` `\\` escaped, the rest as `\xNN`.
fn escaped(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out
}

/// A client line shown readably: the CRLF is left out, anything else is escaped.
fn shown_line(line: &[u8]) -> String {
    match line.strip_suffix(b"\r\n") {
        Some(body) => escaped(body),
        None => format!("{}   [no CRLF]", escaped(line)),
    }
}

impl Script {
    fn uses_starttls(&self) -> bool {
        self.steps.iter().any(|(_, s)| *s == Step::StartTls)
    }

    fn total_sleep(&self) -> Duration {
        self.steps
            .iter()
            .map(|(_, s)| {
                if let Step::Sleep(d) | Step::Quiet(d) = s {
                    *d
                } else {
                    Duration::ZERO
                }
            })
            .sum()
    }
}

/// A fresh test CA and a leaf certificate it signed.
struct TestPki {
    ca_pem: String,
    leaf: CertificateDer<'static>,
    leaf_key: PrivateKeyDer<'static>,
}

impl TestPki {
    fn new(names: &[&str]) -> TestPki {
        use rcgen::{
            BasicConstraints, CertificateParams, DistinguishedName, DnType,
            ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
            string::Ia5String,
        };

        assert!(
            !names.is_empty(),
            "a test certificate needs at least one name"
        );

        let ca_key = KeyPair::generate().expect("generate CA key");
        let mut ca_params = CertificateParams::default();
        ca_params.distinguished_name = DistinguishedName::new();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "pop3 scripted-test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).expect("self-sign CA");
        let issuer = Issuer::new(ca_params, ca_key);

        let leaf_key = KeyPair::generate().expect("generate server key");
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.subject_alt_names = names
            .iter()
            .map(|name| match name.parse::<IpAddr>() {
                // A real IP SAN, so that verification of `127.0.0.1` works.
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(Ia5String::try_from(*name).expect("DNS name")),
            })
            .collect();
        params.is_ca = IsCa::NoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let leaf = params
            .signed_by(&leaf_key, &issuer)
            .expect("sign server certificate");

        TestPki {
            ca_pem: ca_cert.pem(),
            leaf: leaf.der().clone(),
            leaf_key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        }
    }

    fn server_config(&self) -> Arc<ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(vec![self.leaf.clone()], self.leaf_key.clone_key())
            .expect("server certificate");
        Arc::new(config)
    }
}

/// State the server thread shares with the test thread, so that a timed-out `finish` can still
/// show what happened.
#[derive(Default)]
struct Shared {
    client_bytes: Mutex<Vec<u8>>,
    transcript: Mutex<Vec<String>>,
    /// A clone of the accepted socket, to unblock the server thread on drop/timeout.
    socket: Mutex<Option<TcpStream>>,
    stop: AtomicBool,
}

impl Shared {
    fn log(&self, entry: impl Into<String>) {
        self.transcript
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(entry.into());
    }

    fn record(&self, bytes: &[u8]) {
        self.client_bytes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(bytes);
    }

    fn client_bytes(&self) -> Vec<u8> {
        self.client_bytes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn transcript(&self) -> String {
        self.transcript
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n")
    }

    fn kill_socket(&self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(sock) = self
            .socket
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            let _ = sock.shutdown(Shutdown::Both);
        }
    }
}

/// A one-connection POP3 server on `127.0.0.1:port` following a [`Script`] in a thread.
pub struct ScriptedServer {
    /// The port it listens on (on 127.0.0.1).
    pub port: u16,
    ca_file: Option<PathBuf>,
    /// Keeps the CA file alive.
    _ca_dir: Option<tempfile::TempDir>,
    shared: Arc<Shared>,
    done: mpsc::Receiver<Option<String>>,
    thread: Option<JoinHandle<()>>,
    finish_timeout: Duration,
}

impl ScriptedServer {
    /// Plain TCP listener on 127.0.0.1:0 that serves exactly one connection following `script`.
    pub fn start(script: &str) -> ScriptedServer {
        let script = Script::parse(script);
        assert!(
            !script.uses_starttls(),
            "script uses !starttls: start the server with ScriptedServer::start_with_cert"
        );
        Self::spawn(script, None, false)
    }

    /// Like [`start`](Self::start), but the connection is TLS from the first byte (implicit TLS),
    /// with a certificate for `names` (e.g. `&["localhost", "127.0.0.1"]`; IP addresses become
    /// IP SANs) issued by a fresh test CA (see [`ca_file`](Self::ca_file)).
    pub fn start_tls(script: &str, names: &[&str]) -> ScriptedServer {
        let script = Script::parse(script);
        assert!(
            !script.uses_starttls(),
            "!starttls in a script for an implicit-TLS server"
        );
        Self::spawn(script, Some(TestPki::new(names)), true)
    }

    /// For `!starttls` scripts on a plain listener: like [`start`](Self::start), with a
    /// certificate for `names` ready for the upgrade.
    pub fn start_with_cert(script: &str, names: &[&str]) -> ScriptedServer {
        Self::spawn(Script::parse(script), Some(TestPki::new(names)), false)
    }

    /// Path of the PEM file of the CA that signed this server's certificate (for `--ca-file`).
    /// Panics for a server started with [`start`](Self::start), which has no certificate.
    pub fn ca_file(&self) -> &Path {
        self.ca_file.as_deref().expect(
            "ca_file: this ScriptedServer has no certificate (use start_tls or start_with_cert)",
        )
    }

    fn spawn(script: Script, pki: Option<TestPki>, implicit_tls: bool) -> ScriptedServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();

        let (ca_dir, ca_file, tls) = match &pki {
            Some(pki) => {
                let dir = tempfile::tempdir().expect("temp dir for CA file");
                let path = dir.path().join("scripted-ca.pem");
                std::fs::write(&path, &pki.ca_pem).expect("write CA file");
                (Some(dir), Some(path), Some(pki.server_config()))
            }
            None => (None, None, None),
        };

        let shared = Arc::new(Shared::default());
        let (tx, done) = mpsc::channel();
        let finish_timeout = OVERALL_TIMEOUT + script.total_sleep();
        let thread_shared = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name(format!("scripted-pop3-{port}"))
            .spawn(move || {
                let error = serve(listener, &script, tls, implicit_tls, &thread_shared).err();
                if let Some(e) = &error {
                    thread_shared.log(format!("!! {e}"));
                }
                let _ = tx.send(error);
            })
            .expect("spawn scripted server thread");

        ScriptedServer {
            port,
            ca_file,
            _ca_dir: ca_dir,
            shared,
            done,
            thread: Some(thread),
            finish_timeout,
        }
    }

    /// Waits for the script to finish and returns every byte the client sent. Panics, showing
    /// the transcript so far, if the client deviated from the script (a different line, closing
    /// early while a `C` step was pending, a failed TLS handshake, ...) or the script did not end
    /// within 20 s (plus its sleeps).
    pub fn finish(self) -> Vec<u8> {
        let (bytes, error, transcript) = self.wait();
        if let Some(error) = error {
            panic!(
                "scripted POP3 server: {error}\n--- transcript ---\n{transcript}\n--- client sent ---\n{}\n---",
                escaped(&bytes)
            );
        }
        bytes
    }

    /// For a client that must break off the script where `why` says (refusing a TLS handshake,
    /// say): panics unless the script stopped with an error containing `why`, and returns every
    /// byte the client sent.
    pub fn finish_broken_off(self, why: &str) -> Vec<u8> {
        let (bytes, error, transcript) = self.wait();
        match error {
            Some(error) if error.contains(why) => bytes,
            other => panic!(
                "scripted POP3 server: expected the client to break off ({why}), got {other:?}\n--- transcript ---\n{transcript}\n--- client sent ---\n{}\n---",
                escaped(&bytes)
            ),
        }
    }

    /// For a client that must not connect at all (it refused before dialing): stops the server
    /// at once and panics if a client connected.
    pub fn finish_unconnected(self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let (bytes, error, transcript) = self.wait();
        assert_eq!(
            error.as_deref(),
            Some("stopped before a client connected"),
            "--- transcript ---\n{transcript}"
        );
        assert!(bytes.is_empty(), "{}", escaped(&bytes));
    }

    /// Like [`finish`](Self::finish) but never panics: returns the client's bytes and a
    /// description of what went wrong, if anything (including a timeout), followed by the
    /// transcript.
    pub fn finish_lenient(self) -> (Vec<u8>, Option<String>) {
        let (bytes, error, transcript) = self.wait();
        (
            bytes,
            error.map(|e| format!("{e}\n--- transcript ---\n{transcript}")),
        )
    }

    fn wait(mut self) -> (Vec<u8>, Option<String>, String) {
        let error = match self.done.recv_timeout(self.finish_timeout) {
            Ok(error) => {
                if let Some(thread) = self.thread.take() {
                    let _ = thread.join();
                }
                error
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                self.shared.kill_socket();
                Some(format!(
                    "the script did not finish within {:?}",
                    self.finish_timeout
                ))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Some("the server thread panicked (a bug in the scripted server)".to_owned())
            }
        };
        (self.shared.client_bytes(), error, self.shared.transcript())
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        if self.thread.is_some() {
            // Not finished: unblock the server thread so it does not linger.
            self.shared.kill_socket();
        }
    }
}

/// The connection, plain or TLS.
enum Conn {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
}

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => &s.sock,
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

/// Outcome of reading one line.
enum ReadLine {
    Line(Vec<u8>),
    /// The client closed; what it sent of an unterminated line, and a note on how it closed.
    Eof(Vec<u8>, &'static str),
}

struct Session<'a> {
    /// `None` only transiently, while upgrading to TLS.
    conn: Option<Conn>,
    /// Bytes read but not consumed yet (pipelined lines).
    pending: VecDeque<u8>,
    shared: &'a Shared,
}

impl Session<'_> {
    fn conn(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("connection present")
    }

    fn read_line(&mut self) -> Result<ReadLine, String> {
        loop {
            if let Some(pos) = self.pending.iter().position(|&b| b == b'\n') {
                return Ok(ReadLine::Line(self.pending.drain(..=pos).collect()));
            }
            let mut buf = [0u8; 4096];
            match self.conn().read(&mut buf) {
                Ok(0) => return Ok(ReadLine::Eof(self.pending.drain(..).collect(), "closed")),
                Ok(n) => {
                    self.shared.record(&buf[..n]);
                    self.pending.extend(&buf[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return Ok(ReadLine::Eof(
                        self.pending.drain(..).collect(),
                        "closed the TCP connection without TLS close_notify",
                    ));
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(format!(
                        "timed out after {READ_TIMEOUT:?} waiting for a line from the client"
                    ));
                }
                Err(e) => return Err(format!("reading from the client failed: {e}")),
            }
        }
    }

    /// Fails when the client has sent bytes that no step has read yet.
    fn expect_quiet(&mut self, line_no: usize) -> Result<(), String> {
        let Some(Conn::Plain(sock)) = &self.conn else {
            return Err(format!(
                "script line {line_no}: !quiet works on plain connections only"
            ));
        };
        sock.set_nonblocking(true)
            .map_err(|e| format!("!quiet: {e}"))?;
        let mut byte = [0u8; 1];
        let peeked = sock.peek(&mut byte);
        sock.set_nonblocking(false)
            .map_err(|e| format!("!quiet: {e}"))?;
        let sent_ahead = !self.pending.is_empty() || matches!(peeked, Ok(n) if n > 0);
        if sent_ahead {
            return Err(format!(
                "script line {line_no} `!quiet`: the client sent more before the reply it should wait for"
            ));
        }
        Ok(())
    }

    fn expect_line(&mut self, step: &Step, line_no: usize) -> Result<(), String> {
        let what = match step {
            Step::Expect(text) => format!("C: {text}"),
            Step::ExpectAny => "C: *".to_owned(),
            Step::ExpectPrefix(prefix) => format!("C~ {prefix}"),
            _ => unreachable!(),
        };
        let line = match self.read_line()? {
            ReadLine::Line(line) => line,
            ReadLine::Eof(partial, how) => {
                let partial = if partial.is_empty() {
                    String::new()
                } else {
                    format!(" (after sending an unterminated {:?})", escaped(&partial))
                };
                return Err(format!(
                    "the client {how}{partial} while script line {line_no} `{what}` was pending"
                ));
            }
        };
        self.shared.log(format!("C: {}", shown_line(&line)));
        let ok = match line.strip_suffix(b"\r\n") {
            None => false,
            Some(body) => match step {
                Step::Expect(text) => body == text.as_bytes(),
                Step::ExpectAny => true,
                Step::ExpectPrefix(prefix) => body.starts_with(prefix.as_bytes()),
                _ => unreachable!(),
            },
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "script line {line_no} expected `{what}` but the client sent \"{}\"",
                escaped(&line)
            ))
        }
    }

    fn send(&mut self, bytes: &[u8], shown: &str, line_no: usize) -> Result<(), String> {
        self.shared.log(shown.to_owned());
        let conn = self.conn();
        conn.write_all(bytes)
            .and_then(|()| conn.flush())
            .map_err(|e| {
                format!("script line {line_no} `{shown}`: sending to the client failed: {e}")
            })
    }

    fn handshake(&mut self, config: &Arc<ServerConfig>) -> Result<(), String> {
        let sock = match self.conn.take() {
            Some(Conn::Plain(sock)) => sock,
            Some(tls @ Conn::Tls(_)) => {
                self.conn = Some(tls);
                return Err("!starttls on a connection that already is TLS".to_owned());
            }
            None => unreachable!(),
        };
        let tls =
            ServerConnection::new(Arc::clone(config)).map_err(|e| format!("TLS setup: {e}"))?;
        let mut stream = StreamOwned::new(tls, sock);
        let result = loop {
            if !stream.conn.is_handshaking() {
                break Ok(());
            }
            if let Err(e) = stream.conn.complete_io(&mut stream.sock) {
                break Err(e);
            }
        };
        let version = stream.conn.protocol_version();
        self.conn = Some(Conn::Tls(Box::new(stream)));
        match result {
            Ok(()) => {
                self.shared
                    .log(format!("-- TLS handshake complete ({version:?})"));
                Ok(())
            }
            Err(e) => Err(format!("TLS handshake failed: {e}")),
        }
    }

    /// Closes cleanly (close_notify, FIN) and reads until the client closes, recording its bytes.
    fn close(&mut self, drain_timeout: Duration) {
        let conn = self.conn();
        if let Conn::Tls(stream) = conn {
            stream.conn.send_close_notify();
            let _ = stream.flush();
        }
        let _ = conn.tcp().shutdown(Shutdown::Write);
        let _ = conn.tcp().set_read_timeout(Some(drain_timeout));
        let mut buf = [0u8; 4096];
        loop {
            match self.conn().read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.shared.record(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        self.shared.log("-- connection closed");
    }

    fn run(&mut self, script: &Script, tls: Option<&Arc<ServerConfig>>) -> Result<(), String> {
        for (line_no, step) in &script.steps {
            let line_no = *line_no;
            match step {
                Step::Send { bytes, shown } => self.send(bytes, shown, line_no)?,
                Step::Expect(_) | Step::ExpectAny | Step::ExpectPrefix(_) => {
                    self.expect_line(step, line_no)?;
                }
                Step::Close => {
                    self.close(READ_TIMEOUT);
                    return Ok(());
                }
                Step::Abort => {
                    let _ = self.conn().tcp().shutdown(Shutdown::Both);
                    self.shared.log("-- connection aborted");
                    return Ok(());
                }
                Step::Sleep(d) => {
                    self.shared.log(format!("-- sleep {} ms", d.as_millis()));
                    thread::sleep(*d);
                }
                Step::Quiet(d) => {
                    self.shared.log(format!("-- quiet {} ms", d.as_millis()));
                    thread::sleep(*d);
                    self.expect_quiet(line_no)?;
                }
                Step::Flush => {
                    self.conn()
                        .flush()
                        .map_err(|e| format!("flush failed: {e}"))?;
                }
                Step::StartTls => {
                    let config = tls.expect("!starttls without a certificate (checked at start)");
                    if !self.pending.is_empty() {
                        let early: Vec<u8> = self.pending.drain(..).collect();
                        return Err(format!(
                            "at !starttls (script line {line_no}) the client had already sent \
                             plaintext after its last line: \"{}\"",
                            escaped(&early)
                        ));
                    }
                    self.shared.log("-- starting TLS");
                    self.handshake(config)?;
                }
            }
        }
        self.close(READ_TIMEOUT);
        Ok(())
    }
}

fn accept(listener: &TcpListener, shared: &Shared) -> Result<TcpStream, String> {
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("listener: {e}"))?;
    let deadline = Instant::now() + OVERALL_TIMEOUT;
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return Err("stopped before a client connected".to_owned());
        }
        match listener.accept() {
            Ok((sock, peer)) => {
                shared.log(format!("-- client connected from {peer}"));
                return Ok(sock);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    return Err(format!("no client connected within {OVERALL_TIMEOUT:?}"));
                }
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(format!("accept failed: {e}")),
        }
    }
}

fn serve(
    listener: TcpListener,
    script: &Script,
    tls: Option<Arc<ServerConfig>>,
    implicit_tls: bool,
    shared: &Shared,
) -> Result<(), String> {
    let sock = accept(&listener, shared)?;
    drop(listener);
    let setup = |sock: &TcpStream| -> io::Result<()> {
        sock.set_nonblocking(false)?;
        sock.set_nodelay(true)?;
        sock.set_read_timeout(Some(READ_TIMEOUT))?;
        sock.set_write_timeout(Some(READ_TIMEOUT))?;
        *shared.socket.lock().unwrap_or_else(|e| e.into_inner()) = Some(sock.try_clone()?);
        Ok(())
    };
    setup(&sock).map_err(|e| format!("socket setup: {e}"))?;
    if shared.stop.load(Ordering::SeqCst) {
        return Err("stopped".to_owned());
    }

    let mut session = Session {
        conn: Some(Conn::Plain(sock)),
        pending: VecDeque::new(),
        shared,
    };
    let result = match (&tls, implicit_tls) {
        (Some(config), true) => session.handshake(config),
        _ => Ok(()),
    }
    .and_then(|()| session.run(script, tls.as_ref()));
    if result.is_err() {
        // Let the client see EOF rather than hang, and keep what it still sends.
        session.close(DRAIN_AFTER_ERROR_TIMEOUT);
    }
    result
}
