//! Self-tests of the Dovecot harness (tests/it/support/dovecot.rs + scripts/dovecot-sandbox):
//! if these fail, every test against the real server is suspect.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::time::Duration;

use crate::support::dovecot::{Dovecot, UNTRUSTED_LOOPBACK, dovecot};

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
        (8, 8),
        "maildir not owned by mail:mail"
    );

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
