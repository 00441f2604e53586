//! The terminal: questions on stderr, answers from stdin, the password prompt, and whether a
//! person is there to see or answer at all.

use std::io::IsTerminal;

use crate::secret::Secret;

/// Prints `prompt` on stderr and reads one line from stdin, without its line ending.
/// `None` means end of input.
pub(crate) fn ask(prompt: &str) -> std::io::Result<Option<String>> {
    use std::io::{BufRead, Write};
    let mut stderr = std::io::stderr().lock();
    write!(stderr, "{prompt}")?;
    stderr.flush()?;
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line)? == 0 {
        return Ok(None);
    }
    Ok(Some(line.trim_end_matches(['\r', '\n']).to_owned()))
}

/// Whether stdin is a terminal, i.e. a person can answer questions.
pub(crate) fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

/// The width of the terminal on stdout, or `None` when stdout is not a terminal (then nothing
/// is cut: a script reading the output wants all of it).
pub(crate) fn terminal_width() -> Option<usize> {
    size_of(&std::io::stdout()).map(|(columns, _)| columns)
}

/// The width of the terminal on stderr, where prompts and confirmation lists go; `None` when
/// stderr is not a terminal.
pub(crate) fn stderr_terminal_width() -> Option<usize> {
    size_of(&std::io::stderr()).map(|(columns, _)| columns)
}

/// The columns and rows of the terminal `stream` is, or `None` when it is not a terminal.
pub(super) fn size_of(stream: &(impl IsTerminal + std::os::fd::AsFd)) -> Option<(usize, usize)> {
    if !stream.is_terminal() {
        return None;
    }
    terminal_size::terminal_size_of(stream).map(
        |(terminal_size::Width(columns), terminal_size::Height(rows))| {
            (usize::from(columns), usize::from(rows))
        },
    )
}

/// Whether stderr is a terminal, i.e. a person watches progress and summaries (cron does not).
pub(crate) fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// Asks for a password on the terminal without echoing it.
pub(crate) fn prompt_password(prompt: &str) -> std::io::Result<Secret> {
    rpassword::prompt_password(prompt).map(Secret::new)
}
