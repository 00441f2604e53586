//! Local storage for `fetch-all`: delivery targets (Maildir, mbox, an MDA command, an LMTP or
//! SMTP server) behind one interface (`deliver`), the per-account state of delivered
//! unique-ids (with the adoption of files older versions named), and the per-account lock.
//!
//! Messages arrive with CRLF line endings (RFC 1939); every target here receives them with LF,
//! as Unix mail readers expect, and otherwise byte for byte.

pub(crate) mod adopt;
pub(crate) mod capability_memory;
pub(crate) mod deliver;
pub mod lock;
pub(crate) mod maildir;
pub(crate) mod mbox;
pub(crate) mod mda;
pub(crate) mod relay;
pub mod smtp;
pub mod state;

use std::io::{self, Write};

/// Refuses a Maildir or mbox at `path` whose parent directory is missing (or no directory):
/// pop3 creates the mailbox itself, never the directories above it, so that a mistyped path is
/// an error and not a new directory tree that nobody reads.
pub(crate) fn check_parent(path: &std::path::Path) -> io::Result<()> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() && !parent.is_dir() => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "the directory {} does not exist (pop3 does not create it): create it or correct the path",
                parent.display()
            ),
        )),
        _ => Ok(()),
    }
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A UTC calendar time, for the dates written into mail (mbox `From ` lines, `Received:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcTime {
    /// `Mon` … `Sun`.
    pub weekday: &'static str,
    /// 1 to 31.
    pub day: u32,
    /// `Jan` … `Dec`.
    pub month: &'static str,
    /// The year.
    pub year: i64,
    /// 0 to 23.
    pub hour: u64,
    /// 0 to 59.
    pub minute: u64,
    /// 0 to 59.
    pub second: u64,
}

impl UtcTime {
    /// The calendar time of `secs` seconds after the Unix epoch.
    pub fn from_unix(secs: u64) -> UtcTime {
        const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let days = secs / 86_400;
        let time = secs % 86_400;
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let z = days as i64 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        UtcTime {
            weekday: DAYS[(days % 7) as usize],
            day: day as u32,
            month: MONTHS[(month - 1) as usize],
            year: yoe + era * 400 + i64::from(month <= 2),
            hour: time / 3600,
            minute: time % 3600 / 60,
            second: time % 60,
        }
    }

    /// RFC 5322 §3.3 form: `Sat, 21 Nov 2026 22:00:00 +0000`.
    pub fn rfc5322(&self) -> String {
        format!(
            "{}, {} {} {} {:02}:{:02}:{:02} +0000",
            self.weekday, self.day, self.month, self.year, self.hour, self.minute, self.second
        )
    }
}

/// Converts CRLF to LF while streaming; a lone CR is kept. Chunks may split a CRLF anywhere.
pub struct LfWriter<W: Write> {
    inner: W,
    pending_cr: bool,
}

impl<W: Write> LfWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> LfWriter<W> {
        LfWriter {
            inner,
            pending_cr: false,
        }
    }

    /// Writes out a CR still held back and returns the inner writer.
    /// The writer it wraps.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    pub fn finish(mut self) -> io::Result<W> {
        if self.pending_cr {
            self.inner.write_all(b"\r")?;
        }
        Ok(self.inner)
    }

    /// The inner writer.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }
}

impl<W: Write> Write for LfWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut rest = data;
        if self.pending_cr {
            self.pending_cr = false;
            if rest.first() != Some(&b'\n') {
                self.inner.write_all(b"\r")?;
            }
        }
        while let Some(cr) = memchr::memchr(b'\r', rest) {
            self.inner.write_all(&rest[..cr])?;
            match rest.get(cr + 1) {
                Some(b'\n') => rest = &rest[cr + 1..], // drop the CR, keep the LF
                Some(_) => {
                    self.inner.write_all(b"\r")?;
                    rest = &rest[cr + 1..];
                }
                None => {
                    self.pending_cr = true;
                    rest = &[];
                }
            }
        }
        self.inner.write_all(rest)?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(
            UtcTime::from_unix(1_795_298_400).rfc5322(),
            "Sat, 21 Nov 2026 22:00:00 +0000"
        );
        assert_eq!(
            UtcTime::from_unix(951_782_400).rfc5322(),
            "Tue, 29 Feb 2000 00:00:00 +0000"
        );
    }

    #[test]
    fn crlf_becomes_lf_across_every_split() {
        let input = b"a\r\nb\rc\r\n\r\nd\r";
        let expected = b"a\nb\rc\n\nd\r";
        for split in 0..=input.len() {
            let mut writer = LfWriter::new(Vec::new());
            writer.write_all(&input[..split]).unwrap();
            writer.write_all(&input[split..]).unwrap();
            assert_eq!(writer.finish().unwrap(), expected, "split at {split}");
        }
    }
}
