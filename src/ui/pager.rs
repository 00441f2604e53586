//! The pager for long text, as git and man use one: when stdout is a terminal and the text is
//! taller than it, the text goes through `$POP3_PAGER`, else `$PAGER`, else `less` (with
//! `LESS=FRX` when `LESS` is unset, so colours and control handling stay as printed). An empty
//! value or `cat` means no pager; `--no-pager` turns it off. A pager that cannot be started,
//! or that quits before reading everything (the user pressed `q`), is never an error: the text
//! is then printed directly, or the rest of it is simply not shown.

use std::ffi::{OsStr, OsString};
use std::io::{self, Write};
use std::process::{Command, Stdio};

/// Whether long text may go through a pager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paging {
    /// When stdout is a terminal and the text does not fit on it.
    Auto,
    /// Never (`--no-pager`).
    Never,
}

/// Shows `text` on stdout: through the pager when `paging` allows it, stdout is a terminal and
/// the text has as many rows as the terminal or more (then it would scroll out of sight);
/// written directly otherwise.
pub(crate) fn show(text: &[u8], paging: Paging) -> io::Result<()> {
    if paging == Paging::Auto
        && too_tall(text)
        && let Some(pager) = pager_command()
        && run_pager(&pager, text)
    {
        return Ok(());
    }
    let mut out = super::stdout();
    out.write_all(text)?;
    out.flush()
}

/// Whether stdout is a terminal on which `text` does not fit (long lines wrap).
fn too_tall(text: &[u8]) -> bool {
    let Some((columns, rows)) = super::terminal::size_of(&io::stdout()) else {
        return false;
    };
    rows_needed(&String::from_utf8_lossy(text), columns) >= rows
}

/// The terminal rows `text` takes on a terminal `columns` wide.
fn rows_needed(text: &str, columns: usize) -> usize {
    let columns = columns.max(1);
    text.strip_suffix('\n')
        .unwrap_or(text)
        .split('\n')
        .map(|line| super::display_width(line).div_ceil(columns).max(1))
        .sum()
}

/// The pager to run: `$POP3_PAGER`, else `$PAGER`, else `less`; `None` for an empty value or
/// `cat`.
fn pager_command() -> Option<OsString> {
    let chosen = std::env::var_os("POP3_PAGER")
        .or_else(|| std::env::var_os("PAGER"))
        .unwrap_or_else(|| "less".into());
    let trimmed = chosen.to_str().map(str::trim);
    match trimmed {
        Some("" | "cat") => None,
        Some(text) => Some(text.into()),
        None => Some(chosen),
    }
}

/// Runs `pager` (a shell command, as git runs `$PAGER`) with `text` on its stdin and waits for
/// it. `false` when it could not be started (then the caller prints the text itself).
fn run_pager(pager: &OsStr, text: &[u8]) -> bool {
    let mut command = if pager == "less" {
        // The default runs without a shell, so a missing `less` shows as a failed start.
        Command::new("less")
    } else {
        let mut command = Command::new("sh");
        command.arg("-c").arg(pager);
        command
    };
    if std::env::var_os("LESS").is_none() {
        command.env("LESS", "FRX");
    }
    let Ok(mut child) = command.stdin(Stdio::piped()).spawn() else {
        return false;
    };
    // Ctrl-C belongs to the pager while it runs (less uses it to stop a search); the program
    // goes on once the pager ends. Set after the spawn, so the pager does not inherit it.
    // SAFETY: plain signal(2) calls; the previous disposition is put back below.
    let previous = unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
    if let Some(mut stdin) = child.stdin.take() {
        // A pager that quits early (`q`) closes the pipe: EPIPE here is not an error.
        let _ = stdin.write_all(text);
    }
    let status = child.wait();
    // SAFETY: as above.
    unsafe { libc::signal(libc::SIGINT, previous) };
    // 126 and 127: the shell could not find or run the pager; nothing was shown.
    !matches!(status.map(|s| s.code()), Ok(Some(126 | 127)))
}

#[cfg(test)]
mod tests {
    use super::rows_needed;

    #[test]
    fn rows_count_wrapped_lines() {
        assert_eq!(rows_needed("", 80), 1);
        assert_eq!(rows_needed("a\nb\n", 80), 2);
        assert_eq!(rows_needed("a\n\nb", 80), 3);
        assert_eq!(rows_needed(&"x".repeat(81), 80), 2);
        assert_eq!(rows_needed(&"x".repeat(80), 80), 1);
        // A wide character takes two columns.
        assert_eq!(rows_needed(&"\u{4e2d}".repeat(41), 80), 2);
    }
}
