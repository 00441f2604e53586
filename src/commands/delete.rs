//! `pop3 delete MSG...`: marks messages with DELE and commits with QUIT (RFC 1939 §6: only a
//! successful QUIT removes anything). It shows what will go and asks first.

use std::io::Write;

use clap::Args;

use crate::message;
use crate::pop3::{Command, Reply};
use crate::ui::{ask, count, display_width, stdin_is_terminal};

use super::shared::select::{self, MessageArgs};
use super::shared::top::{HeaderReply, fetch_headers};
use super::{CommandError, Context};

/// Arguments of `delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Which messages to delete
    #[command(flatten)]
    pub select: MessageArgs,
    /// Do not ask for confirmation (needed when stdin is not a terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// The SIGINT handler while `delete` asks: nothing was sent that deletes, so say so and leave
/// at once (exit 130, the shell's code for Ctrl-C). Only async-signal-safe calls (write, _exit).
extern "C" fn nothing_deleted(_: libc::c_int) {
    let message = b"\nNothing deleted.\n";
    // SAFETY: write(2) and _exit(2) are async-signal-safe; the buffer is a static string.
    unsafe {
        libc::write(2, message.as_ptr().cast(), message.len());
        libc::_exit(130);
    }
}

/// Installs `handler` for SIGINT, or the default action with `None`.
fn set_interrupt_handler(handler: Option<extern "C" fn(libc::c_int)>) {
    let action = handler.map_or(libc::SIG_DFL, |h| h as libc::sighandler_t);
    // SAFETY: the handler only calls async-signal-safe functions.
    unsafe {
        libc::signal(libc::SIGINT, action);
    }
}

/// Runs `delete`.
pub fn run(context: &Context, args: &DeleteArgs) -> anyhow::Result<()> {
    if args.select.messages.is_empty() && args.select.last.is_none() {
        return Err(CommandError::DeleteWhat.into());
    }
    let specs = select::parse_specs(&args.select)?;
    if !args.yes && !stdin_is_terminal() {
        return Err(CommandError::DeleteUnconfirmed.into());
    }
    let mut connection = context.connect_prefetching(&select::prefetch(&specs, false))?;
    let selected = select::resolve(&mut connection, &specs, false)?;
    let numbers: Vec<_> = selected.iter().map(|s| s.number).collect();
    let quiet = context.verbosity == super::Verbosity::Quiet;

    if !args.yes || !quiet {
        let headers = fetch_headers(&mut connection, &numbers, &mut |note| {
            eprintln!("pop3: note: {note}")
        })?;
        let rows: Vec<(String, String)> = headers
            .iter()
            .map(|reply| match reply {
                HeaderReply::Headers(raw) => {
                    let summary = message::summarize(raw);
                    (
                        crate::ui::header_value(&summary.from, None),
                        summary.subject,
                    )
                }
                HeaderReply::Refused(status) => {
                    let status = message::display_safe(&status.to_string());
                    (format!("(headers unavailable: {status})"), String::new())
                }
            })
            .collect();
        // On a terminal each message takes one line, as in `headers`: From at most two fifths
        // of what the number leaves, Subject the rest.
        let widths = crate::ui::stderr_terminal_width().map(|w| {
            let rest = w.saturating_sub(10).max(20);
            let widest = rows.iter().map(|(from, _)| display_width(from)).max();
            let from_width = widest.unwrap_or(0).min(rest * 2 / 5);
            (from_width, rest - from_width)
        });
        let mut err = std::io::stderr().lock();
        writeln!(err, "To be deleted:")?;
        for (number, (from, subject)) in numbers.iter().zip(rows) {
            let (from, subject) = match widths {
                Some((from_width, subject_width)) => (
                    crate::ui::fit(&from, from_width),
                    crate::ui::fit(&subject, subject_width),
                ),
                None => (from, subject),
            };
            writeln!(
                err,
                "  {number:>4}  {}",
                format!("{from}  {subject}").trim_end()
            )?;
        }
    }
    if !args.yes {
        let question = format!("Delete {}? [y/N] ", count(numbers.len() as u64, "message"));
        // Ctrl-C at the question leaves without DELE or QUIT: say so, as "n" does.
        set_interrupt_handler(Some(nothing_deleted));
        let answer = ask(&question);
        set_interrupt_handler(None);
        let answer = answer?.unwrap_or_default();
        if !matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
            let _ = connection.session.quit();
            eprintln!("Nothing deleted.");
            return Ok(());
        }
    }

    let commands: Vec<Command> = numbers.iter().map(|&n| Command::Dele(n)).collect();
    let window = connection.pipeline_window();
    let mut refused = Vec::new();
    connection
        .session
        .pipeline(&commands, window, &mut |index, reply| {
            if let Reply::Refused(status) = reply {
                refused.push(format!("message {}: {status}", numbers[index]));
            }
            Ok(())
        })?;
    if !refused.is_empty() {
        // All or nothing: unmark everything rather than commit a partial deletion.
        let _ = connection.session.rset();
        let _ = connection.session.quit();
        return Err(CommandError::DeleteRefused { refused }.into());
    }
    match connection.session.quit() {
        Ok(_) => {
            if !quiet {
                writeln!(
                    crate::ui::stdout(),
                    "Deleted {}.",
                    count(numbers.len() as u64, "message")
                )?;
            }
            Ok(())
        }
        // RFC 1939 §6: the server may have committed before its reply was lost, so we cannot
        // know; saying "nothing was deleted" could make the user delete something else.
        Err(error) => Err(CommandError::DeletionUnknown {
            error,
            count: numbers.len(),
        }
        .into()),
    }
}
