//! The real binary against servers that announce absurd sizes, send without end, or put
//! terminal escape sequences in what they say (issue 8): each case ends in one readable error
//! line with a meaningful exit code, in bounded memory, and nothing from the server reaches
//! the terminal unfiltered.

use crate::support::cli::{Outcome, Pop3};
use crate::support::hostile::{Answer, HostileServer, Mailbox};

/// A server that answers like [`Mailbox::new(2)`](Mailbox::new), except where `change` returns
/// another answer.
fn server(change: fn(&str) -> Option<Answer>) -> HostileServer {
    HostileServer::start(move || {
        let mailbox = Mailbox::new(2);
        Box::new(move |command: &str| {
            change(command).unwrap_or_else(|| Answer::Bytes(mailbox.reply(command)))
        })
    })
}

fn run(server: &HostileServer, args: &[&str]) -> Outcome {
    Pop3::scripted_plain(server.port).args(args).run()
}

/// What a person must never see: ESC (starts CSI/OSC sequences), BEL, CSI as one C1 code.
fn assert_no_escapes(text: &str) {
    assert!(
        !text.contains(['\u{1b}', '\u{7}', '\u{9b}', '\r']),
        "control characters reached the terminal: {text:?}"
    );
}

fn assert_clean_failure(outcome: &Outcome) {
    assert_ne!(outcome.code, 70, "internal error: {}", outcome.stderr);
    assert_ne!(outcome.code, -1, "killed by a signal: {}", outcome.stderr);
    assert!(!outcome.stderr.contains("panicked"), "{}", outcome.stderr);
    assert_eq!(
        outcome.stderr.lines().count(),
        1,
        "one error line: {}",
        outcome.stderr
    );
}

fn list_claims(size: &'static str) -> impl Fn(&str) -> Option<Answer> {
    move |command: &str| match command {
        "LIST" => Some(Answer::Bytes(
            format!("+OK\r\n1 {size}\r\n2 10\r\n.\r\n").into_bytes(),
        )),
        _ => None,
    }
}

#[test]
fn read_with_a_listed_size_of_10_15_octets_does_not_abort() {
    let server = server(|c| list_claims("1000000000000000")(c));
    let outcome = run(&server, &["read", "1"]).expect_code(69);
    assert_clean_failure(&outcome);
    assert!(
        outcome.stderr.contains("too big to show"),
        "{}",
        outcome.stderr
    );
    assert!(outcome.stderr.contains("--output"), "{}", outcome.stderr);
}

#[test]
fn read_with_a_listed_size_of_u64_max_does_not_exit_70() {
    let server = server(|c| list_claims("18446744073709551615")(c));
    let outcome = run(&server, &["read", "1"]).expect_code(69);
    assert_clean_failure(&outcome);
}

#[test]
fn read_with_a_listed_size_of_10_15_octets_still_streams_with_raw() {
    // The claimed size is only a claim: --raw streams what actually comes.
    let server = server(|c| list_claims("1000000000000000")(c));
    let outcome = run(&server, &["read", "1", "--raw"]).expect_code(0);
    assert!(
        outcome.stdout.starts_with("From: Sender 1"),
        "{}",
        outcome.stdout
    );
}

#[test]
fn read_of_an_endless_retr_stops_at_the_display_cap() {
    let server = server(|command| {
        (command == "RETR 1").then(|| Answer::Endless {
            prefix: b"+OK\r\nSubject: endless\r\n\r\n".to_vec(),
            chunk: b"all work and no play makes jack a dull boy\r\n".to_vec(),
            limit: 4 << 30,
        })
    });
    let outcome = run(&server, &["read", "1"]).expect_code(69);
    assert_clean_failure(&outcome);
    assert!(outcome.stderr.contains("--raw"), "{}", outcome.stderr);
}

#[test]
fn endless_capa_ends_in_a_protocol_error() {
    let server = server(|command| {
        (command == "CAPA").then(|| Answer::Endless {
            prefix: b"+OK\r\nUSER\r\n".to_vec(),
            chunk: b"X-PADDING\r\n".to_vec(),
            limit: 4 << 30,
        })
    });
    let outcome = run(&server, &["stat"]).expect_code(76);
    assert_clean_failure(&outcome);
    assert!(outcome.stderr.contains("CAPA"), "{}", outcome.stderr);
}

