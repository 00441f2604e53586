//! The commands' own failures, as types: [`crate::exit::classify`] gives each its exit code.
//! Message selection has its own error, [`super::shared::select::SelectError`].

use std::path::PathBuf;

use crate::config::ConfigError;
use crate::exit::ExitCode;
use crate::import::ImportError;
use crate::pop3::MessageNumber;
use crate::ui::human_size;

/// Why a command failed, when the cause is not a library error that passes through unchanged.
///
/// Wrapped errors are shown inside the line, not as a source: the user sees one line either way,
/// and `{:#}` must not repeat them.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CommandError {
    /// `pop3 help NAME` names no subcommand.
    #[error("{bin} has no subcommand {name:?}; see `pop3 help`")]
    NoSuchSubcommand {
        /// The command whose subcommand was asked for (`pop3`, `pop3 config`).
        bin: String,
        /// The name given.
        name: String,
    },
    /// `read 3-5`.
    #[error("read takes one message, not a range")]
    ReadRange,
    /// `read` of a message too large to hold in memory.
    #[error(
        "message {number} is larger than {}, too big to show or to take apart; save it with --output FILE or write it with --raw",
        human_size(*limit)
    )]
    TooBigToShow {
        /// The message.
        number: MessageNumber,
        /// The largest readable size.
        limit: u64,
    },
    /// A file the user asked for could not be written.
    #[error("cannot write {}: {error}", path.display())]
    CannotWrite {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The `--save-attachments` directory cannot be used.
    #[error("cannot save attachments in {}: {problem}", dir.display())]
    CannotSaveIn {
        /// The directory.
        dir: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// Every numbered variant of an attachment's name is taken.
    #[error("cannot save {name} in {}: {attempts} files by that name already exist", dir.display())]
    NoFreeName {
        /// The attachment's (safe) name.
        name: String,
        /// The directory.
        dir: PathBuf,
        /// How many names were tried.
        attempts: u32,
    },
    /// `--all-accounts` with `--account`.
    #[error("--all-accounts and --account exclude each other")]
    AllAccountsWithAccount,
    /// Several accounts ran and some failed; each failure was reported on its own line.
    #[error("some accounts failed (see above)")]
    SomeAccountsFailed {
        /// The most serious failure's exit code.
        worst: ExitCode,
    },
    /// A worker thread panicked (a bug).
    #[error("internal error; please report it")]
    WorkerPanicked,
    /// `config check` found problems; this is the last, the others were printed before it.
    #[error("{problem}")]
    ConfigCheck {
        /// The problem, with the file and account it is about.
        problem: String,
    },
    /// `delete` without message names.
    #[error("name the messages to delete, e.g. `pop3 delete 3 5-7` (see `pop3 list`)")]
    DeleteWhat,
    /// `delete` without `--yes` where nobody can confirm.
    #[error(
        "refusing to delete without confirmation: stdin is not a terminal; pass --yes to delete anyway"
    )]
    DeleteUnconfirmed,
    /// The server refused DELE for some messages; all marks were undone.
    #[error("the server refused to delete {}; nothing was deleted", .refused.join(", "))]
    DeleteRefused {
        /// The refused messages with the server's reasons.
        refused: Vec<String>,
    },
    /// QUIT after DELE got no confirmation: the deletion may or may not have happened.
    #[error(
        "the server did not confirm QUIT ({error}), so whether {} deleted is unknown; check with `pop3 list` before deleting again",
        match .count { 1 => "the message was".to_owned(), n => format!("the {n} messages were") }
    )]
    DeletionUnknown {
        /// Why QUIT failed.
        error: crate::pop3::Error,
        /// How many messages were marked.
        count: usize,
    },
    /// `browse`: QUIT got no confirmation before anything was committed.
    #[error("nothing was deleted: the server did not confirm QUIT ({error})")]
    BrowseQuitUnconfirmed {
        /// Why QUIT failed.
        error: crate::pop3::Error,
    },
    /// A `TOP n 0` (or `RETR`) reply longer than any header block.
    #[error(
        "the server's reply for message {number} goes on beyond {}; giving up",
        human_size(*limit)
    )]
    ReplyTooLong {
        /// The message.
        number: MessageNumber,
        /// The bound.
        limit: u64,
    },
    /// `import` with several files for a tool that has one.
    #[error("{tool} has one config file")]
    ImportOneFile {
        /// The tool.
        tool: crate::import::Tool,
    },
    /// Another tool's setup could not be read.
    #[error("{0}")]
    Import(ImportError),
    /// `import` with a flag it has no use for (it opens no connection and uses no account).
    #[error(
        "pop3 import does not use {flag}: it reads the tool's files and writes the config file (--config)"
    )]
    ImportFlag {
        /// The flag, as typed (`--host`).
        flag: &'static str,
    },
    /// `config init --user`, `--port` or `--tls` without `--host`: the flag would be ignored.
    #[error(
        "{flag} needs --host for config init: pop3 config init --host HOST --user USER (without --host it writes the commented example)"
    )]
    InitWithoutHost {
        /// The flag given without `--host`.
        flag: &'static str,
    },
    /// There is no place for the config file.
    #[error("no config directory; pass --config FILE")]
    NoConfigDir,
    /// The accounts `import` would append do not parse (a bug).
    #[error("the imported accounts do not parse ({0}); nothing written")]
    ImportedConfigInvalid(ConfigError),
}
