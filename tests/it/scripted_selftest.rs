//! Self-tests of the scripted POP3 server, driven by raw std/rustls clients (not the `pop3`
//! binary), so that a failure here points at the test harness rather than at the client.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

use crate::support::scripted::{ScriptedServer, text_of};

fn connect(server: &ScriptedServer) -> TcpStream {
    let sock = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    sock
}

/// Reads one line including its terminator.
fn line(reader: &mut impl BufRead) -> String {
    let mut buf = Vec::new();
    reader.read_until(b'\n', &mut buf).expect("read line");
    text_of(&buf)
}

fn tls_config(ca_file: &Path) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file).expect("open CA file") {
        roots.add(cert.expect("CA PEM")).expect("add CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

fn tls_connect(
    sock: TcpStream,
    ca_file: &Path,
    name: &str,
) -> StreamOwned<ClientConnection, TcpStream> {
    let name = ServerName::try_from(name.to_owned()).expect("server name");
    let conn = ClientConnection::new(tls_config(ca_file), name).expect("client connection");
    StreamOwned::new(conn, sock)
}

#[test]
fn scripted_plain_transcript_with_pipelining_bare_lf_and_fragments() {
    let server = ScriptedServer::start(
        r"
        # greeting
        S: +OK ready
        C: CAPA
        S: +OK
        S: USER
        S: .
        C~ USER
        C: PASS secret
        S-: +OK bare LF
        S=: +OK frag
        !flush
        !sleep 50
        S=: mented\r\n\x2e\xff
        C: *
        S: +OK bye
        ",
    );
    let sock = connect(&server);
    let mut reader = BufReader::new(sock.try_clone().unwrap());
    let mut w = sock;
    assert_eq!(line(&mut reader), "+OK ready\r\n");
    w.write_all(b"CAPA\r\n").unwrap();
    assert_eq!(line(&mut reader), "+OK\r\n");
    assert_eq!(line(&mut reader), "USER\r\n");
    assert_eq!(line(&mut reader), ".\r\n");
    // Pipelined: both commands in one write.
    w.write_all(b"USER bob\r\nPASS secret\r\n").unwrap();
    assert_eq!(line(&mut reader), "+OK bare LF\n");
    assert_eq!(line(&mut reader), "+OK fragmented\r\n");
    let mut odd = [0u8; 2];
    reader.read_exact(&mut odd).unwrap();
    assert_eq!(odd, [b'.', 0xff]);
    w.write_all(b"QUIT\r\n").unwrap();
    assert_eq!(line(&mut reader), "+OK bye\r\n");
    // The script ended: the server closes, but still records what the client sends.
    assert_eq!(line(&mut reader), "");
    w.write_all(b"AFTER\r\n").unwrap();
    drop(w);
    drop(reader);
    let bytes = server.finish();
    assert_eq!(
        text_of(&bytes),
        "CAPA\r\nUSER bob\r\nPASS secret\r\nQUIT\r\nAFTER\r\n"
    );
}

#[test]
fn scripted_mismatch_is_reported() {
    let server = ScriptedServer::start(
        "
        S: +OK ready
        C: USER alice
        S: +OK
        ",
    );
    let sock = connect(&server);
    let mut reader = BufReader::new(sock.try_clone().unwrap());
    let mut w = sock;
    assert_eq!(line(&mut reader), "+OK ready\r\n");
    w.write_all(b"USER bob\r\n").unwrap();
    // After a mismatch the server closes rather than leave the client hanging.
    assert_eq!(line(&mut reader), "");
    drop(w);
    drop(reader);
    let (bytes, error) = server.finish_lenient();
    assert_eq!(text_of(&bytes), "USER bob\r\n");
    let error = error.expect("a mismatch");
    assert!(error.contains("expected `C: USER alice`"), "{error}");
    assert!(error.contains("USER bob"), "{error}");
}

#[test]
#[should_panic(expected = "expected `C: STAT`")]
fn scripted_finish_panics_on_mismatch() {
    let server = ScriptedServer::start("S: +OK\nC: STAT\n");
    let mut sock = connect(&server);
    sock.write_all(b"LIST\r\n").unwrap();
    let mut rest = Vec::new();
    let _ = sock.read_to_end(&mut rest);
    drop(sock);
    server.finish();
}

#[test]
fn scripted_bare_lf_from_client_does_not_match() {
    let server = ScriptedServer::start("C: *\n");
    let mut sock = connect(&server);
    sock.write_all(b"NOOP\n").unwrap();
    let mut rest = Vec::new();
    let _ = sock.read_to_end(&mut rest);
    drop(sock);
    let (_, error) = server.finish_lenient();
    assert!(error.expect("bare LF rejected").contains("NOOP\\n"));
}

#[test]
fn scripted_early_close_is_reported_and_close_step_works() {
    let server = ScriptedServer::start(
        "
        S: +OK ready
        C: USER bob
        ",
    );
    let sock = connect(&server);
    let mut reader = BufReader::new(sock.try_clone().unwrap());
    assert_eq!(line(&mut reader), "+OK ready\r\n");
    (&sock).write_all(b"USE").unwrap();
    drop(sock);
    drop(reader);
    let (bytes, error) = server.finish_lenient();
    assert_eq!(bytes, b"USE");
    let error = error.expect("early close");
    assert!(error.contains("closed"), "{error}");
    assert!(error.contains("C: USER bob"), "{error}");

    // `!close` mid-script: the client sees EOF.
    let server = ScriptedServer::start("S=: +OK 2 mess\n!close\n");
    let mut sock = connect(&server);
    let mut got = Vec::new();
    sock.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"+OK 2 mess");
    drop(sock);
    assert!(server.finish().is_empty());
}

#[test]
fn scripted_implicit_tls_verifies_for_dns_and_ip_names() {
    for name in ["localhost", "127.0.0.1"] {
        let server = ScriptedServer::start_tls(
            "
            S: +OK secure
            C: QUIT
            S: +OK bye
            !close
            ",
            &["localhost", "127.0.0.1"],
        );
        assert!(server.ca_file().exists());
        let mut tls = tls_connect(connect(&server), server.ca_file(), name);
        let mut reader = BufReader::new(&mut tls);
        assert_eq!(line(&mut reader), "+OK secure\r\n");
        reader.get_mut().write_all(b"QUIT\r\n").unwrap();
        assert_eq!(line(&mut reader), "+OK bye\r\n");
        assert_eq!(line(&mut reader), "", "close_notify then EOF");
        drop(reader);
        tls.conn.send_close_notify();
        let _ = tls.flush();
        drop(tls);
        assert_eq!(text_of(&server.finish()), "QUIT\r\n");
    }
}

#[test]
fn scripted_wrong_host_certificate_fails_handshake() {
    let server = ScriptedServer::start_tls("S: +OK\n", &["other.example"]);
    let mut tls = tls_connect(connect(&server), server.ca_file(), "localhost");
    let mut buf = [0u8; 16];
    let err = tls
        .read(&mut buf)
        .expect_err("the certificate is for another name");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    drop(tls);
    let (_, error) = server.finish_lenient();
    assert!(
        error
            .expect("handshake failure")
            .contains("TLS handshake failed")
    );
}

#[test]
fn scripted_starttls_upgrade_and_injection() {
    let server = ScriptedServer::start_with_cert(
        r"
        S: +OK plain
        C: STLS
        S=: +OK Begin TLS\r\n+OK injected\r\n
        !starttls
        C: CAPA
        S: +OK over TLS
        S: .
        ",
        &["localhost", "127.0.0.1"],
    );
    let sock = connect(&server);
    let mut reader = BufReader::new(sock.try_clone().unwrap());
    assert_eq!(line(&mut reader), "+OK plain\r\n");
    (&sock).write_all(b"STLS\r\n").unwrap();
    assert_eq!(line(&mut reader), "+OK Begin TLS\r\n");
    // The injected response arrived as plaintext before the handshake: a correct client must
    // treat any buffered data here as an attack. This raw client just skips it.
    assert_eq!(line(&mut reader), "+OK injected\r\n");
    assert!(reader.buffer().is_empty());
    drop(reader);

    let mut tls = tls_connect(sock, server.ca_file(), "127.0.0.1");
    tls.write_all(b"CAPA\r\n").unwrap();
    let mut reader = BufReader::new(&mut tls);
    assert_eq!(line(&mut reader), "+OK over TLS\r\n");
    assert_eq!(line(&mut reader), ".\r\n");
    assert_eq!(line(&mut reader), "");
    drop(reader);
    drop(tls);
    assert_eq!(text_of(&server.finish()), "STLS\r\nCAPA\r\n");
}

#[test]
fn scripted_plaintext_pipelined_after_stls_is_an_error() {
    let server = ScriptedServer::start_with_cert(
        "
        C: STLS
        S: +OK Begin TLS
        !starttls
        ",
        &["localhost"],
    );
    let mut sock = connect(&server);
    sock.write_all(b"STLS\r\nUSER bob\r\n").unwrap();
    let mut rest = Vec::new();
    let _ = sock.read_to_end(&mut rest);
    drop(sock);
    let (bytes, error) = server.finish_lenient();
    assert_eq!(text_of(&bytes), "STLS\r\nUSER bob\r\n");
    assert!(error.expect("plaintext after STLS").contains("USER bob"));
}
