//! `pop3 fetch-all` against the scripted server: what lands in the Maildir / mbox / MDA, what
//! the state remembers across runs, and the exact commands on the wire.
//!
//! The state file is keyed by host, port and user, and the scripted server serves one
//! connection on a fresh port. So that several runs (and several scripted servers) are the same
//! account, runs go through a [`Relay`]: a TCP forwarder on one fixed port that hands each
//! connection it accepts to the next scripted server queued with [`Relay::route`].

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::cli::{Outcome, Pop3};
use crate::support::scripted::{ScriptedServer, login_script, text_of};

// ---------------------------------------------------------------------------------------------
// The relay: one stable port for many scripted servers.

type Tap = Box<dyn FnMut(&[u8]) + Send>;

/// A TCP forwarder on a fixed port: the n-th accepted connection goes to the n-th routed port.
struct Relay {
    port: u16,
    routes: mpsc::Sender<u16>,
    accepted: Arc<Mutex<Vec<Instant>>>,
    tap: Arc<Mutex<Option<Tap>>>,
    stop: Arc<AtomicBool>,
}

impl Relay {
    fn new() -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind relay");
        let port = listener.local_addr().unwrap().port();
        let (routes, targets) = mpsc::channel::<u16>();
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let tap: Arc<Mutex<Option<Tap>>> = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_accepted, thread_tap, thread_stop) =
            (Arc::clone(&accepted), Arc::clone(&tap), Arc::clone(&stop));
        thread::Builder::new()
            .name(format!("relay-{port}"))
            .spawn(move || {
                for client in listener.incoming() {
                    if thread_stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    thread_accepted.lock().unwrap().push(Instant::now());
                    // No route: dropping the client shows it EOF.
                    let Ok(target) = targets.recv_timeout(Duration::from_secs(20)) else {
                        continue;
                    };
                    let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                        continue;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (client2, server2) =
                        (client.try_clone().unwrap(), server.try_clone().unwrap());
                    let tap = Arc::clone(&thread_tap);
                    thread::spawn(move || pump(client, server, Some(tap)));
                    thread::spawn(move || pump(server2, client2, None));
                }
            })
            .expect("spawn relay");
        Relay {
            port,
            routes,
            accepted,
            tap,
            stop,
        }
    }

    /// The next connection goes to `port`.
    fn route(&self, port: u16) {
        self.routes.send(port).expect("relay thread alive");
    }

    /// When each connection was accepted.
    fn accepted(&self) -> Vec<Instant> {
        self.accepted.lock().unwrap().clone()
    }

    /// Calls `tap` with every chunk the client sends, before forwarding it to the server.
    fn set_tap(&self, tap: impl FnMut(&[u8]) + Send + 'static) {
        *self.tap.lock().unwrap() = Some(Box::new(tap));
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, tap: Option<Arc<Mutex<Option<Tap>>>>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => {
                if let Some(tap) = &tap
                    && let Some(f) = tap.lock().unwrap().as_mut()
                {
                    f(&buf[..n]);
                }
                if to.write_all(&buf[..n]).is_err() {
                    let _ = from.shutdown(Shutdown::Read);
                    return;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// An account: a temp dir with a config file (state_dir), a Maildir path and the relay.

struct Fixture {
    root: tempfile::TempDir,
    config: PathBuf,
    relay: Relay,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with_config("")
    }

    /// `extra` goes into `[defaults]` after `state_dir`.
    fn with_config(extra: &str) -> Fixture {
        let root = tempfile::tempdir().expect("temp dir");
        let config = root.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "[defaults]\nstate_dir = {:?}\n{extra}\n",
                root.path().join("state").display().to_string()
            ),
        )
        .unwrap();
        Fixture {
            root,
            config,
            relay: Relay::new(),
        }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.root.path().join(relative)
    }

    fn maildir(&self) -> PathBuf {
        self.path("mail/Maildir")
    }

    /// `pop3 ... fetch-all ARGS` as alice against 127.0.0.1:`port`.
    fn command(&self, port: u16, args: &[&str]) -> Pop3 {
        Pop3::new()
            .args([Path::new("--config"), &self.config])
            .server("127.0.0.1", port, None)
            .login("alice", "pw")
            .args([
                "--tls",
                "none",
                "--allow-plaintext-password",
                "--timeout",
                "5",
                "fetch-all",
            ])
            .args(args)
    }

    /// Runs `fetch-all ARGS` through the relay, connecting to `server`.
    fn fetch(&self, server: &ScriptedServer, args: &[&str]) -> Outcome {
        self.relay.route(server.port);
        self.command(self.relay.port, args).run()
    }

    /// Runs `fetch-all --maildir MAILDIR ARGS` through the relay.
    fn fetch_maildir(&self, server: &ScriptedServer, args: &[&str]) -> Outcome {
        let maildir = self.maildir();
        let mut all = vec!["--maildir", maildir.to_str().unwrap()];
        all.extend_from_slice(args);
        self.fetch(server, &all)
    }

    /// The state file (not the lock, not a compaction temp file), if there is one.
    fn state_file(&self) -> Option<PathBuf> {
        let dir = self.path("state");
        let entries = std::fs::read_dir(&dir).ok()?;
        let files: Vec<PathBuf> = entries
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy();
                !name.ends_with(".lock") && !name.starts_with('.')
            })
            .collect();
        assert!(files.len() <= 1, "one state file per account: {files:?}");
        files.into_iter().next()
    }

    fn state_text(&self) -> String {
        self.state_file()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .unwrap_or_default()
    }

    /// The unique-ids the state remembers as delivered.
    fn delivered(&self) -> BTreeSet<String> {
        self.state_text()
            .lines()
            .filter_map(|l| l.strip_prefix("+ "))
            .map(|rest| rest.rsplit_once(' ').unwrap().0.to_owned())
            .collect()
    }

    /// File name -> content of every file in `Maildir/SUB`.
    fn maildir_files(&self, sub: &str) -> BTreeMap<String, String> {
        files_in(&self.maildir().join(sub))
    }

    /// The contents of the messages in `new/`, sorted.
    fn new_messages(&self) -> Vec<String> {
        let mut contents: Vec<String> = self.maildir_files("new").into_values().collect();
        contents.sort();
        contents
    }
}

fn files_in(dir: &Path) -> BTreeMap<String, String> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| {
                let path = e.unwrap().path();
                (
                    path.file_name().unwrap().to_string_lossy().into_owned(),
                    String::from_utf8(std::fs::read(&path).unwrap()).unwrap(),
                )
            })
            .collect(),
        Err(_) => BTreeMap::new(),
    }
}

