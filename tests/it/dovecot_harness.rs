//! Self-tests of the Dovecot harness (tests/it/support/dovecot.rs + scripts/dovecot-sandbox):
//! if these fail, every test against the real server is suspect.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use crate::support::dovecot::{
    Dovecot, UNTRUSTED_LOOPBACK, dovecot, free_ports, mail_owner, sandbox_script,
};

const FIXTURES: [&str; 3] = [
    "01-plain.eml",
    "04-attachment.eml",
    "05-encoded-headers.eml",
];

fn fixtures() -> Vec<Vec<u8>> {
    FIXTURES.iter().map(|name| Dovecot::fixture(name)).collect()
}

/// Connects to the plain port on `host` and returns the greeting plus the CAPA lines.
fn plain_greeting_and_capa(host: &str) -> (String, Vec<String>) {
    let d = dovecot();
    let stream = TcpStream::connect((host, d.pop3_port)).expect("connect to the plain POP3 port");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut greeting = String::new();
    reader.read_line(&mut greeting).unwrap();
    writer.write_all(b"CAPA\r\n").unwrap();
    let mut capa = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end().to_owned();
        if line == "." {
            break;
        }
        capa.push(line);
    }
    writer.write_all(b"QUIT\r\n").unwrap();
    (greeting, capa)
}

#[test]
fn dovecot_harness_starts_and_greets() {
    let d = dovecot();
    assert!(d.ca_file.is_file(), "no CA file at {}", d.ca_file.display());
    assert_ne!(d.pop3_port, d.pop3s_port);

    let (greeting, capa) = plain_greeting_and_capa("127.0.0.1");
    assert!(
        greeting.starts_with("+OK"),
        "greeting: {greeting:?}\n{}",
        d.log_tail()
    );
    assert_eq!(capa[0], "+OK");
    for cap in ["STLS", "UIDL", "TOP", "PIPELINING", "SASL PLAIN LOGIN"] {
        assert!(
            capa.iter().any(|c| c == cap),
            "{cap} missing from CAPA {capa:?}"
        );
    }

    // The implicit-TLS port is up too (the TLS side is exercised below).
    TcpStream::connect(("127.0.0.1", d.pop3s_port)).expect("connect to the pop3s port");
}

#[test]
fn dovecot_harness_refuses_plaintext_auth_on_untrusted_loopback() {
    // On 127.0.0.1 Dovecot treats the client as local (secure), so only here is
    // disable_plaintext_auth = yes visible.
    let (greeting, capa) = plain_greeting_and_capa(UNTRUSTED_LOOPBACK);
    assert!(greeting.starts_with("+OK"), "greeting: {greeting:?}");
    assert!(capa.iter().any(|c| c == "STLS"), "CAPA {capa:?}");
    assert!(
        !capa.iter().any(|c| c == "USER"),
        "USER offered before STLS: {capa:?}"
    );

    let d = dovecot();
    let user = d.add_user(&[]);
    let stream = TcpStream::connect((UNTRUSTED_LOOPBACK, d.pop3_port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    writer
        .write_all(format!("USER {}\r\n", user.name).as_bytes())
        .unwrap();
    line.clear();
    reader.read_line(&mut line).unwrap();
    assert!(
        line.starts_with("-ERR [AUTH]"),
        "USER before STLS answered {line:?}"
    );
}

#[test]
fn dovecot_harness_add_user_stores_messages() {
    let d = dovecot();
    let messages = fixtures();
    let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    let user = d.add_user(&refs);
    assert_eq!(user.messages_on_server(), 3);
    let meta = std::fs::metadata(&user.maildir).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (d.mail_uid, d.mail_gid),
        "maildir not owned by the mail owner"
    );
    // Root hands the maildirs to Debian's mail user (Dovecot refuses mail access as root);
    // anyone else keeps them.
    // SAFETY: plain syscalls without arguments.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let expected = if uid == 0 { (8, 8) } else { (uid, gid) };
    assert_eq!((d.mail_uid, d.mail_gid), expected);

    let other = d.add_user(&[]);
    assert_ne!(user.name, other.name);
    assert_eq!(other.messages_on_server(), 0);
}

#[test]
fn dovecot_harness_users_can_be_added_concurrently() {
    let d = dovecot();
    let handles: Vec<_> = (0..8)
        .map(|i| {
            std::thread::spawn(move || {
                let body = format!("Subject: {i}\r\n\r\nbody {i}\r\n").into_bytes();
                let user = d.add_user(&[&body, &body]);
                assert_eq!(user.messages_on_server(), 2);
                // Each new user can log in at once (no stale passwd cache).
                let mut pop = Pop3s::connect("localhost", d);
                pop.login(&user.name, &user.password);
                assert!(pop.cmd("STAT").starts_with("+OK 2 "));
                pop.cmd("QUIT");
                user.name
            })
        })
        .collect();
    let mut names: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 8);
}

