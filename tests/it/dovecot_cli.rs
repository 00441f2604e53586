//! The real binary against a real Dovecot (implicit TLS on pop3s, STLS on pop3).

use std::path::Path;

use crate::support::cli::{Outcome, Pop3};
use crate::support::dovecot::{Dovecot, User, dovecot};

fn fixtures() -> Vec<Vec<u8>> {
    [
        "01-plain.eml",
        "02-multipart-alternative.eml",
        "03-html-only.eml",
    ]
    .iter()
    .map(|name| Dovecot::fixture(name))
    .collect()
}

fn user_with_fixtures() -> (User, Vec<Vec<u8>>) {
    let messages = fixtures();
    let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    (dovecot().add_user(&refs), messages)
}

/// `pop3` as `user` over implicit TLS, trusting the test CA.
fn pop3s(user: &User) -> Pop3 {
    let d = dovecot();
    Pop3::new()
        .server("localhost", d.pop3s_port, Some(&d.ca_file))
        .login(&user.name, &user.password)
}

/// Size of a message as the server counts it: with CRLF line endings.
fn wire_size(message: &[u8]) -> u64 {
    let lf = message.iter().filter(|&&b| b == b'\n').count();
    let crlf = message.windows(2).filter(|w| w == b"\r\n").count();
    (message.len() + lf - crlf) as u64
}

#[test]
fn login_check_reports_every_step() {
    let (user, _) = user_with_fixtures();
    let outcome = pop3s(&user).args(["login-check"]).run().expect_code(0);
    let out = &outcome.stdout;
    for expected in [
        "Connected:    127.0.0.1:",
        "TLS:          TLSv1_3",
        "CN=localhost",
        "SHA-256:",
        "Greeting:     +OK Dovecot",
        "Login:        ok, with SASL PLAIN",
        "PIPELINING",
        "Mailbox:      3 messages",
        "Login check passed.",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in\n{out}");
    }
}

#[test]
fn stat_and_list_over_implicit_tls() {
    let (user, messages) = user_with_fixtures();
    let total: u64 = messages.iter().map(|m| wire_size(m)).sum();
    let outcome = pop3s(&user).args(["stat", "--json"]).run().expect_code(0);
    assert_eq!(
        outcome.stdout,
        format!("{{\"messages\":3,\"new\":3,\"octets\":{total}}}\n")
    );

    let outcome = pop3s(&user).args(["list"]).run().expect_code(0);
    let rows: Vec<Vec<&str>> = outcome
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 3, "{}", outcome.stdout);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row[0], (i + 1).to_string());
        assert_eq!(row[1], wire_size(&messages[i]).to_string());
        assert_eq!(row[2].len(), 16, "pop3_uidl_format %08Xu%08Xv: {row:?}");
    }
    let json = pop3s(&user).args(["list", "--json"]).run().expect_code(0);
    let parsed: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(parsed[2]["uid"], rows[2][2]);
}

#[test]
fn stat_over_stls() {
    let (user, _) = user_with_fixtures();
    let d = dovecot();
    let outcome = Pop3::new()
        .server("localhost", d.pop3_port, Some(&d.ca_file))
        .login(&user.name, &user.password)
        .args(["--tls", "starttls", "--debug", "stat"])
        .run()
        .expect_code(0);
    assert!(
        outcome.stdout.starts_with("3 messages (3 new), "),
        "{}",
        outcome.stdout
    );
    // CAPA asked again after the upgrade, and the login happened only after STLS.
    let trace = &outcome.stderr;
    let stls = trace.find("C: STLS").expect("STLS sent");
    let auth = trace.find("C: AUTH PLAIN ***").expect("AUTH sent");
    assert!(stls < auth, "{trace}");
    assert!(trace[stls..auth].contains("C: CAPA"), "{trace}");
    assert!(!trace.contains(&user.password), "{trace}");
}

#[test]
fn wrong_password_exits_77_with_one_line() {
    let (user, _) = user_with_fixtures();
    let d = dovecot();
    let outcome = Pop3::new()
        .server("localhost", d.pop3s_port, Some(&d.ca_file))
        .login(&user.name, "not-the-password")
        .args(["login-check"])
        .run()
        .expect_code(77);
    assert_eq!(
        outcome.stderr.trim(),
        format!(
            "pop3: login as {} on localhost failed: -ERR [AUTH] Authentication failed.",
            user.name
        )
    );
    // login-check still says how far it got.
    assert!(outcome.stdout.contains("Greeting:"), "{}", outcome.stdout);
    assert!(!outcome.stdout.contains("passed"));
}

