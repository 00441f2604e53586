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
    /// stdout goes to our stderr, so it can never mix with data on our stdout.
    pub(crate) fn finish(self) -> io::Result<()> {
        let program = command_line(&self.argv);
        let mut spool = self
            .spool
            .finish()?
            .into_inner()
            .map_err(|e| e.into_error())?;
        spool.rewind()?;
        let status = Command::new(&self.argv[0])
            .args(&self.argv[1..])
            .stdin(Stdio::from(spool))
            .stdout(io::stderr())
            .status()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot run mda `{program}`: {e}")))?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "mda `{program}` failed ({status})"
            )))
        }
    }

    /// Gives up on this message: the agent never sees it.
    pub(crate) fn abort(self) {}
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
        let err = message.finish().unwrap_err();
        assert!(err.to_string().contains("failed"), "{err}");
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
