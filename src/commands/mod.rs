//! The subcommands, one module each; [`shared`] holds the helpers several of them use
//! (message selection, header fetching). [`run`] resolves the command line and the config file
//! once into a [`Context`]; commands receive that and nothing else.

pub(crate) mod accounts;
pub(crate) mod browse;
mod config_file;
mod daemon;
pub(crate) mod delete;
mod error;
pub(crate) mod fetch;
pub(crate) mod headers;
pub(crate) mod import;
mod list;
mod login_check;
pub(crate) mod read;
pub(crate) mod shared;
mod shell;
mod stat;

pub(crate) use error::CommandError;

use anyhow::Context as _;

use crate::cli::{Cli, Command};
use crate::config::{self, Account};
use crate::connect::{self, Connection, Progress};
use crate::pop3::Command as Pop3Command;
use crate::pop3::client::{Direction, Tracer};

/// How chatty to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verbosity {
    /// Errors only.
    Quiet,
    /// Results and warnings.
    Normal,
    /// Also what happens on the way.
    Verbose,
}

/// Everything a command needs, resolved once.
pub(crate) struct Context {
    /// The account to use.
    pub account: Account,
    /// How chatty to be.
    pub verbosity: Verbosity,
    /// Whether to trace the protocol dialogue on stderr.
    pub debug: bool,
    /// Whether several accounts run at once, so notes must say which account they are about.
    pub several: bool,
    /// Where `fetch-all --every` keeps a password typed at the prompt, so that later cycles
    /// (and a configuration re-read) reuse it instead of asking again.
    pub typed_password: Option<std::sync::Arc<connect::TypedPassword>>,
}

impl Context {
    /// Prints a note on stderr when verbose.
    pub fn note(&self, message: &str) {
        if self.verbosity == Verbosity::Verbose {
            if self.several {
                eprintln!("{}: {message}", self.account.name);
            } else {
                eprintln!("{message}");
            }
        }
    }

    /// Opens an authenticated session, obtaining the password on the way (a prompt comes
    /// once the connection is up), reporting progress to `progress` (and, when verbose, on
    /// stderr).
    pub fn connect_with(
        &self,
        options: connect::Options<'_>,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> anyhow::Result<Connection> {
        connect::check_plaintext_policy(&self.account)?;
        let keep = self.typed_password.as_deref();
        let recalled = keep.and_then(|kept| kept.recall(&self.account));
        let from_memory = recalled.is_some();
        // Every source but the prompt is read now; the prompt waits until the login needs it.
        let credential = match recalled {
            Some(secret) => connect::Credential::Ready(secret),
            None => connect::prepare(&self.account)?,
        };
        let tracer = self.debug.then(debug_tracer);
        let options = connect::Options {
            keep_typed: keep,
            ..options
        };
        match connect::open(&self.account, &credential, tracer, options, progress) {
            Ok(connection) => Ok(connection),
            Err(error) => {
                let error = anyhow::Error::from(error);
                // A kept password the server now refuses is forgotten, so the next cycle asks
                // again (or, without a terminal, fails as without a password and backs off)
                // instead of trying it again and again. A temporary refusal ([IN-USE]) keeps it.
                if from_memory
                    && crate::exit::classify(&error) == crate::exit::ExitCode::AuthFailed
                    && let Some(kept) = keep
                {
                    kept.forget();
                }
                Err(error)
            }
        }
    }

    /// Opens an authenticated session.
    pub fn connect(&self) -> anyhow::Result<Connection> {
        self.connect_prefetching(&[])
    }

