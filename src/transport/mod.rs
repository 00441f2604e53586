//! TCP connections, implicit TLS and the STLS upgrade, with timeouts.
//!
//! TLS is rustls, trusting the system's roots (read from one bundle file, see
//! `certificates::system_certificates`) plus an optional CA file; with a CA file, the system's
//! roots are read only when it does not vouch for the server. The certificate and the host
//! name are always verified: there is no switch to turn that off. The handshake completes
//! before [`TlsConnector::handshake`] returns, so a certificate problem is reported as such,
//! not as a confusing read error later.

//!
//! [`certificates`] decides which certificates are trusted (roots, CA file, pin) and
//! summarises them for `login-check`.

mod certificates;

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use certificates::{
    Accept, ChainlessVerifier, ShowingVerifier, presented_certificate, read_certificates,
};
pub use certificates::{CertificateSummary, summarize_certificate};

/// TLS settings for unusual servers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// Pinned SHA-256 fingerprint of the server certificate.
    pub fingerprint: Option<[u8; 32]>,
    /// Accept TLS 1.3 only.
    pub tls13_only: bool,
    /// Client certificate and key files.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Name to verify the certificate against instead of the host.
    pub server_name: Option<String>,
}

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The host name did not resolve.
    #[error("cannot resolve host {host:?}")]
    Resolve {
        /// The host name.
        host: String,
        /// The resolver's error.
        source: io::Error,
    },
    /// No address of the host accepted a connection.
    #[error("cannot connect to {host} port {port}")]
    Connect {
        /// The host name.
        host: String,
        /// The port.
        port: u16,
        /// The last connection error.
        source: io::Error,
    },
    /// The CA file could not be read or holds no certificate.
    #[error("cannot use CA file {}: {reason}", path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The CA file could not be read at all (missing, unreadable).
    #[error("cannot read CA file {}: {source}", path.display())]
    CaFileUnreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The client certificate or key could not be used.
    #[error("cannot use client certificate {}: {reason}", path.display())]
    ClientCertificate {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Neither the system nor the configuration supplies a trusted certificate.
    #[error("no trusted root certificates: install the ca-certificates package or set ca_file")]
    NoRootCertificates,
    /// The host name is not usable for TLS verification.
    #[error("{host:?} is not a valid TLS server name")]
    ServerName {
        /// The host name.
        host: String,
    },
    /// The TLS handshake failed (for example the certificate could not be verified).
    #[error(
        "TLS handshake with {host} failed: {}{}",
        describe_tls_error(error),
        presented.as_deref().map(describe_presented).unwrap_or_default()
    )]
    Tls {
        /// The host name.
        host: String,
        /// The rustls error (described in the message, so not a `source`).
        error: rustls::Error,
        /// The certificate the server presented, when it was refused: shown so the user can
        /// check it out of band and pin it (it is never trusted for this connection).
        presented: Option<Box<CertificateSummary>>,
    },
    /// A plaintext POP3 greeting arrived where a TLS handshake was expected.
    #[error(
        "{host} port {port} answered in plain text ({greeting:?}) where a TLS handshake was expected: this port speaks plain POP3: use --tls starttls (tls = \"starttls\"), or the implicit-TLS port (usually 995)"
    )]
    PlaintextPort {
        /// The host name.
        host: String,
        /// The port.
        port: u16,
        /// The start of what the server sent (`+OK` or `-ERR`).
        greeting: String,
    },
    /// Something other than TLS (and other than a POP3 greeting: that is
    /// [`TransportError::PlaintextPort`]) answered the TLS handshake: an SSH or HTTP server, say.
    #[error(
        "the server at {host}:{port} did not answer with TLS{}: check the port (the implicit-TLS POP3 port is usually 995)",
        match sent { Some(sent) => format!("; it sent `{sent}`"), None => String::new() }
    )]
    NotTls {
        /// The host name.
        host: String,
        /// The port.
        port: u16,
        /// The start of what the server sent, when it was printable text.
        sent: Option<String>,
    },
    /// The connection timed out.
    #[error("timed out talking to {host}")]
    Timeout {
        /// The host name.
        host: String,
    },
    /// The connection broke during the handshake.
    #[error("connection to {host} failed during the TLS handshake")]
    Io {
        /// The host name.
        host: String,
        /// The I/O error.
        source: io::Error,
    },
}