/// Every path under `dir`, relative to it (directories end in `/`).
fn tree(dir: &Path) -> BTreeSet<String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let relative = path.strip_prefix(base).unwrap().display().to_string();
            if path.is_dir() {
                out.insert(format!("{relative}/"));
                walk(base, &path, out);
            } else {
                out.insert(relative);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

// ---------------------------------------------------------------------------------------------
// Messages and script pieces.

/// A message as a mail reader should see it (LF line endings).
struct Msg {
    uid: &'static str,
    text: &'static str,
}

const A: Msg = Msg {
    uid: "uid-A",
    text: "From: alice@example.org\nTo: bob@example.org\nSubject: one\n\nFirst message.\n.leading dot\n.\n..two dots\nend\n",
};
const B: Msg = Msg {
    uid: "uid-B",
    text: "From: carol@example.org\nSubject: two\n\nSecond message.\n",
};
const C: Msg = Msg {
    uid: "uid-C",
    text: "From: dave@example.org\nSubject: three\nX-Folded: a\n  folded line\n\nThird\nwith a trailing space \n",
};
const D: Msg = Msg {
    uid: "uid-D",
    text: "From: erin@example.org\nSubject: four\n\nFourth.\n",
};

impl Msg {
    /// The message as it travels: CRLF line endings.
    fn crlf(&self) -> String {
        self.text.replace('\n', "\r\n")
    }

    /// Its size as LIST reports it.
    fn octets(&self) -> usize {
        self.crlf().len()
    }

    /// The whole reply to RETR: status line, byte-stuffed lines, terminator.
    fn retr_reply(&self) -> Vec<u8> {
        let mut out = format!("+OK {} octets\r\n", self.octets()).into_bytes();
        out.extend(stuffed(&self.crlf()));
        out
    }

    /// The reply to `TOP n 0`: the header block and the empty line.
    fn top_reply(&self) -> Vec<u8> {
        let crlf = self.crlf();
        let end = crlf.find("\r\n\r\n").unwrap() + 4;
        let mut out = b"+OK\r\n".to_vec();
        out.extend(stuffed(&crlf[..end]));
        out
    }
}

/// Byte-stuffs CRLF text and adds the terminating line.
fn stuffed(crlf: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for line in crlf.split_inclusive("\r\n") {
        if line.starts_with('.') {
            out.push(b'.');
        }
        out.extend_from_slice(line.as_bytes());
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// One `S=:` step sending exactly `bytes`.
fn send(bytes: &[u8]) -> String {
    let mut step = String::from("S=: ");
    for &b in bytes {
        match b {
            b'\\' => step.push_str("\\\\"),
            b'\r' => step.push_str("\\r"),
            b'\n' => step.push_str("\\n"),
            b'\t' => step.push_str("\\t"),
            0x21..=0x7e => step.push(b as char),
            _ => step.push_str(&format!("\\x{b:02x}")),
        }
    }
    step.push('\n');
    step
}

/// `bytes` sent in pieces of 1, 2, 3, ... 7, 1, 2, ... octets, one write each.
fn send_fragmented(bytes: &[u8]) -> String {
    let mut steps = String::new();
    let mut rest = bytes;
    let mut size = 1;
    while !rest.is_empty() {
        let (piece, tail) = rest.split_at(size.min(rest.len()));
        steps.push_str(&send(piece));
        rest = tail;
        size = size % 7 + 1;
    }
    steps
}

const LOGIN_SENT: [&str; 4] = ["CAPA", "USER alice", "PASS pw", "CAPA"];

/// The reply to LIST for messages numbered from 1.
fn list_reply(messages: &[&Msg]) -> Vec<u8> {
    let mut out = format!("+OK {} messages\r\n", messages.len());
    for (i, m) in messages.iter().enumerate() {
        out += &format!("{} {}\r\n", i + 1, m.octets());
    }
    out += ".\r\n";
    out.into_bytes()
}

/// The reply to UIDL for messages numbered from 1.
fn uidl_reply(messages: &[&Msg]) -> Vec<u8> {
    let mut out = String::from("+OK\r\n");
    for (i, m) in messages.iter().enumerate() {
        out += &format!("{} {}\r\n", i + 1, m.uid);
    }
    out += ".\r\n";
    out.into_bytes()
}

/// `C: LIST` and `C: UIDL` with their replies.
fn list_and_uidl(messages: &[&Msg]) -> String {
    format!(
        "C: LIST\n{}C: UIDL\n{}",
        send(&list_reply(messages)),
        send(&uidl_reply(messages))
    )
}

/// Pipelined `RETR n` for `numbers`, then the replies.
fn retr_pipelined(numbers: &[usize], messages: &[&Msg]) -> String {
    let mut script: String = numbers.iter().map(|n| format!("C: RETR {n}\n")).collect();
    for m in messages {
        script += &send(&m.retr_reply());
    }
    script
}

const QUIT: &str = "C: QUIT\nS: +OK bye\n";

/// The client's lines, without their CRLF.
fn sent_lines(bytes: &[u8]) -> Vec<String> {
    let text = text_of(bytes);
    assert!(text.ends_with("\r\n") || text.is_empty(), "{text:?}");
    text.split_terminator("\r\n").map(str::to_owned).collect()
}

/// Asserts that the client sent the login, then exactly `commands`.
fn assert_sent(bytes: &[u8], commands: &[&str]) {
    let mut expected: Vec<&str> = LOGIN_SENT.to_vec();
    expected.extend_from_slice(commands);
    assert_eq!(sent_lines(bytes), expected);
}

fn sorted(texts: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = texts.iter().map(|t| t.to_string()).collect();
    v.sort();
    v
}

fn assert_silent(outcome: &Outcome) {
    assert_eq!(
        (outcome.stdout.as_str(), outcome.stderr.as_str()),
        ("", ""),
        "a successful run without -v prints nothing (cron mails any output)"
    );
}

/// Runs python3 with `script` and `args`; `None` (with a note) when python3 is not installed.
fn python(script: &str, args: &[&Path]) -> Option<serde_json::Value> {
    let output = match Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("python3 not found: skipping the read-back with Python's mailbox module");
            return None;
        }
        Err(e) => panic!("python3: {e}"),
    };
    assert!(
        output.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(serde_json::from_slice(&output.stdout).expect("python printed JSON"))
}

/// [subject, message bytes as latin-1 text] of every message of a Maildir, as Python reads it.
const PY_MAILDIR: &str = r#"
import json, mailbox, sys
md = mailbox.Maildir(sys.argv[1], factory=None, create=False)
out = []
for key in md.keys():
    msg = md[key]
    out.append([msg["subject"], md.get_bytes(key).decode("latin-1"), msg.get_subdir()])
out.sort()
print(json.dumps(out))
"#;

/// [subject, message bytes as latin-1 text] of every message of an mbox, in file order.
const PY_MBOX: &str = r#"
import json, mailbox, sys
mb = mailbox.mbox(sys.argv[1], create=False)
out = []
for key in mb.keys():
    msg = mb[key]
    out.append([msg["subject"], mb.get_bytes(key).decode("latin-1"), msg.get_from()])
print(json.dumps(out))
"#;

// ---------------------------------------------------------------------------------------------
// 1. Keep mode, the happy path.

fn happy_script(retr: &str) -> String {
    format!(
        "{}{}{retr}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&A, &B, &C])
    )
}

fn assert_happy_maildir(fixture: &Fixture) {
    assert_eq!(fixture.new_messages(), sorted(&[A.text, B.text, C.text]));
    assert!(fixture.maildir_files("tmp").is_empty());
    assert!(fixture.maildir_files("cur").is_empty());
}

#[test]
fn keep_mode_delivers_once_and_silently() {
    let fixture = Fixture::new();
    let server = ScriptedServer::start(&happy_script(&retr_pipelined(&[1, 2, 3], &[&A, &B, &C])));
    let outcome = fixture.fetch_maildir(&server, &[]).expect_code(0);
    assert_silent(&outcome);
    assert_sent(
        &server.finish(),
        &["LIST", "UIDL", "RETR 1", "RETR 2", "RETR 3", "QUIT"],
    );

    // LF line endings, dots unstuffed, nothing else in the Maildir.
    assert_happy_maildir(&fixture);
    let names: Vec<String> = fixture.maildir_files("new").into_keys().collect();
    for name in &names {
        assert!(name.contains("_pop3-"), "{name}");
        assert!(
            !name.contains("uid-"),
            "the unique-id is not in file names: {name}"
        );
    }
    use std::os::unix::fs::PermissionsExt;
    for name in &names {
        let mode = std::fs::metadata(fixture.maildir().join("new").join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "messages are private: {mode:o}");
    }
    assert_eq!(
        fixture.delivered(),
        BTreeSet::from(["uid-A".into(), "uid-B".into(), "uid-C".into()])
    );

    // A real reader sees the same three messages, unread, in new/.
    if let Some(read) = python(PY_MAILDIR, &[&fixture.maildir()]) {
        let expected = serde_json::json!([
            ["one", A.text, "new"],
            ["three", C.text, "new"],
            ["two", B.text, "new"],
        ]);
        assert_eq!(read, expected);
    }

    // Second run, a new server with the same messages: nothing is downloaded again.
    let server = ScriptedServer::start(&format!(
        "{}{}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&A, &B, &C])
    ));
    let outcome = fixture.fetch_maildir(&server, &[]).expect_code(0);
    assert_silent(&outcome);
    assert_sent(&server.finish(), &["LIST", "UIDL", "QUIT"]);
    assert_eq!(
        fixture.maildir_files("new").into_keys().collect::<Vec<_>>(),
        names
    );
}

#[test]
fn verbose_run_prints_a_summary() {
    let fixture = Fixture::new();
    let server = ScriptedServer::start(&happy_script(&retr_pipelined(&[1, 2, 3], &[&A, &B, &C])));
    let outcome = fixture.fetch_maildir(&server, &["-v"]).expect_code(0);
    server.finish();
    assert_eq!(outcome.stdout, "", "stdout stays clean");
    let octets = A.octets() + B.octets() + C.octets();
    assert!(
        outcome.stderr.contains(&format!(
            "command-line: fetched 3 messages ({octets} bytes)"
        )),
        "{}",
        outcome.stderr
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Delete mode.

#[test]
fn delete_mode_deletes_only_after_delivery_and_forgets_after_quit() {
    let fixture = Fixture::new();
    // When the first DELE reaches the server, every message must already be in new/ and
    // recorded in the state: the client is blocked waiting for the DELE replies, so what is on
    // disk now is what a crash at this moment would leave.
    /// Files in new/ and tmp/, and the unique-ids in the state.
    type Snapshot = (usize, usize, BTreeSet<String>);
    let snapshot: Arc<Mutex<Option<Snapshot>>> = Arc::default();
    {
        let snapshot = Arc::clone(&snapshot);
        let new_dir = fixture.maildir().join("new");
        let tmp_dir = fixture.maildir().join("tmp");
        let state_dir = fixture.path("state");
        let mut seen = Vec::new();
        fixture.relay.set_tap(move |chunk| {
            seen.extend_from_slice(chunk);
            let mut slot = snapshot.lock().unwrap();
            if slot.is_none() && text_of(&seen).contains("DELE ") {
                let state: String = std::fs::read_dir(&state_dir)
                    .unwrap()
                    .map(|e| e.unwrap().path())
                    .filter(|p| !p.to_string_lossy().ends_with(".lock"))
                    .map(|p| std::fs::read_to_string(p).unwrap_or_default())
                    .collect();
                let uids = state
                    .lines()
                    .filter_map(|l| l.strip_prefix("+ "))
                    .map(|r| r.split(' ').next().unwrap().to_owned())
                    .collect();
                *slot = Some((files_in(&new_dir).len(), files_in(&tmp_dir).len(), uids));
            }
        });
    }
    let server = ScriptedServer::start(&format!(
        "{}{}{}
         C: DELE 1
         C: DELE 2
         C: DELE 3
         S: +OK
         S: +OK
         S: +OK
         {QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&A, &B, &C]),
        retr_pipelined(&[1, 2, 3], &[&A, &B, &C]),
    ));
    let outcome = fixture.fetch_maildir(&server, &["--delete"]).expect_code(0);
    assert_silent(&outcome);
    let lines = sent_lines(&server.finish());
    assert_eq!(
        lines[4..],
        [
            "LIST", "UIDL", "RETR 1", "RETR 2", "RETR 3", "DELE 1", "DELE 2", "DELE 3", "QUIT"
        ]
    );
    for n in 1..=3 {
        let retr = lines
            .iter()
            .position(|l| *l == format!("RETR {n}"))
            .unwrap();
        let dele = lines
            .iter()
            .position(|l| *l == format!("DELE {n}"))
            .unwrap();
        assert!(retr < dele, "DELE {n} after RETR {n}: {lines:?}");
    }
    let (in_new, in_tmp, recorded) = snapshot.lock().unwrap().take().expect("a DELE was seen");
    assert_eq!((in_new, in_tmp), (3, 0), "delivered before the first DELE");
    assert_eq!(
        recorded,
        BTreeSet::from(["uid-A".into(), "uid-B".into(), "uid-C".into()]),
        "recorded before the first DELE"
    );

    assert_happy_maildir(&fixture);
    // QUIT was confirmed: the deleted messages are forgotten.
    assert_eq!(fixture.delivered(), BTreeSet::new());
    assert_eq!(fixture.state_text(), "pop3-state 1\n");
}

// ---------------------------------------------------------------------------------------------
// 3. The connection drops in the middle of a message.

#[test]
fn a_disconnect_mid_retr_keeps_what_was_complete() {
    let fixture = Fixture::new();
    let partial = &B.retr_reply()[..30];
    let server = ScriptedServer::start(&format!(
        "{}{}
         C: RETR 1
         C: RETR 2
         {}{}
         !abort",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&A, &B]),
        send(&A.retr_reply()),
        send(partial),
    ));
    let outcome = fixture.fetch_maildir(&server, &[]).expect_code(75);
    assert_eq!(outcome.stdout, "");
    assert!(
        outcome.stderr.contains("interrupted") && outcome.stderr.contains("closed the connection"),
        "{}",
        outcome.stderr
    );
    server.finish();
    assert_eq!(fixture.new_messages(), [A.text]);
    assert_eq!(
        fixture.maildir_files("tmp"),
        BTreeMap::new(),
        "no partial file left"
    );
    assert_eq!(fixture.delivered(), BTreeSet::from(["uid-A".into()]));

    // The next run fetches only the second message.
    let server = ScriptedServer::start(&format!(
        "{}{}{}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&A, &B]),
        retr_pipelined(&[2], &[&B]),
    ));
    let outcome = fixture.fetch_maildir(&server, &[]).expect_code(0);
    assert_silent(&outcome);
    assert_sent(&server.finish(), &["LIST", "UIDL", "RETR 2", "QUIT"]);
    assert_eq!(fixture.new_messages(), sorted(&[A.text, B.text]));
    assert!(fixture.maildir_files("tmp").is_empty());
}

// ---------------------------------------------------------------------------------------------
// 4. QUIT is refused or lost after the DELEs.

fn quit_not_confirmed(quit_reply: &str) {
    let fixture = Fixture::new();
    let server = ScriptedServer::start(&format!(
        "{}{}{}
         C: DELE 1
         C: DELE 2
         S: +OK
         S: +OK
         C: QUIT
         {quit_reply}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&A, &B]),
        retr_pipelined(&[1, 2], &[&A, &B]),
    ));
    let outcome = fixture
        .fetch_maildir(&server, &["--delete"])
        .expect_code(75);
    assert!(
        outcome
            .stderr
            .contains("the 2 messages marked for deletion stay on the server"),
        "{}",
        outcome.stderr
    );
    assert_eq!(outcome.stderr.lines().count(), 1, "{}", outcome.stderr);
    server.finish();
    assert_eq!(fixture.new_messages(), sorted(&[A.text, B.text]));
    // Not forgotten: the server may still have them.
    assert_eq!(
        fixture.delivered(),
        BTreeSet::from(["uid-A".into(), "uid-B".into()])
    );

    // The next run finds them still there: no download, but DELE again.
    let server = ScriptedServer::start(&format!(
        "{}{}
         C: DELE 1
         C: DELE 2
         S: +OK
         S: +OK
         {QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&A, &B]),
    ));
    let outcome = fixture.fetch_maildir(&server, &["--delete"]).expect_code(0);
    assert_silent(&outcome);
    assert_sent(
        &server.finish(),
        &["LIST", "UIDL", "DELE 1", "DELE 2", "QUIT"],
    );
    assert_eq!(
        fixture.new_messages(),
        sorted(&[A.text, B.text]),
        "no duplicates"
    );
    assert_eq!(fixture.delivered(), BTreeSet::new());
}