#[test]
fn endless_listing_line_ends_in_a_protocol_error() {
    let server = server(|command| {
        (command == "UIDL").then(|| Answer::Endless {
            prefix: b"+OK\r\n1 ".to_vec(),
            chunk: b"x".to_vec(),
            limit: 4 << 30,
        })
    });
    let outcome = run(&server, &["list"]).expect_code(76);
    assert_clean_failure(&outcome);
}

#[test]
fn endless_top_reply_ends_in_a_protocol_error() {
    let server = server(|command| {
        command.starts_with("TOP ").then(|| Answer::Endless {
            prefix: b"+OK\r\nSubject: endless\r\n".to_vec(),
            chunk: b"X-Padding: more and more\r\n".to_vec(),
            limit: 4 << 30,
        })
    });
    let outcome = run(&server, &["headers"]).expect_code(76);
    assert_clean_failure(&outcome);
    assert!(outcome.stderr.contains("message 1"), "{}", outcome.stderr);
}

const HOSTILE_TEXT: &str = "\u{1b}]0;owned\u{7}\u{1b}[2J\u{9b}31m\rgotcha";

#[test]
fn login_check_greeting_and_capa_escape_sequences_are_filtered() {
    let server = server(|command| match command {
        "" => Some(Answer::Bytes(
            format!("+OK {HOSTILE_TEXT}\r\n").into_bytes(),
        )),
        "CAPA" => Some(Answer::Bytes(
            format!("+OK\r\nUSER\r\nX-{HOSTILE_TEXT}\r\n.\r\n").into_bytes(),
        )),
        _ => None,
    });
    let outcome = run(&server, &["login-check"]).expect_code(0);
    assert!(outcome.stdout.contains("gotcha"), "{}", outcome.stdout);
    assert_no_escapes(&outcome.stdout);
    assert_no_escapes(&outcome.stderr);
}

#[test]
fn err_line_escape_sequences_are_filtered() {
    let server = server(|command| {
        (command.starts_with("PASS"))
            .then(|| Answer::Bytes(format!("-ERR [AUTH] {HOSTILE_TEXT}\r\n").into_bytes()))
    });
    let outcome = run(&server, &["stat"]).expect_code(77);
    assert!(outcome.stderr.contains("gotcha"), "{}", outcome.stderr);
    assert_no_escapes(&outcome.stderr);
}

#[test]
fn debug_dialogue_escape_sequences_are_filtered() {
    let server = server(|command| match command {
        "" => Some(Answer::Bytes(
            format!("+OK {HOSTILE_TEXT}\r\n").into_bytes(),
        )),
        "STAT" => Some(Answer::Bytes(
            format!("+OK 2 300 {HOSTILE_TEXT}\r\n").into_bytes(),
        )),
        _ => None,
    });
    let outcome = run(&server, &["--debug", "stat"]).expect_code(0);
    assert!(
        outcome.stderr.contains("S: +OK 2 300"),
        "{}",
        outcome.stderr
    );
    assert_no_escapes(&outcome.stderr);
}

#[test]
fn headers_refusal_escape_sequences_are_filtered() {
    let server = server(|command| {
        (command.starts_with("TOP 1"))
            .then(|| Answer::Bytes(format!("-ERR {HOSTILE_TEXT}\r\n").into_bytes()))
    });
    let outcome = run(&server, &["headers"]).expect_code(0);
    assert!(outcome.stderr.contains("gotcha"), "{}", outcome.stderr);
    assert_no_escapes(&outcome.stderr);
    assert_no_escapes(&outcome.stdout);
}

/// Found by the hostile-server fuzz test (fetch-all --delete printed a DELE refusal raw).
#[test]
fn fetch_all_dele_refusal_escape_sequences_are_filtered() {
    let server = server(|command| {
        (command.starts_with("DELE"))
            .then(|| Answer::Bytes(format!("-ERR [AUTH] {HOSTILE_TEXT}\r\n").into_bytes()))
    });
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Maildir");
    let outcome = run(
        &server,
        &[
            "fetch-all",
            "--delete",
            "--maildir",
            maildir.to_str().unwrap(),
        ],
    );
    assert_ne!(outcome.code, 70, "{}", outcome.stderr);
    assert!(
        outcome.stderr.contains("DELE 1 refused"),
        "{}",
        outcome.stderr
    );
    assert!(outcome.stderr.contains("gotcha"), "{}", outcome.stderr);
    assert_no_escapes(&outcome.stderr);
}
