//! The state and the lock belong to the mailbox (user and host), not to the port or TLS mode:
//! the real binary against Dovecot's implicit-TLS port and its plain port with STLS, which
//! serve the same mailbox. State files named by older versions (keyed by port too) are adopted.

use std::fs;
use std::path::{Path, PathBuf};

use crate::support::cli::{Outcome, Pop3};
use crate::support::dovecot::{Dovecot, User, dovecot};

/// How the ports are reached: Dovecot's pop3s port with implicit TLS, its plain port with STLS.
#[derive(Clone, Copy)]
enum Port {
    Tls,
    Plain,
}

impl Port {
    fn number(self) -> u16 {
        match self {
            Port::Tls => dovecot().pop3s_port,
            Port::Plain => dovecot().pop3_port,
        }
    }
}

/// `pop3 fetch-all --keep -v` for `user` through `port` into `maildir`, state under `state`.
fn fetch(user: &User, port: Port, state: &Path, maildir: &Path) -> Outcome {
    let d = dovecot();
    let tls = match port {
        Port::Tls => "implicit",
        Port::Plain => "starttls",
    };
    Pop3::new()
        .server("localhost", port.number(), Some(&d.ca_file))
        .login(&user.name, &user.password)
        .env("XDG_STATE_HOME", state)
        .args(["--tls", tls, "fetch-all", "--keep", "-v", "--maildir"])
        .args([maildir])
        .run()
}

fn messages(count: usize) -> Vec<Vec<u8>> {
    [
        "01-plain.eml",
        "02-multipart-alternative.eml",
        "03-html-only.eml",
    ][..count]
        .iter()
        .map(|name| Dovecot::fixture(name))
        .collect()
}

fn add_user(count: usize) -> User {
    let messages = messages(count);
    let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    dovecot().add_user(&refs)
}

/// The files (not directories) of `dir` whose names do not start with a dot.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The state files (no lock, no capability memory) in `state/pop3`.
fn state_files(state: &Path) -> Vec<PathBuf> {
    names(&state.join("pop3"))
        .into_iter()
        .filter(|n| !n.ends_with(".lock") && !n.ends_with(".capabilities"))
        .map(|n| state.join("pop3").join(n))
        .collect()
}

/// How many messages a Maildir holds in `new/` and `cur/`.
fn maildir_count(maildir: &Path) -> usize {
    names(&maildir.join("new")).len() + names(&maildir.join("cur")).len()
}

/// The name the previous version gave the state of `user` at `host` on `port`
/// (`<user>@<host>_<port>-` and 12 hex digits of SHA-256 of host, port and user).
fn legacy_name(host: &str, port: u16, user: &str) -> String {
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("{host}\0{port}\0{user}").as_bytes(),
    );
    let short: String = digest.as_ref()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{user}@{host}_{port}-{short}")
}

/// The delivered records (`+ UID TIME` lines) of a state file.
fn delivered_lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("+ "))
        .map(str::to_owned)
        .collect()
}

/// Trial 2 item 3: `fetch-all` on port 995, then with `--port 110 --tls starttls`, fetched
/// everything again and the Maildir held every message twice.
#[test]
fn changing_the_port_and_tls_mode_fetches_nothing_again() {
    let user = add_user(3);
    let work = tempfile::tempdir().unwrap();
    let (state, maildir) = (work.path().join("state"), work.path().join("Maildir"));
    let first = fetch(&user, Port::Tls, &state, &maildir).expect_code(0);
    assert!(
        first.stderr.contains("fetched 3 messages"),
        "{}",
        first.stderr
    );
    let second = fetch(&user, Port::Plain, &state, &maildir).expect_code(0);
    assert!(
        second.stderr.contains("fetched 0 messages") && !second.stderr.contains("already"),
        "the state of the TLS port was not used:\n{}",
        second.stderr
    );
    assert_eq!(maildir_count(&maildir), 3, "duplicates in the Maildir");
    assert_eq!(
        state_files(&state).len(),
        1,
        "{:?}",
        names(&state.join("pop3"))
    );
    // And back: a new target gets nothing either, so it is the state that knows, not the tags.
    let other = work.path().join("Maildir2");
    let back = fetch(&user, Port::Tls, &state, &other).expect_code(0);
    assert!(
        back.stderr.contains("fetched 0 messages"),
        "{}",
        back.stderr
    );
}

