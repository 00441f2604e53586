//! What comes first when a session opens: the password prompt only once the connection is up,
//! TLS verified and the capabilities known (trial report item 6); a refused certificate shown
//! so it can be checked and pinned (item 9); and an empty password never sent.

use std::path::Path;

use crate::support::cli::Pop3;
use crate::support::dovecot::dovecot;
use crate::support::pty::Terminal;
use crate::support::scripted::{ScriptedServer, text_of, transcript};

/// What `pop3 stat` sends after a USER/PASS login with password "pw" (transcript
/// `login-user-stat`).
const STAT_BYTES: &str = "CAPA\r\nUSER alice\r\nPASS pw\r\nCAPA\r\nSTAT\r\nUIDL\r\nQUIT\r\n";

/// `pop3 ARGS` as alice on a terminal, asking for the password, over plain TCP to `port`.
fn on_terminal_plain(port: u16, args: &[&str]) -> (Terminal, tempfile::TempDir) {
    let (command, home) = Pop3::new()
        .server("127.0.0.1", port, None)
        .args([
            "--user",
            "alice",
            "--tls",
            "none",
            "--allow-plaintext-password",
        ])
        .args(["--timeout", "5"])
        .args(args)
        .into_command();
    (Terminal::spawn(command), home)
}

/// A port on 127.0.0.1 where nothing listens.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn password_prompt_after_connecting_a_refused_connection_asks_nothing() {
    let (command, _home) = Pop3::new()
        .server("127.0.0.1", closed_port(), None)
        .args(["--user", "demo", "stat"])
        .into_command();
    let terminal = Terminal::spawn(command);
    // Before the fix the prompt came first and the program waited for it.
    let (status, screen) = terminal.wait();
    assert_eq!(status.code(), Some(69), "{screen}");
    assert!(screen.contains("cannot connect"), "{screen}");
    assert!(!screen.contains("Password for"), "{screen}");
}

#[test]
fn password_prompt_after_connecting_an_untrusted_certificate_asks_nothing() {
    let server = ScriptedServer::start_tls("S: +OK ready", &["localhost"]);
    // No --ca-file: the scripted server's CA is not trusted.
    let (command, _home) = Pop3::new()
        .server("localhost", server.port, None)
        .args(["--user", "demo", "stat"])
        .into_command();
    let (status, screen) = Terminal::spawn(command).wait();
    assert_eq!(status.code(), Some(76), "{screen}");
    assert!(
        screen.contains("not signed by a trusted authority"),
        "{screen}"
    );
    assert!(!screen.contains("Password for"), "{screen}");
    let sent = server.finish_broken_off("TLS handshake failed");
    assert!(sent.is_empty(), "{}", text_of(&sent));
}

#[test]
fn password_prompt_after_connecting_then_logs_in_once() {
    let server = ScriptedServer::start(&transcript("login-user-stat"));
    let (mut terminal, _home) = on_terminal_plain(server.port, &["stat"]);
    terminal.expect("Password for alice@127.0.0.1: ");
    terminal.wait_for_echo_off();
    terminal.type_keys("pw\r");
    terminal.expect("3 messages (3 new), 24.1 KiB");
    let (status, screen) = terminal.wait();
    assert_eq!(status.code(), Some(0), "{screen}");
    assert_eq!(text_of(&server.finish()), STAT_BYTES);
}

#[test]
fn empty_password_at_the_prompt_is_asked_again_and_never_sent() {
    let server = ScriptedServer::start(&transcript("login-user-stat"));
    let (mut terminal, _home) = on_terminal_plain(server.port, &["stat"]);
    terminal.expect("Password for alice@127.0.0.1: ");
    terminal.wait_for_echo_off();
    terminal.type_keys("\r");
    terminal.expect("The password is empty; type it, or Ctrl-C to stop. Password for");
    terminal.wait_for_echo_off();
    terminal.type_keys("pw\r");
    terminal.expect("3 messages (3 new), 24.1 KiB");
    let (status, screen) = terminal.wait();
    assert_eq!(status.code(), Some(0), "{screen}");
    // One login, with the password typed the second time.
    assert_eq!(text_of(&server.finish()), STAT_BYTES);
}

