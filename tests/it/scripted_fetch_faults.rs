//! `pop3 fetch-all` when things go wrong: connections that drop mid-message, refusals, a
//! mailbox in use, runs that died before recording, a damaged state file, two runs at once.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::cli::{Outcome, Pop3};
use crate::support::fetch::*;
use crate::support::scripted::{ScriptedServer, login_script, transcript};

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

#[test]
fn in_use_at_login_is_temporary_and_writes_nothing() {
    let fixture = Fixture::new();
    let server = ScriptedServer::start(&transcript("login-refused"));
    let outcome = fixture.fetch_maildir(&server, &[]).expect_code(75);
    assert!(outcome.stderr.contains("[IN-USE]"), "{}", outcome.stderr);
    assert_eq!(outcome.stderr.lines().count(), 1, "{}", outcome.stderr);
    // Strict: the script ends at the refused PASS, so a retried login would fail here.
    assert_eq!(
        sent_lines(&server.finish()),
        ["CAPA", "USER alice", "PASS pw"]
    );
    assert!(!fixture.maildir().exists());
    assert_eq!(fixture.delivered(), BTreeSet::new());
}

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
            .contains("3 found already delivered (now recorded)"),
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
        outcome.stderr.contains("damaged at line 2")
            && outcome.stderr.contains("move the file away"),
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
