//! The TCP path to the server (direct, or through the account's SOCKS5 proxy) and, on a plain
//! connection, the wait for the greeting that tells a slow server from a port that speaks
//! implicit TLS. Separate because it probes with a second connection and works on raw sockets,
//! before the POP3 client exists.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::ConnectError;
use crate::config::Account;
use crate::transport;

/// How long a plain connection waits for the greeting before a second connection checks
/// whether the port expects TLS instead (a TLS port waits for our handshake in silence).
const TLS_PROBE_AFTER: Duration = Duration::from_secs(3);
/// The longest the probe's TLS handshake may take.
const TLS_PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Waits for the first byte of the greeting on a plain connection. When none comes within a
/// few seconds, a second connection tries a TLS handshake: if the port speaks TLS, that is the
/// mistake to name; if not, the server is merely slow and is waited for up to the timeout.
pub(super) fn await_greeting(tcp: &TcpStream, account: &Account) -> Result<(), ConnectError> {
    let started = Instant::now();
    let first_wait = TLS_PROBE_AFTER.min(account.timeout);
    let restore = |tcp: &TcpStream| {
        let _ = tcp.set_read_timeout(Some(account.timeout));
    };
    if byte_arrives(tcp, first_wait) {
        restore(tcp);
        return Ok(());
    }
    let remaining = account.timeout.saturating_sub(started.elapsed());
    if !remaining.is_zero() {
        let probe = remaining.min(TLS_PROBE_TIMEOUT);
        // The probe takes the same way as the session (through the proxy, if any): a direct
        // connection could leak the server's name or be blocked where only the proxy gets out.
        if let Ok(tcp) = open_tcp(account, probe)
            && transport::speaks_tls(tcp, &account.host)
        {
            return Err(ConnectError::ImplicitTlsPort {
                host: account.host.clone(),
                port: account.port,
            });
        }
    }
    let remaining = account.timeout.saturating_sub(started.elapsed());
    let arrived = !remaining.is_zero() && byte_arrives(tcp, remaining);
    restore(tcp);
    if arrived {
        Ok(())
    } else {
        Err(ConnectError::NoGreeting {
            host: account.host.clone(),
            port: account.port,
        })
    }
}

/// Whether a byte (or the end of the stream, or an error, which the client then reports) can
/// be read within `wait`; nothing is consumed.
fn byte_arrives(tcp: &TcpStream, wait: Duration) -> bool {
    if tcp.set_read_timeout(Some(wait)).is_err() {
        return true;
    }
    loop {
        match tcp.peek(&mut [0u8; 1]) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            _ => return true,
        }
    }
}

/// A TCP connection to the account's server, through its proxy if it has one, with `timeout`
/// for connecting and for every read and write.
pub(super) fn open_tcp(account: &Account, timeout: Duration) -> Result<TcpStream, ConnectError> {
    Ok(match &account.proxy {
        Some(proxy) => crate::proxy::connect(proxy, &account.host, account.port, timeout)?,
        None => transport::connect_tcp(&account.host, account.port, timeout)?,
    })
}
