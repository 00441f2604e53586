//! A real Postfix for the SMTP delivery tests: one per test process, started lazily from a temp
//! dir as a non-system instance (its own main.cf, master.cf and queue; 127.0.0.1, high ports).
//!
//! It accepts mail for `@test.example` and its virtual(8) agent writes it into
//! `DIR/vmail/NAME/` (a Maildir) for each recipient added with [`Postfix::add_mailbox`]
//! (`inline:` tables cannot grow, so the mailboxes are fixed: `alice`, `bob`, `carol`, `dave`).
//! `tempfail@test.example` gets 450 4.2.0 and any other local part 550 5.1.1; a message whose
//! Subject contains [`REJECTED_SUBJECT`] is refused after DATA (550 5.7.1). Two SMTP
//! listeners: [`Postfix::port`] offers PIPELINING, [`Postfix::port_no_pipelining`] does not.
//!
//! The master runs as a child of a thread that never exits, with `PR_SET_PDEATHSIG = SIGTERM`;
//! that alone does not stop it (observed: the master outlives the test process), so an `atexit`
//! hook also sends SIGTERM to the PID in its pid file (the master then stops its children) and
//! removes the temp dir (`POP3_TEST_KEEP_POSTFIX=1` keeps it).
#![allow(dead_code)]

/// A Subject containing this gets a 5xx for the message itself, after DATA.
pub const REJECTED_SUBJECT: &str = "reject-this-message";

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The mailboxes Postfix delivers to (local parts at `test.example`).
pub const MAILBOXES: [&str; 4] = ["alice", "bob", "carol", "dave"];
/// The domain Postfix accepts.
pub const DOMAIN: &str = "test.example";

const MASTER: &str = "/usr/lib/postfix/sbin/master";

pub struct Postfix {
    pub port: u16,
    pub port_no_pipelining: u16,
    pub dir: PathBuf,
}

/// The one Postfix for this test process. Panics with a readable message if it cannot start.
pub fn postfix() -> &'static Postfix {
    static POSTFIX: OnceLock<Result<Postfix, String>> = OnceLock::new();
    match POSTFIX.get_or_init(start) {
        Ok(p) => p,
        Err(e) => panic!("test Postfix unavailable: {e}"),
    }
}

impl Postfix {
    /// The Maildir Postfix delivers `local`@test.example into.
    pub fn maildir(&self, local: &str) -> PathBuf {
        self.dir.join("vmail").join(local)
    }

    /// Waits (up to 20 s) until the Maildir of `local` holds `count` messages in `new/`, and
    /// returns their contents, oldest first by file name.
    pub fn wait_for_messages(&self, local: &str, count: usize) -> Vec<Vec<u8>> {
        let new = self.maildir(local).join("new");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&new)
                .map(|d| d.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
            files.sort();
            if files.len() >= count {
                return files.iter().map(|f| std::fs::read(f).unwrap()).collect();
            }
            assert!(
                Instant::now() < deadline,
                "{} holds {} messages, expected {count}\n{}",
                new.display(),
                files.len(),
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The tail of Postfix's log, for assertion messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("postfix.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "--- tail of {}/postfix.log ---\n{}",
            self.dir.display(),
            lines[lines.len().saturating_sub(30)..].join("\n")
        )
    }
}