/// A state file that the previous version wrote (named with the port) is adopted by the first
/// run through another port: nothing is fetched twice, and the old file is gone.
#[test]
fn an_old_port_keyed_state_file_is_adopted_on_the_first_run() {
    let user = add_user(2);
    let work = tempfile::tempdir().unwrap();
    let (state, maildir) = (work.path().join("state"), work.path().join("Maildir"));
    fetch(&user, Port::Tls, &state, &maildir).expect_code(0);
    let [current] = state_files(&state).try_into().unwrap();
    let records = delivered_lines(&current);
    assert_eq!(records.len(), 2);
    // What the previous version left: the same journal under its port-keyed name, and a lock.
    let dir = state.join("pop3");
    let old = dir.join(legacy_name("localhost", Port::Tls.number(), &user.name));
    fs::rename(&current, &old).unwrap();
    fs::write(dir.join(format!("{}.lock", old.display())), "").unwrap();
    for name in names(&dir) {
        if name.ends_with(".capabilities") || name == format!("{}.lock", current_name(&current)) {
            fs::remove_file(dir.join(name)).unwrap();
        }
    }

    // Into a fresh Maildir, so that only the state can say what was fetched.
    let fresh = work.path().join("Maildir2");
    let run = fetch(&user, Port::Plain, &state, &fresh).expect_code(0);
    assert!(run.stderr.contains("fetched 0 messages"), "{}", run.stderr);
    assert!(run.stderr.contains("adopted"), "{}", run.stderr);
    assert_eq!(maildir_count(&fresh), 0);
    assert!(!old.exists(), "the old file is still there");
    let [adopted] = state_files(&state).try_into().unwrap();
    assert_eq!(adopted, current, "adopted under another name");
    assert_eq!(delivered_lines(&adopted), records);
    assert!(
        !names(&dir)
            .iter()
            .any(|n| n.contains(&format!("_{}-", Port::Tls.number()))),
        "old companions left: {:?}",
        names(&dir)
    );
}

fn current_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// Two old files (the account was used on both ports) are merged: every message recorded in
/// either is skipped, and a message recorded in neither is still fetched (no mail is lost).
#[test]
fn two_old_port_keyed_state_files_are_merged() {
    let user = add_user(3);
    let work = tempfile::tempdir().unwrap();
    let (state, maildir) = (work.path().join("state"), work.path().join("Maildir"));
    fetch(&user, Port::Tls, &state, &maildir).expect_code(0);
    let [current] = state_files(&state).try_into().unwrap();
    let records = delivered_lines(&current);
    assert_eq!(records.len(), 3);
    fs::remove_file(&current).unwrap();
    let dir = state.join("pop3");
    let tls_file = dir.join(legacy_name("localhost", Port::Tls.number(), &user.name));
    let plain_file = dir.join(legacy_name("localhost", Port::Plain.number(), &user.name));
    // The first message was fetched through one port, the second through the other, the third
    // never; one record is in both.
    fs::write(
        &tls_file,
        format!("pop3-state 1\n{}\n{}\n", records[0], records[1]),
    )
    .unwrap();
    fs::write(&plain_file, format!("pop3-state 1\n{}\n", records[1])).unwrap();

    let fresh = work.path().join("Maildir2");
    let run = fetch(&user, Port::Tls, &state, &fresh).expect_code(0);
    assert!(run.stderr.contains("fetched 1 message "), "{}", run.stderr);
    assert_eq!(maildir_count(&fresh), 1);
    assert!(!tls_file.exists() && !plain_file.exists());
    let [merged] = state_files(&state).try_into().unwrap();
    let mut merged_records: Vec<String> = delivered_lines(&merged)
        .iter()
        .map(|l| l.rsplit_once(' ').unwrap().0.to_owned())
        .collect();
    merged_records.sort();
    let mut expected: Vec<String> = records
        .iter()
        .map(|l| l.rsplit_once(' ').unwrap().0.to_owned())
        .collect();
    expected.sort();
    assert_eq!(merged_records, expected);
}

/// The lock is the mailbox's too: while a run through one port holds it, a run through the
/// other port is refused (exit 75) instead of fetching the same mailbox at once.
#[test]
fn a_lock_held_under_one_port_blocks_a_run_on_the_other_port() {
    let user = add_user(1);
    let work = tempfile::tempdir().unwrap();
    let (state, maildir) = (work.path().join("state"), work.path().join("Maildir"));
    fetch(&user, Port::Tls, &state, &maildir).expect_code(0);
    let dir = state.join("pop3");
    let lock = names(&dir)
        .into_iter()
        .find(|n| n.ends_with(".lock"))
        .expect("the TLS run's lock file");
    // Held as that run holds it (flock), by this test process.
    let held = fs::OpenOptions::new()
        .write(true)
        .open(dir.join(&lock))
        .unwrap();
    held.try_lock().unwrap();
    let refused = fetch(&user, Port::Plain, &state, &maildir).expect_code(75);
    assert!(
        refused.stderr.contains("already fetching this account"),
        "{}",
        refused.stderr
    );
    drop(held);
    fetch(&user, Port::Plain, &state, &maildir).expect_code(0);
}
