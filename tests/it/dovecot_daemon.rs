//! `fetch-all --every`: the real binary as a long-running process against the real Dovecot:
//! it fetches what arrives, backs off and says a failure once, re-reads its config on SIGHUP
//! and stops cleanly on SIGTERM and SIGINT.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::cli::{Pop3, finish};
use crate::support::dovecot::{User, dovecot};
use crate::support::pty::Terminal;

fn message(subject: &str) -> Vec<u8> {
    format!("From: a@example.org\r\nSubject: {subject}\r\n\r\nbody of {subject}\r\n").into_bytes()
}

/// A new message in the user's server-side Maildir.
fn arrive(user: &User, subject: &str) {
    let path = user
        .maildir
        .join("new")
        .join(format!("{subject}.daemon-test"));
    fs::write(&path, message(subject)).unwrap();
    let d = dovecot();
    std::os::unix::fs::chown(&path, Some(d.mail_uid), Some(d.mail_gid)).unwrap();
}

/// Messages in the local Maildir.
fn delivered(maildir: &Path) -> usize {
    fs::read_dir(maildir.join("new")).map_or(0, |entries| entries.count())
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn config(dir: &Path, port: u16, user: &User, maildir: &Path) -> PathBuf {
    let d = dovecot();
    let path = dir.join("config.toml");
    fs::write(
        &path,
        format!(
            "[accounts.home]\nhost = \"localhost\"\nport = {port}\nuser = \"{}\"\n\
             password_env = \"POP3_TEST_PASSWORD\"\nca_file = \"{}\"\nmaildir = \"{}\"\n\
             delete = true\ntimeout = 5\n",
            user.name,
            d.ca_file.display(),
            maildir.display()
        ),
    )
    .unwrap();
    path
}

fn spawn(config: &Path, password: &str) -> (Child, tempfile::TempDir) {
    let (mut command, home) = Pop3::new()
        .args([Path::new("--config"), config])
        .env("POP3_TEST_PASSWORD", password)
        .args(["fetch-all", "--every", "1s", "-v"])
        .into_command();
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (child, home)
}

fn signal(child: &Child, signal: i32) {
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
}

#[test]
fn every_fetches_what_arrives_and_stops_cleanly_on_sigterm() {
    let user = dovecot().add_user(&[&message("first")]);
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Maildir");
    let config = config(dir.path(), dovecot().pop3s_port, &user, &maildir);
    let (child, _home) = spawn(&config, &user.password);
    wait_for("the first message", Duration::from_secs(20), || {
        delivered(&maildir) == 1
    });
    arrive(&user, "second");
    arrive(&user, "third");
    wait_for("the later messages", Duration::from_secs(20), || {
        delivered(&maildir) == 3
    });
    // The account lock is taken per cycle: a manual run slips in between two cycles.
    let manual = Pop3::new()
        .args([Path::new("--config"), &config])
        .env("POP3_TEST_PASSWORD", &user.password)
        .args(["fetch-all", "--wait"])
        .run();
    assert_eq!(manual.code, 0, "{}", manual.stderr);
    signal(&child, libc::SIGTERM);
    let (code, stderr) = finish(child, Duration::from_secs(15));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // Trial 2: the `logged in` line of `--every -v` had no account prefix (the others had).
    assert!(stderr.contains("home: logged in with "), "{stderr}");
    assert!(
        !stderr.lines().any(|l| l.starts_with("logged in")),
        "{stderr}"
    );
    assert_eq!(delivered(&maildir), 3, "nothing fetched twice");
    assert_eq!(user.messages_on_server(), 0, "deleted once delivered");
}

#[test]
fn every_says_a_failure_once_backs_off_and_recovers_after_sighup() {
    let user = dovecot().add_user(&[&message("waiting")]);
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Maildir");
    // Nothing listens on this port: every cycle fails the same way.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config_path = config(dir.path(), closed, &user, &maildir);
    let (child, _home) = spawn(&config_path, &user.password);
    // 1 s, then 2 s, then 4 s: three failed cycles within about 3.5 s.
    std::thread::sleep(Duration::from_millis(4000));
    // The right port, then SIGHUP: the next cycle (at once) works.
    config(dir.path(), dovecot().pop3s_port, &user, &maildir);
    signal(&child, libc::SIGHUP);
    wait_for("delivery after SIGHUP", Duration::from_secs(20), || {
        delivered(&maildir) == 1
    });
    signal(&child, libc::SIGINT);
    let (code, stderr) = finish(child, Duration::from_secs(15));
    assert_eq!(code, Some(0), "{stderr}");
    let failures = stderr.matches("cannot connect").count();
    assert_eq!(
        failures, 1,
        "one line for a failure that repeats:\n{stderr}"
    );
    assert!(stderr.contains("retrying in 2s"), "{stderr}");
    assert!(stderr.contains("configuration re-read"), "{stderr}");
    assert!(stderr.contains("home: working again"), "{stderr}");
}

#[test]
fn every_with_a_bad_interval_is_a_usage_error() {
    let outcome = Pop3::new()
        .args([
            "--host",
            "localhost",
            "--user",
            "x",
            "fetch-all",
            "--every",
            "0",
        ])
        .run();
    assert_eq!(outcome.code, 64, "{}", outcome.stderr);
    assert!(
        outcome.stderr.contains("between 1 second and 7 days"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn every_asks_a_typed_password_once_not_at_every_cycle() {
    let user = dovecot().add_user(&[&message("first")]);
    let d = dovecot();
    let (command, _home) = Pop3::new()
        .server("localhost", d.pop3s_port, Some(&d.ca_file))
        .args(["--user", &user.name, "--timeout", "5"])
        .args(["fetch-all", "--every", "1s", "-v"])
        .into_command();
    let mut terminal = Terminal::spawn(command);
    let mut screen = terminal.expect(&format!("Password for {}@localhost: ", user.name));
    terminal.wait_for_echo_off();
    terminal.type_keys(&format!("{}\r", user.password));
    screen += &terminal.expect("logged in with");
    screen += &terminal.expect("fetched 1 message");
    // The next cycles log in with the password typed once. Before the fix the second cycle
    // asked again and waited for an answer.
    arrive(&user, "second");
    screen += &terminal.expect("logged in with");
    screen += &terminal.expect("fetched 1 message");
    screen += &terminal.expect("logged in with");
    terminal.type_keys("\x03"); // Ctrl-C stops the service: exit 0
    let (status, rest) = terminal.wait();
    screen += &rest;
    assert_eq!(status.code(), Some(0), "{screen}");
    assert_eq!(screen.matches("Password for").count(), 1, "{screen}");
    assert_eq!(user.messages_on_server(), 2, "kept on the server");
}

#[test]
fn every_all_accounts_without_a_config_file_says_the_file_is_missing() {
    let (mut command, _home) = Pop3::new()
        .args(["fetch-all", "--all-accounts", "--every", "1s"])
        .into_command();
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Before the fix it ran on with no account, silently, until killed.
    let (code, stderr) = finish(child, Duration::from_secs(10));
    assert_eq!(code, Some(78), "{stderr}");
    assert!(
        stderr.contains("no config file at") && stderr.contains("pop3 config init"),
        "{stderr}"
    );
}

#[test]
fn every_all_accounts_with_account_is_refused_as_without_every() {
    for args in [
        &["-a", "work", "fetch-all", "--all-accounts", "--every", "1s"][..],
        &["-a", "work", "fetch-all", "--all-accounts"][..],
    ] {
        let (mut command, _home) = Pop3::new().args(args).into_command();
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Before the fix, --every ignored -a (here it then failed on the missing file, 78).
        let (code, stderr) = finish(child, Duration::from_secs(10));
        assert_eq!(code, Some(64), "{args:?}: {stderr}");
        assert!(
            stderr.contains("--all-accounts and --account exclude each other"),
            "{args:?}: {stderr}"
        );
    }
}
