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

/// The global flags `import` has no use for, by name, when given: it opens no connection and
/// uses no account, so `--host` and the like would be ignored, which hides a mistake.
fn unused_flags(global: &GlobalArgs) -> Vec<&'static str> {
    let given = [
        ("--account", global.account.is_some()),
        ("--host", global.host.is_some()),
        ("--port", global.port.is_some()),
        ("--user", global.user.is_some()),
        ("--tls", global.tls.is_some()),
        ("--ca-file", global.ca_file.is_some()),
        ("--auth", global.auth.is_some()),
        ("--password-env", global.password_env.is_some()),
        ("--password-file", global.password_file.is_some()),
        (
            "--allow-plaintext-password",
            global.allow_plaintext_password,
        ),
        ("--timeout", global.timeout.is_some()),
        ("--proxy", global.proxy.is_some()),
        ("--debug", global.debug),
    ];
    given
        .into_iter()
        .filter_map(|(name, given)| given.then_some(name))
        .collect()
}

/// Runs `pop3 import`.
pub fn run(args: &ImportArgs, global: &GlobalArgs, quiet: bool) -> anyhow::Result<()> {
    if let Some(flag) = unused_flags(global).first() {
        return Err(CommandError::ImportFlag { flag }.into());
    }
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
    // The tool's default account becomes `default_account`, unless the file already has one.
    let default_account = match (&imported.default_account, &loaded.file.default_account) {
        (Some(name), None) => Some(name.as_str()),
        (Some(name), Some(current)) => {
            if name != current {
                warn(&format!(
                    "{}'s default account is {name}; default_account = {current:?} in {} is left as it is",
                    args.tool,
                    path.display()
                ));
            }
            None
        }
        (None, _) => None,
    };
    // stdout carries only what is new: nothing at all when everything is already there.
    let nothing_new = new.is_empty() && default_account.is_none();
    if !nothing_new {
        let mut out = crate::ui::stdout();
        write!(
            out,
            "{}",
            imported.to_toml(args.tool, &new, default_account)
        )?;
        out.flush()?;
    }
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
        for warning in &account.warnings {
            warn(&format!("account {}: {warning}", account.name));
        }
    }
    for account in &existing {
        warn(&format!(
            "account {} is already in {}: left as it is",
            account.name,
            path.display()
        ));
    }
    if nothing_new && !quiet {
        eprintln!(
            "nothing new to import from {}{}",
            imported
                .sources
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            if imported.accounts.is_empty() {
                String::new()
            } else {
                format!(": its accounts are already in {}", path.display())
            }
        );
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
    if !nothing_new {
        let text = if new.is_empty() {
            String::new()
        } else {
            imported.to_toml(args.tool, &new, None)
        };
        append(&path, default_account, &text)?;
        if !new.is_empty() {
            eprintln!(
                "appended {} to {}",
                crate::ui::count(new.len() as u64, "account"),
                path.display()
            );
        }
        if let Some(name) = default_account {
            eprintln!(
                "set {} in {}",
                import::default_account_line(name),
                path.display()
            );
        }
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
        let lock_path = crate::store::adopt::lock_path(&state_path);
        let mailbox = (resolved.host.as_str(), resolved.user.as_str());
        let recorded = import::record_seen(&state_path, &lock_path, mailbox, &account.seen, now)
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

/// Appends `text` to the config file at `path` (created, private, when missing), and puts
/// `default_account` before its first table, after checking that the result still parses; the
/// file is replaced atomically.
fn append(path: &Path, default_account: Option<&str>, text: &str) -> anyhow::Result<()> {
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
    let mut combined = match default_account {
        Some(name) => with_default_account(&old, name),
        None => old.clone(),
    };
    if !text.is_empty() {
        if !combined.is_empty() && !combined.ends_with('\n') {
            combined.push('\n');
        }
        if !combined.is_empty() {
            combined.push('\n');
        }
        combined.push_str(text);
    }
    let parsed = config::parse(&combined, path).map_err(CommandError::ImportedConfigInvalid)?;
    if default_account.is_some() && parsed.default_account.as_deref() != default_account {
        // The line landed inside something (a multi-line string before the first table).
        return Err(
            CommandError::ImportedConfigInvalid(config::ConfigError::Parse {
                path: path.to_owned(),
                line: 1,
                message: "default_account could not be placed before the first table".into(),
            })
            .into(),
        );
    }
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

/// `old` with `default_account = "name"` before its first table (a top-level key after a
/// `[table]` header would belong to that table).
fn with_default_account(old: &str, name: &str) -> String {
    let mut head = 0;
    for line in old.split_inclusive('\n') {
        if line.trim_start().starts_with('[') {
            break;
        }
        head += line.len();
    }
    let (before, after) = old.split_at(head);
    let mut out = before.to_owned();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&import::default_account_line(name));
    out.push('\n');
    if !after.is_empty() {
        out.push('\n');
        out.push_str(after);
    }
    out
}
