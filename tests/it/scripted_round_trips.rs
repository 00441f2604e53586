//! Round trips: with PIPELINING the login tail (post-login CAPA, LIST, UIDL) travels with the
//! login; without it the client waits for every reply. The scripts prove it: a pipelined
//! client must send lines the server has not yet answered (a lock-step client would deadlock
//! there and time out), and `!quiet` fails when a client sends ahead of a reply.

use crate::support::cli::Pop3;
use crate::support::scripted::{ScriptedServer, transcript};

fn run(server: &ScriptedServer, args: &[&str]) -> crate::support::cli::Outcome {
    Pop3::scripted_plain(server.port).args(args).run()
}

/// Greeting and pre-login CAPA announcing `capabilities` (separated by commas).
fn opening(capabilities: &str) -> String {
    let capa: String = capabilities
        .split(',')
        .map(|c| format!("S: {c}\n"))
        .collect();
    format!("S: +OK ready\nC: CAPA\nS: +OK\n{capa}S: .\n")
}

#[test]
fn pipelined_login_sends_capa_list_and_uidl_with_the_password() {
    // Every line up to UIDL is read before the server answers USER.
    let server = ScriptedServer::start(&transcript("list-uidl-pipelined"));
    let outcome = run(&server, &["list"]).expect_code(0);
    assert_eq!(outcome.stdout.trim(), "1  120  abc");
    server.finish();
}

#[test]
fn pipelined_sasl_plain_login_carries_the_tail_too() {
    let server = ScriptedServer::start(&format!(
        "{}C~ AUTH PLAIN 
         C: CAPA
         C: STAT
         S: +OK logged in
         S: +OK
         S: PIPELINING
         S: .
         S: +OK 2 320
         C: QUIT
         S: +OK",
        opening("SASL PLAIN,PIPELINING")
    ));
    let outcome = run(&server, &["stat"]).expect_code(0);
    assert!(
        outcome.stdout.starts_with("2 messages"),
        "{}",
        outcome.stdout
    );
    server.finish();
}

#[test]
fn refused_pipelined_login_is_reported_as_a_refused_login() {
    // The server refuses PASS and answers the pipelined commands with -ERR: the user hears
    // about the login, and nothing else is attempted. (All replies in one write: a client that
    // stops reading after the refusal must not make a later write of the script fail.)
    let server = ScriptedServer::start(&format!(
        "{}C: USER alice
         C: PASS pw
         C: CAPA
         C: LIST
         C: UIDL
         S=: +OK\\r\\n-ERR [AUTH] wrong password\\r\\n-ERR not logged in\\r\\n-ERR not logged in\\r\\n-ERR not logged in\\r\\n",
        opening("USER,UIDL,PIPELINING")
    ));
    let outcome = run(&server, &["list"]).expect_code(77);
    assert!(
        outcome.stderr.contains("login as alice") && outcome.stderr.contains("wrong password"),
        "{}",
        outcome.stderr
    );
    server.finish();
}

#[test]
fn without_pipelining_every_command_waits_for_its_reply() {
    let server = ScriptedServer::start(&transcript("list-uidl-lockstep"));
    let outcome = run(&server, &["list"]).expect_code(0);
    assert_eq!(outcome.stdout.trim(), "1  120  abc");
    server.finish();
}

#[test]
fn capabilities_that_change_after_login_decide_what_follows() {
    // Before login the server announces PIPELINING and UIDL; after login it has no UIDL any
    // more. The pipelined UIDL is answered -ERR and list still works without unique ids.
    let server = ScriptedServer::start(&format!(
        "{}C: USER alice
         C: PASS pw
         C: CAPA
         C: LIST
         C: UIDL
         S: +OK
         S: +OK
         S: +OK
         S: PIPELINING
         S: .
         S: +OK
         S: 1 120
         S: .
         S: -ERR no UIDL here
         C: QUIT
         S: +OK",
        opening("USER,UIDL,PIPELINING")
    ));
    let outcome = run(&server, &["list"]).expect_code(0);
    assert_eq!(outcome.stdout.trim(), "1  120");
    server.finish();
}

#[test]
fn oauth_logins_are_never_pipelined() {
    // XOAUTH2 answers a bad token with a challenge, which would take pipelined commands for
    // SASL answers: AUTH goes alone, and the post-login CAPA only after +OK.
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token.sh");
    std::fs::write(&token, "#!/bin/sh\necho tok\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = dir.path().join("config.toml");
    let server = ScriptedServer::start(&format!(
        "{}C: AUTH XOAUTH2
         !quiet 150
         S: +
         C: *
         !quiet 150
         S: +OK
         C: CAPA
         S: +OK
         S: PIPELINING
         S: .
         C: STAT
         S: +OK 0 0
         C: QUIT
         S: +OK",
        opening("SASL XOAUTH2,PIPELINING")
    ));
    std::fs::write(
        &config,
        format!(
            "[accounts.o]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"alice\"\ntls = \"none\"\n\
             allow_plaintext_password = true\nauth = \"xoauth2\"\noauth_token_command = [\"{}\"]\n",
            server.port,
            token.display()
        ),
    )
    .unwrap();
    Pop3::new()
        .args([std::path::Path::new("--config"), &config])
        .args(["-a", "o", "--timeout", "3", "stat"])
        .run()
        .expect_code(0);
    server.finish();
}
