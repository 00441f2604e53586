//! `pop3 accounts` and `pop3 config check`: what the config file defines, checked the same way
//! every other command reads it, with secrets masked.

use std::io::Write;

use anyhow::Context as _;

use crate::cli::{CheckArgs, GlobalArgs};
use crate::config::{
    self, Account, AuthMethod, ConfigError, DeliveryTarget, LoadedConfig, PasswordSource,
};

fn require_file(loaded: &LoadedConfig) -> Result<&std::path::Path, ConfigError> {
    loaded.path.as_deref().ok_or_else(|| {
        let where_ = config::config_path(None)
            .map(|(p, _)| p.display().to_string())
            .unwrap_or_else(|| "the platform config directory".into());
        ConfigError::NoAccount(format!(
            "there is no config file at {where_}; create one (see config.example.toml) or pass --config"
        ))
    })
}

/// Runs `accounts`: one line per account, `*` marking the default; with `names`, only the
/// names (for shell completion, which must stay quiet when there is no config file).
pub fn list(loaded: &LoadedConfig, global: &GlobalArgs, names: bool) -> anyhow::Result<()> {
    if names {
        let mut out = crate::ui::stdout();
        for name in loaded.file.accounts.keys() {
            writeln!(out, "{name}")?;
        }
        return Ok(());
    }
    let path = require_file(loaded)?;
    let default = loaded.file.default_account.clone().or_else(|| {
        (loaded.file.accounts.len() == 1)
            .then(|| loaded.file.accounts.keys().next().cloned())
            .flatten()
    });
    let mut out = crate::ui::stdout();
    if loaded.file.accounts.is_empty() {
        eprintln!("{} defines no accounts", path.display());
        return Ok(());
    }
    let width = loaded
        .file
        .accounts
        .keys()
        .map(String::len)
        .max()
        .unwrap_or(0);
    for name in loaded.file.accounts.keys() {
        let marker = if Some(name) == default.as_ref() {
            '*'
        } else {
            ' '
        };
        let line = match loaded.resolve(Some(name), global.settings()) {
            Ok(a) => format!("{}@{} port {}, tls {}", a.user, a.host, a.port, a.tls),
            Err(e) => format!("(invalid: {e})"),
        };
        writeln!(out, "{marker} {name:<width$}  {line}")?;
    }
    Ok(())
}

/// Runs `config check`: resolves every account and checks what can be checked without the
/// network (so every problem shows, not just the first account's), then prints the effective
/// settings of the selected account. With `--connect` it then logs in to the accounts.
pub fn check(
    loaded: &LoadedConfig,
    global: &GlobalArgs,
    args: &CheckArgs,
    verbosity: super::Verbosity,
) -> anyhow::Result<()> {
    let path = require_file(loaded)?;
    let mut problems = Vec::new();
    for name in loaded.file.accounts.keys() {
        match loaded.resolve(Some(name), global.settings()) {
            Err(e) => problems.push(format!("{}: {e}", path.display())),
            Ok(account) => problems.extend(
                offline_problems(&account)
                    .into_iter()
                    .map(|p| format!("{}: account {name}: {p}", path.display())),
            ),
        }
    }
    if let Some(name) = &loaded.file.default_account
        && !loaded.file.accounts.contains_key(name)
    {
        problems.push(format!(
            "{}: default_account names {name:?}, which is not defined",
            path.display()
        ));
    }
    // Every problem on its own line; the last one is the error that sets the exit code.
    if let Some(last) = problems.pop() {
        for problem in &problems {
            eprintln!("pop3: {problem}");
        }
        return Err(super::CommandError::ConfigCheck { problem: last }.into());
    }
    if args.connect {
        let summary = format!(
            "{}: ok, {}",
            path.display(),
            crate::ui::count(loaded.file.accounts.len() as u64, "account")
        );
        if verbosity != super::Verbosity::Quiet {
            writeln!(crate::ui::stdout(), "{summary}")?;
        }
        return super::check_connections(loaded, global, verbosity);
    }
    // Several accounts and none chosen is a valid file: there is just no one account to show.
    if global.account.is_none()
        && global.host.is_none()
        && loaded.file.default_account.is_none()
        && loaded.file.accounts.len() > 1
    {
        let names: Vec<&str> = loaded.file.accounts.keys().map(String::as_str).collect();
        writeln!(
            crate::ui::stdout(),
            "{}: ok, {} ({}); no default_account, so commands need -a NAME\n  \
             pop3 -a NAME config check shows an account's settings",
            path.display(),
            crate::ui::count(names.len() as u64, "account"),
            names.join(", ")
        )?;
        return Ok(());
    }
    let account = loaded
        .resolve(global.account.as_deref(), global.settings())
        .with_context(|| format!("in {}", path.display()))?;
    let mut out = crate::ui::stdout();
    writeln!(
        out,
        "{}: ok, {}",
        path.display(),
        crate::ui::count(loaded.file.accounts.len() as u64, "account")
    )?;
    for (key, value) in effective_settings(&account) {
        writeln!(out, "  {key:<24} {value}")?;
    }
    Ok(())
}

