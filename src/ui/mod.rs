//! Everything that faces a person: text formatting and the terminal (prompts, the password
//! prompt, terminal checks, the pager for long text). stdout carries data only; progress, prompts, warnings and errors
//! go to stderr. `ui` is a leaf: it imports no other module of the crate but [`crate::secret`].

mod output;
mod pager;
pub(crate) mod progress;
mod terminal;
mod text;

pub(crate) use output::stdout;
pub use output::{StdoutError, is_stdout_error};
pub use pager::Paging;
pub(crate) use pager::show as page;
pub(crate) use terminal::{
    ask, prompt_password, stderr_is_terminal, stderr_terminal_width, stdin_is_terminal,
    terminal_width,
};
pub use text::human_size;
pub(crate) use text::{
    EMPTY_MAILBOX, command_line, compact_date, count, display_width, fit, header_value, sh_quote,
};
