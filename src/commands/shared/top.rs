//! Fetching message headers for `headers`, `delete` and `browse`: `TOP n 0`, pipelined when
//! the server allows it, with a fallback to `RETR` for servers without TOP (RFC 1939 lists TOP
//! as optional).

use crate::commands::CommandError;
use crate::connect::Connection;
use crate::pop3::{Command, MessageNumber, Reply, StatusLine};

/// Headers longer than this are cut: nobody reads them, and a hostile server must not be able
/// to make us hold a whole message when we fall back to RETR.
const MAX_HEADER_BYTES: usize = 1024 * 1024;

/// A reply to `TOP n 0` holds only a header block: one that goes on beyond this is hostile
/// or broken, and reading on would never end while the server keeps sending.
const MAX_TOP_REPLY: u64 = 16 * 1024 * 1024;

/// The same bound when falling back to `RETR`, where the whole message comes: generous, so
/// only an endless (or absurd) message stops the command.
const MAX_RETR_REPLY: u64 = 1024 * 1024 * 1024;

/// What came back for one message.
#[derive(Debug)]
pub enum HeaderReply {
    /// The header block (for RETR, the message up to its first empty line).
    Headers(Vec<u8>),
    /// The server refused (e.g. the message was deleted by another session).
    Refused(StatusLine),
}

/// Fetches the header block of every message in `numbers`, in order. `note` is called once
/// when falling back to RETR, so the caller can tell the user.
pub fn fetch_headers(
    connection: &mut Connection,
    numbers: &[MessageNumber],
    note: &mut dyn FnMut(&str),
) -> anyhow::Result<Vec<HeaderReply>> {
    if let Some(replies) = fetch_headers_with_top(connection, numbers)? {
        return Ok(replies);
    }
    note(
        "the server does not support TOP; downloading whole messages (RETR) to read their headers",
    );
    let window = connection.pipeline_window();
    run(connection, numbers, |n, _| Command::Retr(n), window)
}

/// Like [`fetch_headers`] but never downloads whole messages: `None` when the server has no TOP.
pub fn fetch_headers_with_top(
    connection: &mut Connection,
    numbers: &[MessageNumber],
) -> anyhow::Result<Option<Vec<HeaderReply>>> {
    let capabilities = &connection.capabilities;
    if capabilities.is_known() && !capabilities.top() {
        return Ok(None);
    }
    let window = connection.pipeline_window();
    if capabilities.is_known() || numbers.is_empty() {
        return run(connection, numbers, Command::Top, window).map(Some);
    }
    // Without CAPA we only learn whether TOP exists by trying it once.
    let mut all = run(connection, &numbers[..1], Command::Top, 1)?;
    if matches!(all[0], HeaderReply::Refused(_)) {
        return Ok(None);
    }
    all.append(&mut run(connection, &numbers[1..], Command::Top, window)?);
    Ok(Some(all))
}

fn run(
    connection: &mut Connection,
    numbers: &[MessageNumber],
    command: fn(MessageNumber, u32) -> Command<'static>,
    window: usize,
) -> anyhow::Result<Vec<HeaderReply>> {
    let commands: Vec<Command> = numbers.iter().map(|&n| command(n, 0)).collect();
    let max_reply = match commands.first() {
        Some(Command::Retr(_)) => MAX_RETR_REPLY,
        _ => MAX_TOP_REPLY,
    };
    let mut replies: Vec<HeaderReply> = Vec::with_capacity(numbers.len());
    let mut current = Vec::new();
    let mut header_done = false;
    let mut reply_octets = 0u64;
    let mut too_long = None;
    let result = connection
        .session
        .pipeline(&commands, window, &mut |index, reply| {
            match reply {
                Reply::Accepted(_) => {
                    current.clear();
                    header_done = false;
                    reply_octets = 0;
                }
                Reply::Data(data) => {
                    reply_octets += data.len() as u64;
                    if reply_octets > max_reply {
                        too_long = Some(numbers[index]);
                        return Err(std::io::Error::other("reply too long"));
                    }
                    if !header_done && current.len() < MAX_HEADER_BYTES {
                        // Only the new bytes (and the 3 before them, for a blank line split
                        // across chunks) are searched: rescanning the whole buffer for every
                        // small chunk would cost the square of the header's size.
                        let from = current.len().saturating_sub(3);
                        current.extend_from_slice(data);
                        header_done = header_end(&current[from..]).is_some();
                    }
                }
                Reply::End => {
                    let mut headers = std::mem::take(&mut current);
                    if let Some(end) = header_end(&headers) {
                        headers.truncate(end);
                    }
                    replies.push(HeaderReply::Headers(headers));
                }
                Reply::Refused(status) => replies.push(HeaderReply::Refused(status.clone())),
            }
            Ok(())
        });
    match (result, too_long) {
        (Err(_), Some(number)) => Err(CommandError::ReplyTooLong {
            number,
            limit: max_reply,
        }
        .into()),
        (result, _) => {
            result?;
            Ok(replies)
        }
    }
}

/// Where the header block ends (after its terminating empty line), if it has ended.
fn header_end(message: &[u8]) -> Option<usize> {
    let crlf = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4);
    let lf = message.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::header_end;

    #[test]
    fn header_block_ends_at_the_first_empty_line() {
        assert_eq!(header_end(b"A: b\r\n\r\nbody\r\n\r\n"), Some(8));
        assert_eq!(header_end(b"A: b\n\nbody"), Some(6));
        assert_eq!(header_end(b"A: b\r\n"), None);
    }
}