/// The refused certificate and what to do with it, after the reason: the same summary as
/// `login-check` prints, the fingerprint in the form `tls_fingerprint` takes.
fn describe_presented(presented: &CertificateSummary) -> String {
    format!(
        "; the server presented {} (issued by {}, valid from {} until {}, SHA-256 {}); {}",
        presented.subject,
        presented.issuer,
        presented.not_before,
        presented.not_after,
        presented.sha256,
        pin_advice(&presented.sha256)
    )
}

/// How to trust one refused certificate: pin it, but only once checked out of band (whoever
/// sits in the middle would present their own certificate over this very connection).
pub fn pin_advice(sha256: &str) -> String {
    format!(
        "only after checking this fingerprint with the server's operator (not over this \
         connection), tls_fingerprint = \"{sha256}\" in the account accepts this certificate alone"
    )
}

fn describe_tls_error(error: &rustls::Error) -> String {
    use rustls::{CertificateError, Error};
    match error {
        Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "the server's certificate is not signed by a trusted authority \
             (if the server uses a private CA, set ca_file)"
                .into()
        }
        Error::InvalidCertificate(CertificateError::NotValidForName)
        | Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. }) => {
            "the server's certificate is not valid for this host name \
             (connect using a name the certificate lists)"
                .into()
        }
        Error::InvalidCertificate(CertificateError::Other(other)) => other.0.to_string(),
        Error::InvalidCertificate(CertificateError::Expired)
        | Error::InvalidCertificate(CertificateError::ExpiredContext { .. }) => {
            "the server's certificate has expired".into()
        }
        other => other.to_string(),
    }
}

/// Opens a TCP connection to `host:port`, trying every address (IPv6 and IPv4) in the order the
/// resolver gives them, each within `timeout`, and sets `timeout` for every read and write.
pub fn connect_tcp(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, TransportError> {
    let addresses: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|source| TransportError::Resolve {
            host: host.to_owned(),
            source,
        })?
        .collect();
    let mut last_error = io::Error::new(io::ErrorKind::NotFound, "no address found");
    for address in addresses {
        match TcpStream::connect_timeout(&address, timeout) {
            Ok(stream) => {
                let configure = || -> io::Result<()> {
                    stream.set_read_timeout(Some(timeout))?;
                    stream.set_write_timeout(Some(timeout))?;
                    // Commands are small and latency-bound; don't let Nagle hold them back.
                    stream.set_nodelay(true)
                };
                configure().map_err(|source| TransportError::Connect {
                    host: host.to_owned(),
                    port,
                    source,
                })?;
                return Ok(stream);
            }
            Err(e) => last_error = e,
        }
    }
    if matches!(
        last_error.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    ) {
        return Err(TransportError::Timeout {
            host: host.to_owned(),
        });
    }
    Err(TransportError::Connect {
        host: host.to_owned(),
        port,
        source: last_error,
    })
}

/// Makes TLS client connections with one shared configuration.
#[derive(Clone)]
pub struct TlsConnector {
    config: Arc<ClientConfig>,
    server_name: Option<String>,
}

