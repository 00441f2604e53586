//! A real Dovecot POP3 server for the integration tests: one per test process, started lazily.
//!
//! Everything about the server (certificates, `dovecot.conf`, users, maildirs) lives in
//! `scripts/dovecot-sandbox`, the same script a newcomer runs as `scripts/dovecot-sandbox demo`;
//! this module only picks ports, owns the Dovecot process and waits for it to answer.
//!
//! * No root needed: run as root, Dovecot switches to Debian's `dovecot`/`dovenull` users and
//!   the maildirs belong to `mail` (8:8); run as anyone else, every Dovecot process runs as that
//!   user and the maildirs are theirs ([`Dovecot::mail_uid`], [`Dovecot::mail_gid`]).
//! * Dovecot runs as a child of a dedicated thread that never exits, with
//!   `PR_SET_PDEATHSIG = SIGTERM`, so it dies with the test process (even on SIGKILL). An `atexit`
//!   hook also kills it at once and removes its temp dir on a normal exit; set
//!   `POP3_TEST_KEEP_DOVECOT=1` to keep the dir (its path is in every panic message).
//! * Both listeners serve `127.0.0.1`, `::1` and [`UNTRUSTED_LOOPBACK`]. The certificate
//!   (`ca_file`) is valid for `localhost`, `127.0.0.1` and `::1`.
//! * Dovecot counts a connection as secure when the client IP equals the server IP, so on
//!   `127.0.0.1` it allows USER/PASS before STLS. Connect to [`UNTRUSTED_LOOPBACK`] to see the
//!   real `disable_plaintext_auth = yes` behaviour (no `USER` in CAPA, `-ERR [AUTH] Plaintext
//!   authentication disallowed`); its certificate does not cover that address.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A loopback address Dovecot also listens on where it does *not* treat the client as local
/// (clients connecting to it come from 127.0.0.1), so plaintext authentication is refused there
/// before STLS. Use with [`Dovecot::pop3_port`]; TLS host-name checks fail for this address.
pub const UNTRUSTED_LOOPBACK: &str = "127.0.0.2";

/// How long Dovecot may take to answer its first greeting (it usually takes ~50 ms).
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Fresh ports are tried this many times when Dovecot cannot bind (a port taken meanwhile).
const START_ATTEMPTS: usize = 5;

pub struct Dovecot {
    pub pop3_port: u16,
    pub pop3s_port: u16,
    pub ca_file: PathBuf,
    pub dir: PathBuf,
    /// Dovecot's LMTP service, when `dovecot-lmtpd` is installed (see [`Dovecot::lmtp`]).
    lmtp: Option<Lmtp>,
    /// Owner of the users' maildirs (the uid in their passwd lines): a file written into a
    /// maildir must belong to it.
    pub mail_uid: u32,
    pub mail_gid: u32,
    /// Serialises `add-user` calls and numbers the users.
    next_user: Mutex<u64>,
    /// The Dovecot master process.
    pub pid: u32,
}

pub struct User {
    pub name: String,
    pub password: String,
    pub maildir: PathBuf,
}

/// The one Dovecot for this test process, started lazily on first use. Panics with a readable
/// message (what failed, the tail of the dovecot log) if it cannot start — tests must fail
/// loudly, never skip.
pub fn dovecot() -> &'static Dovecot {
    static DOVECOT: OnceLock<Result<Dovecot, String>> = OnceLock::new();
    match DOVECOT.get_or_init(start) {
        Ok(d) => d,
        Err(e) => panic!("test Dovecot unavailable: {e}"),
    }
}

impl Dovecot {
    /// A fresh user with a unique name whose maildrop holds `messages` in order
    /// (message 1 = messages[0]).
    pub fn add_user(&self, messages: &[&[u8]]) -> User {
        let mut next = self.next_user.lock().unwrap_or_else(|e| e.into_inner());
        *next += 1;
        let n = *next;
        let name = format!("user{n:04}");
        let password = format!("pw-{n}-{}", std::process::id());

        let incoming = self.dir.join("incoming").join(&name);
        std::fs::create_dir_all(&incoming)
            .unwrap_or_else(|e| panic!("creating {}: {e}", incoming.display()));
        let files: Vec<PathBuf> = messages
            .iter()
            .enumerate()
            .map(|(i, msg)| {
                let path = incoming.join(format!("{:06}.eml", i + 1));
                std::fs::write(&path, msg)
                    .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
                path
            })
            .collect();

        let out = sandbox_cmd()
            .arg("add-user")
            .arg(&self.dir)
            .arg(&name)
            .arg(&password)
            .args(&files)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", sandbox_script().display()));
        let _ = std::fs::remove_dir_all(&incoming);
        if !out.status.success() {
            panic!(
                "dovecot-sandbox add-user {name} failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        drop(next);

        User {
            maildir: self.dir.join("mail").join(&name).join("Maildir"),
            name,
            password,
        }
    }

    /// The bytes of the repo's fixture message `tests/fixtures/messages/<name>`.
    pub fn fixture(name: &str) -> Vec<u8> {
        let path = fixture_dir().join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("reading fixture {}: {e}", path.display()))
    }

    /// The tail of Dovecot's log, for assertion messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.dir)
    }
}

