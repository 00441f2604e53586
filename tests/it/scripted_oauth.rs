//! OAuth2 login against the scripted server: the exact bytes of XOAUTH2 (token as the answer
//! to an empty challenge, and the empty answer to an error challenge) and OAUTHBEARER.

use base64::Engine;

use crate::support::cli::Pop3;
use crate::support::scripted::{ScriptedServer, text_of};

const TOKEN: &str = "ya29.a0-secret-token";

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// A config file for an OAuth account on the scripted TLS server.
fn oauth_config(dir: &std::path::Path, server: &ScriptedServer, auth: &str) -> std::path::PathBuf {
    let token_script = dir.join("token.sh");
    std::fs::write(&token_script, format!("#!/bin/sh\necho {TOKEN}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&token_script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[accounts.o]\nhost = \"localhost\"\nport = {}\nuser = \"alice@example.com\"\nca_file = \"{}\"\nauth = \"{auth}\"\noauth_token_command = [\"{}\"]\n",
            server.port,
            server.ca_file().display(),
            token_script.display()
        ),
    )
    .unwrap();
    config
}

#[test]
fn xoauth2_sends_the_token_as_the_answer_to_an_empty_challenge() {
    let payload = b64(&format!(
        "user=alice@example.com\x01auth=Bearer {TOKEN}\x01\x01"
    ));
    let server = ScriptedServer::start_tls(
        &format!(
            "S: +OK ready
             C: CAPA
             S: +OK
             S: SASL XOAUTH2 OAUTHBEARER
             S: .
             C: AUTH XOAUTH2
             S: +
             C: {payload}
             S: +OK welcome
             C: CAPA
             S: -ERR
             C: STAT
             S: +OK 0 0
             C: QUIT
             S: +OK"
        ),
        &["localhost"],
    );
    let dir = tempfile::tempdir().unwrap();
    // auth = "auto" picks OAuth because a token command is configured.
    let config = oauth_config(dir.path(), &server, "auto");
    let outcome = Pop3::new()
        .args([std::path::Path::new("--config"), &config])
        .args(["--debug", "stat"])
        .run()
        .expect_code(0);
    assert!(!outcome.stderr.contains(TOKEN), "{}", outcome.stderr);
    assert!(!outcome.stderr.contains(&payload), "{}", outcome.stderr);
    assert!(
        outcome.stderr.contains("C: AUTH XOAUTH2\n"),
        "{}",
        outcome.stderr
    );
    server.finish();
}

#[test]
fn xoauth2_error_challenge_gets_an_empty_answer() {
    let error = b64(r#"{"status":"401","schemes":"Bearer","scope":"https://mail.google.com/"}"#);
    let server = ScriptedServer::start_tls(
        &format!(
            "S: +OK ready
             C: CAPA
             S: +OK
             S: SASL XOAUTH2
             S: .
             C: AUTH XOAUTH2
             S: +
             C: *
             S: + {error}
             C:
             S: -ERR [AUTH] Invalid credentials"
        ),
        &["localhost"],
    );
    let dir = tempfile::tempdir().unwrap();
    let config = oauth_config(dir.path(), &server, "xoauth2");
    let outcome = Pop3::new()
        .args([std::path::Path::new("--config"), &config])
        .args(["stat"])
        .run()
        .expect_code(77);
    assert!(
        outcome.stderr.contains("Invalid credentials"),
        "{}",
        outcome.stderr
    );
    let sent = text_of(&server.finish());
    assert!(sent.ends_with("\r\n\r\n"), "an empty answer line: {sent:?}");
}

#[test]
fn oauthbearer_sends_the_rfc7628_initial_response() {
    // The payload names the port, known only once the server runs: accept any AUTH line and
    // check the bytes afterwards.
    let server = ScriptedServer::start_tls(
        "S: +OK ready
         C: CAPA
         S: +OK
         S: SASL OAUTHBEARER
         S: .
         C~ AUTH OAUTHBEARER 
         S: +OK
         C: CAPA
         S: -ERR
         C: STAT
         S: +OK 1 1
         C: QUIT
         S: +OK",
        &["localhost"],
    );
    let dir = tempfile::tempdir().unwrap();
    let config = oauth_config(dir.path(), &server, "oauthbearer");
    Pop3::new()
        .args([std::path::Path::new("--config"), &config])
        .args(["stat"])
        .run()
        .expect_code(0);
    let port = server.port;
    let sent = text_of(&server.finish());
    let expected = b64(&format!(
        "n,a=alice@example.com,\x01host=localhost\x01port={port}\x01auth=Bearer {TOKEN}\x01\x01"
    ));
    assert!(
        sent.contains(&format!("AUTH OAUTHBEARER {expected}\r\n")),
        "{sent}"
    );
}

#[test]
fn oauth_without_a_token_command_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        "[accounts.o]\nhost = \"h\"\nuser = \"u\"\nauth = \"xoauth2\"\n",
    )
    .unwrap();
    let outcome = Pop3::new()
        .args([std::path::Path::new("--config"), &config])
        .args(["stat"])
        .run()
        .expect_code(78);
    assert!(
        outcome.stderr.contains("oauth_token_command"),
        "{}",
        outcome.stderr
    );
}
