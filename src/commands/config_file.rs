//! `pop3 config example` and `pop3 config init`: a first config file for an installed binary,
//! which has no `config.example.toml` beside it. The example is compiled in, so what it prints
//! is the file the tests parse and can never drift from it.

use std::io::Write;
use std::path::Path;

use super::CommandError;
use crate::cli::GlobalArgs;

/// `config.example.toml`, every key with a comment.
pub(crate) const EXAMPLE: &str = include_str!("../../config.example.toml");

/// `pop3 config example`: prints the annotated example config.
pub(crate) fn example() -> anyhow::Result<()> {
    crate::ui::stdout().write_all(EXAMPLE.as_bytes())?;
    Ok(())
}

/// `pop3 config init`: writes a starter config file (mode 0600) where pop3 looks for it,
/// never over an existing one.
pub(crate) fn init(global: &GlobalArgs, quiet: bool) -> anyhow::Result<()> {
    // The commented example has no account for them to go in: refuse rather than drop them.
    if global.host.is_none() {
        let given = [
            ("--user", global.user.is_some()),
            ("--port", global.port.is_some()),
            ("--tls", global.tls.is_some()),
        ];
        if let Some((flag, _)) = given.into_iter().find(|(_, given)| *given) {
            return Err(CommandError::InitWithoutHost { flag }.into());
        }
    }
    let (path, _) =
        crate::config::config_path(global.config.as_deref()).ok_or(CommandError::NoConfigDir)?;
    let text = starter(global);
    // The starter must be a file pop3 reads: a bug here must not leave a broken file behind.
    crate::config::parse(&text, &path)?;
    write_new(&path, &text).map_err(|error| CommandError::CannotWrite {
        path: path.clone(),
        error,
    })?;
    if !quiet {
        let next = if global.host.is_some() {
            "check it with `pop3 config check`, then `pop3 login-check`"
        } else {
            "uncomment and edit an account, then run `pop3 config check`"
        };
        eprintln!("wrote {}: {next}", path.display());
    }
    Ok(())
}

/// The file to write: one account from the connection flags, else the example commented out
/// (so that it parses, and nothing in it is used before the user edits it).
fn starter(global: &GlobalArgs) -> String {
    let Some(host) = &global.host else {
        let mut text = String::from(
            "# Written by `pop3 config init`: the annotated example, commented out.\n\
             # Uncomment an account and edit it (or run `pop3 config init --host H --user U`\n\
             # on a fresh file for a minimal one). `pop3 config example` prints this again.\n\n",
        );
        for line in EXAMPLE.lines() {
            match line {
                "" => text.push('\n'),
                line if line.starts_with('#') => text.extend([line, "\n"]),
                line => text.extend(["# ", line, "\n"]),
            }
        }
        return text;
    };
    let name = global.user.as_deref().unwrap_or("default");
    let key = toml_key(name);
    let mut text = format!(
        "# Written by `pop3 config init`; every key is explained by `pop3 config example`.\n\
         default_account = {}\n\n[accounts.{key}]\nhost = {}\n",
        toml_string(name),
        toml_string(host)
    );
    if let Some(user) = &global.user {
        text += &format!("user = {}\n", toml_string(user));
    } else {
        text += "# user = \"...\"                # required (or --user)\n";
    }
    if let Some(port) = global.port {
        text += &format!("port = {port}\n");
    }
    if let Some(tls) = global.tls {
        text += &format!("tls = \"{tls}\"\n");
    }
    text += "# Where the password comes from (at most one; with none, pop3 asks on the terminal):\n\
             # password_command = [\"pass\", \"show\", \"mail\"]\n\
             # password_file = \"~/.secrets/mail\"\n\
             # Where fetch-all delivers (default ~/Maildir):\n\
             # maildir = \"~/Maildir\"\n";
    text
}

/// A TOML basic string.
fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// A TOML key: bare when it can be, else quoted.
fn toml_key(name: &str) -> String {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        name.to_owned()
    } else {
        toml_string(name)
    }
}

/// Creates `path` (and its folder) readable by the owner only, failing if it exists.
fn write_new(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => std::io::Error::new(
                e.kind(),
                "it exists already, and config init never overwrites a config file (edit it, or move it away first)",
            ),
            _ => e,
        })?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}