#[test]
fn quit_refused_after_deletions_leaves_them_for_next_time() {
    quit_not_confirmed("S: -ERR [SYS/TEMP] could not update the maildrop");
}

#[test]
fn quit_lost_after_deletions_leaves_them_for_next_time() {
    quit_not_confirmed("!abort");
}

// ---------------------------------------------------------------------------------------------
// 5. Duplicate and hostile unique-ids.

#[test]
fn hostile_and_duplicate_uids_never_reach_the_file_system() {
    let fixture = Fixture::new();
    let x1 = Msg {
        uid: "../../x",
        text: "Subject: dotdot\n\none\n",
    };
    let slash = Msg {
        uid: "a/b",
        text: "Subject: slash\n\ntwo\n",
    };
    let x2 = Msg {
        uid: "../../x",
        text: "Subject: duplicate\n\nthree\n",
    };
    let messages = [&x1, &slash, &x2];
    // Two messages sharing a unique-id are both fetched (issue 8): the second is known by a
    // digest of the id, its size and its ordinal, which never reaches a file name either.
    let script = format!(
        "{}{}{}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&messages),
        retr_pipelined(&[1, 2, 3], &messages),
    );
    let server = ScriptedServer::start(&script);
    let outcome = fixture.fetch_maildir(&server, &[]).expect_code(0);
    assert_silent(&outcome);
    server.finish();
    assert_eq!(
        fixture.new_messages(),
        sorted(&[x1.text, slash.text, x2.text])
    );
    let state_name = fixture
        .state_file()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let mut expected: BTreeSet<String> = [
        "config.toml".to_owned(),
        "state/".into(),
        format!("state/{state_name}"),
        format!("state/{state_name}.lock"),
        "mail/".into(),
        "mail/Maildir/".into(),
        "mail/Maildir/cur/".into(),
        "mail/Maildir/new/".into(),
        "mail/Maildir/tmp/".into(),
    ]
    .into();
    for name in fixture.maildir_files("new").keys() {
        assert!(
            !name.contains("..") && !name.contains("a/b") && !name.contains('/'),
            "{name}"
        );
        expected.insert(format!("mail/Maildir/new/{name}"));
    }
    assert_eq!(
        tree(fixture.root.path()),
        expected,
        "nothing outside the Maildir"
    );

    // The next run downloads nothing again.
    let server = ScriptedServer::start(&format!(
        "{}{}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&messages),
    ));
    assert_silent(&fixture.fetch_maildir(&server, &[]).expect_code(0));
    assert_sent(&server.finish(), &["LIST", "UIDL", "QUIT"]);
    assert_eq!(fixture.maildir_files("new").len(), 3);
}

// ---------------------------------------------------------------------------------------------
// 5b. Identity beyond the unique-id, and listings that contradict themselves (issue 8).

/// popa3d derives the unique-id from the headers: copies of a message share it. DUP1 and DUP2
/// have the same size, DUP3 another.
const DUP1: Msg = Msg {
    uid: "popa3d-0a1b2c",
    text: "From: a@example.org\nSubject: same\n\ncopy one\n",
};
const DUP2: Msg = Msg {
    uid: "popa3d-0a1b2c",
    text: "From: a@example.org\nSubject: same\n\ncopy two\n",
};
const DUP3: Msg = Msg {
    uid: "popa3d-0a1b2c",
    text: "From: a@example.org\nSubject: same\n\nthe third copy\n",
};

#[test]
fn messages_sharing_a_unique_id_are_fetched_once_each() {
    let fixture = Fixture::new();
    // First the server has one copy: it is recorded under its plain unique-id, as before.
    let server = ScriptedServer::start(&format!(
        "{}{}{}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&A, &DUP1]),
        retr_pipelined(&[1, 2], &[&A, &DUP1]),
    ));
    assert_silent(&fixture.fetch_maildir(&server, &[]).expect_code(0));
    server.finish();
    assert_eq!(
        fixture.delivered(),
        BTreeSet::from(["uid-A".into(), "popa3d-0a1b2c".into()])
    );

    // Two more copies arrive: only they are fetched, and each gets its own record and tag.
    let all = [&A, &DUP1, &DUP2, &DUP3];
    let server = ScriptedServer::start(&format!(
        "{}{}{}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&all),
        retr_pipelined(&[3, 4], &[&DUP2, &DUP3]),
    ));
    let outcome = fixture.fetch_maildir(&server, &[]).expect_code(0);
    assert_silent(&outcome);
    assert_sent(
        &server.finish(),
        &["LIST", "UIDL", "RETR 3", "RETR 4", "QUIT"],
    );
    assert_eq!(
        fixture.new_messages(),
        sorted(&[A.text, DUP1.text, DUP2.text, DUP3.text])
    );
    let delivered = fixture.delivered();
    assert_eq!(delivered.len(), 4, "{delivered:?}");
    assert!(delivered.contains("popa3d-0a1b2c"), "{delivered:?}");
    assert_eq!(
        delivered
            .iter()
            .filter(|k| k.starts_with("~sha256:"))
            .count(),
        2,
        "{delivered:?}"
    );

    // Nothing twice.
    let server = ScriptedServer::start(&format!(
        "{}{}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&all),
    ));
    assert_silent(&fixture.fetch_maildir(&server, &[]).expect_code(0));
    assert_sent(&server.finish(), &["LIST", "UIDL", "QUIT"]);

    // Someone deleted A, so the copies are renumbered: still known, and --delete removes
    // exactly them, without fetching any again.
    let server = ScriptedServer::start(&format!(
        "{}{}C: DELE 1\nC: DELE 2\nC: DELE 3\nS: +OK\nS: +OK\nS: +OK\n{QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&DUP1, &DUP2, &DUP3]),
    ));
    assert_silent(&fixture.fetch_maildir(&server, &["--delete"]).expect_code(0));
    server.finish();
    assert_eq!(fixture.maildir_files("new").len(), 4);
    assert_eq!(fixture.delivered(), BTreeSet::new());
}