#[test]
fn plain_port_without_tls_refuses_to_send_the_password() {
    let (user, _) = user_with_fixtures();
    let d = dovecot();
    let outcome = Pop3::new()
        .server("127.0.0.1", d.pop3_port, None)
        .login(&user.name, &user.password)
        .args(["--tls", "none", "--debug", "stat"])
        .run()
        .expect_code(78);
    assert!(!outcome.stderr.contains("C: USER"), "{}", outcome.stderr);
    assert!(!outcome.stderr.contains("C: AUTH"), "{}", outcome.stderr);
}

#[test]
fn the_test_ca_is_required_for_dovecot() {
    let (user, _) = user_with_fixtures();
    let d = dovecot();
    let outcome = Pop3::new()
        .server("localhost", d.pop3s_port, None)
        .login(&user.name, &user.password)
        .args(["stat"])
        .run()
        .expect_code(76);
    assert!(outcome.stderr.contains("set ca_file"), "{}", outcome.stderr);
}

#[test]
fn config_file_accounts_and_password_sources() {
    let (user, _) = user_with_fixtures();
    let d = dovecot();
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("secret");
    std::fs::write(&password_file, format!("{}\n", user.password)).unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"default_account = "tls"

[defaults]
host = "localhost"
user = "{user}"
ca_file = "{ca}"
timeout = 10

[accounts.tls]
port = {pop3s}
password_file = "secret"

[accounts.stls]
port = {pop3}
tls = "starttls"
password_command = ["printf", "%s\n", "{password}"]

[accounts.env]
port = {pop3s}
auth = "user"
password_env = "MY_POP3_PASSWORD"
"#,
            user = user.name,
            ca = d.ca_file.display(),
            pop3s = d.pop3s_port,
            pop3 = d.pop3_port,
            password = user.password,
        ),
    )
    .unwrap();
    let run = |args: &[&str]| -> Outcome {
        Pop3::new()
            .args([Path::new("--config"), &config])
            .env("MY_POP3_PASSWORD", &user.password)
            .args(args)
            .run()
    };
    for args in [
        &["stat"][..],
        &["-a", "stls", "stat"],
        &["-a", "env", "stat"],
    ] {
        let outcome = run(args).expect_code(0);
        assert!(
            outcome.stdout.starts_with("3 messages"),
            "{args:?}: {outcome:?}"
        );
    }
    let outcome = run(&["-a", "env", "-v", "login-check"]).expect_code(0);
    assert!(
        outcome.stdout.contains("with USER/PASS"),
        "{}",
        outcome.stdout
    );
    // A command-line flag overrides the file: the wrong port fails to connect.
    run(&["--port", "1", "stat"]).expect_code(69);
}

#[test]
fn ipv6_loopback_works_when_available() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback on this machine; skipping the IPv6 half");
        return;
    }
    let (user, _) = user_with_fixtures();
    let d = dovecot();
    let outcome = Pop3::new()
        .server("::1", d.pop3s_port, Some(&d.ca_file))
        .login(&user.name, &user.password)
        .args(["stat"])
        .run();
    // Dovecot listens on ::1 only when the sandbox could bind it; the certificate names ::1.
    if outcome.code == 69 && outcome.stderr.contains("refused") {
        panic!("Dovecot does not listen on ::1 although IPv6 loopback works: {outcome:?}");
    }
    let outcome = outcome.expect_code(0);
    assert!(outcome.stdout.starts_with("3 messages"));
}

#[test]
fn password_prompt_on_a_terminal_does_not_echo() {
    use crate::support::pty::Terminal;
    let (user, _) = user_with_fixtures();
    let d = dovecot();
    let (command, _home) = Pop3::new()
        .server("localhost", d.pop3s_port, Some(&d.ca_file))
        .args(["--user", &user.name, "stat"])
        .into_command();
    let mut terminal = Terminal::spawn(command);
    terminal.expect(&format!("Password for {}@localhost: ", user.name));
    terminal.wait_for_echo_off();
    terminal.type_keys(&format!("{}\r", user.password));
    let shown = terminal.expect("3 messages (3 new), ");
    assert!(
        !shown.contains(&user.password),
        "the password was echoed: {shown}"
    );
    let (status, _) = terminal.wait();
    assert_eq!(status.code(), Some(0));
}