#[test]
fn dovecot_harness_tls_login_sees_messages_in_order() {
    let d = dovecot();
    let messages = fixtures();
    let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    let user = d.add_user(&refs);

    // rustls accepts the sandbox certificate for both the name and the IP.
    for host in ["localhost", "127.0.0.1"] {
        let mut pop = Pop3s::connect(host, d);
        pop.login(&user.name, &user.password);
        let stat = pop.cmd("STAT");
        assert!(stat.starts_with("+OK 3 "), "STAT: {stat}");
        for (i, expected) in messages.iter().enumerate() {
            let got = pop.retr(i + 1);
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&to_crlf(expected)),
                "message {} is not {}",
                i + 1,
                FIXTURES[i]
            );
        }
        pop.cmd("QUIT");
    }

    // Deletion shows in messages_on_server().
    let mut pop = Pop3s::connect("localhost", d);
    pop.login(&user.name, &user.password);
    assert!(pop.cmd("DELE 2").starts_with("+OK"));
    assert!(pop.cmd("QUIT").starts_with("+OK"));
    assert_eq!(user.messages_on_server(), 2);
}

/// Issue 14, "tests need root and nothing says so": the sandbox (setup, start, add-user, stop)
/// works for an unprivileged user, with every Dovecot process running as that user. Run as a
/// normal user, the shared harness already is that case; run as root, the sandbox is run here as
/// `nobody` through `setpriv`.
#[test]
fn dovecot_sandbox_runs_without_root() {
    // SAFETY: plain syscall without arguments.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        let d = dovecot();
        assert_eq!(process_uids(d.pid), [euid; 4], "Dovecot master");
        let user = d.add_user(&[b"Subject: x\r\n\r\nx\r\n"]);
        assert_eq!(
            plain_login_stat(d.pop3_port, &user.name, &user.password),
            "+OK 1 17"
        );
        return;
    }

    let (uid, gid) = nobody();
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path();
    // The copied script and message are readable by `nobody` wherever the checkout lives.
    let script = base.join("dovecot-sandbox");
    std::fs::copy(sandbox_script(), &script).unwrap();
    let message = base.join("1.eml");
    std::fs::write(&message, "Subject: x\n\nx\n").unwrap();
    for path in [base, script.as_path(), message.as_path()] {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    }
    let dir = base.join("sb");
    let as_nobody = |args: &[&dyn AsRef<std::ffi::OsStr>]| {
        let out = Command::new("setpriv")
            .args([format!("--reuid={uid}"), format!("--regid={gid}")])
            .arg("--clear-groups")
            .arg("bash")
            .arg(&script)
            .args(args)
            .env("HOME", base)
            .stdin(Stdio::null())
            .output()
            .expect("running setpriv (util-linux)");
        assert!(
            out.status.success(),
            "dovecot-sandbox {:?} as nobody failed ({}):\n{}{}",
            args.iter().map(|a| a.as_ref()).collect::<Vec<_>>(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let (pop3_port, pop3s_port) = free_ports().unwrap();
    let (p, ps) = (pop3_port.to_string(), pop3s_port.to_string());
    as_nobody(&[&"setup", &dir, &p, &ps]);
    as_nobody(&[&"start", &dir]);
    // Stop it however the test ends.
    struct Stop<'a>(&'a dyn Fn(&[&dyn AsRef<std::ffi::OsStr>]), &'a Path);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            (self.0)(&[&"stop", &self.1]);
        }
    }
    let _stop = Stop(&as_nobody, &dir);
    as_nobody(&[&"add-user", &dir, &"alice", &"secret", &message]);

    let pid: u32 = std::fs::read_to_string(dir.join("run/master.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(process_uids(pid), [uid; 4], "Dovecot master");
    let meta = std::fs::metadata(dir.join("mail/alice/Maildir")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (uid, gid));
    assert_eq!(mail_owner(&dir).unwrap(), (uid, gid));
    assert_eq!(plain_login_stat(pop3_port, "alice", "secret"), "+OK 1 17");
}

/// Real, effective, saved and file-system uid of a process, from /proc/PID/status.
fn process_uids(pid: u32) -> [u32; 4] {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    let uids: Vec<u32> = line[4..]
        .split_whitespace()
        .map(|u| u.parse().unwrap())
        .collect();
    uids.try_into().unwrap()
}

/// Uid and gid of the `nobody` account.
fn nobody() -> (u32, u32) {
    // SAFETY: getpwnam with a NUL-terminated name; the result is read before any other call.
    unsafe {
        let pw = libc::getpwnam(c"nobody".as_ptr());
        assert!(!pw.is_null(), "no `nobody` account to run the sandbox as");
        ((*pw).pw_uid, (*pw).pw_gid)
    }
}

/// USER/PASS on the plain port of 127.0.0.1 (trusted, so allowed before STLS), then STAT.
fn plain_login_stat(port: u16, user: &str, password: &str) -> String {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the plain POP3 port");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut cmd = |line: &str| {
        if !line.is_empty() {
            writer.write_all(format!("{line}\r\n").as_bytes()).unwrap();
        }
        let mut reply = String::new();
        reader.read_line(&mut reply).unwrap();
        reply.trim_end().to_owned()
    };
    assert!(cmd("").starts_with("+OK"), "no greeting");
    assert!(cmd(&format!("USER {user}")).starts_with("+OK"));
    let pass = cmd(&format!("PASS {password}"));
    assert!(pass.starts_with("+OK"), "PASS: {pass}");
    let stat = cmd("STAT");
    cmd("QUIT");
    stat
}

/// The message as POP3 delivers it: every line ending CRLF (the last line too).
fn to_crlf(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + 64);
    for line in msg.split_inclusive(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A minimal POP3-over-implicit-TLS client for the self-tests.
struct Pop3s {
    reader: BufReader<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>,
}

impl Pop3s {
    fn connect(host: &str, d: &Dovecot) -> Pop3s {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, ServerName};

        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(&d.ca_file).unwrap())
            .unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let name = ServerName::try_from(host.to_owned()).unwrap();
        let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let tcp = TcpStream::connect((host, d.pop3s_port)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut pop = Pop3s {
            reader: BufReader::new(rustls::StreamOwned::new(conn, tcp)),
        };
        let greeting = pop.line();
        assert!(
            greeting.starts_with("+OK"),
            "greeting over TLS to {host}: {greeting:?}"
        );
        pop
    }

    fn line(&mut self) -> String {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line).unwrap();
        String::from_utf8_lossy(&line).trim_end().to_owned()
    }

    fn cmd(&mut self, cmd: &str) -> String {
        self.reader
            .get_mut()
            .write_all(format!("{cmd}\r\n").as_bytes())
            .unwrap();
        self.reader.get_mut().flush().unwrap();
        self.line()
    }

    fn login(&mut self, user: &str, password: &str) {
        let r = self.cmd(&format!("USER {user}"));
        assert!(r.starts_with("+OK"), "USER: {r}");
        let r = self.cmd(&format!("PASS {password}"));
        assert!(
            r.starts_with("+OK"),
            "PASS for {user}: {r}\n{}",
            dovecot().log_tail()
        );
    }

    /// RETR n, dot-unstuffed, with CRLF line endings.
    fn retr(&mut self, n: usize) -> Vec<u8> {
        let status = self.cmd(&format!("RETR {n}"));
        assert!(status.starts_with("+OK"), "RETR {n}: {status}");
        let mut body = Vec::new();
        loop {
            let mut line = Vec::new();
            self.reader.read_until(b'\n', &mut line).unwrap();
            assert!(!line.is_empty(), "connection closed inside RETR {n}");
            if line == b".\r\n" {
                return body;
            }
            let line = line.strip_prefix(b".").unwrap_or(&line);
            body.extend_from_slice(line);
        }
    }
}