/// What can be wrong with a resolved account that shows without connecting: files that do
/// not exist or cannot be read, certificates that do not parse, commands that cannot be run.
/// Commands are never run (a password command may prompt or unlock a keyring).
pub fn offline_problems(account: &Account) -> Vec<String> {
    let mut problems = Vec::new();
    let mut readable = |key: &str, path: &std::path::Path| {
        if let Err(e) = std::fs::File::open(path) {
            problems.push(format!("{key} {}: {}", path.display(), io_reason(&e)));
            false
        } else {
            true
        }
    };
    let mut files_ok = true;
    if let Some(ca) = &account.ca_file {
        files_ok &= readable("ca_file", ca);
    }
    if let Some((cert, key)) = &account.tls_options.client_cert {
        files_ok &= readable("tls_client_cert", cert);
        files_ok &= readable("tls_client_key", key);
    }
    if let PasswordSource::File(file) = &account.password
        && !crate::connect::uses_oauth(account)
    {
        readable("password_file", file);
    }
    // The files exist: do they hold what they should? (The same code loads them on connect.)
    if files_ok
        && account.tls != crate::config::TlsMode::None
        && let Err(e) =
            crate::transport::TlsConnector::new(account.ca_file.as_deref(), &account.tls_options)
    {
        problems.push(e.to_string());
    }
    let mut runnable = |key: &str, argv: &[String]| {
        if let Some(why) = argv.first().and_then(|program| cannot_run(program)) {
            problems.push(format!("{key}: {why}"));
        }
    };
    if let PasswordSource::Command(argv) = &account.password
        && !crate::connect::uses_oauth(account)
    {
        runnable("password_command", argv);
    }
    if let Some(argv) = &account.oauth_token_command {
        runnable("oauth_token_command", argv);
    }
    if let DeliveryTarget::Mda(argv) = &account.target {
        runnable("mda", argv);
    }
    problems
}

/// Why `program` cannot be started, looking it up in `PATH` as the shell does when it has no
/// slash; `None` when it can.
fn cannot_run(program: &str) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |path: &std::path::Path| {
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let path = std::path::Path::new(program);
        return match std::fs::metadata(path) {
            Err(e) => Some(format!("{program}: {}", io_reason(&e))),
            Ok(_) if !executable(path) => Some(format!("{program} is not an executable file")),
            Ok(_) => None,
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if std::env::split_paths(&path).any(|dir| executable(&dir.join(program))) {
        None
    } else {
        Some(format!("program {program:?} not found in PATH"))
    }
}

/// An I/O error in the words of the rest of pop3: lowercase, without "(os error 2)".
fn io_reason(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        std::io::ErrorKind::IsADirectory => "is a directory".into(),
        _ => error.to_string(),
    }
}

