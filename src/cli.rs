//! Command-line syntax (clap): the global flags and one variant per subcommand. This is the
//! "low" stage of argument handling; [`crate::commands`] resolves it once into an account and
//! output settings, and no command reads raw flags after that.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{AuthMethod, Settings, TlsMode};

/// A fast, trustworthy POP3 client: check, list, read and fetch mail.
#[derive(Debug, Parser)]
#[command(
    name = "pop3",
    version,
    about,
    max_term_width = 100,
    args_override_self = true
)]
pub struct Cli {
    /// Settings shared by every subcommand.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags accepted by every subcommand; each overrides the config file.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Config file [default: ~/.config/pop3/config.toml]
    #[arg(long, global = true, value_name = "FILE", env = "POP3_CONFIG")]
    pub config: Option<PathBuf>,
    /// Account from the config file [default: default_account]
    #[arg(short = 'a', long, global = true, value_name = "NAME")]
    pub account: Option<String>,
    /// Server host name (without --account, the config's accounts are not used)
    #[arg(long, global = true)]
    pub host: Option<String>,
    /// Server port [default: 995 for implicit TLS, 110 otherwise]
    #[arg(long, global = true)]
    pub port: Option<u16>,
    /// User name on the server
    #[arg(long, global = true)]
    pub user: Option<String>,
    /// Connection security [default: implicit]
    #[arg(long, global = true, value_enum)]
    pub tls: Option<TlsMode>,
    /// PEM file of CA certificates to trust in addition to the system's
    #[arg(long, global = true, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Login mechanism [default: auto]
    #[arg(long, global = true, value_enum)]
    pub auth: Option<AuthMethod>,
    /// Read the password from this environment variable
    #[arg(long, global = true, value_name = "VAR")]
    pub password_env: Option<String>,
    /// Read the password from the first line of this file
    #[arg(long, global = true, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Allow sending the password over an unencrypted connection (with --tls none)
    #[arg(long, global = true)]
    pub allow_plaintext_password: bool,
    /// Seconds allowed for connecting and for every read and write [default: 60]
    #[arg(long, global = true, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// Connect through this SOCKS5 proxy (socks5://HOST:PORT; socks5h:// lets the proxy resolve names)
    #[arg(long, global = true, value_name = "URL")]
    pub proxy: Option<String>,
    /// Show the protocol dialogue on stderr (passwords are masked)
    #[arg(long, global = true)]
    pub debug: bool,
    /// Say more about what happens
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Print only errors
    #[arg(short, long, global = true)]
    pub quiet: bool,
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

/// A path given on the command line is relative to the current directory, as for any other
/// program (the config layer would otherwise take it relative to the config file's folder).
/// A leading `~` is left for the config layer to expand.
pub fn from_current_dir(path: &std::path::Path) -> PathBuf {
    if path.is_relative() && !path.starts_with("~") {
        std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
    } else {
        path.to_owned()
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
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
    Accounts,
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
}

/// `pop3 config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check the config file and show an account's effective settings (secrets masked)
    Check,
}

/// Output format flags.
#[derive(Debug, Args)]
pub struct JsonArgs {
    /// Print JSON for scripts
    #[arg(long)]
    pub json: bool,
}
