//! `fetch-all` against the real Dovecot: SIGKILL at random points never loses or duplicates a
//! message, a 300 MB message streams through in bounded memory, and the mbox and Maildir it
//! writes are read back by Python's `mailbox` module.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::cli::Pop3;
use crate::support::dovecot::{Dovecot, User, dovecot};

// ------------------------------------------------------------------------------------------------
// Helpers

/// SplitMix64: a tiny deterministic PRNG, so a failing run can be repeated exactly
/// (`POP3_TEST_SEED=<n>` overrides the seed).
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

pub(crate) fn seed() -> u64 {
    std::env::var("POP3_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_f00d_2024)
}

pub(crate) fn pop3(user: &User) -> Pop3 {
    let d = dovecot();
    Pop3::new()
        .server("localhost", d.pop3s_port, Some(&d.ca_file))
        .login(&user.name, &user.password)
}

/// `pop3 fetch-all` into `maildir`, with its state under `state_home` (XDG_STATE_HOME), so
/// every run of a test shares one state file.
fn fetch_command(
    user: &User,
    state_home: &Path,
    maildir: &Path,
    delete: bool,
) -> (Command, tempfile::TempDir) {
    let mode = if delete { "--delete" } else { "--keep" };
    pop3(user)
        .env("XDG_STATE_HOME", state_home)
        .args(["fetch-all", mode, "--maildir"])
        .args([maildir])
        .into_command()
}

/// CRLF becomes LF and a missing final newline is added: what a message delivered by POP3
/// (which ends every message with a line ending before the ".") looks like on disk.
pub(crate) fn delivered_form(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 1);
    let mut i = 0;
    while i < message.len() {
        if message[i] == b'\r' && message.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(message[i]);
        i += 1;
    }
    if !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    out
}

/// The value of the first header `name` (case-insensitive) in the header block, unfolded lines
/// joined with "\n" as Python's compat32 parser keeps them, without the final line ending.
fn raw_header(message: &[u8], name: &str) -> Option<Vec<u8>> {
    let mut lines = message.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return None;
        }
        let prefix = name.len() + 1;
        if line.len() >= prefix
            && line[..name.len()].eq_ignore_ascii_case(name.as_bytes())
            && line[name.len()] == b':'
        {
            let mut value: Vec<u8> = line[prefix..]
                .iter()
                .copied()
                .skip_while(|b| *b == b' ' || *b == b'\t')
                .collect();
            while let Some(next) = lines.peek() {
                if !next.starts_with(b" ") && !next.starts_with(b"\t") {
                    break;
                }
                value.push(b'\n');
                value.extend_from_slice(next);
                lines.next();
            }
            while value.ends_with(b"\r") || value.ends_with(b"\n") {
                value.pop();
            }
            return Some(value);
        }
    }
    None
}

pub(crate) fn message_id(message: &[u8]) -> Option<String> {
    raw_header(message, "Message-ID").map(|v| String::from_utf8_lossy(&v).trim().to_owned())
}

/// Files (not dot files) directly in `dir`, sorted.
pub(crate) fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(entries) => entries
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .map(|e| e.path())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("reading {}: {e}", dir.display()),
    };
    files.sort();
    files
}