    /// Opens an authenticated session whose first commands will be `prefetch`: with a server
    /// that pipelines, they travel with the login (see [`connect::open`]).
    pub fn connect_prefetching(
        &self,
        prefetch: &[Pop3Command<'static>],
    ) -> anyhow::Result<Connection> {
        self.connect_with_options(connect::Options {
            prefetch,
            remembered: None,
            keep_typed: None,
        })
    }

    /// Like [`Context::connect_prefetching`], and remembers the server's pre-login
    /// capabilities in `memory` (a file beside the account's state) so that the next run skips
    /// the CAPA round trip before the login. A memory that did not serve (a failed login, a
    /// server without PIPELINING now) is forgotten: the run after asks again.
    pub fn connect_remembering(
        &self,
        prefetch: &[Pop3Command<'static>],
        memory: &std::path::Path,
    ) -> anyhow::Result<Connection> {
        use crate::store::capability_memory;
        let remembered = capability_memory::recall(memory);
        let had_memory = remembered.is_some();
        let result = self.connect_with_options(connect::Options {
            prefetch,
            remembered,
            keep_typed: None,
        });
        match &result {
            Ok(connection) => match &connection.learned {
                Some(learned) if learned.pipelining() => {
                    capability_memory::remember(memory, learned)
                }
                Some(_) => capability_memory::forget(memory),
                None if !connection.capabilities.pipelining() => capability_memory::forget(memory),
                None => {}
            },
            Err(_) if had_memory => capability_memory::forget(memory),
            Err(_) => {}
        }
        result
    }

    fn connect_with_options(&self, options: connect::Options<'_>) -> anyhow::Result<Connection> {
        self.connect_with(options, &mut |step| {
            if let Progress::Authenticated(mechanism) = step {
                self.note(&format!("logged in with {mechanism}"));
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
        Command::Help { command } => return shell::help(command),
        Command::Config(crate::cli::ConfigCommand::Example) => return config_file::example(),
        Command::Config(crate::cli::ConfigCommand::Init) => {
            return config_file::init(global, verbosity == Verbosity::Quiet);
        }
        _ => {}
    }
    if let Command::Accounts(args) = &cli.command
        && args.names
    {
        // For shell completion: a broken or missing file gives no names, not an error.
        return match config::load(global.config.as_deref()) {
            Ok(loaded) => accounts::list(&loaded, global, true),
            Err(_) => Ok(()),
        };
    }
    let loaded = config::load(global.config.as_deref())?;
    if verbosity != Verbosity::Quiet {
        for warning in &loaded.warnings {
            eprintln!("pop3: warning: {warning}");
        }
    }
    match &cli.command {
        Command::Accounts(_) => return accounts::list(&loaded, global, false),
        Command::Config(crate::cli::ConfigCommand::Check(args)) => {
            return accounts::check(&loaded, global, args, verbosity);
        }
        _ => {}
    }
    if let Command::FetchAll(args) = &cli.command
        && let Some(every) = args.every
    {
        return fetch_every(loaded, global, verbosity, args, every);
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
        several: false,
        typed_password: None,
    };
    match &cli.command {
        Command::LoginCheck => login_check::run(&context),
        Command::Stat(args) => stat::run(&context, args),
        Command::List(args) => list::run(&context, args),
        Command::Headers(args) => headers::run(&context, args),
        Command::Read(args) => read::run(&context, args, paging(global)),
        Command::Delete(args) => delete::run(&context, args),
        Command::Browse => browse::run(&context, paging(global)),
        Command::FetchAll(args) => {
            let (summary, result) = fetch::run(&context, args);
            match &result {
                Ok(()) => fetch::report_summary(&context, &summary),
                Err(error) if crate::signals::stopped_by().is_some() => {
                    eprintln!("pop3: {}", crate::exit::describe(error));
                }
                // main prints the error line after this.
                Err(_) => fetch::report_summary_after_error(&context, &summary),
            }
            exit_if_stopped(summary.fetched, summary.asked_all && result.is_ok());
            result
        }
        Command::Accounts(_)
        | Command::Config(_)
        | Command::Import(_)
        | Command::Completions { .. }
        | Command::Man
        | Command::Help { .. } => {
            unreachable!("handled before an account is resolved")
        }
    }
}

/// Whether `read` and `browse` may show long text through a pager.
fn paging(global: &crate::cli::GlobalArgs) -> crate::ui::Paging {
    if global.no_pager {
        crate::ui::Paging::Never
    } else {
        crate::ui::Paging::Auto
    }
}

/// `fetch-all --all-accounts`: every account in its own thread (a few at a time); one failure
/// does not stop the others, and the exit code is the worst of them.
fn fetch_all_accounts(
    loaded: &config::LoadedConfig,
    global: &crate::cli::GlobalArgs,
    verbosity: Verbosity,
    args: &fetch::FetchArgs,
) -> anyhow::Result<()> {
    if global.account.is_some() {
        return Err(CommandError::AllAccountsWithAccount.into());
    }
    let names: Vec<String> = loaded.file.accounts.keys().cloned().collect();
    if names.is_empty() {
        return Err(config::ConfigError::NoAccount(no_accounts_for_all(loaded)).into());
    }
    let contexts = contexts_for(loaded, global, verbosity, &names)?;
    let results = fetch_in_parallel(&contexts, args);
    let mut worst = crate::exit::ExitCode::Success;
    let mut fetched = 0;
    let mut asked_all = true;
    for (context, (summary, result)) in contexts.iter().zip(results) {
        fetched += summary.fetched;
        asked_all &= summary.asked_all && result.is_ok();
        match result {
            Ok(()) => fetch::report_summary(context, &summary),
            Err(error) => {
                fetch::report_summary_after_error(context, &summary);
                worst = worse(worst, crate::exit::classify(&error));
                eprintln!("pop3: {}", account_error(&context.account.name, &error));
            }
        }
    }
    exit_if_stopped(fetched, asked_all);
    match worst {
        crate::exit::ExitCode::Success => Ok(()),
        worst => Err(CommandError::SomeAccountsFailed { worst }.into()),
    }
}

/// After a `fetch-all` that SIGINT or SIGTERM stopped: says so, and exits with 128 plus the
/// signal's number (130, 143), as a shell reports a program a signal ended. Everything is
/// committed, the account locks released and the connections closed by then.
fn exit_if_stopped(fetched: usize, asked_all: bool) {
    if let Some(signal) = crate::signals::stopped_by() {
        fetch::report_interrupted(fetched, asked_all);
        std::process::exit(128 + signal);
    }
}

/// Why `--all-accounts` has nothing to fetch: no file, or a file without accounts.
fn no_accounts_for_all(loaded: &config::LoadedConfig) -> String {
    match &loaded.path {
        Some(path) => format!(
            "--all-accounts needs accounts in the config file, and {} defines none",
            path.display()
        ),
        None => match config::config_path(None) {
            Some((path, _)) => format!(
                "--all-accounts needs accounts in the config file, but there is no config file at {}; create one with `pop3 config init`",
                path.display()
            ),
            None => "--all-accounts needs a config file; pass --config FILE".into(),
        },
    }
}

/// `fetch-all --every INTERVAL`: the account (or with `--all-accounts` every account) fetched
/// again and again until SIGTERM or SIGINT, which end it with exit status 0 (the normal end of
/// a service); SIGHUP re-reads the config file.
fn fetch_every(
    loaded: config::LoadedConfig,
    global: &crate::cli::GlobalArgs,
    verbosity: Verbosity,
    args: &fetch::FetchArgs,
    every: std::time::Duration,
) -> anyhow::Result<()> {
    if args.all_accounts && global.account.is_some() {
        return Err(CommandError::AllAccountsWithAccount.into());
    }
    let signals = crate::signals::Signals::install()
        .map_err(|e| anyhow::anyhow!("cannot install signal handlers: {e}"))?;
    let mut first = Some(loaded);
    // A password typed at the prompt is asked once (at the first cycle, once connected) and
    // kept for the cycles after, also across a configuration re-read.
    let typed_password = std::sync::Arc::new(connect::TypedPassword::default());
    let load = || -> anyhow::Result<Vec<Context>> {
        let loaded = match first.take() {
            Some(loaded) => loaded,
            None => config::load(global.config.as_deref())?,
        };
        let names: Vec<String> = if args.all_accounts {
            let names: Vec<String> = loaded.file.accounts.keys().cloned().collect();
            if names.is_empty() {
                // Else the service would run forever with nothing to do, and say nothing.
                return Err(config::ConfigError::NoAccount(no_accounts_for_all(&loaded)).into());
            }
            names
        } else {
            let account = loaded.resolve(global.account.as_deref(), global.settings());
            let account = match &loaded.path {
                Some(path) => account.with_context(|| format!("in {}", path.display()))?,
                None => account?,
            };
            return Ok(vec![Context {
                account,
                verbosity,
                debug: global.debug,
                // A service's log names the account on every line, as its summaries do.
                several: true,
                typed_password: Some(typed_password.clone()),
            }]);
        };
        let mut contexts = contexts_for(&loaded, global, verbosity, &names)?;
        for context in &mut contexts {
            context.several = true;
        }
        Ok(contexts)
    };
    // Messages fetched by the cycle a stop interrupted, if one did.
    let interrupted = std::cell::Cell::new(None);
    let cycle = |due: &[&Context]| -> Vec<daemon::Outcome> {
        let results = fetch_in_parallel(due, args);
        if results.iter().any(|(summary, _)| summary.interrupted) {
            interrupted.set(Some(results.iter().map(|(s, _)| s.fetched).sum::<usize>()));
        }
        results
            .into_iter()
            .zip(due)
            .map(|((summary, result), context)| match result {
                Ok(()) => {
                    fetch::report_summary(context, &summary);
                    None
                }
                Err(error) => {
                    fetch::report_summary_after_error(context, &summary);
                    Some(account_error(&context.account.name, &error))
                }
            })
            .collect()
    };
    daemon::run(every, &signals, load, cycle)?;
    if let Some(fetched) = interrupted.get() {
        fetch::report_interrupted(fetched, false);
    }
    Ok(())
}

/// `config check --connect`: logs in to every account (or the one named by `-a`) in parallel,
/// then prints one line per account in order; the exit code is the most serious failure.
pub(crate) fn check_connections(
    loaded: &config::LoadedConfig,
    global: &crate::cli::GlobalArgs,
    verbosity: Verbosity,
) -> anyhow::Result<()> {
    use std::io::Write;
    let names: Vec<String> = match &global.account {
        Some(name) => vec![name.clone()],
        None => loaded.file.accounts.keys().cloned().collect(),
    };
    let contexts = contexts_for(loaded, global, verbosity, &names)?;
    let results = in_parallel(&contexts, |context| {
        let mut connection = context.connect()?;
        let stat = connection.session.stat()?;
        let _ = connection.session.quit();
        Ok(stat)
    });
    let width = names.iter().map(String::len).max().unwrap_or(0);
    let mut worst = crate::exit::ExitCode::Success;
    for (context, result) in contexts.iter().zip(results) {
        let account = &context.account;
        match result {
            Ok(stat) => writeln!(
                crate::ui::stdout(),
                "{:<width$}  ok: {}@{} port {}, {}, {}",
                account.name,
                account.user,
                account.host,
                account.port,
                crate::ui::count(stat.messages.into(), "message"),
                crate::ui::human_size(stat.octets)
            )?,
            Err(error) => {
                worst = worse(worst, crate::exit::classify(&error));
                eprintln!("pop3: {}", account_error(&account.name, &error));
            }
        }
    }
    match worst {
        crate::exit::ExitCode::Success => Ok(()),
        worst => Err(CommandError::SomeAccountsFailed { worst }.into()),
    }
}

/// The more serious of two exit codes.
fn worse(a: crate::exit::ExitCode, b: crate::exit::ExitCode) -> crate::exit::ExitCode {
    if b.severity() > a.severity() { b } else { a }
}

/// `NAME: error`, without naming the account twice when the error already starts with it
/// (`NAME: …` or `account NAME: …`), and with the server's text made safe for the terminal.
fn account_error(name: &str, error: &anyhow::Error) -> String {
    let text = crate::exit::describe(error);
    let named = |text: &str| {
        text.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(": "))
            .map(str::to_owned)
    };
    let rest = named(&text).or_else(|| text.strip_prefix("account ").and_then(named));
    match rest {
        Some(rest) => format!("{name}: {rest}"),
        None => format!("{name}: {text}"),
    }
}

/// The password prompt with the account's name when several accounts are asked for in a row:
/// two accounts may share a mailbox (`user@host`), so that alone does not say which one it is.
fn naming_account(
    credential: connect::Credential,
    name: &str,
    several: bool,
) -> connect::Credential {
    match credential {
        connect::Credential::Prompt(prompt) if several => {
            let question = prompt.strip_suffix(": ").unwrap_or(&prompt);
            connect::Credential::Prompt(format!("{question} (account {name}): "))
        }
        other => other,
    }
}

/// Resolves the named accounts for a run over several of them, asking for passwords now, one
/// at a time (parallel prompts would interleave).
fn contexts_for(
    loaded: &config::LoadedConfig,
    global: &crate::cli::GlobalArgs,
    verbosity: Verbosity,
    names: &[String],
) -> anyhow::Result<Vec<Context>> {
    let mut contexts = Vec::new();
    for name in names {
        let mut account = loaded
            .resolve(Some(name), global.settings())
            .with_context(|| format!("account {name}"))?;
        if matches!(account.password, config::PasswordSource::Prompt)
            && !connect::uses_oauth(&account)
            && crate::ui::stdin_is_terminal()
        {
            let credential =
                connect::prepare(&account).with_context(|| format!("account {name}"))?;
            let secret = naming_account(credential, name, names.len() > 1)
                .obtain()
                .with_context(|| format!("account {name}"))?;
            account.password = config::PasswordSource::Inline(secret);
        }
        contexts.push(Context {
            account,
            verbosity,
            debug: global.debug,
            several: names.len() > 1,
            typed_password: None,
        });
    }
    Ok(contexts)
}

/// `fetch-all` for each account, [`in_parallel`]: what each did, and how it ended.
fn fetch_in_parallel<C: std::borrow::Borrow<Context> + Sync>(
    contexts: &[C],
    args: &fetch::FetchArgs,
) -> Vec<(fetch::Summary, anyhow::Result<()>)> {
    in_parallel(contexts, |context| Ok(fetch::run(context.borrow(), args)))
        .into_iter()
        .map(|run| run.unwrap_or_else(|panicked| (fetch::Summary::default(), Err(panicked))))
        .collect()
}

/// Runs `work` for every context, each in its own thread, a few at a time; the results come
/// back in the order of `contexts`. A panic becomes an internal error for that account only.
fn in_parallel<C: Sync, T: Send>(
    contexts: &[C],
    work: impl Fn(&C) -> anyhow::Result<T> + Sync,
) -> Vec<anyhow::Result<T>> {
    const PARALLEL: usize = 4;
    let mut results = Vec::with_capacity(contexts.len());
    for group in contexts.chunks(PARALLEL) {
        std::thread::scope(|scope| {
            let handles: Vec<_> = group
                .iter()
                .map(|context| scope.spawn(|| work(context)))
                .collect();
            for handle in handles {
                results.push(
                    handle
                        .join()
                        .unwrap_or_else(|_| Err(CommandError::WorkerPanicked.into())),
                );
            }
        });
    }
    results
}

#[cfg(test)]
mod tests {
    use super::account_error;

    #[test]
    fn errors_name_the_account_once() {
        let already = anyhow::anyhow!("work: the server did not confirm QUIT");
        assert_eq!(
            account_error("work", &already),
            "work: the server did not confirm QUIT"
        );
        let plain = anyhow::anyhow!("connection refused");
        assert_eq!(account_error("work", &plain), "work: connection refused");
        // A name that merely starts the text is not the account's prefix.
        let other = anyhow::anyhow!("workshop: x");
        assert_eq!(account_error("work", &other), "work: workshop: x");
    }

    /// Trial: `pop3: default: account default: another pop3 run is already fetching …`.
    #[test]
    fn an_error_that_says_account_name_is_not_prefixed_again() {
        let busy = anyhow::anyhow!("account default: another pop3 run is already fetching");
        assert_eq!(
            account_error("default", &busy),
            "default: another pop3 run is already fetching"
        );
        let other = anyhow::anyhow!("account defaults: x");
        assert_eq!(
            account_error("default", &other),
            "default: account defaults: x"
        );
    }
}
