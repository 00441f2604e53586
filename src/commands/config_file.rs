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
    if global.host.is_none()
        && let Some((flag, _, _)) = given_keys(global).into_iter().next()
    {
        return Err(CommandError::InitWithoutHost { flag }.into());
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
    for (_, key, value) in given_keys(global)
        .into_iter()
        .filter(|(_, k, _)| *k != "user")
    {
        text += &format!("{key} = {value}\n");
    }
    let password_given = global.password_env.is_some() || global.password_file.is_some();
    if !password_given {
        text += "# Where the password comes from (at most one; with none, pop3 asks on the terminal):\n\
                 # password_command = [\"pass\", \"show\", \"mail\"]\n\
                 # password_file = \"~/.secrets/mail\"\n";
    }
    text += "# Where fetch-all delivers (default ~/Maildir):\n\
             # maildir = \"~/Maildir\"\n";
    text
}

/// Each connection flag and the config key it sets, for `config init`: every flag that
/// describes the account goes into the file (`--host` first, apart). `--debug` is about one
/// run, not the account. A test checks this against the flags and [`crate::config::keys`].
const FLAG_KEYS: [(&str, &str); 11] = [
    ("--host", "host"),
    ("--user", "user"),
    ("--port", "port"),
    ("--tls", "tls"),
    ("--ca-file", "ca_file"),
    ("--auth", "auth"),
    ("--password-env", "password_env"),
    ("--password-file", "password_file"),
    ("--allow-plaintext-password", "allow_plaintext_password"),
    ("--timeout", "timeout"),
    ("--proxy", "proxy"),
];

/// The connection flags given besides `--host`, in [`FLAG_KEYS`] order: the flag, its config
/// key and the TOML value to write.
fn given_keys(global: &GlobalArgs) -> Vec<(&'static str, &'static str, toml::Value)> {
    use toml::Value;
    // Paths as the command line means them: from the current directory, not the file's.
    let path = |p: &Path| Value::String(crate::cli::from_current_dir(p).display().to_string());
    let text = |t: &String| Value::String(t.clone());
    let value = |key: &str| -> Option<Value> {
        match key {
            "user" => global.user.as_ref().map(text),
            "port" => global.port.map(|p| Value::Integer(p.into())),
            "tls" => global.tls.map(|t| Value::String(t.to_string())),
            "ca_file" => global.ca_file.as_deref().map(path),
            "auth" => global.auth.and_then(|a| {
                use clap::ValueEnum;
                Some(Value::String(a.to_possible_value()?.get_name().to_owned()))
            }),
            "password_env" => global.password_env.as_ref().map(text),
            "password_file" => global.password_file.as_deref().map(path),
            "allow_plaintext_password" => global
                .allow_plaintext_password
                .then_some(Value::Boolean(true)),
            "timeout" => global
                .timeout
                .map(|t| Value::Integer(t.try_into().unwrap_or(i64::MAX))),
            "proxy" => global.proxy.as_ref().map(text),
            _ => None, // host: written apart
        }
    };
    FLAG_KEYS
        .iter()
        .filter_map(|&(flag, key)| Some((flag, key, value(key)?)))
        .collect()
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

#[cfg(test)]
mod tests {
    use super::FLAG_KEYS;

    /// Trial 2: `config init --ca-file ... --password-env ... --timeout ...` wrote only host,
    /// user, port and tls. Every connection flag must have a key (or be refused), and each key
    /// must be one the config file accepts.
    #[test]
    fn config_init_knows_every_connection_flag() {
        let command = crate::cli::command();
        for arg in command
            .get_arguments()
            .filter(|a| a.get_help_heading() == Some(crate::cli::CONNECTION))
        {
            let flag = format!("--{}", arg.get_long().unwrap());
            if flag == "--debug" {
                continue;
            }
            assert!(
                FLAG_KEYS.iter().any(|(f, _)| *f == flag),
                "{flag} is missing from FLAG_KEYS"
            );
        }
        for (flag, key) in FLAG_KEYS {
            assert!(crate::config::keys().contains(&key), "{flag}: no key {key}");
        }
    }
}