/// 71 octets: one more than RFC 1939 allows.
const LONG_ID: Msg = Msg {
    uid: "0123456789012345678901234567890123456789012345678901234567890123456789X",
    text: "From: long@example.org\nSubject: long id\n\nlong\n",
};
/// 8-bit and an escape sequence in the unique-id.
const ODD_ID: Msg = Msg {
    uid: "caf\u{e9}\u{1b}[2J",
    text: "From: odd@example.org\nSubject: odd id\n\nodd\n",
};

#[test]
fn ids_that_break_rfc_1939_are_fetched_once() {
    assert_eq!(LONG_ID.uid.len(), 71);
    let fixture = Fixture::new();
    let messages = [&LONG_ID, &ODD_ID, &B];
    let server = ScriptedServer::start(&format!(
        "{}{}{}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&messages),
        retr_pipelined(&[1, 2, 3], &messages),
    ));
    assert_silent(&fixture.fetch_maildir(&server, &[]).expect_code(0));
    server.finish();
    assert_eq!(
        fixture.new_messages(),
        sorted(&[LONG_ID.text, ODD_ID.text, B.text])
    );
    let delivered = fixture.delivered();
    assert!(delivered.contains("uid-B"), "{delivered:?}");
    assert_eq!(
        delivered
            .iter()
            .filter(|k| k.starts_with("~sha256:"))
            .count(),
        2,
        "{delivered:?}"
    );
    assert!(!fixture.state_text().contains('\u{1b}'));

    let server = ScriptedServer::start(&format!(
        "{}{}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&messages),
    ));
    assert_silent(&fixture.fetch_maildir(&server, &[]).expect_code(0));
    assert_sent(&server.finish(), &["LIST", "UIDL", "QUIT"]);
}

