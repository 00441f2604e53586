//! SOCKS5 proxies (RFC 1928, with RFC 1929 user/password authentication), for networks that
//! only let traffic out through a proxy, and for Tor.
//!
//! `socks5://` resolves the mail server's name here and asks the proxy to connect to the
//! address; `socks5h://` hands the name to the proxy, so that no DNS query leaves this machine
//! (what Tor users want). Either way the proxy only relays bytes: TLS and its certificate checks
//! run end to end between `pop3` and the mail server.
//!
//! The wire format lives in [`encode_greeting`], [`encode_connect`] and the reply parsers, which
//! do no I/O; [`connect`] drives them over a `TcpStream`.

use std::io::{self, Read, Write};
use std::net::{IpAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::secret::Secret;
use crate::transport::{self, TransportError};

/// A configured proxy: `socks5://[user:password@]host[:port]` or `socks5h://...`.
#[derive(Clone)]
pub struct Proxy {
    /// The proxy's host name or address.
    pub host: String,
    /// The proxy's port (1080 unless given).
    pub port: u16,
    /// `socks5h`: the proxy resolves the mail server's name.
    pub remote_dns: bool,
    /// RFC 1929 user name and password, when the URL carries them.
    pub credentials: Option<(String, Secret)>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

/// Shows the proxy as a URL, with the password hidden.
impl std::fmt::Display for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.remote_dns { "socks5h" } else { "socks5" };
        write!(f, "{scheme}://")?;
        if let Some((user, _)) = &self.credentials {
            write!(f, "{user}:***@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// The usual SOCKS port.
const DEFAULT_PORT: u16 = 1080;

/// Why a proxy URL cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyUrlError {
    /// Not `socks5://` or `socks5h://`.
    #[error("proxy {0:?}: only socks5:// and socks5h:// proxies are supported")]
    Scheme(String),
    /// The host or port part is unusable.
    #[error("proxy {0:?}: expected socks5://host:port or socks5h://host:port")]
    Address(String),
    /// RFC 1929 limits user names and passwords to 255 octets.
    #[error("proxy {0:?}: the user name and password must each be 1 to 255 octets")]
    Credentials(String),
}

impl std::str::FromStr for Proxy {
    type Err = ProxyUrlError;

    fn from_str(url: &str) -> Result<Proxy, ProxyUrlError> {
        // Error messages show the URL without any password.
        let shown = || match url.rsplit_once('@') {
            Some((_, rest)) => {
                format!("{}***@{rest}", &url[..url.find("://").map_or(0, |i| i + 3)])
            }
            None => url.to_owned(),
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| ProxyUrlError::Scheme(shown()))?;
        let remote_dns = match scheme.to_ascii_lowercase().as_str() {
            "socks5" => false,
            "socks5h" => true,
            _ => return Err(ProxyUrlError::Scheme(shown())),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (credentials, address) = match rest.rsplit_once('@') {
            Some((userinfo, address)) => {
                let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                let valid = |s: &str| (1..=255).contains(&s.len());
                if !valid(user) || !valid(password) {
                    return Err(ProxyUrlError::Credentials(shown()));
                }
                (
                    Some((user.to_owned(), Secret::new(password.to_owned()))),
                    address,
                )
            }
            None => (None, rest),
        };
        let bad_address = || ProxyUrlError::Address(shown());
        let (host, port) = if let Some(bracketed) = address.strip_prefix('[') {
            let (host, after) = bracketed.split_once(']').ok_or_else(bad_address)?;
            match after {
                "" => (host, None),
                _ => (host, Some(after.strip_prefix(':').ok_or_else(bad_address)?)),
            }
        } else {
            match address.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (address, None),
            }
        };
        let port = match port {
            None => DEFAULT_PORT,
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(bad_address)?,
        };
        if host.is_empty() || host.contains(['/', '?', '#', ' ']) {
            return Err(bad_address());
        }
        Ok(Proxy {
            host: host.to_owned(),
            port,
            remote_dns,
            credentials,
        })
    }
}

/// Why the proxy could not connect us.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The proxy itself could not be reached.
    #[error("cannot reach proxy {proxy}")]
    Unreachable {
        /// The proxy.
        proxy: String,
        /// What went wrong.
        source: TransportError,
    },
    /// The proxy broke the SOCKS5 protocol (or is not a SOCKS5 proxy).
    #[error("proxy {proxy} did not answer as a SOCKS5 proxy: {detail}")]
    Protocol {
        /// The proxy.
        proxy: String,
        /// What was wrong.
        detail: String,
    },
    /// The proxy wants an authentication method we do not have.
    #[error(
        "proxy {proxy} requires authentication this program cannot do; put user:password@ in the proxy URL if it takes a password"
    )]
    NoAcceptableMethod {
        /// The proxy.
        proxy: String,
    },
    /// The proxy rejected the user name and password.
    #[error("proxy {proxy} rejected the user name and password")]
    AuthenticationFailed {
        /// The proxy.
        proxy: String,
    },
    /// The proxy refused or failed to connect to the mail server.
    #[error("proxy {proxy} could not connect to {host} port {port}: {reason}")]
    Refused {
        /// The proxy.
        proxy: String,
        /// The mail server.
        host: String,
        /// Its port.
        port: u16,
        /// The proxy's reason (RFC 1928 reply code).
        reason: &'static str,
        /// The reply code itself.
        code: u8,
    },
    /// The mail server's name did not resolve (here, for `socks5://`).
    #[error(transparent)]
    Resolve(TransportError),
    /// Talking to the proxy timed out or broke.
    #[error("talking to proxy {proxy}")]
    Io {
        /// The proxy.
        proxy: String,
        /// The I/O error.
        source: io::Error,
    },
}

