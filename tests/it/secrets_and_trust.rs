//! Secrets that stay secret and a TLS mode that is named when wrong (issues 8 and 9): the real
//! binary against the scripted server, bare listeners and Dovecot.

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::cli::{Outcome, Pop3};
use crate::support::dovecot::{UNTRUSTED_LOOPBACK, dovecot};
use crate::support::scripted::{ScriptedServer, login_script};

/// A listener nobody accepts on: after the run, `connected` says whether pop3 connected at all.
struct Listener(TcpListener);

impl Listener {
    fn new() -> Listener {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        Listener(listener)
    }

    fn port(&self) -> String {
        self.0.local_addr().unwrap().port().to_string()
    }

    /// Whether a connection is waiting (the kernel completes it even if nobody accepts).
    fn connected(&self) -> bool {
        self.0.accept().is_ok()
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

const STAT: &str = "C: STAT\nS: +OK 1 20\nC: QUIT\nS: +OK bye\n";

#[test]
fn defaults_password_command_does_not_follow_host_to_another_server() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("password-command-ran");
    let elsewhere = Listener::new();
    for source in [
        format!(
            "password_command = [\"sh\", \"-c\", \"touch '{}'; echo leaked-secret\"]",
            marker.display()
        ),
        "password = \"leaked-secret\"".to_owned(),
        "password_env = \"LEAKED\"".to_owned(),
    ] {
        let config = write(
            dir.path(),
            "config.toml",
            &format!(
                "[defaults]\n{source}\n[accounts.work]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"alice\"\n",
                elsewhere.port()
            ),
        );
        let other = Listener::new();
        let outcome = Pop3::new()
            .env("LEAKED", "leaked-secret")
            .args(["--config", &config, "--host", "127.0.0.1", "--port"])
            .args([other.port()])
            .args([
                "--user",
                "alice",
                "--tls",
                "none",
                "--allow-plaintext-password",
            ])
            .args(["--timeout", "3", "stat"])
            .run()
            .expect_code(78);
        // pop3 asks instead (and, not on a terminal, says so) before it connects anywhere.
        assert!(
            outcome.stderr.contains("no password for alice@127.0.0.1"),
            "{source}: {}",
            outcome.stderr
        );
        assert!(!other.connected(), "{source}: the other host was contacted");
        assert!(!marker.exists(), "{source}: the password command ran");
        assert!(!outcome.stderr.contains("leaked"), "{}", outcome.stderr);
    }

    // Control: with -a the account's own defaults are meant, and the command does run.
    let server = ScriptedServer::start(&format!("{}{STAT}", login_script("USER")));
    let config = write(
        dir.path(),
        "config.toml",
        &format!(
            "[defaults]\npassword_command = [\"sh\", \"-c\", \"touch '{}'; echo pw\"]\n\
             [accounts.work]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"alice\"\ntls = \"none\"\n\
             allow_plaintext_password = true\ntimeout = 3\n",
            marker.display(),
            server.port
        ),
    );
    Pop3::new()
        .args(["--config", &config, "-a", "work", "stat"])
        .run()
        .expect_code(0);
    server.finish();
    assert!(marker.exists());
}

#[test]
fn apop_in_clear_needs_allow_plaintext_password() {
    let server = Listener::new();
    let outcome = Pop3::new()
        .server("127.0.0.1", server.port().parse().unwrap(), None)
        .login("mrose", "tanstaaf")
        .args(["--tls", "none", "--auth", "apop", "--timeout", "3", "stat"])
        .run()
        .expect_code(78);
    assert!(
        outcome.stderr.contains("APOP digest")
            && outcome.stderr.contains("allow_plaintext_password"),
        "{}",
        outcome.stderr
    );
    assert!(!server.connected(), "pop3 connected before refusing");
}

#[test]
fn password_env_is_not_inherited_by_the_mda() {
    let dir = tempfile::tempdir().unwrap();
    let seen = dir.path().join("seen");
    let mda = write(
        dir.path(),
        "mda.sh",
        &format!(
            "cat > /dev/null\nprintenv POP3_TEST_PASSWORD > '{0}' || echo unset > '{0}'\n",
            seen.display()
        ),
    );
    let server = ScriptedServer::start(&format!(
        "{}C: LIST\nS: +OK\nS: 1 20\nS: .\nC: UIDL\nS: +OK\nS: 1 uid-A\nS: .\n\
         C: RETR 1\nS: +OK\nS: Subject: x\nS=: \\r\\n\nS: body\nS: .\nC: QUIT\nS: +OK bye\n",
        login_script("USER UIDL")
    ));
    Pop3::scripted_plain(server.port)
        .args(["fetch-all", "--mda", &format!("sh {mda}")])
        .run()
        .expect_code(0);
    server.finish();
    assert_eq!(std::fs::read_to_string(&seen).unwrap(), "unset\n");
}

/// Starts `pop3 stat` against a server that never greets, and gives its pid.
fn hanging_pop3(listener: &Listener, password: &str) -> (std::process::Child, tempfile::TempDir) {
    let (mut command, home) = Pop3::new()
        .server("127.0.0.1", listener.port().parse().unwrap(), None)
        .login("alice", password)
        .args([
            "--tls",
            "none",
            "--allow-plaintext-password",
            "--timeout",
            "5",
            "stat",
        ])
        .into_command();
    let child = command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    (child, home)
}

#[test]
fn core_dumps_are_disabled_and_the_password_env_is_wiped() {
    let listener = Listener::new();
    let (mut child, _home) = hanging_pop3(&listener, "s3cret-in-env");
    let proc_dir = format!("/proc/{}", child.id());
    // Wait until pop3 connected: by then it has started and read its password.
    let started = Instant::now();
    // Generous: on a loaded machine the start alone can take seconds, and reading /proc before
    // pop3 has set its limits would fail for the wrong reason.
    let mut connected = false;
    while !connected && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
        connected = listener.connected();
    }
    assert!(connected, "pop3 never connected to the listener");
    let limits = std::fs::read_to_string(format!("{proc_dir}/limits")).unwrap();
    let environ = match std::fs::read(format!("{proc_dir}/environ")) {
        Ok(environ) => Some(environ),
        // A non-dumpable process's environ belongs to root: without root the test cannot look
        // inside, and neither can any other process of the user (the stronger protection).
        // SAFETY: plain syscall without arguments.
        Err(e)
            if e.kind() == std::io::ErrorKind::PermissionDenied
                && unsafe { libc::geteuid() } != 0 =>
        {
            None
        }
        Err(e) => panic!("reading {proc_dir}/environ: {e}"),
    };
    let _ = child.kill();
    let _ = child.wait();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    assert_eq!(
        core.split_whitespace().collect::<Vec<_>>()[4..6],
        ["0", "0"],
        "{core}"
    );
    if let Some(environ) = environ {
        let environ = String::from_utf8_lossy(&environ);
        assert!(!environ.contains("s3cret-in-env"), "{environ}");
    }
}