fn start() -> Result<Postfix, String> {
    if !Path::new(MASTER).exists() {
        return Err(format!(
            "Postfix is not installed ({MASTER}): apt-get install postfix (scripts/test does)"
        ));
    }
    let mut last = String::new();
    for _ in 0..3 {
        match try_start() {
            Ok(p) => return Ok(p),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn try_start() -> Result<Postfix, String> {
    // Short path: Postfix's unix sockets live under the queue directory.
    let dir = tempfile::Builder::new()
        .prefix("pop3-postfix-")
        .tempdir_in("/tmp")
        .map_err(|e| format!("creating a temp dir: {e}"))?
        .keep();
    let (port, port_no_pipelining) = {
        let a = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| e.to_string())?;
        let b = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| e.to_string())?;
        (
            a.local_addr().unwrap().port(),
            b.local_addr().unwrap().port(),
        )
    };
    let d = dir.display();
    let mailboxes: Vec<String> = MAILBOXES
        .iter()
        .map(|m| format!("{m}@{DOMAIN}={m}/"))
        .collect();
    let main_cf = format!(
        "compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mx.{DOMAIN}
mydestination =
mynetworks = 127.0.0.0/8
maillog_file_prefixes = {d}
maillog_file = {d}/postfix.log
virtual_mailbox_domains = {DOMAIN}
virtual_mailbox_base = {d}/vmail
virtual_mailbox_maps = inline:{{ {mailboxes} }}
virtual_minimum_uid = 8
virtual_uid_maps = static:8
virtual_gid_maps = static:8
message_size_limit = 104857600
virtual_mailbox_limit = 0
alias_maps =
alias_database =
header_checks = regexp:{d}/header_checks
smtpd_recipient_restrictions = check_recipient_access inline:{{ {{ tempfail@{DOMAIN} = 450 4.2.0 try again later }} }}, permit_mynetworks, reject_unauth_destination
",
        mailboxes = mailboxes.join(", ")
    );
    let master_cf = format!(
        "127.0.0.1:{port} inet n - n - - smtpd
127.0.0.1:{port_no_pipelining} inet n - n - - smtpd -o smtpd_discard_ehlo_keywords=pipelining
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
proxymap  unix  - - n - - proxymap
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
virtual   unix  - n n - - virtual
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"
    );
    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text).map_err(|e| format!("writing {name}: {e}"))
    };
    write("main.cf", &main_cf)?;
    write("master.cf", &master_cf)?;
    write(
        "header_checks",
        &format!("/^Subject:.*{REJECTED_SUBJECT}/ REJECT refused by header_checks\n"),
    )?;
    for sub in ["queue", "data", "vmail"] {
        std::fs::create_dir_all(dir.join(sub)).map_err(|e| format!("creating {sub}: {e}"))?;
    }
    let chown = Command::new("chown")
        .args(["postfix", &format!("{d}/data")])
        .status();
    let chown_vmail = Command::new("chown")
        .args(["8:8", &format!("{d}/vmail")])
        .status();
    if !matches!(chown, Ok(s) if s.success()) || !matches!(chown_vmail, Ok(s) if s.success()) {
        return Err("chown of the Postfix dirs failed (the tests run as root)".into());
    }
    // `postfix check` creates the queue's subdirectories with the right owners.
    let out = Command::new("postfix")
        .arg("-c")
        .arg(&dir)
        .arg("check")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running postfix check: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "postfix -c {d} check failed ({}); run it in a terminal to see why:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    spawn_forever(&dir)?;
    *RUNNING.lock().unwrap_or_else(|e| e.into_inner()) = Some(dir.clone());
    register_atexit();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !(greets(port) && greets(port_no_pipelining)) {
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("postfix.log")).unwrap_or_default();
            return Err(format!(
                "Postfix did not greet on 127.0.0.1:{port} within 15 s (dir {d})\n{log}"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Postfix {
        port,
        port_no_pipelining,
        dir,
    })
}

/// Runs `master -d` (foreground) from a thread that never exits; the master gets SIGTERM when
/// the test process ends.
fn spawn_forever(dir: &Path) -> Result<(), String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let dir = dir.to_owned();
    std::thread::Builder::new()
        .name("postfix-owner".into())
        .spawn(move || {
            let mut cmd = Command::new(MASTER);
            cmd.arg("-c")
                .arg(&dir)
                .arg("-d")
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
                    let _ = tx.send(Ok(()));
                    let _ = child.wait();
                }
                Err(e) => {
                    let _ = tx.send(Err(format!("spawning {MASTER}: {e}")));
                }
            }
            loop {
                std::thread::park();
            }
        })
        .map_err(|e| format!("spawning the Postfix owner thread: {e}"))?;
    rx.recv()
        .map_err(|_| "the Postfix owner thread died".to_owned())?
}

/// The port answers with a 220 greeting.
fn greets(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line).is_ok() && line.starts_with("220")
}

/// The sandbox dir of the running Postfix, for the `atexit` hook.
static RUNNING: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);

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
    let _ = std::panic::catch_unwind(stop_running);
}

/// SIGTERM to the master named in the pid file (only if its command line names our dir), wait
/// up to 3 s for it to go, then remove the dir.
fn stop_running() {
    let Some(dir) = RUNNING.lock().ok().and_then(|mut r| r.take()) else {
        return;
    };
    let pid_file = dir.join("queue/pid/master.pid");
    let pid: Option<libc::pid_t> = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|s| s.trim().parse().ok());
    if let Some(pid) = pid {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let ours = String::from_utf8_lossy(&cmdline).contains(&*dir.to_string_lossy());
        if ours {
            // SAFETY: plain syscall on a PID checked to be our master.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline && Path::new(&format!("/proc/{pid}")).exists() {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    if std::env::var_os("POP3_TEST_KEEP_POSTFIX").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
