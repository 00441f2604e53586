//! Standard output for data. Every command writes its output through [`stdout`], so a failure
//! to write it (a full disk behind `> file`, `/dev/full`) is told apart from other I/O errors:
//! it is a local I/O error (74), said as such, not a bug. A closed pipe (`| head`) keeps its
//! kind, so the program still ends quietly then.

use std::io::{self, Write};

/// Standard output could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write to standard output: {0}")]
pub struct StdoutError(io::Error);

/// Whether `error` is a failure to write standard output (see [`stdout`]).
pub fn is_stdout_error(error: &io::Error) -> bool {
    error
        .get_ref()
        .is_some_and(|inner| inner.is::<StdoutError>())
}

/// Locked standard output whose write errors say that it was standard output that failed.
pub(crate) fn stdout() -> Stdout {
    Stdout(io::stdout().lock())
}

/// See [`stdout`].
pub(crate) struct Stdout(io::StdoutLock<'static>);

fn named(error: io::Error) -> io::Error {
    io::Error::new(error.kind(), StdoutError(error))
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf).map_err(named)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf).map_err(named)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush().map_err(named)
    }
}
