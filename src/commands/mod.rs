//! The subcommands, one module each. [`run`] resolves the command line and the config file
//! once into a [`Context`]; commands receive that and nothing else.

pub mod accounts;
pub mod browse;
pub mod delete;
pub mod fetch;
pub mod headers;
pub mod import;
mod list;
mod login_check;
pub mod read;
pub mod select;
mod shell;
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
        connect::check_plaintext_policy(&self.account)?;
        let password = connect::credential(&self.account)?;
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
        eprintln!("{who} {}", crate::message::display_safe(line));
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
    // Commands that need no account (nor even a config file).
    match &cli.command {
        Command::Completions { shell } => return shell::completions(*shell),
        Command::Man => return shell::man(),
        Command::Import(args) => return import::run(args, global, verbosity == Verbosity::Quiet),
        _ => {}
    }
    let loaded = config::load(global.config.as_deref())?;
    if verbosity != Verbosity::Quiet {
        for warning in &loaded.warnings {
            eprintln!("pop3: warning: {warning}");
        }
    }
    match &cli.command {
        Command::Accounts => return accounts::list(&loaded, global),
        Command::Config(crate::cli::ConfigCommand::Check) => {
            return accounts::check(&loaded, global);
        }
        _ => {}
    }
    if let Command::FetchAll(args) = &cli.command
        && args.all_accounts
    {
        return fetch_all_accounts(&loaded, global, verbosity, args);
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
        Command::FetchAll(args) => {
            let summary = fetch::run(&context, args)?;
            report_fetch(&context, &summary);
            Ok(())
        }
        Command::Accounts
        | Command::Config(_)
        | Command::Import(_)
        | Command::Completions { .. }
        | Command::Man => {
            unreachable!("handled before an account is resolved")
        }
    }
}

/// The summary line: printed with -v, or on a terminal; cron (no terminal) gets silence.
fn report_fetch(context: &Context, summary: &fetch::Summary) {
    use std::io::IsTerminal;
    let wanted = match context.verbosity {
        Verbosity::Quiet => false,
        Verbosity::Verbose => true,
        Verbosity::Normal => std::io::stderr().is_terminal(),
    };
    if !wanted {
        return;
    }
    let mut line = format!(
        "{}: fetched {} ({})",
        context.account.name,
        crate::ui::count(summary.fetched as u64, "message"),
        crate::ui::human_size(summary.octets)
    );
    if summary.deleted > 0 {
        line += &format!(", deleted {}", summary.deleted);
    }
    if summary.recognised > 0 {
        line += &format!(
            ", {} already delivered by an interrupted run",
            summary.recognised
        );
    }
    if summary.too_big > 0 {
        line += &format!(", {} too big (left on the server)", summary.too_big);
    }
    eprintln!("{line}");
}

/// `fetch-all --all-accounts`: every account in its own thread (a few at a time); one failure
/// does not stop the others, and the exit code is the worst of them.
fn fetch_all_accounts(
    loaded: &config::LoadedConfig,
    global: &crate::cli::GlobalArgs,
    verbosity: Verbosity,
    args: &fetch::FetchArgs,
) -> anyhow::Result<()> {
    const PARALLEL: usize = 4;
    if global.account.is_some() {
        return Err(crate::exit::Failure::new(
            crate::exit::ExitCode::Usage,
            "--all-accounts and --account exclude each other",
        )
        .into());
    }
    let names: Vec<String> = loaded.file.accounts.keys().cloned().collect();
    if names.is_empty() {
        return Err(config::ConfigError::NoAccount(
            "--all-accounts needs accounts in the config file".into(),
        )
        .into());
    }
    let mut contexts = Vec::new();
    for name in &names {
        let mut account = loaded
            .resolve(Some(name), global.settings())
            .with_context(|| format!("account {name}"))?;
        // Ask for passwords one at a time now: parallel prompts would interleave.
        if matches!(account.password, config::PasswordSource::Prompt)
            && !connect::uses_oauth(&account)
            && crate::ui::stdin_is_terminal()
        {
            let secret =
                connect::credential(&account).with_context(|| format!("account {name}"))?;
            account.password = config::PasswordSource::Inline(secret);
        }
        contexts.push(Context {
            account,
            verbosity,
            debug: global.debug,
        });
    }
    let mut worst = crate::exit::ExitCode::Success;
    for group in contexts.chunks(PARALLEL) {
        let results: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = group
                .iter()
                .map(|context| scope.spawn(move || fetch::run(context, args)))
                .collect();
            handles.into_iter().map(|h| h.join()).collect()
        });
        for (context, result) in group.iter().zip(results) {
            match result {
                Ok(Ok(summary)) => report_fetch(context, &summary),
                Ok(Err(error)) => {
                    let code = crate::exit::classify(&error);
                    let line = format!("{}: {error:#}", context.account.name);
                    eprintln!("pop3: {}", crate::message::display_safe(&line));
                    if code.severity() > worst.severity() {
                        worst = code;
                    }
                }
                Err(_) => {
                    eprintln!("pop3: {}: internal error", context.account.name);
                    worst = crate::exit::ExitCode::Software;
                }
            }
        }
    }
    match worst {
        crate::exit::ExitCode::Success => Ok(()),
        code => Err(crate::exit::Failure::new(code, "some accounts failed (see above)").into()),
    }
}
