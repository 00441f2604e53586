//! `fetch-all` in delete mode sends QUIT in the same write as its last DELEs (issue 11, lever
//! 2): deleting costs one round trip more than keeping, not two. The scripts below have the
//! server read the DELEs *and* QUIT before it answers any of them; a client that waited for
//! the DELE replies before sending QUIT would stall there until the server's read timeout.
//! Deletions still count only after `+OK` to QUIT.

use std::collections::BTreeSet;

use crate::support::fetch::*;
use crate::support::scripted::{ScriptedServer, login_script, transcript};

/// Login, listing of A and B, both RETRs and their replies.
fn opening(capabilities: &str) -> String {
    format!(
        "{}{}{}",
        login_script(capabilities),
        list_and_uidl(&[&A, &B]),
        retr_pipelined(&[1, 2], &[&A, &B]),
    )
}

#[test]
fn quit_leaves_with_the_last_deles_before_their_replies() {
    let fixture = Fixture::new();
    let server = ScriptedServer::start(&format!(
        "{}
         C: DELE 1
         C: DELE 2
         C: QUIT
         S: +OK
         S: +OK
         S: +OK bye",
        opening("USER UIDL PIPELINING"),
    ));
    let outcome = fixture.fetch_maildir(&server, &["--delete"]).expect_code(0);
    assert_silent(&outcome);
    assert_sent(
        &server.finish(),
        &[
            "LIST", "UIDL", "RETR 1", "RETR 2", "DELE 1", "DELE 2", "QUIT",
        ],
    );
    assert_eq!(fixture.new_messages(), sorted(&[A.text, B.text]));
    // QUIT confirmed: deleted, so forgotten.
    assert_eq!(fixture.delivered(), BTreeSet::new());
}

#[test]
fn old_deletions_alone_leave_with_quit() {
    // Nothing new, two messages delivered by an earlier run whose QUIT was lost: DELE, DELE
    // and QUIT in one round trip.
    let fixture = Fixture::new();
    let first = ScriptedServer::start(&format!(
        "{}
         C: DELE 1
         C: DELE 2
         C: QUIT
         S: +OK
         S: +OK
         !abort",
        opening("USER UIDL PIPELINING"),
    ));
    fixture.fetch_maildir(&first, &["--delete"]).expect_code(75);
    first.finish();
    let server = ScriptedServer::start(&format!(
        "{}{}
         C: DELE 1
         C: DELE 2
         C: QUIT
         S: +OK
         S: +OK
         S: +OK bye",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&A, &B]),
    ));
    let outcome = fixture.fetch_maildir(&server, &["--delete"]).expect_code(0);
    assert_silent(&outcome);
    assert_sent(
        &server.finish(),
        &["LIST", "UIDL", "DELE 1", "DELE 2", "QUIT"],
    );
    assert_eq!(fixture.delivered(), BTreeSet::new());
    assert_eq!(
        fixture.new_messages(),
        sorted(&[A.text, B.text]),
        "no duplicates"
    );
}

/// The server reads DELEs and QUIT together, then answers with `replies`: the run must end
/// with exit 75, the messages delivered, and both still known (deleted next time).
fn pipelined_quit_not_confirmed(replies: &str, marked: usize) {
    let fixture = Fixture::new();
    let server = ScriptedServer::start(&format!(
        "{}
         C: DELE 1
         C: DELE 2
         C: QUIT
         {replies}",
        opening("USER UIDL PIPELINING"),
    ));
    let outcome = fixture
        .fetch_maildir(&server, &["--delete"])
        .expect_code(75);
    let notice = format!(
        "the {marked} message{} marked for deletion stay on the server",
        if marked == 1 { "" } else { "s" }
    );
    assert!(outcome.stderr.contains(&notice), "{}", outcome.stderr);
    server.finish();
    assert_eq!(fixture.new_messages(), sorted(&[A.text, B.text]));
    assert_eq!(
        fixture.delivered(),
        BTreeSet::from(["uid-A".into(), "uid-B".into()]),
        "not forgotten: the server may still have them"
    );
}

#[test]
fn pipelined_quit_lost_leaves_the_marked_messages_for_next_time() {
    pipelined_quit_not_confirmed("S: +OK\nS: +OK\n!abort", 2);
}

#[test]
fn pipelined_quit_refused_leaves_the_marked_messages_for_next_time() {
    pipelined_quit_not_confirmed(
        "S: +OK\nS: +OK\nS: -ERR [SYS/TEMP] could not update the maildrop",
        2,
    );
}

#[test]
fn pipelined_quit_after_a_refused_dele_keeps_that_message_known() {
    let fixture = Fixture::new();
    let server = ScriptedServer::start(&format!(
        "{}
         C: DELE 1
         C: DELE 2
         C: QUIT
         S: +OK
         S: -ERR [SYS/TEMP] cannot delete now
         S: +OK bye",
        opening("USER UIDL PIPELINING"),
    ));
    let outcome = fixture.fetch_maildir(&server, &["--delete"]);
    assert!(outcome.stderr.contains("DELE 2"), "{}", outcome.stderr);
    server.finish();
    // A is deleted and forgotten; B is still on the server and must not be fetched again.
    assert_eq!(fixture.delivered(), BTreeSet::from(["uid-B".into()]));
}

#[test]
fn without_pipelining_quit_waits_for_the_last_dele_reply() {
    // Strict lock-step (RFC 1939 without RFC 2449 PIPELINING): nothing is sent before the
    // previous reply; `!quiet` proves the client does not send QUIT early.
    let fixture = Fixture::new();
    let server = ScriptedServer::start(&transcript("fetch-all-delete-two"));
    let outcome = fixture.fetch_maildir(&server, &["--delete"]).expect_code(0);
    assert_silent(&outcome);
    server.finish();
    // The transcript serves tests/it/support/fetch.rs's A and B.
    assert_eq!(fixture.new_messages(), sorted(&[A.text, B.text]));
    assert_eq!(fixture.delivered(), BTreeSet::new());
}