impl TlsConnector {
    /// Trusts the system's root certificates plus those in `ca_file` — or, when `options` pins
    /// a fingerprint, exactly the certificate with that fingerprint.
    pub fn new(
        ca_file: Option<&Path>,
        options: &TlsOptions,
    ) -> Result<TlsConnector, TransportError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions: &[&rustls::SupportedProtocolVersion] = if options.tls13_only {
            &[&rustls::version::TLS13]
        } else {
            rustls::DEFAULT_VERSIONS
        };
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .map_err(|error| TransportError::Tls {
                host: String::new(),
                error,
                presented: None,
            })?;
        let builder = match options.fingerprint {
            Some(fingerprint) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainlessVerifier {
                    accept: Accept::Pinned(fingerprint),
                    provider,
                })),
            // The usual verification, wrapped only so that a refused certificate can be shown.
            None => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ShowingVerifier::new(
                    ca_file, provider,
                )?)),
        };
        let config = match &options.client_cert {
            Some((cert, key)) => {
                let chain = read_certificates(cert).map_err(|e| match e {
                    TransportError::CaFile { path, reason } => {
                        TransportError::ClientCertificate { path, reason }
                    }
                    TransportError::CaFileUnreadable { path, source } => {
                        TransportError::ClientCertificate {
                            path,
                            reason: source.to_string(),
                        }
                    }
                    other => other,
                })?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                    TransportError::ClientCertificate {
                        path: key.clone(),
                        reason: e.to_string(),
                    }
                })?;
                builder.with_client_auth_cert(chain, key).map_err(|e| {
                    TransportError::ClientCertificate {
                        path: cert.clone(),
                        reason: e.to_string(),
                    }
                })?
            }
            None => builder.with_no_client_auth(),
        };
        Ok(TlsConnector {
            config: Arc::new(config),
            server_name: options.server_name.clone(),
        })
    }

    /// Performs the TLS handshake over `tcp`, verifying the certificate for `host`. A server
    /// that answers with a plaintext POP3 greeting is named as such, with `port`: the one
    /// asked for (the socket's peer is gone once the server hung up, and is the proxy's when
    /// there is one).
    pub fn handshake(
        &self,
        tcp: TcpStream,
        host: &str,
        port: u16,
    ) -> Result<TlsStream, TransportError> {
        let name = self.server_name.as_deref().unwrap_or(host);
        let server_name =
            ServerName::try_from(name.to_owned()).map_err(|_| TransportError::ServerName {
                host: name.to_owned(),
            })?;
        let connection =
            ClientConnection::new(self.config.clone(), server_name).map_err(|error| {
                TransportError::Tls {
                    host: host.to_owned(),
                    error,
                    presented: None,
                }
            })?;
        let mut stream = StreamOwned::new(connection, tcp);
        let mut first = Vec::new();
        while stream.conn.is_handshaking() {
            let mut io = FirstBytes {
                tcp: &mut stream.sock,
                first: &mut first,
            };
            if let Err(error) = stream.conn.complete_io(&mut io) {
                if first.starts_with(b"+OK") || first.starts_with(b"-ERR") {
                    let shown = first.split(|&b| b == b'\r' || b == b'\n').next();
                    return Err(TransportError::PlaintextPort {
                        host: host.to_owned(),
                        port,
                        greeting: String::from_utf8_lossy(shown.unwrap_or_default())
                            .chars()
                            .map(|c| if c.is_control() { '?' } else { c })
                            .collect(),
                    });
                }
                if !first.is_empty() && !looks_like_tls(&first) {
                    return Err(TransportError::NotTls {
                        host: host.to_owned(),
                        port,
                        sent: printable_start(&first),
                    });
                }
                return Err(handshake_error(host, error));
            }
        }
        Ok(TlsStream(stream))
    }
}

/// Whether `first` (the server's first bytes) can be a TLS record: its content type is one of
/// TLS's (RFC 8446 §5.1: 20 to 23; a server's first record is a handshake or an alert).
fn looks_like_tls(first: &[u8]) -> bool {
    matches!(first.first(), Some(20..=23))
}

/// The first line of `first` when it is printable ASCII text (an SSH banner, an HTTP status
/// line), to name what answered; `None` for binary data.
fn printable_start(first: &[u8]) -> Option<String> {
    let line = first.split(|&b| b == b'\r' || b == b'\n').next()?;
    if line.is_empty() || !line.iter().all(|b| (0x20..0x7f).contains(b)) {
        return None;
    }
    let text = String::from_utf8_lossy(line).into_owned();
    Some(if line.len() == first.len() && first.len() >= FIRST_BYTES {
        format!("{text}…")
    } else {
        text
    })
}

/// How many of the server's first bytes are kept to recognise a plaintext greeting.
const FIRST_BYTES: usize = 32;

