//! `proxy = "socks5://..."` through a real SOCKS5 server (microsocks, started here on a free
//! loopback port) to the real Dovecot: TLS and certificate checks run end to end through it.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::cli::Pop3;
use crate::support::dovecot::{Dovecot, dovecot};

/// A microsocks process on 127.0.0.1, killed on drop.
struct Socks {
    child: Child,
    port: u16,
}

impl Socks {
    /// Starts microsocks; with `credentials`, it demands RFC 1929 user/password.
    fn start(credentials: Option<(&str, &str)>) -> Socks {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut command = Command::new("microsocks");
        command.args(["-i", "127.0.0.1", "-p", &port.to_string()]);
        if let Some((user, password)) = credentials {
            command.args(["-u", user, "-P", password]);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("microsocks is installed (scripts/test installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "microsocks did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Socks { child, port }
    }
}

impl Drop for Socks {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn user() -> crate::support::dovecot::User {
    dovecot().add_user(&[&Dovecot::fixture("01-plain.eml")])
}

#[test]
fn proxy_socks5h_carries_implicit_tls_end_to_end() {
    let socks = Socks::start(None);
    let user = user();
    let d = dovecot();
    // socks5h: the proxy resolves "localhost"; the certificate is still checked against it.
    let outcome = Pop3::new()
        .server("localhost", d.pop3s_port, Some(&d.ca_file))
        .login(&user.name, &user.password)
        .args(["--proxy", &format!("socks5h://127.0.0.1:{}", socks.port)])
        .args(["stat"])
        .run()
        .expect_code(0);
    assert!(
        outcome.stdout.starts_with("1 message"),
        "{}",
        outcome.stdout
    );
    // Trial 2: login-check showed `Connected: <proxy address>` without saying it was the proxy.
    let outcome = Pop3::new()
        .server("localhost", d.pop3s_port, Some(&d.ca_file))
        .login(&user.name, &user.password)
        .args(["--proxy", &format!("socks5h://127.0.0.1:{}", socks.port)])
        .args(["login-check"])
        .run()
        .expect_code(0);
    let expected = format!(
        "Connected:    localhost:{} via proxy socks5h://127.0.0.1:{} (127.0.0.1:{})\n",
        d.pop3s_port, socks.port, socks.port
    );
    assert!(outcome.stdout.contains(&expected), "{}", outcome.stdout);
}

#[test]
fn proxy_socks5_with_password_and_the_config_key() {
    let socks = Socks::start(Some(("al", "s3cret")));
    let user = user();
    let d = dovecot();
    let run = |url: String| {
        Pop3::new()
            .server("localhost", d.pop3s_port, Some(&d.ca_file))
            .login(&user.name, &user.password)
            .args(["--proxy", &url, "list"])
            .run()
    };
    // The config key: an account that always goes through the proxy.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[accounts.tor]\nhost = \"localhost\"\nport = {}\nuser = \"{}\"\nca_file = \"{}\"\n\
             password_env = \"POP3_TEST_PASSWORD\"\nproxy = \"socks5://al:s3cret@127.0.0.1:{}\"\n",
            d.pop3s_port,
            user.name,
            d.ca_file.display(),
            socks.port
        ),
    )
    .unwrap();
    let outcome = Pop3::new()
        .args([std::path::Path::new("--config"), &config])
        .env("POP3_TEST_PASSWORD", &user.password)
        .args(["-a", "tor", "list"])
        .run()
        .expect_code(0);
    assert!(outcome.stdout.starts_with("1 "), "{}", outcome.stdout);
    // A wrong proxy password is a configuration error, and the password is never shown.
    let outcome = run(format!("socks5://al:wrong@127.0.0.1:{}", socks.port)).expect_code(78);
    assert!(
        outcome
            .stderr
            .contains("rejected the user name and password")
            && !outcome.stderr.contains("wrong"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn proxy_refused_connect_is_named_and_temporary() {
    let socks = Socks::start(None);
    // Nothing listens on this port: the proxy's CONNECT fails with "connection refused".
    let closed = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let outcome = Pop3::new()
        .server("127.0.0.1", closed, None)
        .login("nobody", "pw")
        .args(["--proxy", &format!("socks5://127.0.0.1:{}", socks.port)])
        .args(["stat"])
        .run()
        .expect_code(75);
    assert!(
        outcome
            .stderr
            .contains(&format!("could not connect to 127.0.0.1 port {closed}")),
        "{}",
        outcome.stderr
    );
}

#[test]
fn proxy_that_is_not_running_is_temporary_and_a_bad_url_is_a_usage_error() {
    let closed = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let d = dovecot();
    let outcome = Pop3::new()
        .server("localhost", d.pop3s_port, Some(&d.ca_file))
        .login("nobody", "pw")
        .args(["--proxy", &format!("socks5://127.0.0.1:{closed}"), "stat"])
        .run()
        .expect_code(75);
    assert!(
        outcome.stderr.contains("cannot reach proxy"),
        "{}",
        outcome.stderr
    );
    let outcome = Pop3::new()
        .server("localhost", d.pop3s_port, Some(&d.ca_file))
        .login("nobody", "pw")
        .args(["--proxy", "http://127.0.0.1:3128", "stat"])
        .run()
        .expect_code(64);
    assert!(
        outcome.stderr.contains("--proxy")
            && outcome.stderr.contains("only socks5:// and socks5h://"),
        "{}",
        outcome.stderr
    );
}
