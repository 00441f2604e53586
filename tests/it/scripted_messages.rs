//! `headers`, `read` and `delete` against the scripted server: pipelining on the wire, servers
//! without TOP, refused RETR, and a connection lost at QUIT.

use crate::support::cli::{Outcome, Pop3};
use crate::support::scripted::{ScriptedServer, login_script, text_of, transcript};

fn run(server: &ScriptedServer, args: &[&str]) -> Outcome {
    Pop3::scripted_plain(server.port).args(args).run()
}

const LIST_TWO: &str = "
    C: LIST
    S: +OK
    S: 1 100
    S: 2 200
    S: .";

#[test]
fn headers_pipelines_top_when_the_server_allows_it() {
    // Both TOP commands must arrive before the server answers the first one.
    let server = ScriptedServer::start(&transcript("top-headers-pipelined"));
    let outcome = run(&server, &["headers"]).expect_code(0);
    let lines: Vec<&str> = outcome.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", outcome.stdout);
    assert!(lines[0].contains("first"));
    assert!(lines[1].contains("Jürgen <j@example.de>") && lines[1].contains("second"));
    server.finish();
}

#[test]
fn headers_without_pipelining_still_works() {
    let server = ScriptedServer::start(&format!(
        "{}
         {LIST_TWO}
         C: TOP 1 0
         S: +OK
         S: Subject: first
         S: .
         C: TOP 2 0
         S: +OK
         S: Subject: second
         S: .
         C: QUIT
         S: +OK",
        login_script("USER TOP")
    ));
    run(&server, &["headers"]).expect_code(0);
    server.finish();
}

#[test]
fn headers_fall_back_to_retr_without_top() {
    let server = ScriptedServer::start(&format!(
        "{}
         {LIST_TWO}
         C: RETR 1
         S: +OK
         S: Subject: first
         S:
         S: a body that is not shown
         S: .
         C: RETR 2
         S: -ERR [SYS/TEMP] message is locked
         C: QUIT
         S: +OK",
        login_script("USER UIDL")
    ));
    let outcome = run(&server, &["headers"]).expect_code(0);
    assert!(outcome.stdout.contains("first"), "{}", outcome.stdout);
    assert!(!outcome.stdout.contains("body"), "{}", outcome.stdout);
    assert_eq!(
        outcome.stderr.matches("does not support TOP").count(),
        1,
        "said once: {}",
        outcome.stderr
    );
    assert!(
        outcome.stderr.contains("message 2: the server refused"),
        "{}",
        outcome.stderr
    );
    server.finish();
}

#[test]
fn without_capa_a_refused_top_means_no_top() {
    let server = ScriptedServer::start(&format!(
        "S: +OK ready
         C: CAPA
         S: -ERR unknown
         C: USER alice
         S: +OK
         C: PASS pw
         S: +OK
         C: CAPA
         S: -ERR unknown
         {LIST_TWO}
         C: TOP 1 0
         S: -ERR unknown command
         C: RETR 1
         S: +OK
         S: Subject: one
         S: .
         C: RETR 2
         S: +OK
         S: Subject: two
         S: .
         C: QUIT
         S: +OK"
    ));
    let outcome = run(&server, &["headers"]).expect_code(0);
    assert!(outcome.stdout.contains("one") && outcome.stdout.contains("two"));
    server.finish();
}

#[test]
fn read_refused_by_the_server() {
    let server = ScriptedServer::start(&format!(
        "{}
         {LIST_TWO}
         C: RETR 2
         S: -ERR [SYS/PERM] message is corrupt",
        login_script("USER TOP")
    ));
    let outcome = run(&server, &["read", "2"]).expect_code(69);
    assert!(outcome.stderr.contains("RETR 2"), "{}", outcome.stderr);
    assert!(
        outcome.stderr.contains("message is corrupt"),
        "{}",
        outcome.stderr
    );
    server.finish();
}

#[test]
fn delete_says_the_outcome_is_unknown_when_quit_is_lost() {
    let server = ScriptedServer::start(&format!(
        "{}
         {LIST_TWO}
         C: DELE 2
         S: +OK marked
         C: QUIT
         !abort",
        login_script("USER TOP")
    ));
    let outcome = run(&server, &["delete", "--yes", "-q", "2"]).expect_code(75);
    // The server may have committed before the reply was lost: claiming either outcome is a lie.
    assert!(
        !outcome.stderr.contains("nothing was deleted"),
        "{}",
        outcome.stderr
    );
    assert!(
        outcome.stderr.contains("is unknown") && outcome.stderr.contains("pop3 list"),
        "{}",
        outcome.stderr
    );
    assert!(!outcome.stdout.contains("Deleted"), "{}", outcome.stdout);
    server.finish();
}

#[test]
fn delete_refused_for_one_message_deletes_none() {
    let server = ScriptedServer::start(&format!(
        "{}
         {LIST_TWO}
         C: DELE 1
         C: DELE 2
         S: +OK
         S: -ERR [SYS/TEMP] locked
         C: RSET
         S: +OK
         C: QUIT
         S: +OK",
        login_script("USER TOP PIPELINING")
    ));
    let outcome = run(&server, &["delete", "--yes", "-q", "1-2"]).expect_code(76);
    assert!(
        outcome.stderr.contains("nothing was deleted"),
        "{}",
        outcome.stderr
    );
    let sent = text_of(&server.finish());
    assert!(
        sent.ends_with("DELE 1\r\nDELE 2\r\nRSET\r\nQUIT\r\n"),
        "{sent}"
    );
}

#[test]
fn read_raw_gives_the_message_without_its_byte_stuffing() {
    let server = ScriptedServer::start(&transcript("retr-dot-stuffing"));
    let outcome = run(&server, &["read", "--raw", "1"]).expect_code(0);
    assert_eq!(
        outcome.stdout,
        "From: alice@example.org\r\nTo: bob@example.org\r\nSubject: one\r\n\r\n\
         First message.\r\n.leading dot\r\n.\r\n..two dots\r\nend\r\n"
    );
    server.finish();
}

#[test]
fn delete_succeeds_once_quit_is_confirmed() {
    let server = ScriptedServer::start(&transcript("dele-quit"));
    let outcome = run(&server, &["delete", "--yes", "-q", "2"]).expect_code(0);
    assert_eq!((outcome.stdout.as_str(), outcome.stderr.as_str()), ("", ""));
    let sent = text_of(&server.finish());
    assert!(sent.ends_with("DELE 2\r\nQUIT\r\n"), "{sent}");
}