/// Every message file in a Maildir's new/ and cur/ with its contents.
fn maildir_messages(maildir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        for path in files_in(&maildir.join(sub)) {
            // A server-side file can vanish while we look (an expunge finishing): skip it.
            match fs::read(&path) {
                Ok(bytes) => out.push((path, bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => panic!("reading {}: {e}", path.display()),
            }
        }
    }
    out
}

/// Message-ID → number of copies, over a Maildir's new/ and cur/.
fn ids_in(maildir: &Path) -> HashMap<String, usize> {
    let mut ids = HashMap::new();
    for (path, bytes) in maildir_messages(maildir) {
        let id =
            message_id(&bytes).unwrap_or_else(|| panic!("{} has no Message-ID", path.display()));
        *ids.entry(id).or_insert(0) += 1;
    }
    ids
}

// ------------------------------------------------------------------------------------------------
// 1. SIGKILL at random points

const MESSAGES: usize = 60;
const KILLS: usize = 25;

pub(crate) struct TestMessage {
    pub(crate) id: String,
    pub(crate) raw: Vec<u8>,
}

/// `count` messages of 1 KiB to 200 KiB (log-uniform), each with a unique Message-ID and body
/// lines starting with "." (including a line that is a lone "."); a third use CRLF, some lack a
/// final newline.
pub(crate) fn generate_messages(rng: &mut Rng, label: &str, count: usize) -> Vec<TestMessage> {
    const TEXT: &[u8] = b"abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,;:!?-";
    (0..count)
        .map(|i| {
            let size = match i {
                0 => 1024,
                1 => 200 * 1024,
                _ => (1024.0 * 200f64.powf(rng.unit())) as usize,
            };
            let id = format!("<{label}-{i}-{:x}@pop3.test>", rng.next());
            let mut lines: Vec<Vec<u8>> = vec![
                format!("From: Sender {i} <sender{i}@example.org>").into_bytes(),
                b"To: rcpt@example.net".to_vec(),
                format!("Subject: fetch test {label} message {i}").into_bytes(),
                b"Date: Tue, 14 May 2024 09:12:00 +0000".to_vec(),
                format!("Message-ID: {id}").into_bytes(),
                b"MIME-Version: 1.0".to_vec(),
                b"Content-Type: text/plain; charset=us-ascii".to_vec(),
                Vec::new(),
                b".starts with a dot".to_vec(),
                b".".to_vec(),
                b"..two dots".to_vec(),
            ];
            let mut len: usize = lines.iter().map(|l| l.len() + 1).sum();
            while len < size {
                let line: Vec<u8> = match rng.below(16) {
                    0 => b".".to_vec(),
                    1 => b"..".to_vec(),
                    2 => format!(".line {len}").into_bytes(),
                    3 => b"From the body, not a separator".to_vec(),
                    4 => Vec::new(),
                    _ => {
                        let n = 1 + rng.below(78) as usize;
                        (0..n)
                            .map(|_| TEXT[rng.below(TEXT.len() as u64) as usize])
                            .collect()
                    }
                };
                len += line.len() + 1;
                lines.push(line);
            }
            let ending: &[u8] = if i % 3 == 1 { b"\r\n" } else { b"\n" };
            let mut raw = lines.join(ending);
            if i % 7 != 3 {
                raw.extend_from_slice(ending);
            }
            TestMessage { id, raw }
        })
        .collect()
}

pub(crate) fn add_user(messages: &[TestMessage]) -> User {
    let refs: Vec<&[u8]> = messages.iter().map(|m| m.raw.as_slice()).collect();
    dovecot().add_user(&refs)
}

/// Message-IDs of the messages still on the server (read from the user's Maildir).
pub(crate) fn ids_on_server(user: &User) -> HashSet<String> {
    ids_in(&user.maildir).into_keys().collect()
}

/// The pid in a Maildir file name written by pop3 (`<secs>.M<usec>P<pid>Q<seq>_pop3-...`).
fn pid_in_name(name: &str) -> Option<u32> {
    let after = &name[name.find('P')? + 1..];
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Checks the state file under `state_home/pop3/` and returns its delivered unique-ids and
/// the number of other (leftover) files in that directory.
fn read_state(state_home: &Path) -> (Vec<String>, Vec<String>) {
    let dir = state_home.join("pop3");
    let names: Vec<String> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let states: Vec<&String> = names
        .iter()
        .filter(|n| !n.starts_with('.') && !n.ends_with(".lock") && !n.ends_with(".capabilities"))
        .collect();
    assert_eq!(states.len(), 1, "one state file expected in {names:?}");
    let leftovers: Vec<String> = names
        .iter()
        .filter(|n| n.starts_with('.'))
        .cloned()
        .collect();
    let text = fs::read_to_string(dir.join(states[0])).expect("state file is UTF-8");
    assert!(text.ends_with('\n'), "state file ends mid-line: {text:?}");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("pop3-state 1"), "{text}");
    let mut delivered = Vec::new();
    for line in lines {
        let words: Vec<&str> = line.split(' ').collect();
        let uid_ok = |uid: &str| {
            !uid.is_empty() && uid.len() <= 70 && uid.bytes().all(|b| (0x21..=0x7e).contains(&b))
        };
        match words.as_slice() {
            ["+", uid, seen] if uid_ok(uid) && seen.parse::<u64>().is_ok() => {
                delivered.push((*uid).to_owned())
            }
            ["s", uid] if uid_ok(uid) => {}
            ["-", uid] if uid_ok(uid) => delivered.retain(|known| known != uid),
            _ => panic!("malformed state line {line:?} in\n{text}"),
        }
    }
    let unique: HashSet<&String> = delivered.iter().collect();
    assert_eq!(unique.len(), delivered.len(), "duplicate records:\n{text}");
    (delivered, leftovers)
}

/// Runs `fetch-all` to completion on a fresh user with `count` messages and returns how long
/// it took.
fn calibrate(rng: &mut Rng, work: &Path, label: &str, delete: bool) -> Duration {
    let messages = generate_messages(rng, label, MESSAGES);
    let user = add_user(&messages);
    let maildir = work.join(format!("{label}-Maildir"));
    let (mut command, _home) = fetch_command(
        &user,
        &work.join(format!("{label}-state")),
        &maildir,
        delete,
    );
    let started = Instant::now();
    let output = command.stdin(Stdio::null()).output().unwrap();
    let elapsed = started.elapsed();
    assert!(
        output.status.success(),
        "calibration run failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(ids_in(&maildir).len(), MESSAGES);
    let octets: usize = messages.iter().map(|m| m.raw.len()).sum();
    eprintln!(
        "[{label}] an uninterrupted run of {MESSAGES} messages ({octets} octets): {elapsed:?}"
    );
    elapsed
}

/// Where a round kills its run.
#[derive(Debug, Clone, Copy)]
enum KillPoint {
    /// This long after the start.
    After(Duration),
    /// This long after the run's first message appears in new/, i.e. in the middle of making
    /// the batch durable, recording it, deleting it and quitting — the windows a random delay
    /// rarely hits, since the download takes most of a run.
    AfterCommitStarts(Duration),
}

fn sigkill_scenario(delete: bool) {
    let mode = if delete { "delete" } else { "keep" };
    let seed = seed() ^ u64::from(delete);
    let mut rng = Rng(seed);
    let test_started = Instant::now();
    let work = tempfile::tempdir().unwrap();
    eprintln!("[{mode}] seed {seed} (set POP3_TEST_SEED to change it)");

    // Calibration: uninterrupted runs of the same kind on separate users (the faster of two).
    let full_run = (0..2)
        .map(|i| {
            calibrate(
                &mut rng,
                work.path(),
                &format!("calibrate-{mode}-{i}"),
                delete,
            )
        })
        .min()
        .unwrap();

    let messages = generate_messages(&mut rng, mode, MESSAGES);
    let user = add_user(&messages);
    let state_home = work.path().join("state");
    let maildir = work.path().join("Maildir");
    let mut killed_pids = HashSet::new();
    let mut finished_early = 0;
    let mut recognised_runs = 0;
    for round in 0..KILLS {
        let point = if round % 2 == 0 {
            KillPoint::After(Duration::from_micros(
                rng.below(full_run.as_micros() as u64 + 1),
            ))
        } else {
            // Within the renames and the state record, or up to the deletions and QUIT.
            let window = if round % 4 == 1 { 3_000 } else { 10_000 };
            KillPoint::AfterCommitStarts(Duration::from_micros(rng.below(window)))
        };
        let new_before = files_in(&maildir.join("new")).len();
        let (mut command, _home) = fetch_command(&user, &state_home, &maildir, delete);
        let mut child = command
            .arg("-v")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        match point {
            KillPoint::After(delay) => std::thread::sleep(delay),
            KillPoint::AfterCommitStarts(delay) => {
                let deadline = Instant::now() + full_run * 4;
                while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
                    if files_in(&maildir.join("new")).len() > new_before {
                        std::thread::sleep(delay);
                        break;
                    }
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        }
        let _ = child.kill();
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let how = if output.status.signal() == Some(libc::SIGKILL) {
            killed_pids.insert(pid);
            "killed".to_owned()
        } else {
            assert!(
                output.status.success(),
                "[{mode}] round {round}: pop3 failed ({}): {stderr}",
                output.status
            );
            finished_early += 1;
            if stderr.contains("found already delivered (now recorded)") {
                recognised_runs += 1;
            }
            format!("finished ({})", stderr.lines().last().unwrap_or_default())
        };
        // Never lost: each message is on the server or in the Maildir (server looked at first:
        // a message leaves it only after it is in the Maildir). Never twice.
        let on_server = ids_on_server(&user);
        let local = ids_in(&maildir);
        let twice: Vec<_> = local.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            twice.is_empty(),
            "[{mode}] round {round}: delivered twice: {twice:?}"
        );
        for message in &messages {
            assert!(
                on_server.contains(&message.id) || local.contains_key(&message.id),
                "[{mode}] round {round}: {} is neither on the server nor in the Maildir",
                message.id
            );
        }
        let tmp = files_in(&maildir.join("tmp")).len();
        eprintln!(
            "[{mode}] round {round:2}: {point:?}: pid {pid} {how}: server {}, Maildir {}, tmp/ {tmp}",
            on_server.len(),
            local.len()
        );
    }

    // Once to completion (-v: the summary line says what it found), then once more: nothing left.
    let (mut command, _home) = fetch_command(&user, &state_home, &maildir, delete);
    let output = command.arg("-v").stdin(Stdio::null()).output().unwrap();
    let summary = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "final run failed: {summary}");
    if summary.contains("found already delivered (now recorded)") {
        recognised_runs += 1;
    }
    eprintln!(
        "[{mode}] final run: {}",
        summary.lines().last().unwrap_or_default()
    );
    let before_again = ids_in(&maildir);
    let (mut command, _home) = fetch_command(&user, &state_home, &maildir, delete);
    let output = command.stdin(Stdio::null()).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        ids_in(&maildir),
        before_again,
        "a further run changed the Maildir"
    );

    // Every message exactly once, byte for byte.
    let delivered = maildir_messages(&maildir);
    let mut by_id: BTreeMap<String, Vec<&(PathBuf, Vec<u8>)>> = BTreeMap::new();
    for entry in &delivered {
        let id = message_id(&entry.1)
            .unwrap_or_else(|| panic!("{} has no Message-ID", entry.0.display()));
        by_id.entry(id).or_default().push(entry);
    }
    for message in &messages {
        let copies = by_id.remove(&message.id).unwrap_or_default();
        assert_eq!(
            copies.len(),
            1,
            "[{mode}] {} copies of {}",
            copies.len(),
            message.id
        );
        assert!(
            copies[0].1 == delivered_form(&message.raw),
            "[{mode}] {} differs from the original ({})",
            message.id,
            copies[0].0.display()
        );
    }
    assert!(by_id.is_empty(), "[{mode}] unexpected messages: {by_id:?}");

    // tmp/ holds only orphans of killed runs.
    let tmp = files_in(&maildir.join("tmp"));
    for path in &tmp {
        let name = path.file_name().unwrap().to_string_lossy();
        let pid = pid_in_name(&name);
        assert!(
            pid.is_some_and(|p| killed_pids.contains(&p)),
            "[{mode}] {name} in tmp/ was not left by a killed run"
        );
    }

    // The server.
    let expected_on_server = if delete { 0 } else { MESSAGES };
    assert_eq!(user.messages_on_server(), expected_on_server, "[{mode}]");

    // The state file.
    let (recorded, leftovers) = read_state(&state_home);
    if delete {
        assert!(
            recorded.is_empty(),
            "[{mode}] state still lists {recorded:?}"
        );
    } else {
        let list = pop3(&user).args(["list", "--json"]).run().expect_code(0);
        let list: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
        let uids: HashSet<String> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["uid"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(uids.len(), MESSAGES);
        let recorded: HashSet<String> = recorded.into_iter().collect();
        assert_eq!(recorded, uids, "[{mode}] state vs the server's UIDL");
    }
    eprintln!(
        "[{mode}] done in {:?}: {} runs killed, {finished_early} finished before the kill, \
         {recognised_runs} run(s) recognised messages an interrupted run had delivered; \
         {} orphan file(s) left in tmp/; leftover files in the state dir: {leftovers:?}",
        test_started.elapsed(),
        killed_pids.len(),
        tmp.len()
    );
}

#[test]
fn fetch_all_survives_sigkill_at_random_points_in_delete_mode() {
    sigkill_scenario(true);
}

#[test]
fn fetch_all_survives_sigkill_at_random_points_in_keep_mode() {
    sigkill_scenario(false);
}

/// A state rewrite goes through a temporary file next to the state file; a run killed between
/// writing and renaming it leaves that file behind. The next run of the same account removes
/// it (found by the kill loop above, which left one or two each time before the fix).
#[test]
fn state_temp_files_left_by_killed_runs_are_cleaned_up() {
    let user = dovecot().add_user(&[&Dovecot::fixture("01-plain.eml")]);
    let work = tempfile::tempdir().unwrap();
    let state_home = work.path().join("state");
    let state_dir = state_home.join("pop3");
    let maildir = work.path().join("Maildir");
    let run = || {
        let (mut command, _home) = fetch_command(&user, &state_home, &maildir, false);
        let output = command.stdin(Stdio::null()).output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    run();
    let state_file = fs::read_dir(&state_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .find(|name| {
            !name.starts_with('.') && !name.ends_with(".lock") && !name.ends_with(".capabilities")
        })
        .expect("a state file");
    // What a run killed between writing and renaming its compacted state leaves behind, and
    // the same of another account, which must be left alone.
    let leftover = state_dir.join(format!(".{state_file}.tmp-K1lled"));
    let other = state_dir.join(".someone@else_995-000000000000.tmp-K1lled");
    fs::write(&leftover, "pop3-state 1\n").unwrap();
    fs::write(&other, "pop3-state 1\n").unwrap();
    run();
    assert_eq!(read_state(&state_home).0.len(), 1);
    assert!(
        !leftover.exists(),
        "the killed rewrite's temp file is still there"
    );
    assert!(other.exists(), "another account's temp file was removed");
}

// ------------------------------------------------------------------------------------------------
// 2. A 300 MB message

/// Removes files when dropped, so a failing test does not leave 300 MB behind.
struct RemoveOnDrop(Vec<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = fs::remove_file(path);
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes a message of about `target` octets with CRLF line endings to `path`, streaming:
/// headers, then base64-like lines of 76 characters (with an occasional line starting with
/// "."). Returns its size, the size of its LF form and the SHA-256 of its LF form.
fn write_big_message(path: &Path, target: u64, rng: &mut Rng) -> (u64, u64, String) {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let pool: Vec<Vec<u8>> = (0..4096)
        .map(|_| (0..76).map(|_| ALPHABET[rng.below(64) as usize]).collect())
        .collect();
    let mut file = BufWriter::with_capacity(1 << 20, fs::File::create(path).unwrap());
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let (mut crlf_size, mut lf_size) = (0u64, 0u64);
    let mut crlf = Vec::with_capacity(1 << 20);
    let mut lf = Vec::with_capacity(1 << 20);
    let headers = "From: Big Sender <big@example.org>\nTo: rcpt@example.net\n\
                   Subject: a 300 MB message\nMessage-ID: <big@pop3.test>\nMIME-Version: 1.0\n\
                   Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n";
    for line in headers.lines() {
        crlf.extend_from_slice(line.as_bytes());
        crlf.extend_from_slice(b"\r\n");
        lf.extend_from_slice(line.as_bytes());
        lf.push(b'\n');
    }
    let mut line_number = 0u64;
    while crlf_size + (crlf.len() as u64) < target {
        line_number += 1;
        let line: &[u8] = if line_number.is_multiple_of(10_007) {
            b"..a stuffed line"
        } else if line_number.is_multiple_of(30_011) {
            b"."
        } else {
            &pool[rng.below(pool.len() as u64) as usize]
        };
        crlf.extend_from_slice(line);
        crlf.extend_from_slice(b"\r\n");
        lf.extend_from_slice(line);
        lf.push(b'\n');
        if crlf.len() >= 1 << 20 {
            file.write_all(&crlf).unwrap();
            digest.update(&lf);
            crlf_size += crlf.len() as u64;
            lf_size += lf.len() as u64;
            crlf.clear();
            lf.clear();
        }
    }
    file.write_all(&crlf).unwrap();
    digest.update(&lf);
    crlf_size += crlf.len() as u64;
    lf_size += lf.len() as u64;
    file.into_inner().unwrap().sync_all().unwrap();
    (crlf_size, lf_size, hex(digest.finish().as_ref()))
}

fn sha256_of_file(path: &Path) -> String {
    let mut file = fs::File::open(path).unwrap();
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer).unwrap();
        if n == 0 {
            break;
        }
        digest.update(&buffer[..n]);
    }
    hex(digest.finish().as_ref())
}

#[test]
fn fetch_all_streams_a_300_mb_message_in_bounded_memory() {
    const TARGET: u64 = 300 << 20;
    const RSS_LIMIT_KIB: i64 = 16 << 10;
    let test_started = Instant::now();
    let mut rng = Rng(seed() ^ 0x300);
    // A user with an empty maildrop; the message is written straight into its Maildir (the
    // harness's add_user takes messages in memory).
    let user = dovecot().add_user(&[]);
    let work = tempfile::tempdir().unwrap();
    let name = format!("1000000001.M1P{}.big", std::process::id());
    let tmp_path = user.maildir.join("tmp").join(&name);
    let new_path = user.maildir.join("new").join(&name);
    let _cleanup = RemoveOnDrop(vec![tmp_path.clone(), new_path.clone()]);
    let (size, lf_size, expected_digest) = write_big_message(&tmp_path, TARGET, &mut rng);
    std::os::unix::fs::chown(
        &tmp_path,
        Some(dovecot().mail_uid),
        Some(dovecot().mail_gid),
    )
    .unwrap();
    fs::set_permissions(&tmp_path, fs::Permissions::from_mode(0o600)).unwrap();
    fs::rename(&tmp_path, &new_path).unwrap();
    let generated = test_started.elapsed();

    // The default max_message_size (50M) would leave it on the server.
    let config = work.path().join("config.toml");
    fs::write(&config, "[defaults]\nmax_message_size = 0\n").unwrap();
    let maildir = work.path().join("Maildir");
    let stderr_path = work.path().join("stderr");
    let (mut command, _home) = pop3(&user)
        .args([Path::new("--config"), config.as_path()])
        .args(["fetch-all", "--keep", "--maildir"])
        .args([&maildir])
        .into_command();
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&stderr_path).unwrap());
    let started = Instant::now();
    let mut child = command.spawn().unwrap();
    // The peak is pop3's VmHWM, read while it runs, not wait4's ru_maxrss: a child spawned the
    // way Command does it (vfork) counts the spawning process's own peak in its ru_maxrss, and
    // this test process is often far bigger than pop3 (the occasional 150-190 MB "peaks" of
    // this test were its own). A high-water mark read every 10 ms misses at most what a run's
    // last 10 ms added.
    let mut peak_kib = 0;
    let status = loop {
        if let Some(hwm) = vm_hwm_kib(child.id()) {
            peak_kib = peak_kib.max(hwm);
        }
        match child.try_wait().unwrap() {
            Some(status) => break status,
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    let elapsed = started.elapsed();
    let stderr = fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(
        status.success(),
        "pop3 fetch-all failed ({status}): {stderr}"
    );
    let throughput = size as f64 / elapsed.as_secs_f64() / 1e6;
    eprintln!(
        "300 MB message: generated in {generated:?}; fetched {size} octets in {elapsed:?} \
         ({throughput:.1} MB/s), peak RSS {:.1} MiB",
        peak_kib as f64 / 1024.0
    );

    let delivered = files_in(&maildir.join("new"));
    assert_eq!(delivered.len(), 1, "{delivered:?}; stderr: {stderr}");
    let _cleanup_delivered = RemoveOnDrop(delivered.clone());
    assert_eq!(
        fs::metadata(&delivered[0]).unwrap().len(),
        lf_size,
        "delivered size vs the original's ({size}) without CRs"
    );
    assert_eq!(sha256_of_file(&delivered[0]), expected_digest);
    assert!(peak_kib > 0, "pop3's VmHWM was never read");
    assert!(
        peak_kib < RSS_LIMIT_KIB,
        "peak RSS {peak_kib} KiB is not below {RSS_LIMIT_KIB} KiB"
    );
    eprintln!("300 MB test took {:?} in all", test_started.elapsed());
}

// ------------------------------------------------------------------------------------------------
// 3. mbox and Maildir read back by Python

const FIXTURES: [&str; 6] = [
    "01-plain.eml",
    "02-multipart-alternative.eml",
    "03-html-only.eml",
    "04-attachment.eml",
    "05-encoded-headers.eml",
    "06-malformed-headers.eml",
];

const READ_MAILBOX_PY: &str = r#"
import json, mailbox, sys
kind, path = sys.argv[1], sys.argv[2]
if kind == "mbox":
    box = mailbox.mbox(path, factory=None, create=False)
else:
    box = mailbox.Maildir(path, factory=None, create=False)
out = []
for key in box.keys():
    raw = box.get_bytes(key)
    message = box.get_message(key)
    subject = next((v for k, v in message.raw_items() if k.lower() == "subject"), None)
    separator = raw.find(b"\n\n")
    out.append({
        "key": str(key),
        "subject": None if subject is None
                   else subject.encode("ascii", "surrogateescape").hex(),
        "body_len": len(raw) - separator - 2 if separator >= 0 else -1,
        "len": len(raw),
    })
print(json.dumps(out))
"#;

#[derive(Debug, PartialEq)]
struct ReadBack {
    subject: Option<String>,
    body_len: i64,
    len: i64,
}

fn python_read(kind: &str, path: &Path) -> Vec<(String, ReadBack)> {
    let output = Command::new("python3")
        .args(["-c", READ_MAILBOX_PY, kind])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("running python3");
    assert!(
        output.status.success(),
        "python3 mailbox ({kind}) failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["key"].as_str().unwrap().to_owned(),
                ReadBack {
                    subject: row["subject"].as_str().map(str::to_owned),
                    body_len: row["body_len"].as_i64().unwrap(),
                    len: row["len"].as_i64().unwrap(),
                },
            )
        })
        .collect()
}