impl ProxyError {
    /// Whether trying again later may help (a refused CONNECT may be a temporary outage).
    pub fn is_temporary(&self) -> bool {
        match self {
            ProxyError::Unreachable { .. } | ProxyError::Io { .. } => true,
            // general failure, network/host unreachable, connection refused, TTL expired
            ProxyError::Refused { code, .. } => matches!(code, 1 | 3 | 4 | 5 | 6),
            _ => false,
        }
    }
}

/// Where the proxy should connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination<'a> {
    /// An address resolved here.
    Address(IpAddr),
    /// A name for the proxy to resolve (at most 255 octets).
    Name(&'a str),
}

/// The method-selection message: "no authentication", plus user/password when we have one.
pub fn encode_greeting(with_password: bool) -> Vec<u8> {
    if with_password {
        vec![5, 2, 0, 2]
    } else {
        vec![5, 1, 0]
    }
}

/// What the proxy chose in answer to the greeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Go straight to the request.
    NoAuthentication,
    /// RFC 1929 user/password sub-negotiation first.
    Password,
}

/// Parses the 2-octet method-selection reply. `Ok(None)`: no acceptable method (0xFF).
pub fn parse_method(reply: [u8; 2], offered_password: bool) -> Result<Option<Method>, String> {
    match reply {
        [5, 0] => Ok(Some(Method::NoAuthentication)),
        [5, 2] if offered_password => Ok(Some(Method::Password)),
        [5, 0xff] => Ok(None),
        [5, other] => Err(format!("it chose method {other}, which was not offered")),
        [version, _] => Err(format!("version {version} instead of 5")),
    }
}

/// The RFC 1929 user/password request. The caller wipes it after sending.
pub fn encode_password(user: &str, password: &str) -> zeroize::Zeroizing<Vec<u8>> {
    let mut request = zeroize::Zeroizing::new(Vec::with_capacity(3 + user.len() + password.len()));
    request.push(1);
    request.push(user.len().min(255) as u8);
    request.extend_from_slice(&user.as_bytes()[..user.len().min(255)]);
    request.push(password.len().min(255) as u8);
    request.extend_from_slice(&password.as_bytes()[..password.len().min(255)]);
    request
}

/// The CONNECT request for `destination:port`.
pub fn encode_connect(destination: &Destination<'_>, port: u16) -> Vec<u8> {
    let mut request = vec![5, 1, 0];
    match destination {
        Destination::Address(IpAddr::V4(v4)) => {
            request.push(1);
            request.extend_from_slice(&v4.octets());
        }
        Destination::Address(IpAddr::V6(v6)) => {
            request.push(4);
            request.extend_from_slice(&v6.octets());
        }
        Destination::Name(name) => {
            let name = &name.as_bytes()[..name.len().min(255)];
            request.push(3);
            request.push(name.len() as u8);
            request.extend_from_slice(name);
        }
    }
    request.extend_from_slice(&port.to_be_bytes());
    request
}

