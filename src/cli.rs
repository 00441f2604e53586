//! Command-line syntax (clap): the global flags and one variant per subcommand. This is the
//! "low" stage of argument handling; [`crate::commands`] resolves it once into an account and
//! output settings, and no command reads raw flags after that.

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::config::{AuthMethod, Settings, TlsMode};

/// The help heading of the flags that say how to reach and log in to the server.
pub(crate) const CONNECTION: &str = "Connection options";
/// The help heading of the flags every subcommand takes (config file, account, verbosity).
pub(crate) const GLOBAL: &str = "Global options";

/// Subcommands that never connect: their help does not list the connection flags (they are
/// still accepted, so a shell alias carrying `--host` keeps working; `import` then refuses
/// them, as it would otherwise ignore where the user meant to connect).
const OFFLINE: [&str; 6] = ["accounts", "completions", "man", "config", "help", "import"];

/// The full command definition, as parsed and as shown by help, completions and the man page.
pub(crate) fn command() -> clap::Command {
    let command = Cli::command();
    // Global flags are copied into every subcommand that lacks them when the command is built;
    // a hidden copy of each connection flag in the offline subcommands keeps them out of their
    // help while the values still reach the global flags.
    let hidden: Vec<clap::Arg> = command
        .get_arguments()
        .filter(|a| a.get_help_heading() == Some(CONNECTION))
        .map(|a| a.clone().hide(true))
        .collect();
    fn hide(command: clap::Command, hidden: &[clap::Arg]) -> clap::Command {
        let command = command.args(hidden.iter().cloned());
        command.mut_subcommands(|s| hide(s, hidden))
    }
    command.mut_subcommands(|s| {
        if OFFLINE.contains(&s.get_name()) {
            hide(s, &hidden)
        } else {
            s
        }
    })
}

/// What `pop3` alone prints (on stderr): what it is, the usage and the commands. The
/// connection options (most of clap's short help) are left to `pop3 --help`.
pub fn short_help() -> String {
    command()
        .help_template(
            "{about-with-newline}\n{usage-heading} {usage}\n\nCommands:\n{subcommands}\n",
        )
        .render_help()
        .to_string()
}

impl Cli {
    /// Parses the process's arguments with [`command`].
    pub fn parse_args() -> Result<Cli, clap::Error> {
        use clap::FromArgMatches;
        let matches = command().try_get_matches()?;
        Cli::from_arg_matches(&matches)
    }
}

/// A fast, trustworthy POP3 client: check, list, read and fetch mail.
#[derive(Debug, Parser)]
#[command(
    name = "pop3",
    version,
    about,
    max_term_width = 100,
    args_override_self = true,
    disable_help_subcommand = true
)]
pub struct Cli {
    /// Settings shared by every subcommand.
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Flags accepted by every subcommand; each overrides the config file.
#[derive(Debug, Args)]
pub(crate) struct GlobalArgs {
    /// Config file [default: ~/.config/pop3/config.toml]
    #[arg(long, global = true, value_name = "FILE", env = "POP3_CONFIG", help_heading = GLOBAL)]
    pub config: Option<PathBuf>,
    /// Account from the config file [default: default_account]
    #[arg(short = 'a', long, global = true, value_name = "NAME", help_heading = GLOBAL)]
    pub account: Option<String>,
    /// Server host name (without --account, the config's accounts are not used)
    #[arg(long, global = true, value_parser = host_name, help_heading = CONNECTION)]
    pub host: Option<String>,
    /// Server port [default: 995 for implicit TLS, 110 otherwise]
    #[arg(long, global = true, value_parser = port_number, help_heading = CONNECTION)]
    pub port: Option<u16>,
    /// User name on the server
    #[arg(long, global = true, value_parser = not_empty, help_heading = CONNECTION)]
    pub user: Option<String>,
    /// Connection security [default: implicit]
    #[arg(long, global = true, value_enum, help_heading = CONNECTION)]
    pub tls: Option<TlsMode>,
    /// PEM file of CA certificates to trust in addition to the system's
    #[arg(long, global = true, value_name = "FILE", help_heading = CONNECTION)]
    pub ca_file: Option<PathBuf>,
    /// Login mechanism [default: auto]
    #[arg(long, global = true, value_enum, help_heading = CONNECTION)]
    pub auth: Option<AuthMethod>,
    /// Read the password from this environment variable
    #[arg(long, global = true, value_name = "VAR", help_heading = CONNECTION)]
    pub password_env: Option<String>,
    /// Read the password from the first line of this file
    #[arg(long, global = true, value_name = "FILE", help_heading = CONNECTION)]
    pub password_file: Option<PathBuf>,
    /// Allow sending the password over an unencrypted connection (with --tls none)
    #[arg(long, global = true, help_heading = CONNECTION)]
    pub allow_plaintext_password: bool,
    /// Seconds allowed for connecting and for every read and write [default: 60]
    #[arg(long, global = true, value_name = "SECS", value_parser = seconds, help_heading = CONNECTION)]
    pub timeout: Option<u64>,
    /// Connect through this SOCKS5 proxy (socks5://HOST:PORT; socks5h:// lets the proxy resolve names)
    #[arg(long, global = true, value_name = "URL", value_parser = ProxyUrl, help_heading = CONNECTION)]
    pub proxy: Option<String>,
    /// Show the protocol dialogue on stderr (passwords are masked)
    #[arg(long, global = true, help_heading = CONNECTION)]
    pub debug: bool,
    /// Say more about what happens
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet", help_heading = GLOBAL)]
    pub verbose: u8,
    /// Print only errors
    #[arg(short, long, global = true, help_heading = GLOBAL)]
    pub quiet: bool,
    /// Never show long text (read, browse) through a pager ($POP3_PAGER, $PAGER, less)
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub no_pager: bool,
}

impl GlobalArgs {
    /// The settings given on the command line, as the top configuration layer.
    pub fn settings(&self) -> Settings {
        Settings {
            host: self.host.clone(),
            port: self.port,
            user: self.user.clone(),
            tls: self.tls,
            ca_file: self.ca_file.as_deref().map(from_current_dir),
            auth: self.auth,
            password_env: self.password_env.clone(),
            password_file: self.password_file.as_deref().map(from_current_dir),
            allow_plaintext_password: self.allow_plaintext_password.then_some(true),
            timeout: self.timeout,
            proxy: self.proxy.clone(),
            ..Settings::default()
        }
    }
}

// Flag values are checked here, so that a bad one is a usage error naming the flag (64), not a
// config error blamed on the file (78).

/// `--port`: 1 to 65535.
fn port_number(text: &str) -> Result<u16, String> {
    match text.trim().parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err("must be a number from 1 to 65535".into()),
    }
}

