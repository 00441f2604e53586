//! Listings: the scan listing (`LIST`), the unique-id listing (`UIDL`) and the capability list
//! (`CAPA`), read line by line under limits. Separate because these are the only replies the
//! client collects into memory rather than streaming to a sink, so their bounds live here,
//! where a hostile server's endless listing is cut off.

use std::io::{Read, Write};

use super::Session;
use super::connection::{Connection, Direction};
use crate::pop3::command::Command;
use crate::pop3::multiline::{Line, unstuff_line};
use crate::pop3::response;
use crate::pop3::{Capabilities, Error, Result, ScanListing, UniqueIdListing};

/// Lines of listings and capabilities are short; a generous bound keeps a hostile server from
/// growing one without limit.
const MAX_LISTING_LINE: usize = 4096;

/// Bounds on a listing (`LIST`, `UIDL`, `CAPA`): nothing the server sends may make the client
/// hold memory or loop without limit, and an endless listing must end in an error rather than
/// in a process that grows until the system kills it (read timeouts never fire while data keeps
/// flowing). The limits are far beyond any real maildrop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ListingLimits {
    /// What the listing is called in the error message.
    what: &'static str,
    /// At most this many data lines.
    lines: usize,
    /// At most this many octets, line endings included.
    octets: u64,
}

/// Scan listings: a million messages, 64 MiB of listing text. No real maildrop comes near
/// (servers take minutes just to list a hundred thousand), and the parsed listing then stays
/// near 100 MiB however hostile the server.
const SCAN_LISTING_LIMITS: ListingLimits = ListingLimits {
    what: "scan listing (LIST)",
    lines: 1_000_000,
    octets: 64 * 1024 * 1024,
};

/// Unique-id listings: as for scan listings.
const UNIQUE_ID_LISTING_LIMITS: ListingLimits = ListingLimits {
    what: "unique-id listing (UIDL)",
    ..SCAN_LISTING_LIMITS
};

/// A capability list (RFC 2449 §6) has a dozen lines; a thousand is already absurd.
const CAPABILITY_LIMITS: ListingLimits = ListingLimits {
    what: "capability list (CAPA)",
    lines: 1000,
    octets: 256 * 1024,
};

impl<S: Read + Write> Connection<S> {
    /// Reads the lines of a multi-line listing up to the terminator, within `limits`.
    fn read_listing(
        &mut self,
        limits: ListingLimits,
        mut each: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let mut lines = 0usize;
        let mut octets = 0u64;
        loop {
            let line = self.read_line(MAX_LISTING_LINE)?;
            lines += 1;
            // +2 for the line ending that read_line removed.
            octets += line.len() as u64 + 2;
            if lines > limits.lines || octets > limits.octets {
                return Err(Error::Protocol(format!(
                    "the server's {} goes on beyond {} lines or {} octets; giving up",
                    limits.what, limits.lines, limits.octets
                )));
            }
            match unstuff_line(&line) {
                Line::End => {
                    self.trace(Direction::Server, ".");
                    return Ok(());
                }
                Line::Data(data) => {
                    self.trace(Direction::Server, &String::from_utf8_lossy(data));
                    each(data)?;
                }
            }
        }
    }

    /// Asks for the capability list; a server without `CAPA` yields an empty list.
    pub(super) fn capa(&mut self) -> Result<Capabilities> {
        match self.command(Command::Capa) {
            Ok(_) => {
                let mut lines = Vec::new();
                self.read_listing(CAPABILITY_LIMITS, |line| {
                    lines.push(String::from_utf8_lossy(line).into_owned());
                    Ok(())
                })?;
                Ok(Capabilities::from_lines(lines))
            }
            // RFC 2449 §5: a server without CAPA answers -ERR; that only means "nothing known".
            Err(Error::Server { .. }) => Ok(Capabilities::default()),
            Err(e) => Err(e),
        }
    }
}

impl<S: Read + Write> Session<S> {
    /// Asks for the capability list again: some servers announce more after login.
    pub(crate) fn capa(&mut self) -> Result<Capabilities> {
        self.connection.capa()
    }

    /// `LIST`: the scan listing of every message.
    pub(crate) fn list(&mut self) -> Result<Vec<ScanListing>> {
        self.connection.command(Command::List(None))?;
        let mut listings = Vec::new();
        self.connection.read_listing(SCAN_LISTING_LIMITS, |line| {
            // As in UIDL: an unreadable line costs only its message, never the listing.
            listings.extend(response::parse_scan_listing(line).ok());
            Ok(())
        })?;
        Ok(listings)
    }

    /// `UIDL`: the unique-id listing of every message.
    pub(crate) fn uidl(&mut self) -> Result<Vec<UniqueIdListing>> {
        self.connection.command(Command::Uidl(None))?;
        let mut listings = Vec::new();
        self.connection
            .read_listing(UNIQUE_ID_LISTING_LIMITS, |line| {
                // A line naming no message costs only the message it was meant for, which is
                // then missing from the listing (fetch-all reports it); never the whole listing.
                listings.extend(response::parse_unique_id_listing(line).ok());
                Ok(())
            })?;
        Ok(listings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pop3::Client;
    use crate::pop3::client::test_streams::*;

    #[test]
    fn capa_err_means_no_capabilities() {
        let server = b"+OK hi\r\n-ERR unknown command\r\n";
        let (mut client, _) = Client::connect(OneByteStream::new(server), None).unwrap();
        assert!(!client.capa().unwrap().is_known());
    }

    #[test]
    fn endless_listings_end_in_an_error_at_the_line_limit() {
        let mut server = Vec::new();
        for i in 1..=50 {
            server.extend_from_slice(format!("{i} 100\r\n").as_bytes());
        }
        let mut connection = Connection::new(OneByteStream::new(&server), None);
        let limits = ListingLimits {
            what: "scan listing (LIST)",
            lines: 10,
            octets: 1 << 20,
        };
        let mut seen = 0;
        let err = connection
            .read_listing(limits, |_| {
                seen += 1;
                Ok(())
            })
            .unwrap_err();
        assert_eq!(seen, 10, "no line beyond the limit is handed on");
        assert!(
            err.to_string()
                .contains("scan listing (LIST) goes on beyond 10 lines"),
            "{err}"
        );
    }

    #[test]
    fn endless_listings_end_in_an_error_at_the_octet_limit() {
        let mut server = Vec::new();
        let long = format!("1 {}1\r\n", "0".repeat(4000));
        for _ in 0..10 {
            server.extend_from_slice(long.as_bytes());
        }
        let mut connection = Connection::new(OneByteStream::new(&server), None);
        let limits = ListingLimits {
            what: "unique-id listing (UIDL)",
            lines: 1000,
            octets: 10_000,
        };
        let err = connection.read_listing(limits, |_| Ok(())).unwrap_err();
        assert!(matches!(err, Error::Protocol(_)), "{err}");
    }

    #[test]
    fn endless_capa_is_refused_not_collected() {
        let mut server = b"+OK hi\r\n+OK\r\n".to_vec();
        for i in 0..=CAPABILITY_LIMITS.lines {
            server.extend_from_slice(format!("X-CAP-{i}\r\n").as_bytes());
        }
        let (mut client, _) = Client::connect(OneByteStream::new(&server), None).unwrap();
        let err = client.capa().unwrap_err();
        assert!(err.to_string().contains("capability list (CAPA)"), "{err}");
    }
}