/// The fixed head of a CONNECT reply: version, reply code, reserved, address type.
/// Returns the reply code and how many octets of bound address and port follow; for a domain
/// name the length octet is part of what follows, so the caller reads one octet first.
pub fn parse_reply_head(head: [u8; 4]) -> Result<(u8, BoundAddress), String> {
    let [version, code, _reserved, address_type] = head;
    if version != 5 {
        return Err(format!("version {version} instead of 5 in its reply"));
    }
    let bound = match address_type {
        1 => BoundAddress::Fixed(4 + 2),
        4 => BoundAddress::Fixed(16 + 2),
        3 => BoundAddress::Name,
        other => return Err(format!("address type {other} in its reply")),
    };
    Ok((code, bound))
}

/// The size of the bound address in a CONNECT reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoundAddress {
    /// This many octets (address and port).
    Fixed(usize),
    /// A length octet, then that many octets of name, then 2 of port.
    Name,
}

/// RFC 1928 §6 reply codes in words.
pub fn reply_reason(code: u8) -> &'static str {
    match code {
        1 => "general SOCKS server failure",
        2 => "connection not allowed by the proxy's rules",
        3 => "network unreachable",
        4 => "host unreachable",
        5 => "connection refused",
        6 => "TTL expired",
        7 => "command not supported",
        8 => "address type not supported",
        _ => "unknown reply code",
    }
}

