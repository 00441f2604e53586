//! Reaching the delivery server: the [`Options`] of a connection, the [`Stream`] (TCP or a Unix
//! socket) and opening it with timeouts. Separate from the dialogue, which runs over any
//! `Read + Write` stream ([`Deliverer::start`]).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::identity::client_name;
use super::settings::{Endpoint, Target};
use super::{Deliverer, DeliveryError, WINDOW};

/// How to talk to the server, besides where.
#[derive(Debug, Clone)]
pub struct Options {
    /// For connecting and for every read and write.
    pub timeout: Duration,
    /// Use PIPELINING when the server offers it (`false` forces one round trip per command).
    pub pipelining: bool,
    /// How many messages may be sent and still wait for their final answer when pipelining
    /// ([`WINDOW`] by default; 0 waits for each message's answer before the next is sent).
    /// With CHUNKING the whole message goes out behind its envelope (`BDAT n LAST`); without
    /// it, the next envelope goes out before the previous message's final answer is read.
    pub window: usize,
    /// Use CHUNKING (`BDAT`) when the server offers it (`false`: DATA, for tests and for a
    /// server whose CHUNKING is broken).
    pub chunking: bool,
    /// The name given in LHLO/EHLO/HELO.
    pub client_name: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout: Duration::from_secs(60),
            pipelining: true,
            window: WINDOW,
            chunking: true,
            client_name: client_name(),
        }
    }
}

/// A stream to the server: TCP or a Unix socket.
#[derive(Debug)]
pub enum Stream {
    /// `host:port`.
    Tcp(TcpStream),
    /// `unix:/path`.
    Unix(UnixStream),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Unix(s) => s.flush(),
        }
    }
}

/// Opens a connection to `endpoint` with `timeout` for connecting, reading and writing.
pub(super) fn open(endpoint: &Endpoint, timeout: Duration) -> io::Result<Stream> {
    match endpoint {
        Endpoint::Tcp { host, port } => {
            let stream = crate::transport::connect_tcp(host, *port, timeout)
                .map_err(|e| io::Error::other(e.to_string()))?;
            stream.set_nodelay(true)?;
            Ok(Stream::Tcp(stream))
        }
        Endpoint::Unix(path) => {
            let stream = UnixStream::connect(path)?;
            stream.set_read_timeout(Some(timeout))?;
            stream.set_write_timeout(Some(timeout))?;
            Ok(Stream::Unix(stream))
        }
    }
}

impl Deliverer<Stream> {
    /// Connects to `target` and greets it.
    pub fn connect(target: &Target, options: &Options) -> Result<Deliverer<Stream>, DeliveryError> {
        let stream =
            open(&target.endpoint, options.timeout).map_err(|source| DeliveryError::Connect {
                protocol: target.protocol,
                endpoint: target.endpoint.clone(),
                source,
            })?;
        Deliverer::start(stream, target.protocol, options)
    }
}
