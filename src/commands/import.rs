//! `pop3 import TOOL [FILE...] [--write]`: print the accounts of mpop, fetchmail or getmail as
//! pop3 TOML; with `--write`, append the new ones to the config file and record what the tool
//! already fetched in each account's state, so `fetch-all` downloads nothing twice.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::CommandError;
use crate::cli::GlobalArgs;
use crate::config::{self, Settings};
use crate::import::{self, ImportError, ImportedAccount, Tool};

/// Arguments of `pop3 import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The tool whose setup to import
    #[arg(value_enum)]
    pub tool: Tool,
    /// Its config file(s) [default: where the tool looks]
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Append the new accounts to the pop3 config file and record the messages already fetched
    #[arg(long)]
    pub write: bool,
}

/// Shown as one line: `ImportError`'s sources are already part of its message.
fn failure(error: ImportError) -> anyhow::Error {
    CommandError::Import(error).into()
}

/// Runs `pop3 import`.
pub fn run(args: &ImportArgs, global: &GlobalArgs, quiet: bool) -> anyhow::Result<()> {
    if args.files.len() > 1 && args.tool != Tool::Getmail {
        return Err(CommandError::ImportOneFile { tool: args.tool }.into());
    }
    let imported = import::read_tool(args.tool, &args.files).map_err(failure)?;
    let warn = |text: &str| {
        if !quiet {
            eprintln!("pop3: warning: {text}");
        }
    };
    let (path, _) =
        config::config_path(global.config.as_deref()).ok_or(CommandError::NoConfigDir)?;
    let loaded = if path.exists() {
        config::load(Some(&path))?
    } else {
        config::LoadedConfig::default()
    };
    let (new, existing): (Vec<&ImportedAccount>, Vec<&ImportedAccount>) = imported
        .accounts
        .iter()
        .partition(|a| !loaded.file.accounts.contains_key(&a.name));
    print!("{}", imported.to_toml(args.tool, &new));
    crate::ui::stdout().flush()?;
    for warning in &imported.warnings {
        warn(warning);
    }
    for account in &imported.accounts {
        if account.plaintext_password {
            warn(&format!(
                "account {}: the password is in clear in the {} config and is imported as password = \"...\"",
                account.name, args.tool
            ));
        }
    }
    for account in &existing {
        warn(&format!(
            "account {} is already in {}: left as it is",
            account.name,
            path.display()
        ));
    }
    if !args.write {
        for account in imported.accounts.iter().filter(|a| !a.seen.is_empty()) {
            eprintln!(
                "{}: {} already fetched by {} (in {})",
                account.name,
                crate::ui::count(account.seen.len() as u64, "message"),
                args.tool,
                account
                    .seen_from
                    .as_deref()
                    .unwrap_or(Path::new("?"))
                    .display()
            );
        }
        if !quiet {
            eprintln!(
                "nothing written: pop3 import {} --write appends the new accounts to {} and records the messages already fetched",
                args.tool,
                path.display()
            );
        }
        return Ok(());
    }
    if !new.is_empty() {
        append(&path, &imported.to_toml(args.tool, &new))?;
        eprintln!(
            "appended {} to {}",
            crate::ui::count(new.len() as u64, "account"),
            path.display()
        );
    }
    let loaded = config::load(Some(&path))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    for account in &imported.accounts {
        if account.seen.is_empty() {
            continue;
        }
        let resolved = match loaded.resolve(Some(&account.name), Settings::default()) {
            Ok(resolved) => resolved,
            Err(e) => {
                warn(&format!(
                    "account {}: {e}; its fetched messages were not recorded",
                    account.name
                ));
                continue;
            }
        };
        if !resolved.host.eq_ignore_ascii_case(&account.host) || resolved.user != account.user {
            warn(&format!(
                "account {} in {} is {}@{}, not {}@{} as in {}: its fetched messages were not recorded",
                account.name,
                path.display(),
                resolved.user,
                resolved.host,
                account.user,
                account.host,
                args.tool
            ));
            continue;
        }
        let state_path = super::fetch::state_path(&resolved);
        let mut lock_path = state_path.clone().into_os_string();
        lock_path.push(".lock");
        let recorded = import::record_seen(&state_path, Path::new(&lock_path), &account.seen, now)
            .map_err(failure)?;
        eprintln!(
            "{}: recorded {} of {} already fetched by {} in {}",
            account.name,
            recorded,
            crate::ui::count(account.seen.len() as u64, "message"),
            args.tool,
            state_path.display()
        );
    }
    Ok(())
}

/// Appends `text` to the config file at `path` (created, private, when missing), after
/// checking that the result still parses; the file is replaced atomically.
fn append(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let old = match std::fs::read_to_string(path) {
        Ok(old) => old,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => {
            return Err(config::ConfigError::Read {
                path: path.to_owned(),
                source,
            }
            .into());
        }
    };
    let mut combined = old.clone();
    if !combined.is_empty() && !combined.ends_with('\n') {
        combined.push('\n');
    }
    if !combined.is_empty() {
        combined.push('\n');
    }
    combined.push_str(text);
    config::parse(&combined, path).map_err(CommandError::ImportedConfigInvalid)?;
    let io = |error: std::io::Error| CommandError::CannotWrite {
        path: path.to_owned(),
        error,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o600);
    let mut temp = tempfile::Builder::new()
        .prefix(".pop3-import-")
        .tempfile_in(dir)
        .map_err(io)?;
    temp.write_all(combined.as_bytes()).map_err(io)?;
    temp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(io)?;
    temp.as_file().sync_all().map_err(io)?;
    temp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}