fn assert_fast(started: Instant, outcome: &Outcome) {
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "took {:?}: {}",
        started.elapsed(),
        outcome.stderr
    );
}

#[test]
fn a_plain_tls_mode_against_an_implicit_tls_port_is_named_within_seconds() {
    let d = dovecot();
    let user = d.add_user(&[]);
    for mode in ["starttls", "none"] {
        let started = Instant::now();
        let outcome = Pop3::new()
            .server("localhost", d.pop3s_port, Some(&d.ca_file))
            .login(&user.name, &user.password)
            .args([
                "--tls",
                mode,
                "--allow-plaintext-password",
                "--timeout",
                "30",
            ])
            .args(["stat"])
            .run()
            .expect_code(78);
        assert_fast(started, &outcome);
        assert!(
            outcome
                .stderr
                .contains("speaks implicit TLS: use --tls implicit"),
            "{mode}: {}",
            outcome.stderr
        );
    }
}

#[test]
fn implicit_tls_against_a_plaintext_port_is_named_at_once() {
    let d = dovecot();
    let user = d.add_user(&[]);
    let started = Instant::now();
    let outcome = Pop3::new()
        .server("localhost", d.pop3_port, Some(&d.ca_file))
        .login(&user.name, &user.password)
        .args(["--tls", "implicit", "--timeout", "30", "stat"])
        .run()
        .expect_code(78);
    assert_fast(started, &outcome);
    assert!(
        outcome
            .stderr
            .contains("speaks plain POP3: use --tls starttls"),
        "{}",
        outcome.stderr
    );

    let server = ScriptedServer::start("S: +OK ready\n!close");
    let outcome = Pop3::scripted_plain(server.port)
        .args(["--tls", "implicit", "stat"])
        .run()
        .expect_code(78);
    assert!(
        outcome.stderr.contains("speaks plain POP3") && outcome.stderr.contains("+OK ready"),
        "{}",
        outcome.stderr
    );
    server.finish();
}

