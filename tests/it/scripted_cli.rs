//! The real binary against the scripted server: exact bytes on the wire, and the faults a real
//! server will not produce.

use crate::support::cli::{Outcome, Pop3};
use crate::support::scripted::{ScriptedServer, text_of, transcript};

/// Runs `pop3 ARGS` as alice (password "pw") against a plain scripted server.
fn run_plain(server: &ScriptedServer, args: &[&str]) -> Outcome {
    Pop3::scripted_plain(server.port).args(args).run()
}

/// Runs `pop3 ARGS` as alice against a TLS scripted server.
fn run_tls(server: &ScriptedServer, host: &str, args: &[&str]) -> Outcome {
    Pop3::new()
        .server(host, server.port, Some(server.ca_file()))
        .login("alice", "pw")
        .args(["--timeout", "3"])
        .args(args)
        .run()
}

const GREETING_AND_CAPA: &str = "
    S: +OK ready
    C: CAPA
    S: +OK
    S: USER
    S: UIDL
    S: .
";

#[test]
fn stat_sends_exactly_these_bytes() {
    let server = ScriptedServer::start(&transcript("login-user-stat"));
    let outcome = run_plain(&server, &["stat"]).expect_code(0);
    assert_eq!(outcome.stdout, "3 messages (3 new), 24.1 KiB\n");
    assert_eq!(
        server.finish(),
        b"CAPA\r\nUSER alice\r\nPASS pw\r\nCAPA\r\nSTAT\r\nUIDL\r\nQUIT\r\n"
    );
}

#[test]
fn stat_without_uidl_says_nothing_about_new_messages() {
    let server = ScriptedServer::start(&format!(
        "{}
        C: STAT
        S: +OK 2 2000
        C: QUIT
        S: +OK bye",
        crate::support::scripted::login_script("USER")
    ));
    let outcome = run_plain(&server, &["stat"]).expect_code(0);
    assert_eq!(outcome.stdout, "2 messages, 2.0 KiB\n");
    server.finish();
    let server = ScriptedServer::start(&format!(
        "{}
        C: STAT
        S: +OK 2 2000
        C: QUIT
        S: +OK bye",
        crate::support::scripted::login_script("USER")
    ));
    let outcome = run_plain(&server, &["stat", "--json"]).expect_code(0);
    assert_eq!(outcome.stdout, "{\"messages\":2,\"octets\":2000}\n");
    server.finish();
}

#[test]
fn auto_prefers_sasl_plain_and_sends_rfc4616_bytes() {
    let server = ScriptedServer::start_tls(&transcript("login-sasl-plain"), &["localhost"]);
    let outcome = run_tls(&server, "localhost", &["stat", "--json"]).expect_code(0);
    assert_eq!(outcome.stdout, "{\"messages\":1,\"octets\":10}\n");
    server.finish();
}

#[test]
fn apop_sends_the_rfc1939_digest() {
    // The example of RFC 1939 §7: user mrose, secret tanstaaf.
    let server = ScriptedServer::start(&transcript("login-apop"));
    Pop3::new()
        .server("127.0.0.1", server.port, None)
        .login("mrose", "tanstaaf")
        .args([
            "--tls",
            "none",
            "--allow-plaintext-password",
            "--auth",
            "apop",
            "stat",
        ])
        .run()
        .expect_code(0);
    server.finish();
}

#[test]
fn list_shows_uids_and_tolerates_bare_lf() {
    let server = ScriptedServer::start(
        "S-: +OK ready
         C: CAPA
         S-: +OK
         S-: UIDL
         S-: USER
         S-: .
         C: USER alice
         S-: +OK
         C: PASS pw
         S-: +OK
         C: CAPA
         S-: +OK
         S-: UIDL
         S-: .
         C: LIST
         S-: +OK 2 messages
         S-: 1 120
         S-: 10 2000
         S-: .
         C: UIDL
         S=: +OK\\n1 abc\\n10 ../../x\\n.\\n
         C: QUIT
         S-: +OK",
    );
    let outcome = run_plain(&server, &["list"]).expect_code(0);
    assert_eq!(outcome.stdout, " 1   120  abc\n10  2000  ../../x\n");
    server.finish();
}