/// `--timeout`: whole seconds, at least 1.
fn seconds(text: &str) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(secs) if secs > 0 => Ok(secs),
        _ => Err("must be a whole number of seconds, 1 or more".into()),
    }
}

/// `--user`: anything but nothing.
fn not_empty(text: &str) -> Result<String, String> {
    if text.is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(text.to_owned())
    }
}

/// `--host`: a name or address; `HOST:PORT` gets the flag to use instead.
fn host_name(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("must not be empty".into());
    }
    match crate::config::port_in_host(text) {
        Some((host, port)) => Err(format!("give the port apart: --host {host} --port {port}")),
        None => Ok(text.to_owned()),
    }
}

/// `--proxy`: a URL [`crate::proxy::Proxy`] accepts. The error quotes the URL with its password
/// masked, which clap's own form (`invalid value '...'`) would not.
#[derive(Clone)]
struct ProxyUrl;

impl clap::builder::TypedValueParser for ProxyUrl {
    type Value = String;

    fn parse_ref(
        &self,
        command: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<String, clap::Error> {
        let invalid = |reason: String| {
            let flag = arg.map_or_else(|| "--proxy".to_owned(), |a| a.to_string());
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value for '{flag}': {reason}\n"),
            )
            .with_cmd(command)
        };
        let text = value
            .to_str()
            .ok_or_else(|| invalid("not valid UTF-8".to_owned()))?;
        match text.parse::<crate::proxy::Proxy>() {
            Ok(_) => Ok(text.to_owned()),
            Err(error) => Err(invalid(error.to_string())),
        }
    }
}

/// A path given on the command line is relative to the current directory, as for any other
/// program (the config layer would otherwise take it relative to the config file's folder).
/// A leading `~` is left for the config layer to expand.
pub(crate) fn from_current_dir(path: &std::path::Path) -> PathBuf {
    if path.is_relative() && !path.starts_with("~") {
        std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
    } else {
        path.to_owned()
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Check that the settings work: connection, TLS, login, capabilities, message count
    LoginCheck,
    /// Show the number of messages and their total size
    Stat(JsonArgs),
    /// List the messages: number, size and unique id
    List(JsonArgs),
    /// Show From, Subject and Date of messages without downloading them (TOP)
    Headers(crate::commands::headers::HeadersArgs),
    /// Show one message: headers, text and attachments (or its raw bytes)
    Read(crate::commands::read::ReadArgs),
    /// Delete messages from the server (asks first)
    Delete(crate::commands::delete::DeleteArgs),
    /// Go through the messages one by one: read? delete?
    Browse,
    /// Download new messages into the local mailbox (the cron job)
    FetchAll(crate::commands::fetch::FetchArgs),
    /// List the configured accounts
    Accounts(AccountsArgs),
    /// Import accounts and already-fetched messages from mpop, fetchmail or getmail
    Import(crate::commands::import::ImportArgs),
    /// Work with the config file
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a completion script for a shell
    Completions {
        /// The shell
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) covering every subcommand
    Man,
    /// Print the help of pop3 or of a subcommand
    Help {
        /// The subcommand (and its subcommand, as in `help config check`)
        #[arg(value_name = "COMMAND")]
        command: Vec<String>,
    },
}

/// `pop3 config ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Check the config file and show an account's effective settings (secrets masked)
    Check(CheckArgs),
    /// Print the annotated example config (every key, with a comment)
    Example,
    /// Write a starter config file where pop3 looks for it (never over an existing one)
    ///
    /// The file is readable by its owner only. Given the server (pop3 config init --host HOST
    /// --user USER), it holds that one account, named after the user, with every other
    /// connection flag given (--port, --tls, --ca-file, --password-env, --timeout, ...); else
    /// it is the annotated example, commented out (those flags without --host are refused).
    Init,
}

/// Arguments of `config check`.
#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Also log in to every account (in parallel) and report one line per account
    #[arg(long)]
    pub connect: bool,
}

/// Arguments of `accounts`.
#[derive(Debug, Args)]
pub(crate) struct AccountsArgs {
    /// Print only the account names, one a line (for shell completion)
    #[arg(long)]
    pub names: bool,
}

/// Output format flags.
#[derive(Debug, Args)]
pub(crate) struct JsonArgs {
    /// Print JSON for scripts
    #[arg(long)]
    pub json: bool,
}