/// Trial 2: Ctrl-C at `Delete 1 message? [y/N]` ended without the "Nothing deleted." that
/// answering "n" prints.
#[test]
fn ctrl_c_at_the_delete_question_says_nothing_deleted() {
    use crate::support::pty::Terminal;
    let (user, _) = user_with_fixtures();
    let (command, _home) = pop3s(&user).args(["delete", "1"]).into_command();
    let mut terminal = Terminal::spawn(command);
    terminal.expect("Delete 1 message? [y/N] ");
    terminal.type_keys("\x03");
    let (status, screen) = terminal.wait();
    assert_eq!(status.code(), Some(130), "{screen}");
    assert!(screen.contains("\nNothing deleted."), "{screen}");
    assert_eq!(user.messages_on_server(), 3);
}

#[test]
fn a_pinned_fingerprint_replaces_the_ca_and_a_wrong_one_is_refused() {
    let (user, _) = user_with_fixtures();
    let d = dovecot();
    // The user's way: copy the fingerprint that login-check prints.
    let check = pop3s(&user).args(["login-check"]).run().expect_code(0);
    let fingerprint = check
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("SHA-256:"))
        .expect("login-check prints the fingerprint")
        .trim()
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    let write_config = |pin: &str| {
        let config = dir.path().join("pinned.toml");
        std::fs::write(
            &config,
            format!(
                "[accounts.p]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"{}\"\npassword_env = \"PW\"\ntls_fingerprint = \"{pin}\"\n",
                d.pop3s_port, user.name
            ),
        )
        .unwrap();
        config
    };
    // No ca_file: the pin alone vouches for the server.
    let config = write_config(&fingerprint);
    let outcome = Pop3::new()
        .args([Path::new("--config"), &config])
        .env("PW", &user.password)
        .args(["stat"])
        .run()
        .expect_code(0);
    assert!(outcome.stdout.starts_with("3 messages"));

    let mut wrong = fingerprint.clone();
    wrong.replace_range(
        0..2,
        if &fingerprint[0..2] == "00" {
            "11"
        } else {
            "00"
        },
    );
    let config = write_config(&wrong);
    let outcome = Pop3::new()
        .args([Path::new("--config"), &config])
        .env("PW", &user.password)
        .args(["--debug", "stat"])
        .run()
        .expect_code(76);
    // The error names the certificate the server did present, so the user can compare.
    assert!(outcome.stderr.contains(&fingerprint), "{}", outcome.stderr);
    assert!(
        outcome.stderr.contains("pinned by tls_fingerprint"),
        "{}",
        outcome.stderr
    );
    assert!(
        !outcome.stderr.contains("C: "),
        "nothing sent: {}",
        outcome.stderr
    );
}

#[test]
fn tls_server_name_minimum_version_and_client_certificate_settings() {
    let (user, _) = user_with_fixtures();
    let d = dovecot();
    let dir = tempfile::tempdir().unwrap();
    let run = |extra: &str| {
        let config = dir.path().join("tls.toml");
        std::fs::write(
            &config,
            format!(
                "[accounts.t]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"{}\"\npassword_env = \"PW\"\nca_file = \"{}\"\n{extra}",
                d.pop3s_port,
                user.name,
                d.ca_file.display()
            ),
        )
        .unwrap();
        Pop3::new()
            .args([Path::new("--config"), &config])
            .env("PW", &user.password)
            .args(["stat"])
            .run()
    };
    // The certificate names localhost; checking it against that name works from an address.
    run("tls_server_name = \"localhost\"\ntls_min_version = \"1.3\"\n").expect_code(0);
    let wrong = run("tls_server_name = \"mail.example.org\"\n").expect_code(76);
    assert!(
        wrong.stderr.contains("not valid for this host name"),
        "{}",
        wrong.stderr
    );
    let bad_version = run("tls_min_version = \"1.1\"\n").expect_code(78);
    assert!(
        bad_version.stderr.contains("tls_min_version"),
        "{}",
        bad_version.stderr
    );
    let half = run("tls_client_cert = \"me.pem\"\n").expect_code(78);
    assert!(half.stderr.contains("set both"), "{}", half.stderr);
    let missing = run(
        "tls_client_cert = \"/nonexistent/me.pem\"\ntls_client_key = \"/nonexistent/me.key\"\n",
    )
    .expect_code(78);
    assert!(
        missing.stderr.contains("cannot use client certificate"),
        "{}",
        missing.stderr
    );
}

