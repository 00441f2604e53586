//! Delivery through a mail delivery agent: a command (procmail, maildrop, `dovecot-lda`, …) that
//! reads one message on stdin. Exit status 0 means the agent took responsibility for the message.

use std::io::{self, Write};
use std::process::{Child, ChildStdin, Command, Stdio};

use super::LfWriter;

/// A message being piped into the delivery agent.
pub struct MdaMessage {
    child: Child,
    stdin: LfWriter<io::BufWriter<ChildStdin>>,
    program: String,
}

/// Starts the agent `argv` for one message. Its stdout goes to our stderr, so it can never mix
/// with data on our stdout.
pub fn start(argv: &[String]) -> io::Result<MdaMessage> {
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(io::stderr())
        .spawn()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot run mda `{}`: {e}", argv.join(" ")),
            )
        })?;
    let stdin = child.stdin.take().expect("stdin was piped");
    Ok(MdaMessage {
        child,
        stdin: LfWriter::new(io::BufWriter::with_capacity(64 * 1024, stdin)),
        program: argv.join(" "),
    })
}

impl MdaMessage {
    /// Pipes message data (CRLF becomes LF).
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.stdin.write_all(data).map_err(|e| self.explain(e))
    }

    /// Closes the agent's stdin and waits: `Ok` only when it exited with status 0.
    pub fn finish(self) -> io::Result<()> {
        let MdaMessage {
            mut child,
            stdin,
            program,
        } = self;
        // Dropping the pipe is what tells the agent the message is complete.
        let closed = stdin
            .finish()
            .and_then(|buffered| buffered.into_inner().map_err(|e| e.into_error()))
            .map(drop);
        let status = child.wait()?;
        if !status.success() {
            return Err(io::Error::other(format!(
                "mda `{program}` failed ({status}); the message stays on the server"
            )));
        }
        closed.map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("mda `{program}` stopped reading the message: {e}"),
            )
        })
    }

    /// Kills the agent without letting it deliver a partial message.
    pub fn abort(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn explain(&self, error: io::Error) -> io::Error {
        io::Error::new(
            error.kind(),
            format!(
                "mda `{}` stopped reading the message: {error}",
                self.program
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_decides() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let argv: Vec<String> = ["sh", "-c", &format!("cat > {}", out.display())]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut message = start(&argv).unwrap();
        message.write(b"Subject: x\r\n\r\nhi\r\n").unwrap();
        message.finish().unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"Subject: x\n\nhi\n");

        let failing: Vec<String> = ["sh", "-c", "cat >/dev/null; exit 75"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut message = start(&failing).unwrap();
        message.write(b"x\r\n").unwrap();
        let err = message.finish().unwrap_err();
        assert!(err.to_string().contains("stays on the server"), "{err}");
    }
}