/// Connects to `host:port` through `proxy`, with `timeout` for each step. The returned stream
/// carries the mail session as if connected directly (read and write timeouts set).
pub fn connect(
    proxy: &Proxy,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<TcpStream, ProxyError> {
    let shown = proxy.to_string();
    let destination_name;
    let destination = if proxy.remote_dns {
        if host.len() > 255 {
            return Err(ProxyError::Protocol {
                proxy: shown,
                detail: "the mail server's name is longer than SOCKS5 allows".into(),
            });
        }
        Destination::Name(host)
    } else if let Ok(address) = host.parse::<IpAddr>() {
        Destination::Address(address)
    } else {
        destination_name = (host, port)
            .to_socket_addrs()
            .map_err(|source| {
                ProxyError::Resolve(TransportError::Resolve {
                    host: host.to_owned(),
                    source,
                })
            })?
            .next()
            .ok_or_else(|| {
                ProxyError::Resolve(TransportError::Resolve {
                    host: host.to_owned(),
                    source: io::Error::new(io::ErrorKind::NotFound, "no address"),
                })
            })?;
        Destination::Address(destination_name.ip())
    };
    let mut stream =
        transport::connect_tcp(&proxy.host, proxy.port, timeout).map_err(|source| {
            ProxyError::Unreachable {
                proxy: shown.clone(),
                source,
            }
        })?;
    handshake(&mut stream, proxy, &destination, host, port).map_err(|error| match error {
        Step::Io(source) => ProxyError::Io {
            proxy: shown.clone(),
            source,
        },
        Step::Failed(error) => error,
    })?;
    Ok(stream)
}

/// A handshake step's failure: I/O (wrapped by the caller) or a verdict.
enum Step {
    Io(io::Error),
    Failed(ProxyError),
}

impl From<io::Error> for Step {
    fn from(error: io::Error) -> Step {
        Step::Io(error)
    }
}

fn handshake(
    stream: &mut (impl Read + Write),
    proxy: &Proxy,
    destination: &Destination<'_>,
    host: &str,
    port: u16,
) -> Result<(), Step> {
    let shown = || proxy.to_string();
    let protocol = |detail: String| {
        Step::Failed(ProxyError::Protocol {
            proxy: shown(),
            detail,
        })
    };
    let with_password = proxy.credentials.is_some();
    stream.write_all(&encode_greeting(with_password))?;
    let mut choice = [0; 2];
    stream.read_exact(&mut choice)?;
    match parse_method(choice, with_password).map_err(protocol)? {
        None => {
            return Err(Step::Failed(ProxyError::NoAcceptableMethod {
                proxy: shown(),
            }));
        }
        Some(Method::NoAuthentication) => {}
        Some(Method::Password) => {
            let (user, password) = proxy.credentials.as_ref().expect("offered only with one");
            stream.write_all(&encode_password(user, password.expose()))?;
            let mut status = [0; 2];
            stream.read_exact(&mut status)?;
            if status[1] != 0 {
                return Err(Step::Failed(ProxyError::AuthenticationFailed {
                    proxy: shown(),
                }));
            }
        }
    }
    stream.write_all(&encode_connect(destination, port))?;
    let mut head = [0; 4];
    stream.read_exact(&mut head)?;
    let (code, bound) = parse_reply_head(head).map_err(protocol)?;
    if code != 0 {
        return Err(Step::Failed(ProxyError::Refused {
            proxy: shown(),
            host: host.to_owned(),
            port,
            reason: reply_reason(code),
            code,
        }));
    }
    // The bound address is of no use to a client; read it so the session starts clean.
    let length = match bound {
        BoundAddress::Fixed(length) => length,
        BoundAddress::Name => {
            let mut length = [0; 1];
            stream.read_exact(&mut length)?;
            usize::from(length[0]) + 2
        }
    };
    let mut rest = [0; 255 + 2];
    stream.read_exact(&mut rest[..length])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn parse(url: &str) -> Result<Proxy, ProxyUrlError> {
        url.parse()
    }

    #[test]
    fn urls() {
        let proxy = parse("socks5://127.0.0.1:9050").unwrap();
        assert_eq!(
            (proxy.host.as_str(), proxy.port, proxy.remote_dns),
            ("127.0.0.1", 9050, false)
        );
        let proxy = parse("socks5h://tor.local").unwrap();
        assert_eq!(
            (proxy.host.as_str(), proxy.port, proxy.remote_dns),
            ("tor.local", 1080, true)
        );
        let proxy = parse("SOCKS5H://[::1]:1081/").unwrap();
        assert_eq!((proxy.host.as_str(), proxy.port), ("::1", 1081));
        assert_eq!(proxy.to_string(), "socks5h://[::1]:1081");
        let proxy = parse("socks5://al:s3cret@proxy:1080").unwrap();
        let (user, password) = proxy.credentials.as_ref().unwrap();
        assert_eq!((user.as_str(), password.expose()), ("al", "s3cret"));
        assert_eq!(proxy.to_string(), "socks5://al:***@proxy:1080");
        assert_eq!(format!("{proxy:?}"), "socks5://al:***@proxy:1080");
    }

    #[test]
    fn bad_urls_are_refused_without_showing_the_password() {
        for url in [
            "http://proxy:8080",
            "socks4://proxy",
            "proxy:1080",
            "socks5://",
            "socks5://proxy:0",
            "socks5://proxy:99999",
            "socks5://proxy:port",
            "socks5://[::1",
            "socks5://[::1]x",
            "socks5://:s3cret@proxy",
        ] {
            let error = parse(url).unwrap_err().to_string();
            assert!(!error.contains("s3cret"), "{error}");
        }
        let error = parse("socks5://al:s3cret@pro xy").unwrap_err().to_string();
        assert!(
            !error.contains("s3cret") && error.contains("***"),
            "{error}"
        );
    }

    #[test]
    fn requests_are_byte_exact() {
        assert_eq!(encode_greeting(false), [5, 1, 0]);
        assert_eq!(encode_greeting(true), [5, 2, 0, 2]);
        assert_eq!(
            encode_connect(
                &Destination::Address(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))),
                995
            ),
            [5, 1, 0, 1, 10, 0, 0, 1, 0x03, 0xe3]
        );
        let v6 = encode_connect(&Destination::Address(IpAddr::V6(Ipv6Addr::LOCALHOST)), 110);
        assert_eq!(v6[..4], [5, 1, 0, 4]);
        assert_eq!(v6.len(), 4 + 16 + 2);
        assert_eq!(
            encode_connect(&Destination::Name("pop.example"), 995),
            b"\x05\x01\x00\x03\x0bpop.example\x03\xe3"
        );
        assert_eq!(&encode_password("al", "pw")[..], b"\x01\x02al\x02pw");
    }

    #[test]
    fn replies() {
        assert_eq!(
            parse_method([5, 0], false),
            Ok(Some(Method::NoAuthentication))
        );
        assert_eq!(parse_method([5, 2], true), Ok(Some(Method::Password)));
        assert_eq!(parse_method([5, 0xff], true), Ok(None));
        assert!(parse_method([5, 2], false).is_err());
        assert!(parse_method([4, 0], false).is_err());
        assert_eq!(
            parse_reply_head([5, 0, 0, 1]),
            Ok((0, BoundAddress::Fixed(6)))
        );
        assert_eq!(
            parse_reply_head([5, 5, 0, 4]),
            Ok((5, BoundAddress::Fixed(18)))
        );
        assert_eq!(parse_reply_head([5, 0, 0, 3]), Ok((0, BoundAddress::Name)));
        assert!(parse_reply_head([5, 0, 0, 9]).is_err());
        assert!(parse_reply_head([0x2b, 0x4f, 0x4b, 0x20]).is_err());
        assert_eq!(reply_reason(5), "connection refused");
        assert_eq!(reply_reason(200), "unknown reply code");
    }

    /// A byte stream that answers with canned proxy bytes and records what was sent.
    struct Canned {
        replies: io::Cursor<Vec<u8>>,
        sent: Vec<u8>,
    }

    impl Read for Canned {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.replies.read(buf)
        }
    }

    impl Write for Canned {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.sent.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn run(proxy: &str, replies: &[u8]) -> (Result<(), Step>, Vec<u8>, u64) {
        let proxy: Proxy = proxy.parse().unwrap();
        let mut stream = Canned {
            replies: io::Cursor::new(replies.to_vec()),
            sent: Vec::new(),
        };
        let result = handshake(
            &mut stream,
            &proxy,
            &Destination::Name("pop.example"),
            "pop.example",
            995,
        );
        let position = stream.replies.position();
        (result, stream.sent, position)
    }

    #[test]
    fn a_handshake_reads_exactly_the_reply_and_no_mail_byte() {
        // A domain-name bound address, then the server's greeting which must stay unread.
        let replies = b"\x05\x00\x05\x00\x00\x03\x04host\x00\x19+OK hello\r\n";
        let (result, sent, consumed) = run("socks5h://p", replies);
        assert!(result.is_ok());
        assert_eq!(consumed as usize, replies.len() - b"+OK hello\r\n".len());
        assert_eq!(&sent[..3], [5, 1, 0]);
    }

    #[test]
    fn password_authentication_and_its_refusal() {
        let (result, sent, _) = run(
            "socks5h://al:pw@p",
            b"\x05\x02\x01\x00\x05\x00\x00\x01\x7f\x00\x00\x01\x00\x19",
        );
        assert!(result.is_ok());
        assert!(sent.starts_with(b"\x05\x02\x00\x02\x01\x02al\x02pw\x05\x01\x00\x03"));
        let (result, _, _) = run("socks5h://al:pw@p", b"\x05\x02\x01\x01");
        assert!(matches!(
            result,
            Err(Step::Failed(ProxyError::AuthenticationFailed { .. }))
        ));
        let (result, _, _) = run("socks5h://p", b"\x05\xff");
        assert!(matches!(
            result,
            Err(Step::Failed(ProxyError::NoAcceptableMethod { .. }))
        ));
    }

    #[test]
    fn a_refused_connect_names_the_reason() {
        let (result, _, _) = run("socks5h://p", b"\x05\x00\x05\x05\x00\x01\0\0\0\0\0\0");
        let Err(Step::Failed(error)) = result else {
            panic!("expected a refusal")
        };
        assert!(error.is_temporary());
        assert_eq!(
            error.to_string(),
            "proxy socks5h://p:1080 could not connect to pop.example port 995: connection refused"
        );
    }

    #[test]
    fn a_truncated_or_foreign_reply_is_an_error_not_a_hang() {
        let (result, _, _) = run("socks5h://p", b"\x05");
        assert!(matches!(result, Err(Step::Io(_))));
        let (result, _, _) = run("socks5h://p", b"+OK POP3 ready\r\n");
        assert!(matches!(
            result,
            Err(Step::Failed(ProxyError::Protocol { .. }))
        ));
    }
}