#[test]
fn config_check_connect_reports_one_line_per_account() {
    let (user, _) = user_with_fixtures();
    let d = dovecot();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let write = |extra: &str| {
        std::fs::write(
            &config,
            format!(
                "[defaults]\nhost = \"localhost\"\nport = {port}\nuser = \"{user}\"\nca_file = \"{ca}\"\ntimeout = 10\n\
                 [accounts.good]\npassword_env = \"GOOD\"\n{extra}",
                port = d.pop3s_port,
                user = user.name,
                ca = d.ca_file.display(),
            ),
        )
        .unwrap();
    };
    let run = |args: &[&str]| {
        Pop3::new()
            .args([Path::new("--config"), &config])
            .args(args)
            .env("GOOD", &user.password)
            .env("BAD", "wrong")
            .run()
    };
    write("");
    let ok = run(&["config", "check", "--connect"]).expect_code(0);
    assert!(
        ok.stdout.ends_with(&format!(
            "good  ok: {}@localhost port {}, 3 messages, {}\n",
            user.name,
            d.pop3s_port,
            pop3::ui::human_size(user_size(&user))
        )),
        "{}",
        ok.stdout
    );
    write(
        "[accounts.bad]\npassword_env = \"BAD\"\n[accounts.nohost]\nhost = \"pop3-test.invalid\"\npassword_env = \"BAD\"\n",
    );
    let outcome = run(&["config", "check", "--connect"]).expect_code(77);
    assert!(
        outcome.stdout.contains("ok, 3 accounts\n"),
        "{}",
        outcome.stdout
    );
    assert!(
        outcome.stdout.contains("good    ok: "),
        "{}",
        outcome.stdout
    );
    let errors: Vec<&str> = outcome.stderr.lines().collect();
    assert_eq!(errors.len(), 3, "{}", outcome.stderr);
    assert!(errors[0].starts_with("pop3: bad: "), "{}", outcome.stderr);
    assert!(
        errors[1].starts_with("pop3: nohost: "),
        "{}",
        outcome.stderr
    );
    assert!(
        errors[1].contains("pop3-test.invalid"),
        "{}",
        outcome.stderr
    );
    assert_eq!(errors[2], "pop3: some accounts failed (see above)");
    // With several accounts at once, -v lines say which account they are about (the same
    // contexts serve fetch-all --all-accounts).
    let verbose = run(&["-v", "config", "check", "--connect"]).expect_code(77);
    assert!(
        verbose
            .stderr
            .contains("\ngood: logged in with SASL PLAIN\n")
            || verbose
                .stderr
                .starts_with("good: logged in with SASL PLAIN\n"),
        "{}",
        verbose.stderr
    );
    // -a checks one account.
    run(&["-a", "bad", "config", "check", "--connect"]).expect_code(77);
    run(&["-a", "good", "config", "check", "--connect"]).expect_code(0);
}

/// The total size of `user`'s mailbox as the server reports it.
fn user_size(user: &User) -> u64 {
    let stat = pop3s(user).args(["stat", "--json"]).run().expect_code(0);
    let json: serde_json::Value = serde_json::from_str(&stat.stdout).unwrap();
    json["octets"].as_u64().unwrap()
}

/// Trial 2: `config check --connect` on a terminal asked `Password for demo@localhost:` for
/// each account without naming it, ambiguous when accounts share a mailbox.
#[test]
fn config_check_connect_password_prompt_names_the_account() {
    use crate::support::pty::Terminal;
    let (user, _) = user_with_fixtures();
    let d = dovecot();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[defaults]\nhost = \"localhost\"\nport = {port}\nuser = \"{user}\"\nca_file = \"{ca}\"\ntimeout = 10\n\
             [accounts.first]\n[accounts.second]\n",
            port = d.pop3s_port,
            user = user.name,
            ca = d.ca_file.display(),
        ),
    )
    .unwrap();
    let (command, _home) = Pop3::new()
        .args([Path::new("--config"), &config])
        .args(["config", "check", "--connect"])
        .into_command();
    let mut terminal = Terminal::spawn(command);
    for name in ["first", "second"] {
        terminal.expect(&format!(
            "Password for {}@localhost (account {name}): ",
            user.name
        ));
        terminal.wait_for_echo_off();
        terminal.type_keys(&format!("{}\r", user.password));
    }
    let (status, screen) = terminal.wait();
    assert_eq!(status.code(), Some(0), "{screen}");
    assert!(screen.contains("second  ok: "), "{screen}");
}