#[test]
fn a_slow_greeting_on_a_plain_port_is_still_waited_for() {
    // No greeting within the first seconds: the TLS probe finds no TLS, so pop3 keeps waiting.
    let server = ScriptedServer::start(&format!("!sleep 4500\n{}{STAT}", login_script("USER")));
    let outcome = Pop3::new()
        .server("127.0.0.1", server.port, None)
        .login("alice", "pw")
        .args([
            "--tls",
            "none",
            "--allow-plaintext-password",
            "--timeout",
            "10",
        ])
        .args(["stat"])
        .run()
        .expect_code(0);
    assert_eq!(outcome.stdout, "1 message, 20 bytes\n");
    server.finish();
}

#[test]
fn tls_none_against_a_server_offering_stls_names_starttls() {
    let d = dovecot();
    let user = d.add_user(&[]);
    let outcome = Pop3::new()
        .server(UNTRUSTED_LOOPBACK, d.pop3_port, None)
        .login(&user.name, &user.password)
        .args(["--tls", "none", "--allow-plaintext-password", "stat"])
        .run()
        .expect_code(78);
    assert!(
        outcome.stderr.contains("--tls starttls") && !outcome.stderr.contains("--auth user"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn command_line_paths_are_relative_to_the_current_directory() {
    let server =
        ScriptedServer::start_tls(&format!("{}{STAT}", login_script("USER")), &["localhost"]);
    // A config file elsewhere: its folder must not be where command-line paths are looked up.
    let config_dir = tempfile::tempdir().unwrap();
    let config = write(
        config_dir.path(),
        "config.toml",
        "[defaults]\ntimeout = 3\n",
    );
    let cwd = tempfile::tempdir().unwrap();
    std::fs::copy(server.ca_file(), cwd.path().join("ca.pem")).unwrap();
    write(cwd.path(), "pw.txt", "pw\n");
    let (mut command, _home) = Pop3::new()
        .server("localhost", server.port, None)
        .args([
            "--config",
            &config,
            "--user",
            "alice",
            "--ca-file",
            "ca.pem",
        ])
        .args(["--password-file", "pw.txt", "stat"])
        .into_command();
    let output = command.current_dir(cwd.path()).output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    server.finish();
}

#[test]
fn config_file_paths_are_relative_to_the_config_folder() {
    let server =
        ScriptedServer::start_tls(&format!("{}{STAT}", login_script("USER")), &["localhost"]);
    let config_dir = tempfile::tempdir().unwrap();
    std::fs::copy(server.ca_file(), config_dir.path().join("ca.pem")).unwrap();
    write(config_dir.path(), "pw.txt", "pw\n");
    let config = write(
        config_dir.path(),
        "config.toml",
        &format!(
            "[accounts.a]\nhost = \"localhost\"\nport = {}\nuser = \"alice\"\nca_file = \"ca.pem\"\n\
             password_file = \"pw.txt\"\ntimeout = 3\n",
            server.port
        ),
    );
    let cwd = tempfile::tempdir().unwrap();
    let (mut command, _home) = Pop3::new()
        .args(["--config", &config, "stat"])
        .into_command();
    let output = command.current_dir(cwd.path()).output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    server.finish();
}

#[test]
fn an_unquoted_password_in_the_config_is_never_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "config.toml",
        "[accounts.a]\nhost = \"h\"\nuser = \"u\"\npassword = 8675309\n",
    );
    let outcome = Pop3::new()
        .args(["--config", &config, "stat"])
        .run()
        .expect_code(78);
    assert!(!outcome.stderr.contains("8675309"), "{}", outcome.stderr);
    assert!(outcome.stderr.contains(":4:"), "{}", outcome.stderr);
}