#[test]
fn a_junk_line_in_uidl_costs_only_its_message() {
    let fixture = Fixture::new();
    let server = ScriptedServer::start(&format!(
        "{}C: LIST\n{}C: UIDL\n{}{}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        send(&list_reply(&[&A, &B, &C])),
        send(b"+OK\r\n1 uid-A\r\n\x01junk \xff\r\n2\r\n3 uid-C\r\n.\r\n"),
        retr_pipelined(&[1, 3], &[&A, &C]),
    ));
    let outcome = fixture.fetch_maildir(&server, &[]).expect_code(75);
    server.finish();
    assert_eq!(fixture.new_messages(), sorted(&[A.text, C.text]));
    assert_eq!(
        fixture.delivered(),
        BTreeSet::from(["uid-A".into(), "uid-C".into()])
    );
    assert_eq!(outcome.stderr.lines().count(), 1, "{}", outcome.stderr);
    assert!(
        outcome.stderr.contains("message 2 (missing from UIDL)")
            && outcome.stderr.contains("stay on the server")
            && !outcome.stderr.contains("malformed")
            && !outcome.stderr.contains("refused"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn a_message_number_listed_twice_by_list_is_delivered_once() {
    let fixture = Fixture::new();
    let list = format!(
        "+OK\r\n1 {a}\r\n2 {b}\r\n2 {b}\r\n1 {a}\r\n.\r\n",
        a = A.octets(),
        b = B.octets()
    );
    let server = ScriptedServer::start(&format!(
        "{}C: LIST\n{}C: UIDL\n{}{}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        send(list.as_bytes()),
        send(&uidl_reply(&[&A, &B])),
        retr_pipelined(&[1, 2], &[&A, &B]),
    ));
    assert_silent(&fixture.fetch_maildir(&server, &[]).expect_code(0));
    assert_sent(
        &server.finish(),
        &["LIST", "UIDL", "RETR 1", "RETR 2", "QUIT"],
    );
    assert_eq!(fixture.new_messages(), sorted(&[A.text, B.text]));
}

#[test]
fn a_uidl_number_absent_from_list_is_reported_not_an_internal_error() {
    let fixture = Fixture::new();
    let server = ScriptedServer::start(&format!(
        "{}C: LIST\n{}C: UIDL\n{}{}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        send(&list_reply(&[&A, &B])),
        send(b"+OK\r\n1 uid-A\r\n2 uid-B\r\n7 uid-G\r\n.\r\n"),
        retr_pipelined(&[1, 2], &[&A, &B]),
    ));
    let outcome = fixture.fetch_maildir(&server, &[]).expect_code(75);
    server.finish();
    assert_eq!(fixture.new_messages(), sorted(&[A.text, B.text]));
    assert!(
        outcome
            .stderr
            .contains("message 7 (in UIDL but missing from LIST)"),
        "{}",
        outcome.stderr
    );

    // --dry-run says so too.
    let server = ScriptedServer::start(&format!(
        "{}C: LIST\n{}C: UIDL\n{}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        send(&list_reply(&[&A, &B])),
        send(b"+OK\r\n1 uid-A\r\n2 uid-B\r\n7 uid-G\r\n.\r\n"),
    ));
    let outcome = fixture
        .fetch_maildir(&server, &["--dry-run"])
        .expect_code(0);
    server.finish();
    assert!(
        outcome.stdout.contains(
            "  leave message 7 (in UIDL but missing from LIST)  (cannot be identified safely)"
        ),
        "{}",
        outcome.stdout
    );
}

/// A maildrop of `n` messages of 100 octets that UIDL knows nothing about: every one is
/// reported missing, which used to cost time quadratic in `n` (N=40,000: 41 s).
fn run_with_messages_missing_from_uidl(n: usize) -> Duration {
    let fixture = Fixture::new();
    let mut list = String::from("+OK\r\n");
    for i in 1..=n {
        list += &format!("{i} 100\r\n");
    }
    list += ".\r\n";
    let server = ScriptedServer::start(&format!(
        "{}C: LIST\n{}C: UIDL\nS: +OK\nS: .\n{QUIT}",
        login_script("USER UIDL PIPELINING"),
        send(list.as_bytes()),
    ));
    let started = Instant::now();
    let outcome = fixture.fetch_maildir(&server, &[]).expect_code(75);
    let elapsed = started.elapsed();
    server.finish();
    assert_eq!(outcome.stderr.lines().count(), 1);
    assert!(
        outcome.stderr.contains(&format!(
            "message 10 (missing from UIDL); and {} more",
            n - 10
        )),
        "{}",
        &outcome.stderr[..outcome.stderr.len().min(2000)]
    );
    elapsed
}

#[test]
fn many_messages_missing_from_uidl_cost_linear_time() {
    // Quadratic, this took about 20 s; linear, well under one.
    let elapsed = run_with_messages_missing_from_uidl(30_000);
    assert!(elapsed < Duration::from_secs(8), "{elapsed:?}");
}

/// On demand: `cargo test --release --locked -- --ignored listing_of_200000`.
#[test]
#[ignore]
fn listing_of_200000_messages_missing_from_uidl() {
    let elapsed = run_with_messages_missing_from_uidl(200_000);
    eprintln!("N=200000 messages missing from UIDL: fetch-all took {elapsed:?}");
}

// ---------------------------------------------------------------------------------------------
// 6. Message numbers shift between sessions.

#[test]
fn renumbered_messages_are_found_by_uid() {
    let fixture = Fixture::new();
    let server = ScriptedServer::start(&happy_script(&retr_pipelined(&[1, 2, 3], &[&A, &B, &C])));
    fixture.fetch_maildir(&server, &[]).expect_code(0);
    server.finish();

    // Someone deleted A: B and C are now 1 and 2, and the new D is 3.
    let server = ScriptedServer::start(&format!(
        "{}{}{}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&B, &C, &D]),
        retr_pipelined(&[3], &[&D]),
    ));
    let outcome = fixture.fetch_maildir(&server, &[]).expect_code(0);
    assert_silent(&outcome);
    assert_sent(&server.finish(), &["LIST", "UIDL", "RETR 3", "QUIT"]);
    assert_eq!(
        fixture.new_messages(),
        sorted(&[A.text, B.text, C.text, D.text])
    );
    // A left the server, so the state forgets it.
    assert_eq!(
        fixture.delivered(),
        BTreeSet::from(["uid-B".into(), "uid-C".into(), "uid-D".into()])
    );
}

// ---------------------------------------------------------------------------------------------
// 7. Servers without UIDL.

#[test]
fn without_uidl_messages_are_identified_by_their_headers() {
    let fixture = Fixture::new();
    // CAPA without UIDL: no UIDL command at all, pipelined TOP n 0 instead.
    let server = ScriptedServer::start(&format!(
        "{}C: LIST\n{}C: TOP 1 0\nC: TOP 2 0\n{}{}{}{QUIT}",
        login_script("USER TOP PIPELINING"),
        send(&list_reply(&[&A, &B])),
        send(&A.top_reply()),
        send(&B.top_reply()),
        retr_pipelined(&[1, 2], &[&A, &B]),
    ));
    let outcome = fixture.fetch_maildir(&server, &[]).expect_code(0);
    assert_silent(&outcome);
    assert_sent(
        &server.finish(),
        &["LIST", "TOP 1 0", "TOP 2 0", "RETR 1", "RETR 2", "QUIT"],
    );
    assert_eq!(fixture.new_messages(), sorted(&[A.text, B.text]));
    let ids = fixture.delivered();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.iter().all(|id| id.starts_with('H')), "{ids:?}");

    // The same server without CAPA: UIDL is tried and refused, TOP is probed; the digests are
    // the same, so nothing is downloaded again.
    let server = ScriptedServer::start(&format!(
        "S: +OK ready
         C: CAPA
         S: -ERR unknown command
         C: USER alice
         S: +OK
         C: PASS pw
         S: +OK
         C: CAPA
         S: -ERR unknown command
         C: LIST
         {}
         C: UIDL
         S: -ERR unknown command
         C: TOP 1 0
         {}
         C: TOP 2 0
         {}
         {QUIT}",
        send(&list_reply(&[&A, &B])),
        send(&A.top_reply()),
        send(&B.top_reply()),
    ));
    let outcome = fixture.fetch_maildir(&server, &[]).expect_code(0);
    assert_silent(&outcome);
    assert_sent(
        &server.finish(),
        &["LIST", "UIDL", "TOP 1 0", "TOP 2 0", "QUIT"],
    );
    assert_eq!(fixture.new_messages(), sorted(&[A.text, B.text]));
    assert_eq!(fixture.delivered(), ids);
}

#[test]
fn without_uidl_and_top_keep_mode_is_refused() {
    let fixture = Fixture::new();
    // Whatever the client sends after LIST is refused; it must give up with 69 either way.
    let server = ScriptedServer::start(&format!(
        "{}C: LIST\n{}
         C: *
         S: -ERR no
         C: *
         S: -ERR no",
        login_script("USER"),
        send(&list_reply(&[&A, &B])),
    ));
    let outcome = fixture.fetch_maildir(&server, &[]).expect_code(69);
    assert!(
        outcome.stderr.contains("neither UIDL nor TOP") && outcome.stderr.contains("--delete"),
        "{}",
        outcome.stderr
    );
    assert_eq!(outcome.stderr.lines().count(), 1, "{}", outcome.stderr);
    server.finish_lenient();
    assert!(!fixture.maildir().exists(), "nothing delivered");
    assert_eq!(fixture.delivered(), BTreeSet::new());
}

#[test]
fn without_uidl_and_top_keep_mode_refuses_before_downloading() {
    let fixture = Fixture::new();
    // CAPA says there is no TOP: nothing needs to be downloaded to know that keep mode cannot
    // work, and the session should end politely.
    let server = ScriptedServer::start(&format!(
        "{}C: LIST\n{}{QUIT}",
        login_script("USER"),
        send(&list_reply(&[&A, &B])),
    ));
    let outcome = fixture.fetch_maildir(&server, &[]).expect_code(69);
    assert!(
        outcome.stderr.contains("neither UIDL nor TOP"),
        "{}",
        outcome.stderr
    );
    assert_sent(&server.finish(), &["LIST", "QUIT"]);
}

#[test]
fn without_uidl_and_top_delete_mode_works() {
    let fixture = Fixture::new();
    // No pipelining: one command at a time. With neither UIDL nor TOP nothing identifies a
    // message, so each is downloaded once, delivered and deleted.
    let server = ScriptedServer::start(&format!(
        "{}C: LIST\n{}
         C: RETR 1
         {}
         C: RETR 2
         {}
         C: DELE 1
         S: +OK
         C: DELE 2
         S: +OK
         {QUIT}",
        login_script("USER"),
        send(&list_reply(&[&A, &B])),
        send(&A.retr_reply()),
        send(&B.retr_reply()),
    ));
    let outcome = fixture.fetch_maildir(&server, &["--delete"]).expect_code(0);
    assert_silent(&outcome);
    server.finish();
    assert_eq!(fixture.new_messages(), sorted(&[A.text, B.text]));
    assert_eq!(fixture.delivered(), BTreeSet::new());
}

// ---------------------------------------------------------------------------------------------
// 8. Replies fragmented across reads, and coalesced.

#[test]
fn fragmented_and_coalesced_replies_give_the_same_maildir() {
    let mut all_retr = Vec::new();
    for m in [&A, &B, &C] {
        all_retr.extend(m.retr_reply());
    }
    let list_uidl_fragmented = format!(
        "C: LIST\n{}C: UIDL\n{}",
        send_fragmented(&list_reply(&[&A, &B, &C])),
        send_fragmented(&uidl_reply(&[&A, &B, &C])),
    );
    let retr_commands = "C: RETR 1\nC: RETR 2\nC: RETR 3\n";
    let scripts = [
        // All three replies in one write.
        format!(
            "{}{}{retr_commands}{}{QUIT}",
            login_script("USER UIDL PIPELINING"),
            list_and_uidl(&[&A, &B, &C]),
            send(&all_retr)
        ),
        // Every reply cut into pieces of 1 to 7 octets, across status lines, stuffed dots
        // and terminators.
        format!(
            "{}{list_uidl_fragmented}{retr_commands}{}{QUIT}",
            login_script("USER UIDL PIPELINING"),
            send_fragmented(&all_retr)
        ),
        // One octet per write, with pauses so that the reads really are that small.
        format!(
            "{}{list_uidl_fragmented}{retr_commands}{}{QUIT}",
            login_script("USER UIDL PIPELINING"),
            all_retr
                .iter()
                .enumerate()
                .map(|(i, &b)| {
                    let pause = if i % 40 == 0 { "!sleep 1\n" } else { "" };
                    format!("{pause}{}", send(&[b]))
                })
                .collect::<String>()
        ),
    ];
    for script in scripts {
        let fixture = Fixture::new();
        let server = ScriptedServer::start(&script);
        // Straight to the server, without the relay, so that the fragments arrive as sent.
        let maildir = fixture.maildir();
        let outcome = fixture
            .command(server.port, &["--maildir", maildir.to_str().unwrap()])
            .run()
            .expect_code(0);
        assert_silent(&outcome);
        assert_sent(
            &server.finish(),
            &["LIST", "UIDL", "RETR 1", "RETR 2", "RETR 3", "QUIT"],
        );
        assert_happy_maildir(&fixture);
    }
}

// ---------------------------------------------------------------------------------------------
// 9. One RETR refused.

#[test]
fn a_refused_retr_skips_that_message_only() {
    let fixture = Fixture::new();
    let server = ScriptedServer::start(&format!(
        "{}{}
         C: RETR 1
         C: RETR 2
         C: RETR 3
         {}
         S: -ERR [SYS/TEMP] message is locked
         {}
         C: DELE 1
         C: DELE 3
         S: +OK
         S: +OK
         {QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&A, &B, &C]),
        send(&A.retr_reply()),
        send(&C.retr_reply()),
    ));
    let outcome = fixture
        .fetch_maildir(&server, &["--delete"])
        .expect_code(75);
    assert_eq!(outcome.stdout, "");
    assert!(
        outcome.stderr.contains("message 2 (uid-B)")
            && outcome.stderr.contains("message is locked")
            && outcome.stderr.contains("stay on the server"),
        "{}",
        outcome.stderr
    );
    assert_eq!(outcome.stderr.lines().count(), 1, "{}", outcome.stderr);
    // Never DELE a message that was not delivered.
    assert_sent(
        &server.finish(),
        &[
            "LIST", "UIDL", "RETR 1", "RETR 2", "RETR 3", "DELE 1", "DELE 3", "QUIT",
        ],
    );
    assert_eq!(fixture.new_messages(), sorted(&[A.text, C.text]));
    assert_eq!(fixture.delivered(), BTreeSet::new());

    // Next time the server has only B left, now as message 1.
    let server = ScriptedServer::start(&format!(
        "{}{}{}C: DELE 1\nS: +OK\n{QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&B]),
        retr_pipelined(&[1], &[&B]),
    ));
    fixture.fetch_maildir(&server, &["--delete"]).expect_code(0);
    assert_sent(
        &server.finish(),
        &["LIST", "UIDL", "RETR 1", "DELE 1", "QUIT"],
    );
    assert_eq!(fixture.new_messages(), sorted(&[A.text, B.text, C.text]));
}

// ---------------------------------------------------------------------------------------------
// 10. Mailbox in use.

#[test]
fn in_use_at_login_is_temporary_and_writes_nothing() {
    let fixture = Fixture::new();
    let server = ScriptedServer::start(
        "S: +OK ready
         C: CAPA
         S: +OK
         S: USER
         S: UIDL
         S: .
         C: USER alice
         S: +OK
         C: PASS pw
         S: -ERR [IN-USE] mailbox is locked by another session",
    );
    let outcome = fixture.fetch_maildir(&server, &[]).expect_code(75);
    assert!(outcome.stderr.contains("[IN-USE]"), "{}", outcome.stderr);
    assert_eq!(outcome.stderr.lines().count(), 1, "{}", outcome.stderr);
    let (sent, _) = server.finish_lenient();
    assert_eq!(text_of(&sent).matches("PASS").count(), 1, "no retry");
    assert!(!fixture.maildir().exists());
    assert_eq!(fixture.delivered(), BTreeSet::new());
}

// ---------------------------------------------------------------------------------------------
// 11. max_message_size.

#[test]
fn too_big_messages_stay_and_are_reported_once() {
    let fixture = Fixture::with_config("max_message_size = \"1K\"");
    let big = Msg {
        uid: "uid-big",
        text: "Subject: big\n\nnot sent\n",
    };
    let list = "+OK\r\n1 100\r\n2 2048\r\n3 100\r\n.\r\n";
    let script = |retr: &str| {
        format!(
            "{}C: LIST\n{}C: UIDL\n{}{retr}{QUIT}",
            login_script("USER UIDL PIPELINING"),
            send(list.as_bytes()),
            send(&uidl_reply(&[&A, &big, &B])),
        )
    };
    let server = ScriptedServer::start(&script(&retr_pipelined(&[1, 3], &[&A, &B])));
    let outcome = fixture.fetch_maildir(&server, &[]).expect_code(0);
    assert_eq!(outcome.stdout, "");
    assert_eq!(outcome.stderr.lines().count(), 1, "{}", outcome.stderr);
    assert!(
        outcome
            .stderr
            .contains("message 2 (2.0 KiB) is larger than max_message_size (1.0 KiB)")
            && outcome.stderr.contains("stays on the server"),
        "{}",
        outcome.stderr
    );
    assert_sent(
        &server.finish(),
        &["LIST", "UIDL", "RETR 1", "RETR 3", "QUIT"],
    );
    assert_eq!(fixture.new_messages(), sorted(&[A.text, B.text]));

    // Second run: still too big, not fetched, and not reported again.
    let server = ScriptedServer::start(&script(""));
    let outcome = fixture.fetch_maildir(&server, &[]).expect_code(0);
    assert_silent(&outcome);
    assert_sent(&server.finish(), &["LIST", "UIDL", "QUIT"]);
    assert!(
        fixture.state_text().contains("s uid-big\n"),
        "{}",
        fixture.state_text()
    );
}

// ---------------------------------------------------------------------------------------------
// 11b. delete_larger_than and filter_command.

#[test]
fn a_lost_quit_after_delete_larger_than_retries_the_dele_without_reporting_again() {
    let fixture = Fixture::with_config("delete_larger_than = \"1K\"");
    let big = Msg {
        uid: "uid-big",
        text: "Subject: big\n\nnot sent\n",
    };
    let list = "+OK\r\n1 100\r\n2 2048\r\n3 100\r\n.\r\n";
    let opening = format!(
        "{}C: LIST\n{}C: UIDL\n{}",
        login_script("USER UIDL PIPELINING"),
        send(list.as_bytes()),
        send(&uidl_reply(&[&A, &big, &B])),
    );
    let server = ScriptedServer::start(&format!(
        "{opening}C: DELE 2\nC: RETR 1\nC: RETR 3\nS: +OK\n{}C: QUIT\n!abort",
        retr_pipelined(&[], &[&A, &B]),
    ));
    let outcome = fixture.fetch_maildir(&server, &[]).expect_code(75);
    let lines: Vec<&str> = outcome.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{}", outcome.stderr);
    assert!(
        lines[0].contains(
            "message 2 (2.0 KiB, uid uid-big) is larger than delete_larger_than (1.0 KiB): deleting it from the server unread"
        ),
        "{}",
        outcome.stderr
    );
    assert!(
        lines[1].contains("the 1 message marked for deletion stay"),
        "{}",
        outcome.stderr
    );
    server.finish_lenient();
    assert_eq!(fixture.new_messages(), sorted(&[A.text, B.text]));
    assert!(fixture.state_text().contains("k uid-big\n"));

    // The next run deletes it again, silently; once QUIT is confirmed the state forgets it.
    let server = ScriptedServer::start(&format!("{opening}C: DELE 2\nS: +OK\n{QUIT}"));
    let outcome = fixture.fetch_maildir(&server, &[]).expect_code(0);
    assert_silent(&outcome);
    assert_sent(&server.finish(), &["LIST", "UIDL", "DELE 2", "QUIT"]);
    assert!(!fixture.state_text().contains("uid-big"));
}

#[test]
fn filter_command_without_top_is_a_config_error_before_anything_happens() {
    let fixture = Fixture::with_config("filter_command = [\"true\"]");
    let server = ScriptedServer::start(&format!(
        "{}{}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&A]),
    ));
    let outcome = fixture.fetch_maildir(&server, &[]).expect_code(78);
    assert_eq!(
        outcome.stderr,
        "pop3: filter_command needs the server's TOP command, which this server does not offer; remove filter_command for this account\n"
    );
    server.finish_lenient();
    assert!(!fixture.maildir().exists());
    assert_eq!(fixture.state_text().lines().count(), 1, "nothing recorded");
}

// ---------------------------------------------------------------------------------------------
// 12. mbox.

#[test]
fn mbox_quotes_from_lines_the_mboxrd_way() {
    let fixture = Fixture::new();
    let quoting = Msg {
        uid: "uid-Q",
        text: "From: frank@example.org\nSubject: quoting\n\nFrom me\n>From you\nFromage\n",
    };
    let server = ScriptedServer::start(&format!(
        "{}{}{}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&B, &quoting]),
        retr_pipelined(&[1, 2], &[&B, &quoting]),
    ));
    let mbox = fixture.path("mail/inbox");
    let outcome = fixture
        .fetch(&server, &["--mbox", mbox.to_str().unwrap()])
        .expect_code(0);
    assert_silent(&outcome);
    server.finish();
    assert!(
        !fixture.path("mail/inbox.lock").exists(),
        "dot-lock released"
    );

    let text = std::fs::read_to_string(&mbox).unwrap();
    let separators: Vec<&str> = text.lines().filter(|l| l.starts_with("From ")).collect();
    assert_eq!(separators.len(), 2, "{text}");
    assert!(
        separators
            .iter()
            .all(|l| l.starts_with("From MAILER-DAEMON ")),
        "{text}"
    );
    assert!(text.contains("\n>From me\n>>From you\nFromage\n"), "{text}");
    // Each message is followed by an empty line.
    let first = format!("{}\n{}\n", separators[0], B.text);
    assert!(text.starts_with(&first), "{text}");
    assert!(text.ends_with("\nFromage\n\n"), "{text}");

    if let Some(read) = python(PY_MBOX, &[&mbox]) {
        let messages = read.as_array().unwrap();
        assert_eq!(messages.len(), 2, "{read}");
        assert_eq!(messages[0][0], "two");
        assert_eq!(messages[1][0], "quoting");
        // Python's mbox does not undo mboxrd quoting; the unquoted message is exact.
        assert_eq!(messages[0][1], B.text);
        assert_eq!(
            messages[1][1],
            quoting
                .text
                .replace(">From you", ">>From you")
                .replace("\nFrom me", "\n>From me")
        );
    }

    // Nothing is appended twice.
    let server = ScriptedServer::start(&format!(
        "{}{}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&B, &quoting]),
    ));
    fixture
        .fetch(&server, &["--mbox", mbox.to_str().unwrap()])
        .expect_code(0);
    server.finish();
    assert_eq!(std::fs::read_to_string(&mbox).unwrap(), text);
}

// ---------------------------------------------------------------------------------------------
// 13. MDA.

#[test]
fn a_failing_mda_leaves_the_message_for_the_next_run() {
    let fixture = Fixture::new();
    let out = fixture.path("delivered");
    std::fs::create_dir(&out).unwrap();
    let out = out.display().to_string();
    // Refuses the message with Subject "two" (exit 1), delivers the others.
    let picky = fixture.path("picky.sh");
    std::fs::write(
        &picky,
        format!(
            "f=$(mktemp \"{out}/.part.XXXXXX\") || exit 75\n\
             cat > \"$f\"\n\
             if grep -q '^Subject: two$' \"$f\"; then rm -f \"$f\"; exit 1; fi\n\
             mv \"$f\" \"{out}/msg.${{f##*.part.}}\"\n"
        ),
    )
    .unwrap();
    let deliver = fixture.path("deliver.sh");
    std::fs::write(
        &deliver,
        format!("f=$(mktemp \"{out}/msg.XXXXXX\") || exit 75\nexec cat > \"$f\"\n"),
    )
    .unwrap();
    // "sh FILE": --mda is split at spaces, and running sh avoids exec'ing a freshly written file.
    let mda = |script: &Path| format!("sh {}", script.display());

    let server = ScriptedServer::start(&format!(
        "{}{}{}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&A, &B]),
        retr_pipelined(&[1, 2], &[&A, &B]),
    ));
    let outcome = fixture.fetch(&server, &["--mda", &mda(&picky)]);
    assert_ne!(outcome.code, 0, "{}", outcome.stderr);
    assert_eq!(outcome.code, 75, "{}", outcome.stderr);
    assert!(
        outcome.stderr.contains("failed") && outcome.stderr.contains("stay"),
        "{}",
        outcome.stderr
    );
    server.finish();
    let delivered = |dir: &str| -> Vec<String> {
        let mut v: Vec<String> = files_in(Path::new(dir)).into_values().collect();
        v.sort();
        v
    };
    assert_eq!(delivered(&out), [A.text]);
    assert_eq!(fixture.delivered(), BTreeSet::from(["uid-A".into()]));

    // With a working MDA the refused message arrives, and only it is downloaded.
    let server = ScriptedServer::start(&format!(
        "{}{}{}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&A, &B]),
        retr_pipelined(&[2], &[&B]),
    ));
    let outcome = fixture
        .fetch(&server, &["--mda", &mda(&deliver)])
        .expect_code(0);
    assert_silent(&outcome);
    assert_sent(&server.finish(), &["LIST", "UIDL", "RETR 2", "QUIT"]);
    assert_eq!(delivered(&out), sorted(&[A.text, B.text]));
    assert_eq!(
        fixture.delivered(),
        BTreeSet::from(["uid-A".into(), "uid-B".into()])
    );
}

// ---------------------------------------------------------------------------------------------
// 14. Two runs for one account.

fn spawn(pop3: Pop3) -> (std::process::Child, tempfile::TempDir) {
    let (mut command, home) = pop3.into_command();
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pop3");
    (child, home)
}

fn outcome_of(child: std::process::Child) -> Outcome {
    let output = child.wait_with_output().unwrap();
    Outcome {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[test]
fn a_second_run_for_the_same_account_exits_or_waits() {
    const SLOW_MS: u64 = 2500;
    let fixture = Fixture::new();
    let maildir = fixture.maildir();
    let args = ["--maildir", maildir.to_str().unwrap()];
    let slow = ScriptedServer::start(&format!(
        "!sleep {SLOW_MS}\n{}{}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[]),
    ));
    let next = ScriptedServer::start(&format!(
        "{}{}{}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&A]),
        retr_pipelined(&[1], &[&A]),
    ));
    fixture.relay.route(slow.port);
    fixture.relay.route(next.port);

    let first = spawn(fixture.command(fixture.relay.port, &args));
    // The first run has connected, so it holds the lock.
    let deadline = Instant::now() + Duration::from_secs(10);
    while fixture.relay.accepted().is_empty() {
        assert!(Instant::now() < deadline, "the first run never connected");
        thread::sleep(Duration::from_millis(10));
    }

    let started = Instant::now();
    let busy = fixture
        .command(fixture.relay.port, &args)
        .run()
        .expect_code(75);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        busy.stderr.contains("already fetching") && busy.stderr.contains("--wait"),
        "{}",
        busy.stderr
    );
    assert_eq!(
        fixture.relay.accepted().len(),
        1,
        "the refused run never connects"
    );

    let mut wait_args = args.to_vec();
    wait_args.push("--wait");
    let waiting = spawn(fixture.command(fixture.relay.port, &wait_args));
    let first = outcome_of(first.0).expect_code(0);
    assert_silent(&first);
    let waited = outcome_of(waiting.0).expect_code(0);
    assert_silent(&waited);
    slow.finish();
    assert_sent(&next.finish(), &["LIST", "UIDL", "RETR 1", "QUIT"]);
    let accepted = fixture.relay.accepted();
    assert_eq!(accepted.len(), 2);
    assert!(
        accepted[1] - accepted[0] >= Duration::from_millis(SLOW_MS),
        "the waiting run connected only after the first one finished"
    );
    assert_eq!(fixture.new_messages(), [A.text]);
}

// ---------------------------------------------------------------------------------------------
// 15. Dry run.

#[test]
fn dry_run_changes_nothing_and_says_what_it_would_do() {
    let fixture = Fixture::new();
    // A is already delivered.
    let server = ScriptedServer::start(&format!(
        "{}{}{}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&A]),
        retr_pipelined(&[1], &[&A]),
    ));
    fixture.fetch_maildir(&server, &[]).expect_code(0);
    server.finish();
    let state_before = fixture.state_text();
    let tree_before = tree(fixture.root.path());

    for (args, deleting) in [
        (vec!["--dry-run"], "0 messages from the server"),
        (
            vec!["--dry-run", "--delete"],
            "3 messages from the server: 1 2 3",
        ),
    ] {
        let server = ScriptedServer::start(&format!(
            "{}{}{QUIT}",
            login_script("USER UIDL PIPELINING"),
            list_and_uidl(&[&A, &B, &C]),
        ));
        let outcome = fixture.fetch_maildir(&server, &args).expect_code(0);
        assert_sent(&server.finish(), &["LIST", "UIDL", "QUIT"]);
        let lines: Vec<&str> = outcome.stdout.lines().collect();
        let octets = B.octets() + C.octets();
        assert_eq!(
            lines[0],
            format!(
                "command-line: would fetch 2 messages ({octets} bytes) into Maildir {}",
                fixture.maildir().display()
            )
        );
        assert_eq!(lines.len(), 4, "{}", outcome.stdout);
        assert!(
            lines[1].contains(" 2 ") && lines[1].ends_with("uid-B"),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].contains(" 3 ") && lines[2].ends_with("uid-C"),
            "{}",
            lines[2]
        );
        assert_eq!(lines[3], format!("command-line: would delete {deleting}"));
        assert_eq!(outcome.stderr, "");
        assert_eq!(fixture.state_text(), state_before);
        assert_eq!(tree(fixture.root.path()), tree_before);
    }
}

#[test]
fn dry_run_on_a_new_account_creates_no_maildir() {
    let fixture = Fixture::new();
    let server = ScriptedServer::start(&format!(
        "{}{}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&A]),
    ));
    let outcome = fixture
        .fetch_maildir(&server, &["--dry-run"])
        .expect_code(0);
    assert_sent(&server.finish(), &["LIST", "UIDL", "QUIT"]);
    assert!(
        outcome
            .stdout
            .starts_with("command-line: would fetch 1 message "),
        "{}",
        outcome.stdout
    );
    assert!(!fixture.maildir().exists());
    assert_eq!(fixture.delivered(), BTreeSet::new());
}

#[test]
fn dry_run_on_a_new_account_writes_no_state_file() {
    let fixture = Fixture::new();
    let server = ScriptedServer::start(&format!(
        "{}{}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&A]),
    ));
    fixture
        .fetch_maildir(&server, &["--dry-run"])
        .expect_code(0);
    server.finish();
    assert_eq!(fixture.state_file(), None, "--dry-run changes nothing");
}

// ---------------------------------------------------------------------------------------------
// Exactly once: a run that delivered but died before recording.

#[test]
fn messages_delivered_but_not_recorded_are_recognised() {
    let fixture = Fixture::new();
    let server = ScriptedServer::start(&happy_script(&retr_pipelined(&[1, 2, 3], &[&A, &B, &C])));
    fixture.fetch_maildir(&server, &[]).expect_code(0);
    server.finish();
    // As if the run had died between renaming into new/ and appending to the state; a mail
    // reader has meanwhile moved one message to cur/.
    std::fs::remove_file(fixture.state_file().unwrap()).unwrap();
    let (name, _) = fixture.maildir_files("new").pop_first().unwrap();
    std::fs::rename(
        fixture.maildir().join("new").join(&name),
        fixture.maildir().join("cur").join(format!("{name}:2,S")),
    )
    .unwrap();

    let server = ScriptedServer::start(&format!(
        "{}{}{}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&A, &B, &C, &D]),
        retr_pipelined(&[4], &[&D]),
    ));
    let outcome = fixture.fetch_maildir(&server, &["-v"]).expect_code(0);
    assert!(
        outcome
            .stderr
            .contains("3 already delivered by an interrupted run"),
        "{}",
        outcome.stderr
    );
    assert_sent(&server.finish(), &["LIST", "UIDL", "RETR 4", "QUIT"]);
    assert_eq!(
        fixture.maildir_files("new").len() + fixture.maildir_files("cur").len(),
        4
    );
    assert_eq!(
        fixture.delivered(),
        BTreeSet::from([
            "uid-A".into(),
            "uid-B".into(),
            "uid-C".into(),
            "uid-D".into()
        ])
    );
}

// ---------------------------------------------------------------------------------------------
// More on deletion: batches, keep_days, --keep, refused DELE.

#[test]
fn deletions_of_a_batch_follow_all_of_its_retrs() {
    // 201 messages: one full batch of 200, then one more. The DELEs of the first batch go out
    // only once its 200 messages are on disk; RETRs keep flowing meanwhile (RETR 201 is already
    // in flight when the batch is committed), so on the wire all RETRs precede the DELEs.
    let fixture = Fixture::new();
    let messages: Vec<Msg> = (1..=201)
        .map(|n| Msg {
            uid: Box::leak(format!("u{n}").into_boxed_str()),
            text: Box::leak(format!("Subject: m{n}\n\nbody {n}\n").into_boxed_str()),
        })
        .collect();
    let refs: Vec<&Msg> = messages.iter().collect();
    let on_disk: Arc<Mutex<Option<usize>>> = Arc::default();
    {
        let on_disk = Arc::clone(&on_disk);
        let new_dir = fixture.maildir().join("new");
        let mut seen = Vec::new();
        fixture.relay.set_tap(move |chunk| {
            seen.extend_from_slice(chunk);
            let mut slot = on_disk.lock().unwrap();
            if slot.is_none() && text_of(&seen).contains("DELE ") {
                *slot = Some(files_in(&new_dir).len());
            }
        });
    }
    // Lockstep steps work whatever the client's window: each reply follows its command.
    let mut script = format!(
        "{}{}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&refs)
    );
    for (i, m) in refs.iter().enumerate() {
        script += &format!("C: RETR {}\n{}", i + 1, send(&m.retr_reply()));
    }
    for n in 1..=201 {
        script += &format!("C: DELE {n}\nS: +OK\n");
    }
    script += QUIT;
    let server = ScriptedServer::start(&script);
    let outcome = fixture.fetch_maildir(&server, &["--delete"]).expect_code(0);
    assert_silent(&outcome);
    server.finish();
    let at_first_dele = on_disk.lock().unwrap().expect("a DELE was sent");
    assert!(
        at_first_dele >= 200,
        "only {at_first_dele} files in new/ at the first DELE"
    );
    assert_eq!(fixture.maildir_files("new").len(), 201);
    assert_eq!(fixture.delivered(), BTreeSet::new());
}

#[test]
fn keep_days_deletes_only_messages_old_enough() {
    let fixture = Fixture::with_config("keep_days = 1");
    let server = ScriptedServer::start(&format!(
        "{}{}{}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&A]),
        retr_pipelined(&[1], &[&A]),
    ));
    fixture.fetch_maildir(&server, &[]).expect_code(0);
    assert_sent(&server.finish(), &["LIST", "UIDL", "RETR 1", "QUIT"]);

    // A was first seen two days ago (as far as the state knows); B arrives now.
    let state = fixture.state_file().unwrap();
    let two_days_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 2 * 86_400;
    std::fs::write(&state, format!("pop3-state 1\n+ uid-A {two_days_ago}\n")).unwrap();
    let server = ScriptedServer::start(&format!(
        "{}{}
         C: DELE 1
         C: RETR 2
         S: +OK
         {}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&A, &B]),
        send(&B.retr_reply()),
    ));
    let outcome = fixture.fetch_maildir(&server, &[]).expect_code(0);
    assert_silent(&outcome);
    assert_sent(
        &server.finish(),
        &["LIST", "UIDL", "DELE 1", "RETR 2", "QUIT"],
    );
    assert_eq!(fixture.delivered(), BTreeSet::from(["uid-B".into()]));

    // --keep overrides keep_days (and delete): B stays even when it is old.
    std::fs::write(&state, format!("pop3-state 1\n+ uid-B {two_days_ago}\n")).unwrap();
    let server = ScriptedServer::start(&format!(
        "{}{}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&B]),
    ));
    fixture.fetch_maildir(&server, &["--keep"]).expect_code(0);
    assert_sent(&server.finish(), &["LIST", "UIDL", "QUIT"]);
    assert_eq!(fixture.new_messages(), sorted(&[A.text, B.text]));
}

