//! The subcommands, one module each. [`run`] resolves the command line and the config file
//! once into a [`Context`]; commands receive that and nothing else.

pub mod browse;
pub mod delete;
pub mod headers;
mod list;
mod login_check;
pub mod read;
pub mod select;
mod stat;
mod top;

use anyhow::Context as _;

use crate::cli::{Cli, Command};
use crate::config::{self, Account};
use crate::connect::{self, Connection, Progress};
use crate::pop3::client::{Direction, Tracer};

/// How chatty to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// Errors only.
    Quiet,
    /// Results and warnings.
    Normal,
    /// Also what happens on the way.
    Verbose,
}

/// Everything a command needs, resolved once.
pub struct Context {
    /// The account to use.
    pub account: Account,
    /// How chatty to be.
    pub verbosity: Verbosity,
    /// Whether to trace the protocol dialogue on stderr.
    pub debug: bool,
}

impl Context {
    /// Prints a note on stderr when verbose.
    pub fn note(&self, message: &str) {
        if self.verbosity == Verbosity::Verbose {
            eprintln!("{message}");
        }
    }

    /// Obtains the password and opens an authenticated session, reporting progress to
    /// `progress` (and, when verbose, on stderr).
    pub fn connect_with(
        &self,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> anyhow::Result<Connection> {
        let password = connect::password(&self.account)?;
        let tracer = self.debug.then(debug_tracer);
        let connection = connect::open(&self.account, &password, tracer, progress)?;
        Ok(connection)
    }

    /// Opens an authenticated session.
    pub fn connect(&self) -> anyhow::Result<Connection> {
        let verbose = self.verbosity == Verbosity::Verbose;
        self.connect_with(&mut |step| {
            if verbose && let Progress::Authenticated(mechanism) = step {
                eprintln!("logged in with {mechanism}");
            }
        })
    }
}

/// Prints the dialogue on stderr; the client has already masked secrets.
fn debug_tracer() -> Tracer {
    Box::new(|direction, line| {
        let who = match direction {
            Direction::Client => "C:",
            Direction::Server => "S:",
        };
        eprintln!("{who} {line}");
    })
}

/// Runs the command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let global = &cli.global;
    let verbosity = if global.quiet {
        Verbosity::Quiet
    } else if global.verbose > 0 {
        Verbosity::Verbose
    } else {
        Verbosity::Normal
    };
    let loaded = config::load(global.config.as_deref())?;
    if verbosity != Verbosity::Quiet {
        for warning in &loaded.warnings {
            eprintln!("pop3: warning: {warning}");
        }
    }
    let account = loaded.resolve(global.account.as_deref(), global.settings());
    let account = match &loaded.path {
        Some(path) => account.with_context(|| format!("in {}", path.display()))?,
        None => account?,
    };
    let context = Context {
        account,
        verbosity,
        debug: global.debug,
    };
    match &cli.command {
        Command::LoginCheck => login_check::run(&context),
        Command::Stat(args) => stat::run(&context, args),
        Command::List(args) => list::run(&context, args),
        Command::Headers(args) => headers::run(&context, args),
        Command::Read(args) => read::run(&context, args),
        Command::Delete(args) => delete::run(&context, args),
        Command::Browse => browse::run(&context),
    }
}