#[test]
fn list_json_without_uidl() {
    let server = ScriptedServer::start(
        "S: +OK ready
         C: CAPA
         S: +OK
         S: USER
         S: .
         C: USER alice
         S: +OK
         C: PASS pw
         S: +OK
         C: CAPA
         S: +OK
         S: USER
         S: .
         C: LIST
         S: +OK
         S: 1 5
         S: .
         C: QUIT
         S: +OK",
    );
    let outcome = run_plain(&server, &["list", "--json"]).expect_code(0);
    assert_eq!(outcome.stdout, "[{\"number\":1,\"size\":5,\"uid\":null}]\n");
    server.finish();
}

/// Script steps that send `text` one byte per write.
fn bytewise(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'\r' => "S=: \\r\n".to_owned(),
            b'\n' => "S=: \\n\n".to_owned(),
            b' ' => "S=: \\x20\n".to_owned(),
            b => format!("S=: {}\n", b as char),
        })
        .collect()
}

#[test]
fn replies_fragmented_at_every_byte_still_parse() {
    let script = format!(
        "{}
         C: CAPA
         S: -ERR
         C: USER alice
         S: +OK
         C: PASS pw
         S: +OK
         C: CAPA
         S: -ERR
         C: LIST
         {}
         C: UIDL
         S: -ERR no
         C: QUIT
         S: +OK",
        bytewise("+OK hi\r\n"),
        bytewise("+OK\r\n1 7\r\n2 9\r\n.\r\n"),
    );
    let server = ScriptedServer::start(&script);
    let outcome = run_plain(&server, &["list"]).expect_code(0);
    assert_eq!(outcome.stdout, "1  7\n2  9\n");
    server.finish();
}

/// A login refused with a response code, and the exit code and words it must produce.
fn refused_login(reply: &str) -> (Outcome, Vec<u8>) {
    let server = ScriptedServer::start(&format!(
        "{GREETING_AND_CAPA}
         C: USER alice
         S: +OK
         C: PASS pw
         S: {reply}"
    ));
    let outcome = run_plain(&server, &["stat"]);
    (outcome, server.finish())
}

#[test]
fn response_codes_decide_the_exit_code() {
    let cases = [
        ("-ERR [IN-USE] Mailbox is locked", 75, "[IN-USE]"),
        ("-ERR [LOGIN-DELAY] Wait 5 minutes", 75, "[LOGIN-DELAY]"),
        ("-ERR [SYS/TEMP] Try later", 75, "[SYS/TEMP]"),
        ("-ERR [SYS/PERM] Account disabled", 69, "[SYS/PERM]"),
        ("-ERR [AUTH] Authentication failed.", 77, "[AUTH]"),
        ("-ERR Bad password", 77, "Bad password"),
    ];
    for (reply, code, words) in cases {
        let (outcome, sent) = refused_login(reply);
        let outcome = outcome.expect_code(code);
        assert!(
            outcome.stderr.contains(words),
            "{reply}: {}",
            outcome.stderr
        );
        assert_eq!(outcome.stderr.lines().count(), 1, "{}", outcome.stderr);
        // One login attempt per run, never a retry.
        assert_eq!(text_of(&sent).matches("PASS").count(), 1);
    }
}

#[test]
fn a_silent_server_times_out() {
    let server = ScriptedServer::start(
        "S: +OK ready
         C: CAPA
         !sleep 4000",
    );
    let started = std::time::Instant::now();
    let outcome = Pop3::new()
        .server("127.0.0.1", server.port, None)
        .login("alice", "pw")
        .args([
            "--tls",
            "none",
            "--allow-plaintext-password",
            "--timeout",
            "1",
            "stat",
        ])
        .run()
        .expect_code(75);
    assert!(outcome.stderr.contains("timed out"), "{}", outcome.stderr);
    assert!(started.elapsed() < std::time::Duration::from_secs(4));
    server.finish();
}