#[test]
fn a_refused_dele_is_retried_not_downloaded_again() {
    let fixture = Fixture::new();
    let mbox = fixture.path("inbox");
    let args = ["--delete", "--mbox", mbox.to_str().unwrap()];
    let server = ScriptedServer::start(&format!(
        "{}{}{}
         C: DELE 1
         C: DELE 2
         S: +OK
         S: -ERR [SYS/TEMP] cannot delete now
         {QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&A, &B]),
        retr_pipelined(&[1, 2], &[&A, &B]),
    ));
    let outcome = fixture.fetch(&server, &args);
    assert!(outcome.stderr.contains("DELE 2"), "{}", outcome.stderr);
    server.finish();
    // B is still on the server and was delivered: the state must keep it.
    assert_eq!(fixture.delivered(), BTreeSet::from(["uid-B".into()]));

    let server = ScriptedServer::start(&format!(
        "{}{}C: DELE 1\nS: +OK\n{QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&B]),
    ));
    fixture.fetch(&server, &args).expect_code(0);
    assert_sent(&server.finish(), &["LIST", "UIDL", "DELE 1", "QUIT"]);
    let text = std::fs::read_to_string(&mbox).unwrap();
    assert_eq!(
        text.matches("Subject: two").count(),
        1,
        "delivered twice:\n{text}"
    );
}

