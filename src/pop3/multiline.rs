//! Multi-line responses (RFC 1939 §3): lines after the status line, each byte-stuffed (a line
//! that starts with `.` gets another `.` in front), ended by a line holding a single `.`.
//!
//! [`MultilineDecoder`] is a byte-level state machine: it is fed whatever chunks arrived, hands
//! the unstuffed data to a sink as it goes and never buffers a line, so a message with a
//! gigabyte-long line still decodes in constant memory. Line endings are passed through as the
//! server sent them (CRLF, or bare LF from sloppy servers): `read --raw` must show the exact bytes.
//! [`take_line`] and [`unstuff_line`] serve the short lines of listings and status replies.

use super::{Error, Result};

/// Where a multi-line response's data goes. An error stops decoding and is reported as
/// [`Error::Sink`].
pub type Sink<'a> = dyn FnMut(&[u8]) -> std::io::Result<()> + 'a;

/// Position of the decoder within the current line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the first byte of a line.
    LineStart,
    /// The line began with `.`: either stuffing or the terminator.
    Dot,
    /// Saw `.` CR at the start of a line: the terminator, unless LF does not follow.
    DotCr,
    /// Inside a line.
    InLine,
    /// The terminating line was read.
    Done,
}

/// Decodes one multi-line response body, chunk by chunk.
#[derive(Debug, Clone)]
pub struct MultilineDecoder {
    state: State,
}

impl Default for MultilineDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl MultilineDecoder {
    /// A decoder positioned just after the `+OK` status line.
    pub fn new() -> MultilineDecoder {
        MultilineDecoder {
            state: State::LineStart,
        }
    }

    /// Whether the terminating `.` line has been consumed.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes as much of `input` as belongs to this response, writing unstuffed data to `sink`.
    /// Returns how many bytes were consumed: after the terminator, the rest of `input` belongs
    /// to the next response (pipelining).
    pub fn decode(&mut self, input: &[u8], sink: &mut Sink<'_>) -> Result<usize> {
        let mut pos = 0;
        while pos < input.len() && self.state != State::Done {
            match self.state {
                State::LineStart => {
                    if input[pos] == b'.' {
                        self.state = State::Dot;
                        pos += 1;
                    } else {
                        self.state = State::InLine;
                    }
                }
                State::Dot => match input[pos] {
                    b'\r' => {
                        self.state = State::DotCr;
                        pos += 1;
                    }
                    // A bare-LF server ends the response with ".\n".
                    b'\n' => {
                        self.state = State::Done;
                        pos += 1;
                    }
                    // Byte-stuffing: the leading dot is dropped, the rest of the line is data.
                    _ => self.state = State::InLine,
                },
                State::DotCr => {
                    if input[pos] == b'\n' {
                        self.state = State::Done;
                        pos += 1;
                    } else {
                        // ".\r" then something else: not a terminator; keep the CR as data.
                        emit(sink, b"\r")?;
                        self.state = State::InLine;
                    }
                }
                State::InLine => {
                    // Hand over as much as possible in one piece: everything up to the first
                    // line ending that is followed by a dot (or by the end of the input), since
                    // only a dot at the start of a line needs a decision.
                    let rest = &input[pos..];
                    let boundary = memchr::memchr_iter(b'\n', rest)
                        .find(|&lf| matches!(rest.get(lf + 1), Some(b'.') | None));
                    match boundary {
                        Some(lf) => {
                            emit(sink, &rest[..=lf])?;
                            pos += lf + 1;
                            self.state = State::LineStart;
                        }
                        None => {
                            // The input ends inside a line.
                            emit(sink, rest)?;
                            pos = input.len();
                        }
                    }
                }
                State::Done => unreachable!("loop stops at Done"),
            }
        }
        Ok(pos)
    }
}

fn emit(sink: &mut Sink<'_>, data: &[u8]) -> Result<()> {
    sink(data).map_err(Error::Sink)
}

/// Finds the first complete line in `buffer`. Returns its length including the LF, `None` when
/// more data is needed, or an error when no LF arrives within `limit` octets.
pub fn take_line(buffer: &[u8], limit: usize) -> Result<Option<usize>> {
    match buffer.iter().take(limit).position(|&b| b == b'\n') {
        Some(end) => Ok(Some(end + 1)),
        None if buffer.len() >= limit => Err(Error::LineTooLong { limit }),
        None => Ok(None),
    }
}

/// One line of a multi-line response whose line ending was already removed.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// The terminating `.` line.
    End,
    /// A data line with byte-stuffing removed.
    Data(&'a [u8]),
}