#[test]
fn a_dropped_connection_is_temporary() {
    let server = ScriptedServer::start(&format!(
        "{GREETING_AND_CAPA}
         C: USER alice
         S: +OK
         C: PASS pw
         S: +OK
         C: CAPA
         S: -ERR
         C: LIST
         S: +OK
         S: 1 5
         !abort"
    ));
    let outcome = run_plain(&server, &["list"]).expect_code(75);
    assert!(
        outcome.stderr.contains("closed the connection"),
        "{}",
        outcome.stderr
    );
    server.finish();
}

#[test]
fn an_overlong_status_line_is_a_protocol_error() {
    let server = ScriptedServer::start(&format!("S: +OK {}", "x".repeat(600)));
    let outcome = run_plain(&server, &["stat"]).expect_code(76);
    assert!(
        outcome.stderr.contains("longer than 512"),
        "{}",
        outcome.stderr
    );
    server.finish();
}

#[test]
fn stls_upgrades_then_asks_capa_again() {
    let server = ScriptedServer::start_with_cert(
        "S: +OK ready
         C: CAPA
         S: +OK
         S: STLS
         S: .
         C: STLS
         S: +OK Begin TLS
         !starttls
         C: CAPA
         S: +OK
         S: USER
         S: .
         C: USER alice
         S: +OK
         C: PASS pw
         S: +OK
         C: CAPA
         S: -ERR
         C: STAT
         S: +OK 0 0
         C: QUIT
         S: +OK",
        &["localhost"],
    );
    let outcome = run_tls(&server, "localhost", &["--tls", "starttls", "stat"]).expect_code(0);
    assert_eq!(outcome.stdout, "the mailbox is empty\n");
    server.finish();
}

#[test]
fn stls_response_injection_is_refused() {
    let server = ScriptedServer::start_with_cert(
        "S: +OK ready
         C: CAPA
         S: +OK
         S: STLS
         S: .
         C: STLS
         S=: +OK Begin TLS\\r\\n+OK injected\\r\\n
         !sleep 500",
        &["localhost"],
    );
    let outcome = run_tls(&server, "localhost", &["--tls", "starttls", "stat"]).expect_code(76);
    assert!(outcome.stderr.contains("injection"), "{}", outcome.stderr);
    assert_eq!(text_of(&server.finish()), "CAPA\r\nSTLS\r\n");
}

#[test]
fn missing_stls_is_refused_without_sending_the_password() {
    let server = ScriptedServer::start_with_cert(
        "S: +OK ready
         C: CAPA
         S: +OK
         S: USER
         S: .",
        &["localhost"],
    );
    let outcome = run_tls(&server, "localhost", &["--tls", "starttls", "stat"]).expect_code(69);
    assert!(
        outcome.stderr.contains("does not offer STLS"),
        "{}",
        outcome.stderr
    );
    let sent = server.finish();
    assert_eq!(text_of(&sent), "CAPA\r\n");
}

#[test]
fn stls_refused_by_a_server_without_capa() {
    let server = ScriptedServer::start_with_cert(
        "S: +OK ready
         C: CAPA
         S: -ERR unknown command
         C: STLS
         S: -ERR not here",
        &["localhost"],
    );
    let outcome = run_tls(&server, "localhost", &["--tls", "starttls", "stat"]).expect_code(69);
    assert!(outcome.stderr.contains("STLS"), "{}", outcome.stderr);
    assert_eq!(text_of(&server.finish()), "CAPA\r\nSTLS\r\n");
}

