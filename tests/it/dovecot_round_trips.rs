//! The capability memory of `fetch-all` against the real Dovecot: the second run logs in right
//! after the greeting (no CAPA round trip before the login), and a memory that no longer fits
//! is replaced without failing the run.

use std::path::Path;

use crate::dovecot_fetch::pop3;
use crate::support::cli::Outcome;
use crate::support::dovecot::{Dovecot, User, dovecot};

/// `fetch-all --debug` with its state under `state_home`.
fn fetch(user: &User, state_home: &Path, maildir: &Path) -> Outcome {
    pop3(user)
        .env("XDG_STATE_HOME", state_home)
        .args(["--debug", "fetch-all", "--keep", "--maildir"])
        .args([maildir])
        .run()
        .expect_code(0)
}

/// The client's lines of a `--debug` trace, in order.
fn client_lines(trace: &str) -> Vec<&str> {
    trace
        .lines()
        .filter_map(|l| l.strip_prefix("C: "))
        .collect()
}

/// The capability memory file in `state_home`.
fn memory(state_home: &Path) -> std::path::PathBuf {
    let dir = state_home.join("pop3");
    std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "capabilities"))
        .unwrap_or_else(|| panic!("no capability memory in {}", dir.display()))
}

#[test]
fn the_second_fetch_logs_in_right_after_the_greeting() {
    let user = dovecot().add_user(&[&Dovecot::fixture("01-plain.eml")]);
    let state = tempfile::tempdir().unwrap();
    let maildir = state.path().join("Maildir");
    let first = fetch(&user, state.path(), &maildir);
    assert_eq!(client_lines(&first.stderr)[0], "CAPA", "{}", first.stderr);
    let second = fetch(&user, state.path(), &maildir);
    let lines = client_lines(&second.stderr);
    assert!(lines[0].starts_with("AUTH PLAIN"), "{}", second.stderr);
    assert_eq!(lines[1..4], ["CAPA", "LIST", "UIDL"], "{}", second.stderr);
    assert!(
        !second.stderr.contains("secret"),
        "no password in the trace"
    );
}

#[test]
fn a_capability_memory_that_no_longer_fits_is_replaced_without_a_failed_run() {
    let user = dovecot().add_user(&[&Dovecot::fixture("01-plain.eml")]);
    let state = tempfile::tempdir().unwrap();
    let maildir = state.path().join("Maildir");
    fetch(&user, state.path(), &maildir);
    // As if the server had offered only a mechanism pop3 cannot use.
    let memory = memory(state.path());
    std::fs::write(&memory, "PIPELINING\nSASL GSSAPI\n").unwrap();
    let run = fetch(&user, state.path(), &maildir);
    let lines = client_lines(&run.stderr);
    assert_eq!(lines[0], "CAPA", "asks again:\n{}", run.stderr);
    let remembered = std::fs::read_to_string(&memory).unwrap();
    assert!(remembered.contains("SASL PLAIN"), "{remembered}");
    // Garbage is no memory either.
    std::fs::write(&memory, [0u8, 0xff, b'\n']).unwrap();
    let run = fetch(&user, state.path(), &maildir);
    assert_eq!(client_lines(&run.stderr)[0], "CAPA", "{}", run.stderr);
}
