//! Exit codes and error lines for local failures (the user trial of 2026-12-02): a local file
//! that cannot be written is 74 and its line names the path; standard output that cannot be
//! written is 74 and says so; missing parent directories are not created.

use std::os::unix::process::CommandExt;

use crate::support::cli::{Outcome, Pop3};
use crate::support::fetch::*;
use crate::support::scripted::{ScriptedServer, login_script};

/// One message of `size` bytes (plus headers) with the unique-id `uid`.
fn big(uid: &'static str, size: usize) -> Msg {
    let text = format!("Subject: big\n\n{}\n", "x".repeat(size));
    Msg {
        uid,
        text: Box::leak(text.into_boxed_str()),
    }
}

/// A server that offers `message` and serves RETR 1 (the client may stop reading half way).
fn serving(message: &Msg) -> ScriptedServer {
    ScriptedServer::start(&format!(
        "{}{}{}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[message]),
        retr_pipelined(&[1], &[message]),
    ))
}

fn run_with(
    pop3: Pop3,
    setup: impl FnMut() -> std::io::Result<()> + Send + Sync + 'static,
) -> Outcome {
    let (mut command, _home) = pop3.into_command();
    // SAFETY: the closure only makes async-signal-safe system calls.
    unsafe { command.pre_exec(setup) };
    let output = command
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run pop3");
    Outcome {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Files may grow to `bytes` at most; past that a write fails with EFBIG (SIGXFSZ ignored):
/// a local write failure that works without root, unlike a read-only mount.
fn file_size_limit(bytes: u64) -> impl FnMut() -> std::io::Result<()> + Send + Sync + 'static {
    move || {
        let limit = libc::rlimit {
            rlim_cur: bytes,
            rlim_max: bytes,
        };
        // SAFETY: plain system calls with valid arguments.
        unsafe {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

/// Trial item 3: a Maildir that cannot be written (there: a read-only file system) was "try
/// again later" (75) and the line did not say where. Any local write failure is 74 and names
/// the Maildir.
#[test]
fn a_maildir_write_failure_is_74_and_names_the_maildir() {
    let fixture = Fixture::new();
    let message = big("uid-big", 64 * 1024);
    let server = serving(&message);
    fixture.relay.route(server.port);
    let maildir = fixture.maildir();
    let pop3 = fixture.command(
        fixture.relay.port,
        &["--maildir", maildir.to_str().unwrap()],
    );
    let outcome = run_with(pop3, file_size_limit(16 * 1024)).expect_code(74);
    assert!(
        outcome
            .stderr
            .contains(&format!("cannot write {}: ", maildir.display()))
            && outcome.stderr.contains("File too large")
            && outcome
                .stderr
                .contains("undelivered messages stay on the server"),
        "{}",
        outcome.stderr
    );
    assert!(fixture.delivered().is_empty());
    assert!(fixture.maildir_files("new").is_empty());
}

/// Trial: `--mbox /tmp` said `cannot deliver: Is a directory (os error 21)` without a path.
#[test]
fn an_mbox_that_is_a_directory_is_named_in_the_error() {
    let fixture = Fixture::new();
    let dir = fixture.path("mail");
    assert!(dir.is_dir());
    let server = serving(&A);
    let outcome = fixture
        .fetch(&server, &["--mbox", dir.to_str().unwrap()])
        .expect_code(74);
    assert!(
        outcome.stderr.contains(&format!(
            "cannot write {}: Is a directory (os error 21)",
            dir.display()
        )),
        "{}",
        outcome.stderr
    );
    assert!(fixture.delivered().is_empty());
}

/// An mbox whose path runs through a file (ENOTDIR) is a local error, 74, naming the mbox.
#[test]
fn an_mbox_below_a_file_is_74_and_named() {
    let fixture = Fixture::new();
    let file = fixture.path("plain-file");
    std::fs::write(&file, "x").unwrap();
    let mbox = file.join("mbox");
    let server = serving(&A);
    let outcome = fixture
        .fetch(&server, &["--mbox", mbox.to_str().unwrap()])
        .expect_code(74);
    assert!(
        outcome.stderr.contains(&mbox.display().to_string()),
        "{}",
        outcome.stderr
    );
}

/// Trial item 5: `--mbox /nonexistent/dir/mbox` created the directories and exited 0. A
/// mistyped directory is an error before anything is downloaded, and nothing is created.
#[test]
fn an_mbox_in_a_missing_directory_is_refused_and_nothing_is_created() {
    refuses_a_target_in_a_missing_directory(&Fixture::new(), "--mbox", "mbox", "mbox");
}

/// Runs `fetch-all FLAG nonexistent/dir/LEAF`: exit 74 naming the target (`KIND PATH`) and the
/// missing directory, nothing created, nothing recorded.
fn refuses_a_target_in_a_missing_directory(fixture: &Fixture, flag: &str, kind: &str, leaf: &str) {
    let missing = fixture.path("nonexistent/dir");
    let target = missing.join(leaf);
    let server = serving(&A);
    let outcome = fixture
        .fetch(&server, &[flag, target.to_str().unwrap()])
        .expect_code(74);
    assert!(
        outcome.stderr.contains(&format!(
            "cannot deliver to {kind} {}: the directory {} does not exist",
            target.display(),
            missing.display()
        )),
        "{}",
        outcome.stderr
    );
    assert!(!fixture.path("nonexistent").exists());
    assert!(fixture.delivered().is_empty());
}

/// The same for a Maildir: the Maildir itself (and its tmp/, new/, cur/) is created in an
/// existing directory, a whole tree of directories above it is not.
#[test]
fn a_maildir_in_a_missing_directory_is_refused_and_nothing_is_created() {
    let fixture = Fixture::new();
    refuses_a_target_in_a_missing_directory(&fixture, "--maildir", "Maildir", "Maildir");

    // In an existing directory the Maildir is made.
    let server = ScriptedServer::start(&format!(
        "{}{}{}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&A]),
        retr_pipelined(&[1], &[&A]),
    ));
    let maildir = fixture.path("Maildir");
    fixture
        .fetch(&server, &["--maildir", maildir.to_str().unwrap()])
        .expect_code(0);
    for sub in ["tmp", "new", "cur"] {
        assert!(maildir.join(sub).is_dir(), "{sub}");
    }
}

/// Runs `pop3` with its standard output going to `/dev/full` (every write fails with ENOSPC).
fn to_dev_full(pop3: Pop3) -> Outcome {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let (mut command, _home) = pop3.into_command();
    let output = command
        .stdin(std::process::Stdio::null())
        .stdout(full)
        .output()
        .expect("run pop3");
    Outcome {
        code: output.status.code().unwrap_or(-1),
        stdout: String::new(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

const STDOUT_FULL: &str =
    "pop3: cannot write to standard output: No space left on device (os error 28)\n";

/// Trial item 7: a failed write to standard output was exit 70 ("a bug") with a bare
/// `pop3: No space left on device (os error 28)`.
#[test]
fn a_full_standard_output_is_74_and_says_standard_output() {
    use crate::support::dovecot::dovecot;
    let offline: [&[&str]; 4] = [
        &["man"],
        &["completions", "bash"],
        &["help"],
        &["config", "example"],
    ];
    for args in offline {
        let outcome = to_dev_full(Pop3::new().args(args)).expect_code(74);
        assert_eq!(outcome.stderr, STDOUT_FULL, "{args:?}");
    }
    let d = dovecot();
    let message = b"Subject: s\r\nFrom: a@example.org\r\n\r\nbody\r\n".as_slice();
    let user = d.add_user(&[message]);
    let online: [&[&str]; 6] = [
        &["read", "--raw", "1"],
        &["read", "1"],
        &["list"],
        &["stat", "--json"],
        &["headers"],
        &["fetch-all", "--dry-run"],
    ];
    for args in online {
        let pop3 = Pop3::new()
            .server("localhost", d.pop3s_port, Some(&d.ca_file))
            .login(&user.name, &user.password)
            .args(args);
        let outcome = to_dev_full(pop3).expect_code(74);
        assert_eq!(outcome.stderr, STDOUT_FULL, "{args:?}");
    }
}

/// Trial 2: `--help` and `--version` into /dev/full exited 0 without a word, where every
/// other command's output said 74.
#[test]
fn help_and_version_into_a_full_standard_output_are_74() {
    for args in [
        &["--help"][..],
        &["--version"][..],
        &["-h"][..],
        &["list", "--help"][..],
    ] {
        let outcome = to_dev_full(Pop3::new().args(args)).expect_code(74);
        assert_eq!(outcome.stderr, STDOUT_FULL, "{args:?}");
    }
}

/// A reader that goes away (`| head`) is still no error: exit 0, nothing said.
#[test]
fn a_closed_standard_output_pipe_stays_quiet() {
    let (mut command, _home) = Pop3::new().args(["man"]).into_command();
    let mut child = command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run pop3");
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("wait");
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
}

/// Trial: ``mda `sh -c /usr/bin/procmail -d %T` failed`` lost the boundaries between the
/// arguments; an argument with spaces is shown in shell quotes.
#[test]
fn a_failed_mda_is_shown_with_its_argument_boundaries() {
    let fixture = Fixture::with_config("mda = [\"sh\", \"-c\", \"cat >/dev/null; exit 3\"]");
    let server = serving(&A);
    let outcome = fixture.fetch(&server, &[]).expect_code(75);
    assert!(
        outcome.stderr.contains(
            "delivery failed: mda `sh -c 'cat >/dev/null; exit 3'` failed (exit status: 3)"
        ),
        "{}",
        outcome.stderr
    );
}

/// Trial 2: `cannot run mda `...`: No such file or directory` exited 75 ("try later") on every
/// run; a program that cannot be started is a configuration error, and the message stays.
#[test]
fn a_missing_mda_program_is_a_config_error() {
    let fixture = Fixture::with_config("mda = [\"/nonexistent/procmail\", \"-d\", \"alice\"]");
    let server = serving(&A);
    let outcome = fixture.fetch(&server, &[]).expect_code(78);
    assert!(
        outcome
            .stderr
            .contains("cannot run mda `/nonexistent/procmail -d alice`: No such file or directory")
            && outcome.stderr.contains("check `mda`"),
        "{}",
        outcome.stderr
    );
    assert_eq!(outcome.stderr.lines().count(), 1, "{}", outcome.stderr);
}

/// Trial: `fetch-all --all-accounts` said `pop3: default: account default: another pop3 run
/// …`; the account is named once.
#[test]
fn a_busy_account_is_named_once_with_all_accounts() {
    let root = tempfile::tempdir().unwrap();
    let state = root.path().join("state");
    let config = root.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[defaults]\nstate_dir = {:?}\n\n[accounts.default]\nhost = \"127.0.0.1\"\nport = 9\n\
             user = \"alice\"\npassword_env = \"POP3_TEST_PASSWORD\"\ntls = \"none\"\n\
             allow_plaintext_password = true\nmaildir = {:?}\n",
            state.display().to_string(),
            root.path().join("Maildir").display().to_string(),
        ),
    )
    .unwrap();
    // Hold the account's lock the way another run would (the lock is the only file there).
    let run = || {
        Pop3::new()
            .args([std::path::Path::new("--config"), &config])
            .env("POP3_TEST_PASSWORD", "pw")
            .args(["--timeout", "3", "fetch-all", "--all-accounts"])
            .run()
    };
    run(); // creates the state directory and the lock file (the connection is refused)
    let lock = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".lock"))
        .expect("a lock file");
    let held = std::fs::File::open(&lock).unwrap();
    held.lock().unwrap();
    let outcome = run().expect_code(75);
    assert!(
        outcome
            .stderr
            .starts_with("pop3: default: another pop3 run is already fetching this account"),
        "{}",
        outcome.stderr
    );
}

/// Trial: a damaged state file (a garbage line appended) said messages "would then be
/// downloaded again", not true for a Maildir, and not what to do about the line; `stat`
/// silently left out "(N new)".
#[test]
fn a_damaged_state_file_says_which_line_and_stat_warns() {
    let fixture = Fixture::new();
    let server = ScriptedServer::start(&format!(
        "{}{}{}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&A]),
        retr_pipelined(&[1], &[&A]),
    ));
    fixture.fetch_maildir(&server, &[]).expect_code(0);
    let state = fixture.state_file().unwrap();
    let mut text = std::fs::read_to_string(&state).unwrap();
    let line = text.lines().count() + 1;
    text.push_str("garbage here\n");
    std::fs::write(&state, text).unwrap();

    // The state is read before connecting: no server is needed.
    let maildir = fixture.maildir();
    let outcome = fixture
        .command(
            fixture.relay.port,
            &["--maildir", maildir.to_str().unwrap()],
        )
        .run()
        .expect_code(74);
    assert!(
        outcome.stderr.contains(&format!(
            "state file {} is damaged at line {line}: delete or correct that line, or move the file away",
            state.display()
        )) && !outcome.stderr.contains("would then be downloaded again"),
        "{}",
        outcome.stderr
    );

    let server = ScriptedServer::start(&format!(
        "{}C: STAT\nS: +OK 2 200\nC: UIDL\n{}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        send(&uidl_reply(&[&A, &B])),
    ));
    fixture.relay.route(server.port);
    let outcome = Pop3::new()
        .args([std::path::Path::new("--config"), &fixture.config])
        .server("127.0.0.1", fixture.relay.port, None)
        .login("alice", "pw")
        .args(["--tls", "none", "--allow-plaintext-password", "stat"])
        .run();
    let (sent, error) = server.finish_lenient();
    assert_eq!(error, None, "{}", String::from_utf8_lossy(&sent));
    let outcome = outcome.expect_code(0);
    assert_eq!(outcome.stdout, "2 messages, 200 bytes\n");
    assert!(
        outcome
            .stderr
            .starts_with("pop3: warning: cannot tell which messages are new: state file ")
            && outcome.stderr.lines().count() == 1,
        "{}",
        outcome.stderr
    );
}

/// A TCP server on a free port that sends `first` to each of `connections` clients and then
/// waits for them to hang up.
fn answering(first: &'static [u8], connections: usize) -> (u16, std::thread::JoinHandle<()>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let thread = std::thread::spawn(move || {
        for _ in 0..connections {
            let (mut client, _) = listener.accept().unwrap();
            let _ = client.write_all(first);
            let _ = client.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            let _ = client.read(&mut [0u8; 4096]);
            let _ = client.read(&mut [0u8; 4096]);
        }
    });
    (port, thread)
}

/// Trial: implicit TLS to an SSH or HTTP port said `received corrupt message of type
/// InvalidContentType` and advised `--tls starttls`, although the port is not POP3 at all.
#[test]
fn implicit_tls_to_a_port_that_is_not_pop3_names_what_answered() {
    for (first, expected) in [
        (
            b"SSH-2.0-OpenSSH_9.6\r\n".as_slice(),
            "did not answer with TLS; it sent `SSH-2.0-OpenSSH_9.6`: check the port",
        ),
        (
            b"\x00\x01\x02\xffbinary".as_slice(),
            "did not answer with TLS: check the port",
        ),
    ] {
        let (port, server) = answering(first, 1);
        let outcome = Pop3::new()
            .server("127.0.0.1", port, None)
            .login("alice", "pw")
            .args(["--timeout", "5", "stat"])
            .run()
            .expect_code(78);
        assert_eq!(
            outcome.stderr,
            format!(
                "pop3: the server at 127.0.0.1:{port} {expected} (the implicit-TLS POP3 port is usually 995)\n"
            ),
        );
        server.join().unwrap();
    }
}

/// Trial: `--ca-file /nonexist` said `I/O error: No such file or directory`.
#[test]
fn a_missing_ca_file_is_named_plainly() {
    let (port, server) = answering(b"", 1);
    let outcome = Pop3::new()
        .server(
            "127.0.0.1",
            port,
            Some(std::path::Path::new("/nonexistent/ca.pem")),
        )
        .login("alice", "pw")
        .args(["--timeout", "5", "stat"])
        .run()
        .expect_code(78);
    assert_eq!(
        outcome.stderr,
        "pop3: cannot read CA file /nonexistent/ca.pem: No such file or directory (os error 2)\n"
    );
    server.join().unwrap();
}

/// Trial: `read -o FILE` into a directory that cannot be written showed the tempfile crate's
/// random name (`… at path "/x/.tmpDbxr1h"`) instead of just FILE.
#[test]
fn read_output_failure_names_only_the_requested_file() {
    use crate::support::dovecot::dovecot;
    let d = dovecot();
    let user = d.add_user(&[b"Subject: s\r\n\r\nbody\r\n".as_slice()]);
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("file");
    std::fs::write(&not_a_dir, "x").unwrap();
    let target = not_a_dir.join("out.eml");
    let outcome = Pop3::new()
        .server("localhost", d.pop3s_port, Some(&d.ca_file))
        .login(&user.name, &user.password)
        .args([
            std::ffi::OsStr::new("read"),
            "-o".as_ref(),
            target.as_os_str(),
            "1".as_ref(),
        ])
        .run()
        .expect_code(74);
    assert_eq!(
        outcome.stderr,
        format!(
            "pop3: cannot write {}: Not a directory (os error 20)\n",
            target.display()
        )
    );
}

/// Trial 2: an HTTP server answers the handshake with an error page and hangs up at once; the
/// message then said `the server at 127.0.0.1:0` (the closed socket has no peer port left).
#[test]
fn not_tls_names_the_port_asked_for_after_the_server_hung_up() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut client, _) = listener.accept().unwrap();
        // As an HTTP server does: read the request (the ClientHello), answer, hang up.
        let _ = client.read(&mut [0u8; 4096]);
        let _ = client.write_all(b"<!DOCTYPE HTML>\n<title>400 Bad Request</title>\n");
        // Dropped here: the connection is closed before the client looks at the reply.
    });
    let outcome = Pop3::new()
        .server("127.0.0.1", port, None)
        .login("alice", "pw")
        .args(["--timeout", "5", "stat"])
        .run()
        .expect_code(78);
    assert_eq!(
        outcome.stderr,
        format!(
            "pop3: the server at 127.0.0.1:{port} did not answer with TLS; it sent `<!DOCTYPE HTML>`: check the port (the implicit-TLS POP3 port is usually 995)\n"
        ),
    );
    server.join().unwrap();
}
