//! Which account is meant, and the layers overlaid for it: `[defaults]`, then the account,
//! then the command line.

use std::path::Path;

use super::account::build_account;
use super::{Account, ConfigError, LoadedConfig, Settings, config_path};

impl LoadedConfig {
    /// Resolves the account to use: `account` (from `-a`), else the command line alone when it
    /// names a host, else `default_account`, else the only account in the file.
    pub fn resolve(
        &self,
        account: Option<&str>,
        command_line: Settings,
    ) -> Result<Account, ConfigError> {
        let file = &self.file;
        let known = || file.accounts.keys().cloned().collect::<Vec<_>>();
        let no_file = || match config_path(None) {
            Some((path, _)) => format!("there is no config file at {}", path.display()),
            None => "there is no config file".into(),
        };
        let name = match account {
            Some(name) => Some(name.to_owned()),
            None if command_line.host.is_some() => None,
            None => match (&file.default_account, file.accounts.len()) {
                (Some(name), _) => Some(name.clone()),
                (None, 1) => file.accounts.keys().next().cloned(),
                (None, 0) => {
                    // The callers' context names the file ("in PATH: ..."): not twice.
                    let hint = match &self.path {
                        Some(_) => {
                            "the file defines no accounts; add one (`pop3 config example` shows how)"
                                .to_owned()
                        }
                        None => format!("{}; create one with `pop3 config init`", no_file()),
                    };
                    return Err(ConfigError::NoAccount(format!(
                        "{hint} or pass --host and --user"
                    )));
                }
                (None, _) => {
                    return Err(ConfigError::NoAccount(format!(
                        "several accounts are configured ({}) and no default_account is set; pass -a NAME",
                        known().join(", ")
                    )));
                }
            },
        };
        let account_settings = match &name {
            Some(name) => file.accounts.get(name).cloned().ok_or_else(|| {
                match &self.path {
                    Some(_) => ConfigError::UnknownAccount {
                        name: name.clone(),
                        known: known(),
                    },
                    None => ConfigError::NoAccount(format!(
                        "account {name:?} needs a config file, but {}; create one with `pop3 config init` or pass --config",
                        no_file()
                    )),
                }
            })?,
            None => Settings::default(),
        };
        // A host from the command line is not one the file's secrets were written for.
        let defaults = if name.is_none() {
            file.defaults.clone().without_secrets()
        } else {
            file.defaults.clone()
        };
        let settings = defaults.overlay(account_settings).overlay(command_line);
        let name = name.unwrap_or_else(|| "command-line".into());
        let base_dir = self.path.as_deref().and_then(Path::parent);
        build_account(name, settings, base_dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AuthMethod, PasswordSource, TlsMode, loaded};
    use std::time::Duration;

    const TWO_ACCOUNTS: &str = r#"
default_account = "work"

[defaults]
timeout = 30
password_env = "DEFAULT_PW"

[accounts.work]
host = "pop.example.com"
user = "alice"
password_command = ["pass", "show", "work"]

[accounts.home]
host = "mail.example.org"
port = 1110
user = "al"
tls = "starttls"
ca_file = "certs/ca.pem"
auth = "plain"
"#;

    #[test]
    fn resolves_default_and_named_accounts() {
        let config = loaded(TWO_ACCOUNTS);
        let work = config.resolve(None, Settings::default()).unwrap();
        assert_eq!(work.name, "work");
        assert_eq!((work.host.as_str(), work.port), ("pop.example.com", 995));
        assert_eq!(work.timeout, Duration::from_secs(30));
        assert!(matches!(work.password, PasswordSource::Command(ref c) if c[0] == "pass"));

        let home = config.resolve(Some("home"), Settings::default()).unwrap();
        assert_eq!(home.port, 1110);
        assert_eq!(home.tls, TlsMode::Starttls);
        assert_eq!(home.auth, AuthMethod::Plain);
        assert_eq!(home.ca_file.unwrap(), Path::new("/etc/certs/ca.pem"));
        assert!(matches!(home.password, PasswordSource::Env(ref v) if v == "DEFAULT_PW"));
    }

    #[test]
    fn command_line_overrides_the_file() {
        let config = loaded(TWO_ACCOUNTS);
        let cli = Settings {
            user: Some("bob".into()),
            timeout: Some(5),
            ..Settings::default()
        };
        let account = config.resolve(Some("work"), cli).unwrap();
        assert_eq!(account.user, "bob");
        assert_eq!(account.timeout, Duration::from_secs(5));
    }

    #[test]
    fn host_on_the_command_line_ignores_the_accounts() {
        let config = loaded(TWO_ACCOUNTS);
        let cli = Settings {
            host: Some("other.example".into()),
            user: Some("eve".into()),
            tls: Some(TlsMode::None),
            ..Settings::default()
        };
        let account = config.resolve(None, cli).unwrap();
        assert_eq!(account.name, "command-line");
        assert_eq!(account.port, 110);
        // Neither the work account's password command nor the password source of [defaults]
        // may follow the user to another host: pop3 asks instead.
        assert!(matches!(account.password, PasswordSource::Prompt));
        assert_eq!(
            account.timeout,
            Duration::from_secs(30),
            "other defaults apply"
        );
    }

    #[test]
    fn clear_errors_for_missing_and_unknown_accounts() {
        let config = loaded(TWO_ACCOUNTS);
        let err = config
            .resolve(Some("nope"), Settings::default())
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "unknown account \"nope\"; configured accounts: home, work"
        );
        let empty = LoadedConfig::default();
        let err = empty
            .resolve(Some("work"), Settings::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("account \"work\" needs a config file") && err.contains("--config"),
            "{err}"
        );
        let err = empty.resolve(None, Settings::default()).unwrap_err();
        assert!(err.to_string().contains("pass --host and --user"), "{err}");
        let err = empty
            .resolve(
                None,
                Settings {
                    host: Some("h".into()),
                    ..Settings::default()
                },
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "account \"command-line\" has no user: set user in the config file or pass --user"
        );
    }

    #[test]
    fn defaults_secrets_do_not_follow_host_to_another_server() {
        for source in [
            "password_command = [\"pass\", \"mail\"]",
            "password_env = \"PW\"",
            "password_file = \"pw.txt\"",
            "password = \"hunter2\"",
        ] {
            let config = loaded(&format!(
                "[defaults]\n{source}\noauth_token_command = [\"tok\"]\nauth = \"xoauth2\"\n\
                 [accounts.a]\nhost = \"h\"\nuser = \"u\"\n"
            ));
            let cli = Settings {
                host: Some("other.example".into()),
                user: Some("eve".into()),
                ..Settings::default()
            };
            let account = config.resolve(None, cli.clone()).unwrap();
            assert!(
                matches!(account.password, PasswordSource::Prompt),
                "{source}"
            );
            assert_eq!(account.oauth_token_command, None);
            assert_eq!(account.auth, AuthMethod::Auto);
            // With -a the account (and its defaults) is meant, whatever the host.
            let named = config.resolve(Some("a"), cli).unwrap();
            assert!(
                !matches!(named.password, PasswordSource::Prompt),
                "{source}"
            );
            assert!(named.oauth_token_command.is_some());
        }
    }

    #[test]
    fn several_accounts_without_default_need_a_choice() {
        let config = loaded(
            "[accounts.a]\nhost = \"h\"\nuser = \"u\"\n[accounts.b]\nhost = \"h\"\nuser = \"u\"\n",
        );
        let err = config.resolve(None, Settings::default()).unwrap_err();
        assert!(err.to_string().contains("pass -a NAME"), "{err}");
    }
}