/// The socket during the handshake, remembering the first bytes the server sent: a POP3
/// greeting (`+OK`) there means the port speaks plain POP3, not TLS.
struct FirstBytes<'a> {
    tcp: &'a mut TcpStream,
    first: &'a mut Vec<u8>,
}

impl Read for FirstBytes<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.tcp.read(buf)?;
        let room = FIRST_BYTES.saturating_sub(self.first.len()).min(n);
        self.first.extend_from_slice(&buf[..room]);
        Ok(n)
    }
}

impl Write for FirstBytes<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tcp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

/// Whether the server at the other end of `tcp` (a fresh connection to `host`, with its
/// timeouts set) answers a TLS handshake: the test that tells an implicit-TLS port (silent until
/// the client speaks TLS) from a slow plain server. The probe verifies no certificate (it only
/// asks whether TLS is spoken), sends nothing but the handshake and is closed at once.
pub fn speaks_tls(tcp: TcpStream, host: &str) -> bool {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let Ok(builder) = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(rustls::DEFAULT_VERSIONS)
    else {
        return false;
    };
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ChainlessVerifier {
            accept: Accept::AnyForProbe,
            provider,
        }))
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_owned())
        .unwrap_or_else(|_| ServerName::try_from("pop3.invalid").expect("a valid name"));
    let Ok(connection) = ClientConnection::new(Arc::new(config), name) else {
        return false;
    };
    let mut stream = StreamOwned::new(connection, tcp);
    while stream.conn.is_handshaking() {
        if let Err(error) = stream.conn.complete_io(&mut stream.sock) {
            // A TLS alert (no common cipher, a client certificate wanted...) is TLS too.
            return error
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .is_some_and(|e| matches!(e, rustls::Error::AlertReceived(_)));
        }
    }
    true
}

fn handshake_error(host: &str, error: io::Error) -> TransportError {
    let host = host.to_owned();
    if let Some(tls) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        let (error, presented) = presented_certificate(tls);
        return TransportError::Tls {
            host,
            error,
            presented,
        };
    }
    match error.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => TransportError::Timeout { host },
        _ => TransportError::Io {
            host,
            source: error,
        },
    }
}

pub struct TlsStream(StreamOwned<ClientConnection, TcpStream>);

/// What a TLS connection negotiated, for `login-check`.
#[derive(Debug, Clone)]
pub struct TlsInfo {
    /// e.g. `TLSv1_3`.
    pub version: String,
    /// e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher_suite: String,
    /// The server's end-entity certificate.
    pub certificate: Option<CertificateDer<'static>>,
}

impl TlsStream {
    /// What the handshake negotiated.
    pub fn info(&self) -> TlsInfo {
        let conn = &self.0.conn;
        TlsInfo {
            version: conn
                .protocol_version()
                .map(|v| format!("{v:?}"))
                .unwrap_or_default(),
            cipher_suite: conn
                .negotiated_cipher_suite()
                .map(|s| format!("{:?}", s.suite()))
                .unwrap_or_default(),
            certificate: conn
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|c| c.clone().into_owned()),
        }
    }
}

/// A connection to the server: plain TCP or TLS.
pub enum Stream {
    /// Unencrypted (before STLS, or `tls = "none"`).
    Plain(TcpStream),
    /// Encrypted and verified.
    Tls(Box<TlsStream>),
}

impl Stream {
    /// The TCP connection underneath: a clone of it can shut the connection down from another
    /// thread, which wakes a read blocked on a stalled server (`fetch-all`'s stop deadline).
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.0.get_ref(),
        }
    }

    /// Whether the server has sent anything (or closed the connection) that is waiting to be
    /// read, without waiting for it: a peek at the socket, so TLS records count too.
    pub fn input_pending(&self) -> bool {
        let tcp = self.tcp();
        if tcp.set_nonblocking(true).is_err() {
            return false;
        }
        let pending = match tcp.peek(&mut [0u8; 1]) {
            Ok(_) => true, // data, or 0 for a closed connection
            Err(e) => e.kind() != io::ErrorKind::WouldBlock,
        };
        let _ = tcp.set_nonblocking(false);
        pending
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.0.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.0.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.0.flush(),
        }
    }
}
