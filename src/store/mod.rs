//! Local storage for `fetch-all`: delivery targets (Maildir, mbox, an MDA command), the
//! per-account state of delivered unique-ids, and the per-account lock.
//!
//! Messages arrive with CRLF line endings (RFC 1939); every target here receives them with LF,
//! as Unix mail readers expect, and otherwise byte for byte.

pub mod lock;
pub mod maildir;
pub mod mbox;
pub mod mda;
pub mod state;

use std::io::{self, Write};

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
