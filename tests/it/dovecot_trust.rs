//! Which certificates vouch for the server when `ca_file` is set: the CA file first, the
//! system's roots (here `SSL_CERT_FILE`) only when it does not (issue 11: a run against a
//! private CA no longer parses the ~140 system roots). Against the sandbox Dovecot, whose
//! certificate the sandbox CA signed.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::support::cli::{Outcome, Pop3, finish};
use crate::support::dovecot::dovecot;

/// Writes a self-signed CA certificate that signed nothing the sandbox presents.
fn unrelated_ca(dir: &Path, name: &str) -> PathBuf {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let path = dir.join(format!("{name}.pem"));
    std::fs::write(&path, params.self_signed(&key).unwrap().pem()).unwrap();
    path
}

/// `stat` against the sandbox over implicit TLS, with `ca_file` and `SSL_CERT_FILE` as given.
fn stat(ca_file: &Path, system_bundle: &Path, extra_config: &str) -> Outcome {
    let d = dovecot();
    let user = d.add_user(&[]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[accounts.t]\nhost = \"localhost\"\nport = {}\nuser = \"{}\"\npassword_env = \"PW\"\nca_file = \"{}\"\ntimeout = 10\n{extra_config}",
            d.pop3s_port,
            user.name,
            ca_file.display()
        ),
    )
    .unwrap();
    Pop3::new()
        .args([Path::new("--config"), &config])
        .env("PW", &user.password)
        .env("SSL_CERT_FILE", system_bundle)
        .args(["stat", "--json"])
        .run()
}

#[test]
fn a_ca_file_that_does_not_vouch_falls_back_to_the_system_roots() {
    let dir = tempfile::tempdir().unwrap();
    let unrelated = unrelated_ca(dir.path(), "unrelated");
    let outcome = stat(&unrelated, &dovecot().ca_file, "").expect_code(0);
    assert!(
        outcome.stdout.starts_with("{\"messages\":0,"),
        "{}",
        outcome.stdout
    );
}

/// The system's roots are not read when the CA file vouches for the server: `SSL_CERT_FILE`
/// names a FIFO that nobody writes, whose opening blocks, so reading it would hang the run.
#[test]
fn system_roots_are_not_read_when_the_ca_file_vouches() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("system-bundle.fifo");
    let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let d = dovecot();
    let user = d.add_user(&[]);
    let (mut command, _home) = Pop3::new()
        .server("localhost", d.pop3s_port, Some(&d.ca_file))
        .login(&user.name, &user.password)
        .env("SSL_CERT_FILE", &fifo)
        .args(["--timeout", "10", "stat"])
        .into_command();
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (code, stderr) = finish(child, Duration::from_secs(30));
    // Before: the system bundle was read on every run, and the open of the FIFO never returned.
    assert!(code.is_some(), "pop3 hung opening SSL_CERT_FILE");
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn the_ca_file_alone_suffices_with_an_empty_system_store() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    stat(&dovecot().ca_file, &empty, "").expect_code(0);
}

#[test]
fn neither_the_ca_file_nor_the_system_roots_vouching_shows_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let unrelated = unrelated_ca(dir.path(), "unrelated");
    let other = unrelated_ca(dir.path(), "other");
    let outcome = stat(&unrelated, &other, "").expect_code(76);
    let line = outcome.stderr.trim_end();
    assert_eq!(line.lines().count(), 1, "one line: {line}");
    for part in [
        "not signed by a trusted authority",
        "the server presented ",
        "SHA-256 ",
        "tls_fingerprint = \"",
    ] {
        assert!(line.contains(part), "{part:?} missing: {line}");
    }
}

/// The CA file found the chain but the name is wrong: that is the error shown, not the
/// system roots' "not signed by a trusted authority".
#[test]
fn a_wrong_name_under_the_ca_file_is_reported_over_the_system_roots_unknown_issuer() {
    let dir = tempfile::tempdir().unwrap();
    let other = unrelated_ca(dir.path(), "other");
    let outcome = stat(
        &dovecot().ca_file,
        &other,
        "tls_server_name = \"mail.example.org\"\n",
    )
    .expect_code(76);
    assert!(
        outcome.stderr.contains("not valid for this host name")
            && outcome.stderr.contains("SHA-256 "),
        "{}",
        outcome.stderr
    );
}