impl User {
    /// Number of message files currently in the maildir (new + cur) — used to check deletions.
    pub fn messages_on_server(&self) -> usize {
        // new/ before cur/, and counted by base name (the part before ":2,FLAGS"), so a message
        // that Dovecot moves from new/ to cur/ meanwhile is counted exactly once.
        let mut names = std::collections::BTreeSet::new();
        for sub in ["new", "cur"] {
            let dir = self.maildir.join(sub);
            let entries = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("reading maildir {}: {e}", dir.display()));
            for entry in entries.flatten() {
                let file_name = entry.file_name().to_string_lossy().into_owned();
                if file_name.starts_with('.') {
                    continue;
                }
                let base = file_name.split(':').next().unwrap_or_default().to_owned();
                names.insert(base);
            }
        }
        names.len()
    }
}

/// Absolute path of the repo's fixture directory `tests/fixtures/messages`.
pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/messages")
}

pub fn sandbox_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/dovecot-sandbox")
}

fn sandbox_cmd() -> Command {
    // Through bash, so a checkout that lost the executable bit still works.
    let mut cmd = Command::new("bash");
    cmd.arg(sandbox_script());
    cmd
}

// ------------------------------------------------------------------------------------------------
// Start-up

/// Filled with Dovecot's exit status by its owner thread if Dovecot ever exits.
type ExitSlot = Arc<Mutex<Option<ExitStatus>>>;

/// What `atexit` must clean up: the running master's PID, its exit slot and the sandbox dir.
struct Running {
    pid: u32,
    exited: ExitSlot,
    dir: PathBuf,
}

static RUNNING: Mutex<Option<Running>> = Mutex::new(None);

enum Failure {
    /// Worth another try on other ports.
    PortClash(String),
    Fatal(String),
}

fn start() -> Result<Dovecot, String> {
    let mut clashes = Vec::new();
    for _ in 0..START_ATTEMPTS {
        match try_start() {
            Ok(d) => return Ok(d),
            Err(Failure::Fatal(e)) => return Err(e),
            Err(Failure::PortClash(e)) => clashes.push(e),
        }
    }
    Err(format!(
        "Dovecot could not bind its ports in {START_ATTEMPTS} attempts:\n{}",
        clashes.join("\n---\n")
    ))
}