/// Removes byte-stuffing from one line (line ending already stripped).
pub fn unstuff_line(line: &[u8]) -> Line<'_> {
    match line {
        b"." => Line::End,
        [b'.', rest @ ..] => Line::Data(rest),
        _ => Line::Data(line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `chunk` bytes; returns (data, consumed).
    fn decode_in_chunks(input: &[u8], chunk: usize) -> (Vec<u8>, usize) {
        let mut decoder = MultilineDecoder::new();
        let mut out = Vec::new();
        let mut consumed = 0;
        for piece in input.chunks(chunk) {
            if decoder.is_done() {
                break;
            }
            let used = decoder
                .decode(piece, &mut |data| {
                    out.extend_from_slice(data);
                    Ok(())
                })
                .unwrap();
            consumed += used;
        }
        assert!(decoder.is_done(), "terminator not seen");
        (out, consumed)
    }

    const WIRE: &[u8] =
        b"Subject: hi\r\n\r\n..dot line\r\n...\r\n.. \r\nline.\r\n\r\n.\r\n+OK next";
    const DATA: &[u8] = b"Subject: hi\r\n\r\n.dot line\r\n..\r\n. \r\nline.\r\n\r\n";

    #[test]
    fn unstuffs_and_stops_at_the_terminator() {
        let wire = b"Subject: hi\r\n\r\n..dot line\r\nbody\r\n.\r\n+OK next";
        let (data, consumed) = decode_in_chunks(wire, wire.len());
        assert_eq!(data, b"Subject: hi\r\n\r\n.dot line\r\nbody\r\n");
        assert_eq!(&wire[consumed..], b"+OK next");
    }

    #[test]
    fn same_result_for_responses_split_at_every_byte() {
        let whole = {
            let mut wire = b"a\r\n..b\r\n.c\r\n".to_vec();
            wire.extend_from_slice(b".\r\n+OK");
            wire
        };
        let expected = b"a\r\n.b\r\nc\r\n";
        for chunk in 1..=whole.len() {
            let (data, consumed) = decode_in_chunks(&whole, chunk);
            assert_eq!(data, expected, "chunk size {chunk}");
            assert_eq!(&whole[consumed..], b"+OK", "chunk size {chunk}");
        }
        // And for a body where a blank line precedes the terminator.
        let wire = b"x\r\n\r\n.\r\n";
        for split in 0..=wire.len() {
            let mut decoder = MultilineDecoder::new();
            let mut out = Vec::new();
            let mut sink = |d: &[u8]| {
                out.extend_from_slice(d);
                Ok(())
            };
            let a = decoder.decode(&wire[..split], &mut sink).unwrap();
            assert_eq!(a, split);
            decoder.decode(&wire[split..], &mut sink).unwrap();
            assert!(decoder.is_done());
            assert_eq!(out, b"x\r\n\r\n");
        }
    }

    #[test]
    fn fixture_split_at_every_chunk_size() {
        for chunk in 1..=WIRE.len() {
            let (data, consumed) = decode_in_chunks(WIRE, chunk);
            assert_eq!(data, DATA, "chunk size {chunk}");
            assert_eq!(&WIRE[consumed..], b"+OK next");
        }
    }

    #[test]
    fn empty_body() {
        let (data, consumed) = decode_in_chunks(b".\r\n", 1);
        assert!(data.is_empty());
        assert_eq!(consumed, 3);
    }

    #[test]
    fn tolerates_bare_lf() {
        let (data, consumed) = decode_in_chunks(b"a\n..b\n\n.\nrest", 2);
        assert_eq!(data, b"a\n.b\n\n");
        assert_eq!(consumed, 9);
    }

    #[test]
    fn dot_cr_without_lf_is_data() {
        let (data, _) = decode_in_chunks(b".\rx\r\n.\r\n", 1);
        assert_eq!(data, b"\rx\r\n");
    }

    #[test]
    fn long_lines_are_streamed_not_buffered() {
        let mut wire = vec![b'x'; 1 << 20];
        wire.extend_from_slice(b"\r\n.\r\n");
        let mut decoder = MultilineDecoder::new();
        let mut largest_piece = 0;
        let mut total = 0;
        for piece in wire.chunks(4096) {
            decoder
                .decode(piece, &mut |data| {
                    largest_piece = largest_piece.max(data.len());
                    total += data.len();
                    Ok(())
                })
                .unwrap();
        }
        assert!(decoder.is_done());
        assert_eq!(total, (1 << 20) + 2);
        assert!(largest_piece <= 4096);
    }

    #[test]
    fn sink_errors_stop_decoding() {
        let mut decoder = MultilineDecoder::new();
        let result = decoder.decode(b"data\r\n.\r\n", &mut |_| {
            Err(std::io::Error::other("disk full"))
        });
        assert!(matches!(result, Err(Error::Sink(_))));
    }

    #[test]
    fn lines() {
        assert_eq!(take_line(b"+OK\r\nrest", 512).unwrap(), Some(5));
        assert_eq!(take_line(b"+OK", 512).unwrap(), None);
        assert_eq!(take_line(b"+OK\n", 512).unwrap(), Some(4));
        assert!(matches!(
            take_line(&[b'x'; 600], 512),
            Err(Error::LineTooLong { limit: 512 })
        ));
        // Exactly at the limit, LF included, is fine.
        let mut line = vec![b'x'; 510];
        line.extend_from_slice(b"\r\n");
        assert_eq!(take_line(&line, 512).unwrap(), Some(512));
        assert_eq!(unstuff_line(b"."), Line::End);
        assert_eq!(unstuff_line(b"..x"), Line::Data(b".x"));
        assert_eq!(unstuff_line(b"1 200"), Line::Data(b"1 200"));
    }
}
