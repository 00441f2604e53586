//! `pop3 fetch-all` test infrastructure: accounts (a temp dir with config, Maildir and state),
//! messages and the script pieces that serve them, and read-back checks.
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

pub type Tap = Box<dyn FnMut(&[u8]) + Send>;

/// A TCP forwarder on a fixed port: the n-th accepted connection goes to the n-th routed port.
pub struct Relay {
    pub port: u16,
    pub routes: mpsc::Sender<u16>,
    pub accepted: Arc<Mutex<Vec<Instant>>>,
    pub tap: Arc<Mutex<Option<Tap>>>,
    pub stop: Arc<AtomicBool>,
}

impl Relay {
    pub fn new() -> Relay {
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
    pub fn route(&self, port: u16) {
        self.routes.send(port).expect("relay thread alive");
    }

    /// When each connection was accepted.
    pub fn accepted(&self) -> Vec<Instant> {
        self.accepted.lock().unwrap().clone()
    }

    /// Calls `tap` with every chunk the client sends, before forwarding it to the server.
    pub fn set_tap(&self, tap: impl FnMut(&[u8]) + Send + 'static) {
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

pub fn pump(mut from: TcpStream, mut to: TcpStream, tap: Option<Arc<Mutex<Option<Tap>>>>) {
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

pub struct Fixture {
    pub root: tempfile::TempDir,
    pub config: PathBuf,
    pub relay: Relay,
}

impl Fixture {
    pub fn new() -> Fixture {
        Fixture::with_config("")
    }

    /// `extra` goes into `[defaults]` after `state_dir`.
    pub fn with_config(extra: &str) -> Fixture {
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
        // The directory of the Maildir (pop3 creates a Maildir, not the directories above it).
        std::fs::create_dir(root.path().join("mail")).unwrap();
        Fixture {
            root,
            config,
            relay: Relay::new(),
        }
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.path().join(relative)
    }

    pub fn maildir(&self) -> PathBuf {
        self.path("mail/Maildir")
    }

    /// `pop3 ... fetch-all ARGS` as alice against 127.0.0.1:`port`.
    pub fn command(&self, port: u16, args: &[&str]) -> Pop3 {
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
    pub fn fetch(&self, server: &ScriptedServer, args: &[&str]) -> Outcome {
        self.relay.route(server.port);
        self.command(self.relay.port, args).run()
    }

    /// Runs `fetch-all --maildir MAILDIR ARGS` through the relay.
    pub fn fetch_maildir(&self, server: &ScriptedServer, args: &[&str]) -> Outcome {
        let maildir = self.maildir();
        let mut all = vec!["--maildir", maildir.to_str().unwrap()];
        all.extend_from_slice(args);
        self.fetch(server, &all)
    }

    /// The state file (not the lock, not a compaction temp file), if there is one.
    pub fn state_file(&self) -> Option<PathBuf> {
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

    pub fn state_text(&self) -> String {
        self.state_file()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .unwrap_or_default()
    }

    /// The unique-ids the state remembers as delivered.
    pub fn delivered(&self) -> BTreeSet<String> {
        self.records()
            .into_iter()
            .filter(|(_, kinds)| kinds.contains("+"))
            .map(|(uid, _)| uid)
            .collect()
    }

    /// What the state remembers: see [`replay_state`].
    pub fn records(&self) -> BTreeMap<String, BTreeSet<String>> {
        replay_state(&self.state_text())
    }

    /// File name -> content of every file in `Maildir/SUB`.
    pub fn maildir_files(&self, sub: &str) -> BTreeMap<String, String> {
        files_in(&self.maildir().join(sub))
    }

    /// The contents of the messages in `new/`, sorted.
    pub fn new_messages(&self) -> Vec<String> {
        let mut contents: Vec<String> = self.maildir_files("new").into_values().collect();
        contents.sort();
        contents
    }
}

pub fn files_in(dir: &Path) -> BTreeMap<String, String> {
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
pub fn tree(dir: &Path) -> BTreeSet<String> {
    pub fn walk(base: &Path, dir: &Path, out: &mut BTreeSet<String>) {
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
pub struct Msg {
    pub uid: &'static str,
    pub text: &'static str,
}

pub const A: Msg = Msg {
    uid: "uid-A",
    text: "From: alice@example.org\nTo: bob@example.org\nSubject: one\n\nFirst message.\n.leading dot\n.\n..two dots\nend\n",
};
pub const B: Msg = Msg {
    uid: "uid-B",
    text: "From: carol@example.org\nSubject: two\n\nSecond message.\n",
};
pub const C: Msg = Msg {
    uid: "uid-C",
    text: "From: dave@example.org\nSubject: three\nX-Folded: a\n  folded line\n\nThird\nwith a trailing space \n",
};
pub const D: Msg = Msg {
    uid: "uid-D",
    text: "From: erin@example.org\nSubject: four\n\nFourth.\n",
};

impl Msg {
    /// The message as it travels: CRLF line endings.
    pub fn crlf(&self) -> String {
        self.text.replace('\n', "\r\n")
    }

    /// Its size as LIST reports it.
    pub fn octets(&self) -> usize {
        self.crlf().len()
    }

    /// The whole reply to RETR: status line, byte-stuffed lines, terminator.
    pub fn retr_reply(&self) -> Vec<u8> {
        let mut out = format!("+OK {} octets\r\n", self.octets()).into_bytes();
        out.extend(stuffed(&self.crlf()));
        out
    }

    /// The reply to `TOP n 0`: the header block and the empty line.
    pub fn top_reply(&self) -> Vec<u8> {
        let crlf = self.crlf();
        let end = crlf.find("\r\n\r\n").unwrap() + 4;
        let mut out = b"+OK\r\n".to_vec();
        out.extend(stuffed(&crlf[..end]));
        out
    }
}

/// Byte-stuffs CRLF text and adds the terminating line.
pub fn stuffed(crlf: &str) -> Vec<u8> {
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
pub fn send(bytes: &[u8]) -> String {
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
pub fn send_fragmented(bytes: &[u8]) -> String {
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

pub const LOGIN_SENT: [&str; 4] = ["CAPA", "USER alice", "PASS pw", "CAPA"];

/// The reply to LIST for messages numbered from 1.
pub fn list_reply(messages: &[&Msg]) -> Vec<u8> {
    let mut out = format!("+OK {} messages\r\n", messages.len());
    for (i, m) in messages.iter().enumerate() {
        out += &format!("{} {}\r\n", i + 1, m.octets());
    }
    out += ".\r\n";
    out.into_bytes()
}

/// The reply to UIDL for messages numbered from 1.
pub fn uidl_reply(messages: &[&Msg]) -> Vec<u8> {
    let mut out = String::from("+OK\r\n");
    for (i, m) in messages.iter().enumerate() {
        out += &format!("{} {}\r\n", i + 1, m.uid);
    }
    out += ".\r\n";
    out.into_bytes()
}

/// `C: LIST` and `C: UIDL` with their replies.
pub fn list_and_uidl(messages: &[&Msg]) -> String {
    format!(
        "C: LIST\n{}C: UIDL\n{}",
        send(&list_reply(messages)),
        send(&uidl_reply(messages))
    )
}

/// Pipelined `RETR n` for `numbers`, then the replies.
pub fn retr_pipelined(numbers: &[usize], messages: &[&Msg]) -> String {
    let mut script: String = numbers.iter().map(|n| format!("C: RETR {n}\n")).collect();
    for m in messages {
        script += &send(&m.retr_reply());
    }
    script
}

pub const QUIT: &str = "C: QUIT\nS: +OK bye\n";

/// The client's lines, without their CRLF.
pub fn sent_lines(bytes: &[u8]) -> Vec<String> {
    let text = text_of(bytes);
    assert!(text.ends_with("\r\n") || text.is_empty(), "{text:?}");
    text.split_terminator("\r\n").map(str::to_owned).collect()
}

/// Asserts that the client sent the login, then exactly `commands`.
pub fn assert_sent(bytes: &[u8], commands: &[&str]) {
    let mut expected: Vec<&str> = LOGIN_SENT.to_vec();
    expected.extend_from_slice(commands);
    assert_eq!(sent_lines(bytes), expected);
}

pub fn sorted(texts: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = texts.iter().map(|t| t.to_string()).collect();
    v.sort();
    v
}

pub fn assert_silent(outcome: &Outcome) {
    assert_eq!(
        (outcome.stdout.as_str(), outcome.stderr.as_str()),
        ("", ""),
        "a successful run without -v prints nothing (cron mails any output)"
    );
}

/// Runs python3 with `script` and `args` and parses what it prints as JSON. Python's `mailbox`
/// module is an independent reader of what pop3 wrote; without python3 the test fails (the
/// suite never skips: install python3).
pub fn python(script: &str, args: &[&Path]) -> serde_json::Value {
    let output = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 (the read-back needs it): {e}"));
    assert!(
        output.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("python printed JSON")
}

/// [subject, message bytes as latin-1 text] of every message of a Maildir, as Python reads it.
pub const PY_MAILDIR: &str = r#"
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
pub const PY_MBOX: &str = r#"
import json, mailbox, sys
mb = mailbox.mbox(sys.argv[1], create=False)
out = []
for key in mb.keys():
    msg = mb[key]
    out.append([msg["subject"], mb.get_bytes(key).decode("latin-1"), msg.get_from()])
print(json.dumps(out))
"#;

/// Keep mode's happy path: A, B and C listed.
pub fn happy_script(retr: &str) -> String {
    format!(
        "{}{}{retr}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&A, &B, &C])
    )
}

/// A, B and C in new/, nothing left in tmp/ or cur/.
pub fn assert_happy_maildir(fixture: &Fixture) {
    assert_eq!(fixture.new_messages(), sorted(&[A.text, B.text, C.text]));
    assert!(fixture.maildir_files("tmp").is_empty());
    assert!(fixture.maildir_files("cur").is_empty());
}

/// Replays a state journal: each unique-id it remembers, with the kinds of its records (`+`,
/// `s`, `r`, `k`, `f`). A `- UID` record forgets every earlier record of UID; `m` records
/// (mbox appends) are left out.
pub fn replay_state(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut records: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines().skip(1) {
        let mut words = line.split(' ');
        let (Some(kind), Some(uid)) = (words.next(), words.next()) else {
            assert_eq!(line, "m-", "malformed state line in\n{text}");
            continue;
        };
        match kind {
            "-" => {
                records.remove(uid);
            }
            "m" => {}
            "+" | "s" | "r" | "k" | "f" => {
                records
                    .entry(uid.to_owned())
                    .or_default()
                    .insert(kind.to_owned());
            }
            _ => panic!("malformed state line {line:?} in\n{text}"),
        }
    }
    records
}
