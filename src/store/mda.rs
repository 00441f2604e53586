//! Delivery through a mail delivery agent: a command (procmail, maildrop, `dovecot-lda`, …) that
//! reads one message on stdin. Exit status 0 means the agent took responsibility for the message.
//!
//! The message is spooled to an anonymous temporary file first and the agent is started only
//! once it is complete: an agent fed straight from the network would deliver half a message if
//! pop3 were killed mid-download (it would just see the end of its input).

use std::fs::File;
use std::io::{self, BufWriter, Seek, Write};
use std::process::{Command, Stdio};

use super::LfWriter;
use crate::ui::command_line;

/// A message being spooled for the delivery agent.
pub(crate) struct MdaMessage {
    spool: LfWriter<BufWriter<File>>,
    argv: Vec<String>,
}

/// Prepares delivery of one message to the agent `argv`.
pub(crate) fn start(argv: &[String]) -> io::Result<MdaMessage> {
    // Unlinked at once (tempfile()), so nothing is left behind whatever happens.
    let spool = tempfile::tempfile()?;
    Ok(MdaMessage {
        spool: LfWriter::new(BufWriter::with_capacity(64 * 1024, spool)),
        argv: argv.to_vec(),
    })
}

impl MdaMessage {
    /// Spools message data (CRLF becomes LF).
    pub(crate) fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.spool.write_all(data)
    }

    /// Runs the agent on the complete message: `Ok` only when it exited with status 0. Its
    /// stdout goes to our stderr, so it can never mix with data on our stdout. A program that
    /// cannot be started at all is [`MdaError::NotStarted`]: no later run would do better.
    pub(crate) fn finish(self) -> Result<(), MdaError> {
        let program = command_line(&self.argv);
        match self.run() {
            Err(cause) if cannot_start(&cause) => Err(MdaError::NotStarted { program, cause }),
            Err(e) => Err(MdaError::Failed(io::Error::new(
                e.kind(),
                format!("cannot run mda `{program}`: {e}"),
            ))),
            Ok(Err(cause)) => Err(MdaError::Failed(cause)),
            Ok(Ok(())) => Ok(()),
        }
    }

    /// Outer error: starting the agent failed; inner: the spool or the agent's status.
    fn run(self) -> io::Result<io::Result<()>> {
        let spool = (|| {
            let mut spool = self
                .spool
                .finish()?
                .into_inner()
                .map_err(|e| e.into_error())?;
            spool.rewind()?;
            Ok(spool)
        })();
        let spool = match spool {
            Ok(spool) => spool,
            Err(e) => return Ok(Err(e)),
        };
        let program = command_line(&self.argv);
        let status = Command::new(&self.argv[0])
            .args(&self.argv[1..])
            .stdin(Stdio::from(spool))
            .stdout(io::stderr())
            .status()?;
        Ok(if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "mda `{program}` failed ({status})"
            )))
        })
    }

    /// Gives up on this message: the agent never sees it.
    pub(crate) fn abort(self) {}
}

/// Why the agent did not take a message.
#[derive(Debug)]
pub(crate) enum MdaError {
    /// The program could not be started (not found, not executable): a configuration matter.
    NotStarted {
        /// The command line, as shown to the user.
        program: String,
        /// Why.
        cause: io::Error,
    },
    /// Spooling failed, or the agent ran and failed (its message names it).
    Failed(io::Error),
}

/// Whether starting a program failed in a way that only a change of configuration fixes (as
/// opposed to a fork failing for lack of memory or processes, which may pass).
fn cannot_start(cause: &io::Error) -> bool {
    matches!(
        cause.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied | io::ErrorKind::NotADirectory
    ) || cause.raw_os_error() == Some(libc::ENOEXEC)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn exit_status_decides() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let mut message = start(&argv(&["sh", "-c", &format!("cat > {}", out.display())])).unwrap();
        message.write(b"Subject: x\r\n\r\nhi\r").unwrap();
        message.write(b"\n").unwrap();
        message.finish().unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"Subject: x\n\nhi\n");

        let mut message = start(&argv(&["sh", "-c", "cat >/dev/null; exit 75"])).unwrap();
        message.write(b"x\r\n").unwrap();
        let Err(MdaError::Failed(err)) = message.finish() else {
            panic!("expected a failure");
        };
        assert!(err.to_string().contains("failed"), "{err}");
    }

    #[test]
    fn a_missing_or_unexecutable_program_is_not_started_but_a_failing_one_is_failed() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such-mda");
        let not_executable = dir.path().join("plain-file");
        std::fs::write(&not_executable, "#!/bin/sh\nexit 0\n").unwrap();
        for program in [&missing, &not_executable] {
            let mut message = start(&argv(&[program.to_str().unwrap()])).unwrap();
            message.write(b"x\r\n").unwrap();
            match message.finish() {
                Err(MdaError::NotStarted { program: p, .. }) => {
                    assert_eq!(p, program.display().to_string())
                }
                other => panic!("{}: expected NotStarted, got {other:?}", program.display()),
            }
        }
    }

    #[test]
    fn an_aborted_message_never_reaches_the_agent() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let mut message = start(&argv(&["sh", "-c", &format!("cat > {}", out.display())])).unwrap();
        message.write(b"Subject: half").unwrap();
        message.abort();
        assert!(!out.exists());
    }
}