#[test]
fn a_certificate_for_another_host_is_refused() {
    let server = ScriptedServer::start_tls("S: +OK ready", &["other.example"]);
    let outcome = run_tls(&server, "localhost", &["stat"]).expect_code(76);
    assert!(
        outcome.stderr.contains("not valid for this host name"),
        "{}",
        outcome.stderr
    );
    let sent = server.finish_broken_off("TLS handshake failed");
    assert!(sent.is_empty(), "{}", text_of(&sent));
}

#[test]
fn an_untrusted_certificate_is_refused() {
    let server = ScriptedServer::start_tls("S: +OK ready", &["localhost"]);
    // No --ca-file: the test CA is not trusted.
    let outcome = Pop3::new()
        .server("localhost", server.port, None)
        .login("alice", "pw")
        .args(["stat"])
        .run()
        .expect_code(76);
    assert!(
        outcome.stderr.contains("not signed by a trusted authority"),
        "{}",
        outcome.stderr
    );
    let sent = server.finish_broken_off("TLS handshake failed");
    assert!(sent.is_empty(), "{}", text_of(&sent));
}

#[test]
fn no_password_in_clear_unless_allowed() {
    let server = ScriptedServer::start(GREETING_AND_CAPA);
    let outcome = Pop3::new()
        .server("127.0.0.1", server.port, None)
        .login("alice", "pw")
        .args(["--tls", "none", "stat"])
        .run()
        .expect_code(78);
    assert!(
        outcome.stderr.contains("allow_plaintext_password"),
        "{}",
        outcome.stderr
    );
    // Refused before dialing: not even the user name leaves the machine.
    server.finish_unconnected();
}

#[test]
fn debug_trace_masks_password_and_sasl_payload() {
    let secret = "Sup3r-Secret";
    let server = ScriptedServer::start(&format!(
        "{GREETING_AND_CAPA}
         C: USER alice
         S: +OK
         C: PASS {secret}
         S: +OK
         C: CAPA
         S: -ERR
         C: STAT
         S: +OK 0 0
         C: QUIT
         S: +OK"
    ));
    let outcome = Pop3::new()
        .server("127.0.0.1", server.port, None)
        .login("alice", secret)
        .args([
            "--tls",
            "none",
            "--allow-plaintext-password",
            "--debug",
            "stat",
        ])
        .run()
        .expect_code(0);
    assert!(outcome.stderr.contains("C: PASS ***"), "{}", outcome.stderr);
    assert!(
        outcome.stderr.contains("C: USER alice"),
        "{}",
        outcome.stderr
    );
    assert!(!outcome.stderr.contains(secret), "{}", outcome.stderr);
    server.finish();

    // SASL PLAIN: the base64 payload holds the password too.
    let server = ScriptedServer::start_tls(
        "S: +OK ready
         C: CAPA
         S: +OK
         S: SASL PLAIN
         S: .
         C~ AUTH PLAIN
         S: +OK
         C: CAPA
         S: -ERR
         C: STAT
         S: +OK 0 0
         C: QUIT
         S: +OK",
        &["localhost"],
    );
    let outcome = Pop3::new()
        .server("localhost", server.port, Some(server.ca_file()))
        .login("alice", secret)
        .args(["--debug", "stat"])
        .run()
        .expect_code(0);
    use base64::Engine;
    let payload = base64::engine::general_purpose::STANDARD.encode(format!("\0alice\0{secret}"));
    assert!(
        outcome.stderr.contains("C: AUTH PLAIN ***"),
        "{}",
        outcome.stderr
    );
    assert!(!outcome.stderr.contains(&payload));
    assert!(text_of(&server.finish()).contains(&payload));
}

#[test]
fn an_err_greeting_is_reported() {
    let server = ScriptedServer::start("S: -ERR [SYS/TEMP] too busy");
    let outcome = run_plain(&server, &["stat"]).expect_code(75);
    assert!(outcome.stderr.contains("too busy"), "{}", outcome.stderr);
    server.finish();
}
