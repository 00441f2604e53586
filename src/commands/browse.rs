//! `pop3 browse`: the interactive loop of "Foundations of Python Network Programming"
//! (`visit_listing`): for each message show From/To/Subject/Date, offer to read it, offer to
//! delete it. Deletions are only marked; they are committed by QUIT when the user is done, and
//! Ctrl-C leaves without QUIT, so nothing is deleted.
//!
//! Messages go to stdout; prompts go to stderr. Answers are read line by line from stdin, so a
//! script can pipe them in.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::message;
use crate::pop3::{Command, MessageNumber};
use crate::ui::{ask, count, stdin_is_terminal};

use super::shared::top::{HeaderReply, fetch_headers};
use super::{CommandError, Context};

/// Set once QUIT is under way: from then on Ctrl-C can no longer promise that nothing was deleted.
static COMMITTING: AtomicBool = AtomicBool::new(false);

/// The SIGINT handler: leave at once, without QUIT, so the server deletes nothing. Only
/// async-signal-safe calls here (write, _exit).
extern "C" fn on_interrupt(_: libc::c_int) {
    let message: &[u8] = if COMMITTING.load(Ordering::SeqCst) {
        b"\npop3: interrupted while committing: the marked messages may or may not have been deleted\n"
    } else {
        b"\npop3: interrupted: nothing was deleted\n"
    };
    // SAFETY: write(2) and _exit(2) are async-signal-safe; the buffer is a static string.
    unsafe {
        libc::write(2, message.as_ptr().cast(), message.len());
        libc::_exit(130);
    }
}

fn install_interrupt_handler() {
    let handler: extern "C" fn(libc::c_int) = on_interrupt;
    // SAFETY: installing a handler that only calls async-signal-safe functions.
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
    }
}

/// An answer to a yes/no question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Yes,
    No,
    Quit,
}

const HELP: &str = "  y  yes
  n  no (the default: just press Enter)
  q  quit: stop browsing; deletions marked so far are committed
  ?  this help
  Ctrl-C leaves at once without deleting anything.";

/// Asks until the answer is y, n or q (Enter means n). End of input counts as q.
fn ask_yes_no(question: &str, echo: bool) -> anyhow::Result<Answer> {
    loop {
        let Some(line) = ask(&format!("{question} [ny]? "))? else {
            // End the prompt line: neither a pipe nor a terminal's Ctrl-D gives a newline.
            eprintln!();
            return Ok(Answer::Quit);
        };
        if echo {
            // Piped answers are not echoed by a terminal; show them so the transcript reads well.
            eprintln!("{line}");
        }
        match line.trim().to_ascii_lowercase().as_str() {
            "y" | "yes" => return Ok(Answer::Yes),
            "n" | "no" | "" => return Ok(Answer::No),
            "q" | "quit" => return Ok(Answer::Quit),
            "?" | "h" | "help" => eprintln!("{HELP}"),
            _ => eprintln!("Please answer y, n, q (quit) or ? (help)."),
        }
    }
}

const RULE: &str = "------------------------------------------------------------------------";

/// Runs `browse`.
pub fn run(context: &Context, paging: crate::ui::Paging) -> anyhow::Result<()> {
    install_interrupt_handler();
    let echo = !stdin_is_terminal();
    let mut connection = context.connect_prefetching(&[Command::List(None)])?;
    let listing = connection.session.list()?;
    let mut out = crate::ui::stdout();
    if listing.is_empty() {
        writeln!(out, "{}", crate::ui::EMPTY_MAILBOX)?;
        let _ = connection.session.quit();
        return Ok(());
    }
    let mut marked: Vec<MessageNumber> = Vec::new();
    'messages: for message in &listing {
        let number = message.number;
        writeln!(out, "Message {number} (size is {} bytes):", message.size)?;
        let headers = fetch_headers(&mut connection, &[number], &mut |note| {
            eprintln!("pop3: note: {note}")
        })?;
        let raw = match &headers[0] {
            HeaderReply::Headers(raw) => raw,
            HeaderReply::Refused(status) => {
                let status = message::display_safe(&status.to_string());
                writeln!(out, "  (the server refused to show it: {status})")?;
                continue;
            }
        };
        let summary = message::summarize(raw);
        let width = crate::ui::terminal_width();
        for (name, value) in [
            ("From", &summary.from),
            ("To", &summary.to),
            ("Subject", &summary.subject),
            ("Date", &summary.date),
        ] {
            // As `read`: From and Subject always, the others when the message has them; each on
            // one line of the terminal.
            if !value.is_empty() || matches!(name, "From" | "Subject") {
                let width = width.map(|w| w.saturating_sub(name.len() + 2).max(10));
                writeln!(out, "{name}: {}", crate::ui::header_value(value, width))?;
            }
        }
        out.flush()?;
        match ask_yes_no("Read this message", echo)? {
            Answer::Quit => break 'messages,
            Answer::No => {}
            Answer::Yes => {
                let mut body = Vec::new();
                connection.session.retr(number, &mut |data| {
                    body.extend_from_slice(data);
                    Ok(())
                })?;
                let readable = message::readable(&body);
                // The text alone goes through the pager, when long; the next question comes
                // once the pager has ended.
                let mut text = Vec::new();
                writeln!(text, "{RULE}")?;
                super::read::write_text(&mut text, &readable)?;
                for attachment in &readable.attachments {
                    writeln!(
                        text,
                        "[attachment: {} ({})]",
                        attachment.name, attachment.content_type
                    )?;
                }
                writeln!(text, "{RULE}")?;
                drop(out);
                crate::ui::page(&text, paging)?;
                out = crate::ui::stdout();
            }
        }
        match ask_yes_no("Delete this message", echo)? {
            Answer::Quit => break 'messages,
            Answer::No => {}
            Answer::Yes => {
                connection.session.dele(number)?;
                marked.push(number);
                // Only QUIT deletes (when browsing ends); until then this is a mark.
                writeln!(out, "Marked for deletion.")?;
            }
        }
    }

    if marked.is_empty() {
        let _ = connection.session.quit();
        writeln!(out, "No messages deleted.")?;
        return Ok(());
    }
    let list: Vec<String> = marked.iter().map(|n| n.to_string()).collect();
    writeln!(
        out,
        "Deleting {}: {}.",
        count(marked.len() as u64, "message"),
        list.join(", ")
    )?;
    COMMITTING.store(true, Ordering::SeqCst);
    match connection.session.quit() {
        Ok(_) => {
            writeln!(out, "Deleted {}.", count(marked.len() as u64, "message"))?;
            Ok(())
        }
        Err(error) => Err(CommandError::BrowseQuitUnconfirmed { error }.into()),
    }
}
