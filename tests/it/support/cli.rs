//! Runs the real `pop3` binary in an isolated environment: its own HOME and XDG directories
//! (so no user config leaks in) and no inherited `POP3_CONFIG`.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What a run of `pop3` produced.
#[derive(Debug)]
pub struct Outcome {
    /// The exit code (-1 when killed by a signal).
    pub code: i32,
    /// Everything on stdout.
    pub stdout: String,
    /// Everything on stderr.
    pub stderr: String,
}

impl Outcome {
    /// Panics, showing the output, unless the exit code is `code`.
    pub fn expect_code(self, code: i32) -> Outcome {
        assert_eq!(
            self.code, code,
            "expected exit code {code}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// A `pop3` invocation being assembled.
pub struct Pop3 {
    command: Command,
    stdin: Option<Vec<u8>>,
    _home: tempfile::TempDir,
}

impl Pop3 {
    /// `pop3` with a fresh, empty home directory.
    pub fn new() -> Pop3 {
        let home = tempfile::tempdir().expect("temp home");
        let mut command = Command::new(env!("CARGO_BIN_EXE_pop3"));
        command
            .env_remove("POP3_CONFIG")
            .env("HOME", home.path())
            .env("XDG_CONFIG_HOME", home.path().join(".config"))
            .env("XDG_STATE_HOME", home.path().join(".local/state"))
            .env("XDG_DATA_HOME", home.path().join(".local/share"))
            .env("NO_COLOR", "1");
        Pop3 {
            command,
            stdin: None,
            _home: home,
        }
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Pop3
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.command.args(args);
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Pop3 {
        self.command.env(key, value);
        self
    }

    /// Runs in `dir` (relative paths on the command line are taken from there).
    pub fn current_dir(mut self, dir: &Path) -> Pop3 {
        self.command.current_dir(dir);
        self
    }

    /// Connects to a local server: `--host 127.0.0.1 --port PORT`, and a CA file when given.
    pub fn server(self, host: &str, port: u16, ca_file: Option<&Path>) -> Pop3 {
        let mut pop3 = self.args(["--host", host, "--port", &port.to_string()]);
        if let Some(ca) = ca_file {
            pop3 = pop3.args([Path::new("--ca-file"), ca]);
        }
        pop3
    }

    /// Logs in as alice (password "pw") to a plain scripted server on `port`, with a short
    /// timeout so that a script that stops answering fails the test quickly.
    pub fn scripted_plain(port: u16) -> Pop3 {
        Pop3::new()
            .server("127.0.0.1", port, None)
            .login("alice", "pw")
            .args([
                "--tls",
                "none",
                "--allow-plaintext-password",
                "--timeout",
                "3",
            ])
    }

    /// Logs in as `user` with `password` passed through an environment variable.
    pub fn login(self, user: &str, password: &str) -> Pop3 {
        self.args(["--user", user, "--password-env", "POP3_TEST_PASSWORD"])
            .env("POP3_TEST_PASSWORD", password)
    }

    /// Feeds `input` on stdin (otherwise stdin is empty, not a terminal).
    pub fn stdin(mut self, input: &[u8]) -> Pop3 {
        self.stdin = Some(input.to_vec());
        self
    }

    /// The assembled command and the home directory it uses (keep that alive while it runs).
    pub fn into_command(self) -> (Command, tempfile::TempDir) {
        (self.command, self._home)
    }

    /// Runs to completion.
    pub fn run(mut self) -> Outcome {
        use std::io::Write;
        self.command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = self.command.spawn().expect("spawn pop3");
        let mut stdin = child.stdin.take().unwrap();
        let input = self.stdin.take().unwrap_or_default();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let output = child.wait_with_output().expect("wait for pop3");
        let _ = writer.join();
        Outcome {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// Waits for the child to exit (or kills it after `timeout`) and returns its exit code (`None`
/// when it was killed) and stderr, which must be piped.
pub fn finish(mut child: Child, timeout: Duration) -> (Option<i32>, String) {
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status.and_then(|s| s.code()), stderr)
}