/// The delivery sequence number in a pop3 Maildir file name (`...Q<seq>_pop3-...`).
fn sequence_in_name(name: &str) -> u64 {
    let after = &name[name.find('Q').expect("Q<seq> in the name") + 1..];
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap()
}

#[test]
fn mbox_and_maildir_output_read_back_by_python_mailbox() {
    let fixtures: Vec<Vec<u8>> = FIXTURES.iter().map(|f| Dovecot::fixture(f)).collect();
    let refs: Vec<&[u8]> = fixtures.iter().map(Vec::as_slice).collect();
    let user = dovecot().add_user(&refs);
    let work = tempfile::tempdir().unwrap();
    let mbox = work.path().join("inbox.mbox");
    let maildir = work.path().join("Maildir");
    // Each Pop3 has its own home and so its own state: the second run fetches everything again.
    pop3(&user)
        .args(["fetch-all", "--keep", "--mbox"])
        .args([&mbox])
        .run()
        .expect_code(0);
    pop3(&user)
        .args(["fetch-all", "--keep", "--maildir"])
        .args([&maildir])
        .run()
        .expect_code(0);

    let expected: Vec<ReadBack> = fixtures
        .iter()
        .map(|raw| {
            let lf = delivered_form(raw);
            let separator = lf.windows(2).position(|w| w == b"\n\n").unwrap();
            ReadBack {
                subject: raw_header(&lf, "Subject").map(|s| hex(&s)),
                body_len: (lf.len() - separator - 2) as i64,
                len: lf.len() as i64,
            }
        })
        .collect();

    let from_mbox: Vec<ReadBack> = python_read("mbox", &mbox)
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    let mut from_maildir = python_read("maildir", &maildir);
    from_maildir.sort_by_key(|(key, _)| sequence_in_name(key));
    let from_maildir: Vec<ReadBack> = from_maildir.into_iter().map(|(_, r)| r).collect();
    for (kind, got) in [("mbox", &from_mbox), ("Maildir", &from_maildir)] {
        eprintln!("{kind} read back by python3 mailbox:");
        for row in got {
            let subject = row
                .subject
                .as_deref()
                .map(|h| {
                    let bytes: Vec<u8> = (0..h.len())
                        .step_by(2)
                        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
                        .collect();
                    String::from_utf8_lossy(&bytes).into_owned()
                })
                .unwrap_or_default();
            eprintln!("  {subject:?}: body {} octets", row.body_len);
        }
        assert_eq!(got.len(), 6, "{kind}: {got:?}");
        assert_eq!(got, &expected, "{kind}");
    }
}

/// The peak resident set size of process `pid` so far (`VmHWM` in `/proc/PID/status`), in KiB;
/// `None` once it has exited.
fn vm_hwm_kib(pid: u32) -> Option<i64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line["VmHWM:".len()..]
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}