#[test]
fn empty_password_three_times_at_the_prompt_stops_without_sending_it() {
    let server = ScriptedServer::start(
        "S: +OK ready
         C: CAPA
         S: +OK
         S: USER
         S: .",
    );
    let (mut terminal, _home) = on_terminal_plain(server.port, &["stat"]);
    for _ in 0..3 {
        terminal.expect("Password for alice@127.0.0.1: ");
        terminal.wait_for_echo_off();
        terminal.type_keys("\r");
    }
    let (status, screen) = terminal.wait();
    assert_eq!(status.code(), Some(78), "{screen}");
    assert!(
        screen.contains("no password typed (3 empty answers); an empty password is never sent"),
        "{screen}"
    );
    assert_eq!(text_of(&server.finish()), "CAPA\r\n");
}

/// Trial 2: Ctrl-D at the prompt said `cannot read the password: unexpected end of file`.
#[test]
fn ctrl_d_at_the_password_prompt_says_no_password_typed() {
    let server = ScriptedServer::start(
        "S: +OK ready
         C: CAPA
         S: +OK
         S: USER
         S: .",
    );
    let (mut terminal, _home) = on_terminal_plain(server.port, &["stat"]);
    terminal.expect("Password for alice@127.0.0.1: ");
    terminal.wait_for_echo_off();
    terminal.type_keys("\x04");
    let (status, screen) = terminal.wait();
    assert_eq!(status.code(), Some(78), "{screen}");
    assert!(
        screen.contains("pop3: no password typed (end of input)"),
        "{screen}"
    );
    assert!(!screen.contains("unexpected end of file"), "{screen}");
    assert_eq!(text_of(&server.finish()), "CAPA\r\n");
}

#[test]
fn empty_password_from_the_environment_is_refused_before_connecting() {
    let server = ScriptedServer::start("S: +OK ready");
    let outcome = Pop3::scripted_plain(server.port)
        .env("POP3_TEST_PASSWORD", "")
        .args(["stat"])
        .run()
        .expect_code(78);
    assert!(
        outcome
            .stderr
            .contains("POP3_TEST_PASSWORD, but that environment variable is empty"),
        "{}",
        outcome.stderr
    );
    server.finish_unconnected();
}

#[test]
fn empty_password_from_a_command_is_refused_before_connecting() {
    let server = ScriptedServer::start("S: +OK ready");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[accounts.a]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"alice\"\ntls = \"none\"\nallow_plaintext_password = true\npassword_command = [\"printf\", \"\\\\nsecond line\"]\n",
            server.port
        ),
    )
    .unwrap();
    let outcome = Pop3::new()
        .args([Path::new("--config"), &config])
        .args(["stat"])
        .run()
        .expect_code(78);
    assert!(
        outcome.stderr.contains("an empty password is never sent"),
        "{}",
        outcome.stderr
    );
    server.finish_unconnected();
}

#[test]
fn untrusted_certificate_error_shows_it_and_how_to_pin_it() {
    let server = ScriptedServer::start_tls("S: +OK ready", &["localhost"]);
    let outcome = Pop3::new()
        .server("localhost", server.port, None)
        .login("alice", "pw")
        .args(["stat"])
        .run()
        .expect_code(76);
    let line = outcome.stderr.trim_end();
    assert_eq!(line.lines().count(), 1, "one line: {line}");
    for part in [
        "not signed by a trusted authority",
        "the server presented CN=localhost",
        "valid from ",
        "SHA-256 ",
        "tls_fingerprint = \"",
        "checking this fingerprint with the server's operator",
    ] {
        assert!(line.contains(part), "{part:?} missing: {line}");
    }
    let sent = server.finish_broken_off("TLS handshake failed");
    assert!(sent.is_empty(), "{}", text_of(&sent));
}

/// The fingerprint from `login-check`'s `SHA-256:` line.
fn printed_fingerprint(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("SHA-256:"))
        .unwrap_or_else(|| panic!("no SHA-256 line: {stdout}"))
        .trim()
        .to_owned()
}