/// The resolved settings as `key value` pairs, secrets masked (a command is shown, its output
/// never is).
pub fn effective_settings(account: &Account) -> Vec<(&'static str, String)> {
    let quote = |s: &str| format!("{s:?}");
    let list = |argv: &[String]| format!("{argv:?}");
    let mut rows = vec![
        ("account", quote(&account.name)),
        ("host", quote(&account.host)),
        ("port", account.port.to_string()),
        ("user", quote(&account.user)),
        ("tls", quote(&account.tls.to_string())),
        (
            "ca_file",
            account
                .ca_file
                .as_ref()
                .map_or("(system roots only)".into(), |p| {
                    quote(&p.display().to_string())
                }),
        ),
        ("auth", quote(&format!("{:?}", account.auth).to_lowercase())),
    ];
    let password = match &account.password {
        PasswordSource::Command(argv) => ("password_command", list(argv)),
        PasswordSource::Env(var) => ("password_env", quote(var)),
        PasswordSource::File(path) => ("password_file", quote(&path.display().to_string())),
        PasswordSource::Inline(_) => ("password", "\"***\"".into()),
        PasswordSource::Prompt => ("password", "(asked on the terminal)".into()),
    };
    if account.auth != AuthMethod::Xoauth2 && account.auth != AuthMethod::Oauthbearer {
        rows.push(password);
    }
    if let Some(argv) = &account.oauth_token_command {
        rows.push(("oauth_token_command", list(argv)));
    }
    rows.push((
        "allow_plaintext_password",
        account.allow_plaintext_password.to_string(),
    ));
    rows.push(("timeout", account.timeout.as_secs().to_string()));
    let tls = &account.tls_options;
    if let Some(pin) = tls.fingerprint {
        let hex: Vec<String> = pin.iter().map(|b| format!("{b:02X}")).collect();
        rows.push(("tls_fingerprint", quote(&hex.join(":"))));
    }
    if tls.tls13_only {
        rows.push(("tls_min_version", quote("1.3")));
    }
    if let Some((cert, key)) = &tls.client_cert {
        rows.push(("tls_client_cert", quote(&cert.display().to_string())));
        rows.push(("tls_client_key", quote(&key.display().to_string())));
    }
    if let Some(name) = &tls.server_name {
        rows.push(("tls_server_name", quote(name)));
    }
    rows.push(match &account.target {
        DeliveryTarget::Maildir(dir) => ("maildir", quote(&dir.display().to_string())),
        DeliveryTarget::Mbox(file) => ("mbox", quote(&file.display().to_string())),
        DeliveryTarget::Mda(argv) => ("mda", list(argv)),
        DeliveryTarget::Server(server) => (
            server_key(server.target.protocol),
            quote(&server.target.endpoint.to_string()),
        ),
    });
    if let DeliveryTarget::Server(server) = &account.target {
        rows.push(("recipient", quote(&server.recipient)));
        rows.push(("delete_rejected", server.delete_rejected.to_string()));
    }
    rows.push(("delete", account.delete.to_string()));
    rows.push(("keep_days", account.keep_days.to_string()));
    rows.push((
        "max_message_size",
        account.max_message_size.map_or("0 (no limit)".into(), |n| {
            format!("{n} ({})", crate::ui::human_size(n))
        }),
    ));
    if let Some(n) = account.max_messages {
        rows.push(("max_messages", n.to_string()));
    }
    if let Some(n) = account.delete_larger_than {
        rows.push((
            "delete_larger_than",
            format!("{n} ({})", crate::ui::human_size(n)),
        ));
    }
    if let Some(argv) = &account.filter_command {
        rows.push(("filter_command", list(argv)));
        rows.push((
            "filter_timeout",
            account.filter_timeout.as_secs().to_string(),
        ));
    }
    if let Some(argv) = &account.on_new_mail {
        rows.push(("on_new_mail", list(argv)));
    }
    rows.push(("state_dir", quote(&account.state_dir.display().to_string())));
    rows.push((
        "add_received_header",
        account.add_received_header.to_string(),
    ));
    rows
}

/// The config key of a delivery server's protocol.
fn server_key(protocol: crate::store::smtp::Protocol) -> &'static str {
    match protocol {
        crate::store::smtp::Protocol::Lmtp => "lmtp",
        crate::store::smtp::Protocol::Smtp => "smtp",
    }
}
