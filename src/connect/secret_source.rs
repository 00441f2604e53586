//! Where the secret to log in with comes from: an OAuth2 token from a command, or the password
//! inline, from the environment, a file, a command or a terminal prompt. Separate from the
//! connection because it runs before anything is opened, and commands may ask for it on its
//! own (`--all-accounts` prompts for every password before the first account connects).

use std::io::Read;
use std::process::{Command as Process, Stdio};

use zeroize::Zeroizing;

use super::ConnectError;
use crate::config::{Account, AuthMethod, PasswordSource};
use crate::secret::Secret;

/// Whether the account logs in with an OAuth2 token rather than a password: when asked to, or
/// (with `auth = "auto"`) whenever a token command is configured.
pub fn uses_oauth(account: &Account) -> bool {
    match account.auth {
        AuthMethod::Xoauth2 | AuthMethod::Oauthbearer => true,
        AuthMethod::Auto => account.oauth_token_command.is_some(),
        AuthMethod::User | AuthMethod::Plain | AuthMethod::Apop => false,
    }
}

/// Obtains the secret to log in with: an OAuth2 access token from `oauth_token_command`, or the
/// password from its configured source.
pub fn credential(account: &Account) -> Result<Secret, ConnectError> {
    if uses_oauth(account)
        && let Some(argv) = &account.oauth_token_command
    {
        return run_secret_command(argv, "oauth_token_command", "token");
    }
    password(account)
}

fn password(account: &Account) -> Result<Secret, ConnectError> {
    match &account.password {
        PasswordSource::Inline(secret) => Ok(secret.clone()),
        PasswordSource::Env(var) => match crate::secret::from_env(var) {
            Some(secret) if !secret.expose().is_empty() => Ok(secret),
            Some(_) => Err(ConnectError::Password(format!(
                "password_env names {var}, but that environment variable is empty"
            ))),
            None => Err(ConnectError::Password(format!(
                "password_env names {var}, but that environment variable is not set"
            ))),
        },
        PasswordSource::File(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConnectError::Password(format!("cannot read password_file {}: {e}", path.display()))
            })?;
            first_line(Zeroizing::new(text)).ok_or_else(|| {
                ConnectError::Password(format!("password_file {} is empty", path.display()))
            })
        }
        PasswordSource::Command(argv) => run_secret_command(argv, "password_command", "password"),
        PasswordSource::Prompt => {
            if !crate::ui::stdin_is_terminal() {
                return Err(ConnectError::Password(format!(
                    "no password for {}@{}: not on a terminal, so set password_command, password_env or password_file",
                    account.user, account.host
                )));
            }
            let prompt = format!("Password for {}@{}: ", account.user, account.host);
            crate::ui::prompt_password(&prompt)
                .map_err(|e| ConnectError::Password(format!("cannot read the password: {e}")))
        }
    }
}

fn first_line(text: Zeroizing<String>) -> Option<Secret> {
    let line = text.lines().next().unwrap_or("");
    (!line.is_empty()).then(|| Secret::new(line.to_owned()))
}

/// Runs `argv` and takes the first line of its output as the secret. `key` names the setting
/// and `what` the secret in error messages.
fn run_secret_command(argv: &[String], key: &str, what: &str) -> Result<Secret, ConnectError> {
    let shown = argv.join(" ");
    let fail = |why: String| ConnectError::Password(format!("{key} `{shown}` {why}"));
    // stdin and stderr stay with the user: helpers like `pass` may ask for a passphrase.
    let mut child = Process::new(&argv[0])
        .args(&argv[1..])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run: {e}")))?;
    // Room for any sane secret up front: growing would leave unwiped copies behind.
    let mut output = Zeroizing::new(String::with_capacity(8192));
    let read = child
        .stdout
        .take()
        .map(|mut out| out.read_to_string(&mut output));
    let status = child.wait().map_err(|e| fail(format!("cannot run: {e}")))?;
    if !status.success() {
        return Err(fail(format!("failed ({status})")));
    }
    if let Some(Err(e)) = read {
        return Err(fail(format!("printed something unreadable: {e}")));
    }
    first_line(output).ok_or_else(|| fail(format!("printed no {what}")))
}