// ---------------------------------------------------------------------------------------------
// mbox: a disconnect mid-message leaves no partial message.

#[test]
fn mbox_disconnect_mid_retr_leaves_only_whole_messages() {
    let fixture = Fixture::new();
    let mbox = fixture.path("inbox");
    let server = ScriptedServer::start(&format!(
        "{}{}
         C: RETR 1
         C: RETR 2
         {}{}
         !abort",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&A, &B]),
        send(&A.retr_reply()),
        send(&B.retr_reply()[..40]),
    ));
    fixture
        .fetch(&server, &["--mbox", mbox.to_str().unwrap()])
        .expect_code(75);
    server.finish();
    let text = std::fs::read_to_string(&mbox).unwrap();
    let (from_line, rest) = text.split_once('\n').unwrap();
    assert!(from_line.starts_with("From MAILER-DAEMON "), "{text}");
    assert_eq!(
        rest,
        format!("{}\n", A.text),
        "exactly message 1 and its separator"
    );
    assert!(!fixture.path("inbox.lock").exists(), "dot-lock released");
    assert_eq!(fixture.delivered(), BTreeSet::from(["uid-A".into()]));
}

// ---------------------------------------------------------------------------------------------
// A damaged state file stops the run before anything happens.

#[test]
fn a_damaged_state_file_stops_before_connecting() {
    let fixture = Fixture::new();
    let server = ScriptedServer::start(&format!(
        "{}{}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[]),
    ));
    fixture.fetch_maildir(&server, &[]).expect_code(0);
    server.finish();
    let state = fixture.state_file().unwrap();
    std::fs::write(&state, "pop3-state 1\n+ uid-A notatime\n").unwrap();

    let server = ScriptedServer::start("S: +OK ready");
    let outcome = fixture.fetch_maildir(&server, &[]).expect_code(74);
    assert!(
        outcome.stderr.contains("damaged at line 2") && outcome.stderr.contains("move it away"),
        "{}",
        outcome.stderr
    );
    assert_eq!(fixture.relay.accepted().len(), 1, "no second connection");
    drop(server);
    assert_eq!(
        std::fs::read_to_string(&state).unwrap(),
        "pop3-state 1\n+ uid-A notatime\n"
    );
}