fn try_start() -> Result<Dovecot, Failure> {
    let dir = tempfile::Builder::new()
        .prefix("pop3-dovecot-")
        .tempdir()
        .map_err(|e| Failure::Fatal(format!("creating a temp dir: {e}")))?
        .keep();
    let result = setup_and_run(&dir);
    if result.is_err() && std::env::var_os("POP3_TEST_KEEP_DOVECOT").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn setup_and_run(dir: &Path) -> Result<Dovecot, Failure> {
    let (pop3_port, pop3s_port) =
        free_ports().map_err(|e| Failure::Fatal(format!("picking free ports: {e}")))?;

    let out = sandbox_cmd()
        .arg("setup")
        .arg(dir)
        .arg(pop3_port.to_string())
        .arg(pop3s_port.to_string())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Failure::Fatal(format!("running {}: {e}", sandbox_script().display())))?;
    if !out.status.success() {
        return Err(Failure::Fatal(format!(
            "`{} setup` failed ({}):\n{}{}",
            sandbox_script().display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }

    let lmtp = add_lmtp(dir).map_err(Failure::Fatal)?;

    let (pid, exited) = spawn_forever(dir).map_err(Failure::Fatal)?;
    *RUNNING.lock().unwrap_or_else(|e| e.into_inner()) = Some(Running {
        pid,
        exited: Arc::clone(&exited),
        dir: dir.to_owned(),
    });
    register_atexit();

    let started = Instant::now();
    let fail = |what: String| {
        stop_running(false);
        let log = log_tail(dir);
        let msg = format!("{what} (sandbox {})\n{log}", dir.display());
        if log.contains("Address already in use") {
            Failure::PortClash(msg)
        } else {
            Failure::Fatal(msg)
        }
    };
    loop {
        // Copy the status out: `fail` locks the slot again (a guard kept alive by `if let`
        // would deadlock).
        let status = *exited.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(status) = status {
            return Err(fail(format!(
                "Dovecot exited during start-up with {status}"
            )));
        }
        if started.elapsed() > START_TIMEOUT {
            return Err(fail(format!(
                "Dovecot did not greet on 127.0.0.1:{pop3_port} / accept on :{pop3s_port} within {START_TIMEOUT:?}"
            )));
        }
        let lmtp_up = lmtp.as_ref().is_none_or(|l| accepts(l.port));
        if greets(pop3_port) && accepts(pop3s_port) && lmtp_up {
            // Ours, not a stranger who grabbed the port: still running after the greeting.
            if exited.lock().unwrap_or_else(|e| e.into_inner()).is_none() {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(25));
    }

    let (mail_uid, mail_gid) = mail_owner(dir).map_err(Failure::Fatal)?;
    Ok(Dovecot {
        pop3_port,
        pop3s_port,
        ca_file: dir.join("ca.pem"),
        dir: dir.to_owned(),
        lmtp,
        mail_uid,
        mail_gid,
        next_user: Mutex::new(0),
        pid,
    })
}

/// The maildir owner that `dovecot-sandbox setup` chose, from `DIR/sandbox.env`.
pub fn mail_owner(dir: &Path) -> Result<(u32, u32), String> {
    let path = dir.join("sandbox.env");
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let value = |key: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.parse::<u32>().ok())
            .ok_or_else(|| format!("{} has no numeric {key}:\n{text}", path.display()))
    };
    Ok((value("MAIL_UID")?, value("MAIL_GID")?))
}

/// Two distinct free TCP ports on 127.0.0.1 (bound together, then released).
pub fn free_ports() -> std::io::Result<(u16, u16)> {
    let a = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let b = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok((a.local_addr()?.port(), b.local_addr()?.port()))
}

/// Spawns `dovecot-sandbox run DIR` from a thread that never exits (PR_SET_PDEATHSIG fires when
/// the spawning *thread* exits). Returns the PID (the script execs Dovecot) and a slot that gets
/// the exit status if Dovecot ever exits.
fn spawn_forever(dir: &Path) -> Result<(u32, ExitSlot), String> {
    let exited = Arc::new(Mutex::new(None));
    let slot = Arc::clone(&exited);
    let (tx, rx) = mpsc::channel();
    let dir = dir.to_owned();
    std::thread::Builder::new()
        .name("dovecot-owner".into())
        .spawn(move || {
            let mut cmd = sandbox_cmd();
            cmd.arg("run")
                .arg(&dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            match cmd.spawn() {
                Ok(mut child) => {
                    let _ = tx.send(Ok(child.id()));
                    if let Ok(status) = child.wait() {
                        *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(status);
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(format!(
                        "spawning `{} run`: {e}",
                        sandbox_script().display()
                    )));
                }
            }
            loop {
                std::thread::park();
            }
        })
        .map_err(|e| format!("spawning the Dovecot owner thread: {e}"))?;
    let pid = rx
        .recv()
        .map_err(|_| "the Dovecot owner thread died".to_owned())??;
    Ok((pid, exited))
}

/// The plain port answers with a `+OK` greeting.
fn greets(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut line = String::new();
    let ok = BufReader::new(&stream).read_line(&mut line).is_ok() && line.starts_with("+OK");
    let _ = stream.write_all(b"QUIT\r\n");
    ok
}

/// The implicit-TLS port accepts TCP connections.
fn accepts(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

fn log_tail(dir: &Path) -> String {
    let mut out = String::new();
    for file in ["dovecot.out", "dovecot.log"] {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(30)..];
        out.push_str(&format!("--- tail of {} ---\n", path.display()));
        for line in tail {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

// ------------------------------------------------------------------------------------------------
// LMTP

/// Where Dovecot's LMTP service listens. It delivers into the test users' maildirs (RCPT TO a
/// bare user name); [`Dovecot::set_quota`] gives a user a quota, and a full quota answers 452
/// (`quota_full_tempfail = yes`); an unknown user gets 550.
#[derive(Debug, Clone)]
pub struct Lmtp {
    /// TCP port on 127.0.0.1.
    pub port: u16,
    /// The Unix socket.
    pub socket: PathBuf,
}

const LMTP_BINARY: &str = "/usr/lib/dovecot/lmtp";

impl Dovecot {
    /// The LMTP service. Panics (tests fail, never skip) when `dovecot-lmtpd` is missing.
    pub fn lmtp(&self) -> &Lmtp {
        self.lmtp.as_ref().unwrap_or_else(|| {
            panic!("Dovecot's LMTP service is not installed ({LMTP_BINARY}): apt-get install dovecot-lmtpd (scripts/test does)")
        })
    }

    /// Gives `user` a storage quota (Dovecot's quota_rule syntax, e.g. `1K`), enforced on LMTP
    /// delivery (again: replacing the quota given before). Rewrites the user's passwd file
    /// atomically with a userdb extra field.
    pub fn set_quota(&self, user: &User, storage: &str) {
        let path = self.dir.join("passwd.d").join(&user.name);
        let line = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        // A quota given before is replaced.
        let line = line.trim_end();
        let line = line.split("userdb_quota_rule=").next().unwrap_or(line);
        assert!(line.ends_with("::"), "unexpected passwd line {line:?}");
        let tmp = self
            .dir
            .join("passwd.d")
            .join(format!(".{}.quota", user.name));
        std::fs::write(
            &tmp,
            format!("{line}userdb_quota_rule=*:storage={storage}\n"),
        )
        .unwrap_or_else(|e| panic!("writing {}: {e}", tmp.display()));
        // Same owner and mode as dovecot-sandbox gives it: readable by the auth process, which
        // runs as `dovecot` under root and as ourselves otherwise (then the file is ours already).
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let status = Command::new("chgrp")
                .arg("dovecot")
                .arg(&tmp)
                .status()
                .expect("running chgrp");
            assert!(status.success(), "chgrp dovecot {}", tmp.display());
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o640)).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    }
}

/// Appends the LMTP service to the sandbox's dovecot.conf when `dovecot-lmtpd` is installed.
fn add_lmtp(dir: &Path) -> Result<Option<Lmtp>, String> {
    if !Path::new(LMTP_BINARY).exists() {
        return Ok(None);
    }
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("picking a free port for LMTP: {e}"))?
        .port();
    let conf = format!(
        r#"
# LMTP for the delivery tests (tests/it/support/dovecot.rs)
protocols = $protocols lmtp
lmtp_save_to_detail_mailbox = no
# A full quota is "try again later" (452 4.2.2), the usual choice for a local mailbox.
quota_full_tempfail = yes
service lmtp {{
  unix_listener lmtp {{
    mode = 0666
  }}
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
}}
protocol lmtp {{
  mail_plugins = $mail_plugins quota
}}
plugin {{
  quota = maildir:User quota
}}
"#
    );
    let path = dir.join("dovecot.conf");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(|e| format!("opening {}: {e}", path.display()))?;
    file.write_all(conf.as_bytes())
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(Some(Lmtp {
        port,
        socket: dir.join("run").join("lmtp"),
    }))
}

// ------------------------------------------------------------------------------------------------
// Shutdown

fn register_atexit() {
    static REGISTERED: OnceLock<()> = OnceLock::new();
    REGISTERED.get_or_init(|| {
        // SAFETY: registering a plain extern "C" fn that never unwinds.
        unsafe {
            libc::atexit(at_exit);
        }
    });
}

extern "C" fn at_exit() {
    let keep = std::env::var_os("POP3_TEST_KEEP_DOVECOT").is_some();
    let _ = std::panic::catch_unwind(|| stop_running(!keep));
}

/// SIGKILL the running Dovecot master (its children exit within milliseconds when the master
/// goes; a SIGTERM shutdown takes over a second), wait until its owner thread has reaped it, and
/// optionally remove its sandbox dir.
fn stop_running(remove_dir: bool) {
    let Some(running) = RUNNING.lock().ok().and_then(|mut r| r.take()) else {
        return;
    };
    if let Ok(pid) = libc::pid_t::try_from(running.pid) {
        // SAFETY: plain syscall; the owner thread has not reaped the PID while `exited` is None.
        if running.exited.lock().map(|s| s.is_none()).unwrap_or(false) {
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline && running.exited.lock().map(|s| s.is_none()).unwrap_or(false) {
        std::thread::sleep(Duration::from_millis(10));
    }
    if remove_dir {
        let _ = std::fs::remove_dir_all(&running.dir);
    }
}