#[test]
fn login_check_shows_an_untrusted_certificate_which_can_then_be_pinned() {
    let d = dovecot();
    let user = d.add_user(&[]);
    // Without the test CA, the way a self-signed server looks.
    let refused = Pop3::new()
        .server("localhost", d.pop3s_port, None)
        .login(&user.name, &user.password)
        .args(["login-check"])
        .run()
        .expect_code(76);
    assert!(
        refused.stdout.contains("NOT TRUSTED"),
        "{}\n{}",
        refused.stdout,
        refused.stderr
    );
    assert!(!refused.stdout.contains("Login:"), "{}", refused.stdout);
    let fingerprint = printed_fingerprint(&refused.stdout);
    assert!(
        refused
            .stdout
            .contains(&format!("tls_fingerprint = \"{fingerprint}\"")),
        "{}",
        refused.stdout
    );
    // It is the certificate a verified connection sees.
    let trusted = Pop3::new()
        .server("localhost", d.pop3s_port, Some(&d.ca_file))
        .login(&user.name, &user.password)
        .args(["login-check"])
        .run()
        .expect_code(0);
    assert_eq!(printed_fingerprint(&trusted.stdout), fingerprint);
    // And pinning it, as the hint says, works without the CA.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pinned.toml");
    std::fs::write(
        &config,
        format!(
            "[accounts.p]\nhost = \"localhost\"\nport = {}\nuser = \"{}\"\npassword_env = \"PW\"\ntls_fingerprint = \"{fingerprint}\"\n",
            d.pop3s_port, user.name
        ),
    )
    .unwrap();
    Pop3::new()
        .args([Path::new("--config"), &config])
        .env("PW", &user.password)
        .args(["stat"])
        .run()
        .expect_code(0);
}

#[test]
fn password_prompt_after_connecting_a_server_that_gave_up_waiting_gets_no_login() {
    // Dovecot says goodbye to a client that has not logged in within 3 minutes.
    let server = ScriptedServer::start(
        "S: +OK ready
         C: CAPA
         S: +OK
         S: USER
         S: .
         S: -ERR Disconnected for inactivity.",
    );
    let (mut terminal, _home) = on_terminal_plain(server.port, &["stat"]);
    terminal.expect("Password for alice@127.0.0.1: ");
    terminal.wait_for_echo_off();
    // The goodbye went out right after CAPA, long before the password is typed.
    terminal.type_keys("pw\r");
    let (status, screen) = terminal.wait();
    let sent = server.finish();
    // Before: USER went out, the goodbye was read as its answer, "login failed" (77).
    assert_eq!(status.code(), Some(75), "{screen}");
    assert!(
        screen.contains("closed the connection while the password was being typed"),
        "{screen}"
    );
    assert_eq!(text_of(&sent), "CAPA\r\n");
}

#[test]
fn password_prompt_after_connecting_keeps_the_pipelined_login_tail() {
    // The script makes the server read every line up to UIDL before it answers USER: the
    // typed password still leaves with CAPA, LIST and UIDL behind it.
    let server = ScriptedServer::start(&transcript("list-uidl-pipelined"));
    let (mut terminal, _home) = on_terminal_plain(server.port, &["list"]);
    terminal.expect("Password for alice@127.0.0.1: ");
    terminal.wait_for_echo_off();
    terminal.type_keys("pw\r");
    terminal.expect("1  120  abc");
    let (status, screen) = terminal.wait();
    assert_eq!(status.code(), Some(0), "{screen}");
    server.finish();
}

/// Trial 2: login-check printed the refused certificate twice, as fields and again inside a
/// ~600-character error line. The fields stay; the error line is short. Other commands, which
/// print no fields, keep the full line with the fingerprint.
#[test]
fn login_check_untrusted_certificate_error_line_is_short() {
    let d = dovecot();
    let user = d.add_user(&[]);
    let run = |command: &str| {
        Pop3::new()
            .server("localhost", d.pop3s_port, None)
            .login(&user.name, &user.password)
            .args([command])
            .run()
            .expect_code(76)
    };
    let refused = run("login-check");
    let fingerprint = printed_fingerprint(&refused.stdout);
    assert_eq!(refused.stderr.lines().count(), 1, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .starts_with("pop3: TLS handshake with localhost failed: "),
        "{}",
        refused.stderr
    );
    assert!(!refused.stderr.contains(&fingerprint), "{}", refused.stderr);
    assert!(refused.stderr.len() < 200, "{}", refused.stderr);
    let stat = run("stat");
    assert!(stat.stderr.contains(&fingerprint), "{}", stat.stderr);
    assert!(stat.stderr.contains("tls_fingerprint"), "{}", stat.stderr);
}