#[test]
fn without_uidl_a_refused_top_is_reported() {
    let fixture = Fixture::new();
    let server = ScriptedServer::start(&format!(
        "{}C: LIST\n{}C: TOP 1 0\nC: TOP 2 0\n{}S: -ERR [SYS/TEMP] message is locked\n{}{QUIT}",
        login_script("USER TOP PIPELINING"),
        send(&list_reply(&[&A, &B])),
        send(&A.top_reply()),
        retr_pipelined(&[1], &[&A]),
    ));
    let outcome = fixture.fetch_maildir(&server, &[]);
    assert_sent(
        &server.finish(),
        &["LIST", "TOP 1 0", "TOP 2 0", "RETR 1", "QUIT"],
    );
    assert_eq!(fixture.new_messages(), [A.text]);
    // Like a refused RETR: the message stays on the server, and the user is told.
    assert!(
        outcome.stderr.contains("message 2") && outcome.stderr.contains("message is locked"),
        "{}",
        outcome.stderr
    );
    assert_eq!(outcome.code, 75, "{}", outcome.stderr);
}

#[test]
fn a_received_header_is_added_only_when_configured() {
    let fixture = Fixture::with_config("add_received_header = true");
    let server = ScriptedServer::start(&happy_script(&retr_pipelined(&[1, 2, 3], &[&A, &B, &C])));
    fixture.fetch_maildir(&server, &[]).expect_code(0);
    server.finish();
    let files = fixture.maildir_files("new");
    assert_eq!(files.len(), 3);
    for content in files.values() {
        let text = content.as_str();
        assert!(
            text.starts_with(
                "Received: from 127.0.0.1 by pop3 (fetch-all) with POP3 for <alice>;\n\t"
            ),
            "{text}"
        );
        // Then the message itself, byte for byte.
        let rest = &text[text.find("+0000\n").expect("a date") + 6..];
        assert!([A.text, B.text, C.text].contains(&rest), "{rest}");
    }
}

/// A slow server used to keep the mbox locked for as long as a message took to arrive (each
/// read may take up to `timeout`). Now a message is spooled first and the mbox is locked only
/// for the local append, so mutt or procmail can use it meanwhile.
#[test]
fn mbox_is_not_locked_while_a_message_downloads() {
    let fixture = Fixture::new();
    let mbox = fixture.path("inbox");
    let server = ScriptedServer::start(&format!(
        "{}{}
         C: RETR 1
         C: RETR 2
         {}{}
         !flush
         !sleep 1500
         {}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&A, &B]),
        send(&A.retr_reply()),
        send(&B.retr_reply()[..40]),
        send(&B.retr_reply()[40..]),
    ));
    let lock = fixture.path("inbox.lock");
    let watcher = {
        let lock = lock.clone();
        let mbox = mbox.clone();
        std::thread::spawn(move || {
            // Wait until message 1 is in the mbox: message 2 is then mid-download.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while std::fs::metadata(&mbox).map_or(0, |m| m.len()) == 0 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "message 1 never arrived"
                );
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
            lock.exists()
        })
    };
    fixture
        .fetch(&server, &["--mbox", mbox.to_str().unwrap()])
        .expect_code(0);
    server.finish();
    assert!(
        !watcher.join().unwrap(),
        "the mbox was locked during the download"
    );
    let text = std::fs::read_to_string(&mbox).unwrap();
    assert_eq!(text.matches("From MAILER-DAEMON ").count(), 2, "{text}");
    assert_eq!(
        fixture.delivered(),
        BTreeSet::from(["uid-A".into(), "uid-B".into()])
    );
}
