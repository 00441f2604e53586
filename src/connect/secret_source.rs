//! Where the secret to log in with comes from: an OAuth2 token from a command, or the password
//! inline, from the environment, a file, a command or a terminal prompt. Separate from the
//! connection because commands may ask for it on its own (`--all-accounts` prompts for every
//! password before the first account connects).
//!
//! [`prepare`] runs before anything is opened: every source but the prompt is read then, so a
//! broken source is named before connecting. The prompt itself waits ([`Credential::obtain`])
//! until the connection is up, TLS verified and the login about to be sent, so that nobody
//! types a password only to learn that the server cannot be reached (trial report item 6).
//!
//! An empty secret is never valid for a login: it is refused before anything is sent (an empty
//! answer at the prompt is asked again; from any other source it is an error).

use std::io::Read;
use std::process::{Command as Process, Stdio};
use std::sync::Mutex;

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

/// How many times an empty answer at the password prompt is asked again.
const PROMPTS: usize = 3;

/// The secret to log in with, or the promise to ask for it at the terminal.
#[derive(Debug)]
pub enum Credential {
    /// Already read from its source.
    Ready(Secret),
    /// To be typed at the terminal when the login needs it, after this prompt.
    Prompt(String),
}

impl Credential {
    /// The secret: as read, or typed now at the terminal (an empty answer is asked again, up to
    /// three prompts in all, and never sent).
    pub fn obtain(&self) -> Result<Secret, ConnectError> {
        match self {
            Credential::Ready(secret) => Ok(secret.clone()),
            Credential::Prompt(prompt) => {
                let mut shown = prompt.clone();
                for _ in 0..PROMPTS {
                    let secret = crate::ui::prompt_password(&shown).map_err(|e| {
                        ConnectError::Password(match e.kind() {
                            // Ctrl-D at the prompt: the user's answer, not a failure to read.
                            std::io::ErrorKind::UnexpectedEof => {
                                "no password typed (end of input)".to_owned()
                            }
                            _ => format!("cannot read the password: {e}"),
                        })
                    })?;
                    if !secret.expose().is_empty() {
                        return Ok(secret);
                    }
                    shown = format!("The password is empty; type it, or Ctrl-C to stop. {prompt}");
                }
                Err(ConnectError::Password(format!(
                    "no password typed ({PROMPTS} empty answers); an empty password is never sent"
                )))
            }
        }
    }
}

/// A password typed at the prompt, kept by a long-running `fetch-all --every` so that it is asked
/// once, not at every cycle. It is kept only once a login with it succeeded, only for the account
/// it was typed for (user, host and port), and wiped when forgotten or dropped.
#[derive(Debug, Default)]
pub struct TypedPassword(Mutex<Option<(String, Secret)>>);

impl TypedPassword {
    /// The password kept for `account`, if its password comes from the prompt and one is kept.
    pub fn recall(&self, account: &Account) -> Option<Secret> {
        if !matches!(account.password, PasswordSource::Prompt) || uses_oauth(account) {
            return None;
        }
        let kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match &*kept {
            Some((key, secret)) if *key == typed_key(account) => Some(secret.clone()),
            _ => None,
        }
    }

    /// Keeps `secret`, typed for `account` and accepted by its server.
    pub(super) fn keep(&self, account: &Account, secret: Secret) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((typed_key(account), secret));
    }

    /// Forgets the kept password (the server refused it): the next login asks again.
    pub fn forget(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// Which account a typed password belongs to.
fn typed_key(account: &Account) -> String {
    format!("{}@{}:{}", account.user, account.host, account.port)
}

/// Reads the secret from its source now, except from the terminal: that prompt waits for
/// [`Credential::obtain`]. Whether a prompt is possible at all (stdin is a terminal) is
/// checked now.
pub fn prepare(account: &Account) -> Result<Credential, ConnectError> {
    if uses_oauth(account)
        && let Some(argv) = &account.oauth_token_command
    {
        return run_secret_command(argv, "oauth_token_command", "token").map(Credential::Ready);
    }
    password(account)
}

/// Why an empty secret is refused, for the error messages of the sources.
const EMPTY: &str = "an empty password is never sent";

fn password(account: &Account) -> Result<Credential, ConnectError> {
    let secret = match &account.password {
        PasswordSource::Inline(secret) if secret.expose().is_empty() => {
            return Err(ConnectError::Password(format!(
                "the password in the config file is empty; {EMPTY}"
            )));
        }
        PasswordSource::Inline(secret) => secret.clone(),
        PasswordSource::Env(var) => match crate::secret::from_env(var) {
            Some(secret) if !secret.expose().is_empty() => secret,
            Some(_) => {
                return Err(ConnectError::Password(format!(
                    "password_env names {var}, but that environment variable is empty; {EMPTY}"
                )));
            }
            None => {
                return Err(ConnectError::Password(format!(
                    "password_env names {var}, but that environment variable is not set"
                )));
            }
        },
        PasswordSource::File(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConnectError::Password(format!("cannot read password_file {}: {e}", path.display()))
            })?;
            first_line(Zeroizing::new(text)).ok_or_else(|| {
                ConnectError::Password(format!(
                    "password_file {} has an empty first line; {EMPTY}",
                    path.display()
                ))
            })?
        }
        PasswordSource::Command(argv) => run_secret_command(argv, "password_command", "password")?,
        PasswordSource::Prompt => {
            if !crate::ui::stdin_is_terminal() {
                return Err(ConnectError::Password(format!(
                    "no password for {}@{}: not on a terminal, so set password_command, password_env or password_file",
                    account.user, account.host
                )));
            }
            return Ok(Credential::Prompt(format!(
                "Password for {}@{}: ",
                account.user, account.host
            )));
        }
    };
    Ok(Credential::Ready(secret))
}

fn first_line(text: Zeroizing<String>) -> Option<Secret> {
    let line = text.lines().next().unwrap_or("");
    (!line.is_empty()).then(|| Secret::new(line.to_owned()))
}

/// Runs `argv` and takes the first line of its output as the secret. `key` names the setting
/// and `what` the secret in error messages.
fn run_secret_command(argv: &[String], key: &str, what: &str) -> Result<Secret, ConnectError> {
    let shown = crate::ui::command_line(argv);
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
    first_line(output).ok_or_else(|| {
        fail(format!(
            "printed no {what} (its first line is empty; an empty {what} is never sent)"
        ))
    })
}
