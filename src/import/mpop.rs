//! mpop: `~/.mpoprc` (or `$XDG_CONFIG_HOME/mpop/config`) and its UIDLs files.
//!
//! The config is one command per line (`defaults`, `account NAME [: OTHER,...]`, then
//! `command argument`), an argument optionally in double quotes (mpop removes a pair that opens
//! and closes it, and knows no escapes).
//! A UIDLs file (`uidls_file`, default `~/.mpop_uidls/%U_at_%H`) holds lists, each opened by a
//! line ` COUNT HOST USER` (leading space) and followed by COUNT unique-ids, one a line; lines
//! starting with `#` are comments.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{ImportError, Imported, ImportedAccount, Tool, expand, first_existing, read};
use crate::config::ByteSize;
use crate::pop3::Uid;

/// The default config files, in mpop's order.
fn default_configs() -> Vec<PathBuf> {
    let xdg = dirs::config_dir().unwrap_or_else(|| super::home(".config"));
    vec![super::home(".mpoprc"), xdg.join("mpop").join("config")]
}

/// One account as written: its commands in order, defaults and inherited accounts first.
type Commands = Vec<(String, String, usize)>;

/// Splits the config into accounts (name, commands). `defaults` commands are copied into every
/// account defined after them, and `account B : A` starts from A's commands, as mpop does.
pub fn parse_config(text: &str, path: &Path) -> Result<Vec<(String, Commands)>, ImportError> {
    let mut defaults: Commands = Vec::new();
    let mut accounts: Vec<(String, Commands)> = Vec::new();
    let mut in_defaults = false;
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (command, rest) = match line.split_once(char::is_whitespace) {
            Some((c, r)) => (c, r.trim()),
            None => (line, ""),
        };
        let argument = unquote(rest);
        match command {
            "defaults" => in_defaults = true,
            "account" => {
                in_defaults = false;
                let (name, parents) = match argument.split_once(':') {
                    Some((n, p)) => (n.trim().to_owned(), p.trim().to_owned()),
                    None => (argument.trim().to_owned(), String::new()),
                };
                if name.is_empty() {
                    return Err(ImportError::Parse {
                        path: path.to_owned(),
                        line: number,
                        message: "account without a name".into(),
                    });
                }
                let mut commands = defaults.clone();
                for parent in parents.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    match accounts.iter().find(|(n, _)| n == parent) {
                        Some((_, inherited)) => commands.extend(inherited.iter().cloned()),
                        None => {
                            return Err(ImportError::Parse {
                                path: path.to_owned(),
                                line: number,
                                message: format!(
                                    "account {name} inherits from unknown account {parent}"
                                ),
                            });
                        }
                    }
                }
                accounts.push((name, commands));
            }
            _ if in_defaults => defaults.push((command.to_owned(), argument, number)),
            _ => match accounts.last_mut() {
                Some((_, commands)) => commands.push((command.to_owned(), argument, number)),
                None => defaults.push((command.to_owned(), argument, number)),
            },
        }
    }
    Ok(accounts)
}

/// mpop's argument quoting (`trim_string` in its conf.c): blanks around it are dropped, and so
/// is a pair of double quotes that opens and closes it; there are no escapes (mpop 1.4.18 keeps
/// `\"` as it is). Used for every argument, and again for a `delivery` method's own argument.
fn unquote(text: &str) -> String {
    let text = text.trim_matches([' ', '\t']);
    match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(inner) => inner.to_owned(),
        None => text.to_owned(),
    }
}

fn on(argument: &str) -> bool {
    argument.is_empty() || argument == "on"
}

/// Turns one account's commands into pop3 settings.
pub fn convert(name: &str, commands: &Commands) -> (ImportedAccount, Option<String>) {
    // Last one wins, as in mpop; but keep the order of first appearance for the output.
    let mut last: BTreeMap<&str, &str> = BTreeMap::new();
    let mut order: Vec<&str> = Vec::new();
    for (command, argument, _) in commands {
        if !last.contains_key(command.as_str()) {
            order.push(command);
        }
        last.insert(command, argument);
    }
    let get = |key: &str| last.get(key).copied();
    let mut account = ImportedAccount::new(
        name,
        get("host").unwrap_or_default(),
        get("user").unwrap_or_default(),
    );
    let tls = get("tls").is_some_and(on);
    let starttls = get("tls_starttls").is_none_or(on);
    let default_port = if tls && !starttls { 995 } else { 110 };
    let port = get("port")
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or(default_port);
    account.set("port", i64::from(port));
    if tls && !starttls {
        account.set("tls", "implicit");
    } else {
        account.set("tls", "starttls");
        if !tls {
            account.note("mpop used no TLS here; pop3 asks for STLS: if the server cannot do it, set tls = \"none\" and allow_plaintext_password = true");
        }
    }
    let mut uidls_file = None;
    let mut has_password = false;
    let mut keep = false;
    let mut received = true;
    let (mut proxy_host, mut proxy_port) = (None, "");
    for command in order {
        let argument = last[command];
        match command {
            "host" | "user" | "port" | "tls" | "tls_starttls" => {}
            "tls_trust_file" if argument == "system" => {}
            "tls_certcheck" if on(argument) => {}
            "tls_certcheck" => account.note(
                "mpop: tls_certcheck off: pop3 always verifies the certificate (pin a self-signed one with tls_fingerprint)",
            ),
            "tls_trust_file" if argument.is_empty() => account.note(
                "mpop: tls_trust_file (empty: trust no CA) has no equivalent; pin the certificate with tls_fingerprint",
            ),
            "tls_trust_file" => account.set("ca_file", argument),
            "tls_fingerprint" if argument.len() == 95 => account.set("tls_fingerprint", argument),
            "tls_cert_file" if !argument.is_empty() => account.set("tls_client_cert", argument),
            "tls_key_file" if !argument.is_empty() => account.set("tls_client_key", argument),
            "tls_host_override" if !argument.is_empty() => {
                account.set("tls_server_name", argument)
            }
            "timeout" if argument.parse::<u64>().is_ok() => {
                account.set("timeout", argument.parse::<i64>().unwrap_or(60))
            }
            "auth" => match argument {
                "" | "on" => {}
                "user" | "plain" | "apop" | "xoauth2" | "oauthbearer" => {
                    account.set("auth", argument)
                }
                other => account.note(format!(
                    "mpop: auth {other}: pop3 has no such mechanism; it picks one itself (auth = \"auto\")"
                )),
            },
            "password" => {
                has_password = true;
                super::plaintext(&mut account, Tool::Mpop, argument);
            }
            "passwordeval" => {
                has_password = true;
                account.set("password_command", super::shell(argument));
            }
            "delivery" => delivery(&mut account, argument),
            "uidls_file" => uidls_file = Some(argument.to_owned()),
            "keep" => keep = on(argument),
            "skipsize" if argument == "off" => account.set("max_message_size", 0),
            "skipsize" => size(&mut account, "max_message_size", command, argument),
            "killsize" if argument == "off" => {}
            // 0 would delete every message unread: pop3 refuses it, so it is not imported.
            "killsize" if ByteSize::parse(argument) == Some(ByteSize(0)) => account.note(
                "mpop: killsize 0 deletes every message unread; pop3 refuses that, not imported",
            ),
            "killsize" => size(&mut account, "delete_larger_than", command, argument),
            // mpop's exit statuses are pop3's: 0 fetch, 1 delete unread, 2 leave on the server.
            "filter" if !argument.is_empty() => {
                account.set("filter_command", super::shell(argument));
                if argument.contains("%F") || argument.contains("%S") {
                    account.note("mpop replaced %F and %S in the filter command with the envelope sender and the size; pop3 does not (the size is in $POP3_FILTER_SIZE)");
                }
            }
            "proxy_host" if !argument.is_empty() => proxy_host = Some(argument),
            "proxy_port" => proxy_port = argument,
            "proxy_host" | "filter" => {}
            "received_header" => received = on(argument),
            "pipelining" => account.note(format!(
                "mpop: pipelining {argument}: pop3 pipelines by itself when the server offers PIPELINING"
            )),
            other => account.note(format!(
                "mpop: {other} {argument}: no equivalent in pop3, not imported"
            )),
        }
    }
    if let Some(host) = proxy_host {
        proxy(&mut account, host, proxy_port);
    }
    if !has_password {
        let (host, user) = (account.host.clone(), account.user.clone());
        super::keyring_or_netrc(
            &mut account,
            Tool::Mpop,
            &["host", &host, "service", "pop3", "user", &user],
            true,
        );
    }
    // mpop deletes what it fetched unless `keep`; pop3 keeps unless `delete`.
    account.set("delete", !keep);
    account.set("add_received_header", received);
    (account, uidls_file)
}

/// mpop's `skipsize`/`killsize` argument (octets, or with a `k`/`m` suffix) as a pop3 size.
fn size(account: &mut ImportedAccount, key: &'static str, command: &str, argument: &str) {
    let upper = argument.to_uppercase();
    match ByteSize::parse(&upper) {
        Some(_) => account.set(key, upper),
        None => account.note(format!(
            "mpop: {command} {argument}: not a size, not imported"
        )),
    }
}

/// mpop's `proxy_host`/`proxy_port` (default 1080) as a `socks5h://` URL: mpop lets the proxy
/// resolve the server's name (for Tor), which is what `socks5h` means.
fn proxy(account: &mut ImportedAccount, host: &str, port: &str) {
    let port = if port.is_empty() { "1080" } else { port };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    let url = format!("socks5h://{host}:{port}");
    match url.parse::<crate::proxy::Proxy>() {
        Ok(_) => account.set("proxy", url),
        Err(e) => account.note(format!("mpop: proxy_host {host}: {e}, not imported")),
    }
}

/// What mpop puts for `%F` when a message has no `Return-Path:` or `Sender:` header.
const NO_SENDER: &str = "MAILER-DAEMON";

fn delivery(account: &mut ImportedAccount, argument: &str) {
    let (method, rest) = argument.split_once([' ', '\t']).unwrap_or((argument, ""));
    // mpop unquotes the method's argument again: `delivery mda "cmd args"` runs `cmd args`.
    let rest = unquote(rest);
    match method {
        "maildir" => account.set("maildir", rest),
        "mbox" => account.set("mbox", rest),
        "mda" if rest.contains("%F") => {
            // mpop put the message's envelope sender there (from its Return-Path: or Sender:
            // header); pop3 passes none to an MDA, so this takes what mpop used without one.
            account.set("mda", super::shell(&rest.replace("%F", NO_SENDER)));
            account.note(format!(
                "mpop replaced %F in the mda command with the envelope sender; pop3 cannot, so it is {NO_SENDER} here (as mpop did for a message without one). The mpop command was:\n  {rest}\nIf the MDA can do without the sender, drop that option"
            ));
            account.warn(format!(
                "the mda command's %F (the envelope sender) is imported as {NO_SENDER}: pop3 passes no sender to an MDA; see the comment under the account"
            ));
        }
        "mda" => account.set("mda", super::shell(&rest)),
        "exchange" => account.note(format!(
            "mpop: delivery exchange {rest}: no equivalent in pop3 (messages go to ~/Maildir)"
        )),
        other => account.note(format!(
            "mpop: delivery {other} {rest}: not understood, not imported"
        )),
    }
}

/// Parses a UIDLs file into (host, user) -> unique-ids.
pub fn parse_uidls(
    text: &[u8],
    path: &Path,
) -> Result<Vec<(String, String, Vec<Uid>)>, ImportError> {
    let text = String::from_utf8_lossy(text);
    let mut lists: Vec<(String, String, Vec<Uid>)> = Vec::new();
    let mut expected = 0usize;
    let damaged = |line: usize, message: &str| ImportError::Parse {
        path: path.to_owned(),
        line,
        message: message.to_owned(),
    };
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.starts_with('#') {
            continue;
        }
        if let Some(header) = line.strip_prefix(' ') {
            if expected != 0 {
                return Err(damaged(number, "a UID list ends early"));
            }
            let mut words = header.split(' ');
            let count = words.next().and_then(|c| c.parse::<usize>().ok());
            let (Some(count), Some(host), Some(user)) = (count, words.next(), words.next()) else {
                return Err(damaged(number, "expected \" COUNT HOST USER\""));
            };
            lists.push((host.to_owned(), user.to_owned(), Vec::with_capacity(count)));
            expected = count;
        } else if line.is_empty() {
            continue;
        } else if expected > 0 {
            match super::uid(line) {
                Some(uid) => lists.last_mut().expect("a list is open").2.push(uid),
                None => return Err(damaged(number, "not a POP3 unique-id")),
            }
            expected -= 1;
        } else {
            return Err(damaged(number, "a unique-id outside any list"));
        }
    }
    Ok(lists)
}

/// Expands mpop's `%U` and `%H` in a UIDLs file name.
fn uidls_path(pattern: &str, host: &str, user: &str) -> PathBuf {
    expand(&pattern.replace("%U", user).replace("%H", host))
}

/// A UID list of a UIDLs file (host, user, unique-ids) and whether an account claimed it.
type Claimable = (String, String, Vec<Uid>, bool);

/// The name of the account mpop uses when none is named.
const DEFAULT: &str = "default";

/// pop3's `default_account` for mpop's account `default`: the account it is the same mailbox
/// as (`account default : alice` becomes `default_account = "alice"`), or itself.
pub fn default_account(imported: &Imported, dropped: &[(String, String)]) -> Option<String> {
    match dropped.iter().find(|(name, _)| name == DEFAULT) {
        Some((_, kept)) => Some(kept.clone()),
        None => imported
            .accounts
            .iter()
            .any(|a| a.name == DEFAULT)
            .then(|| DEFAULT.to_owned()),
    }
}

/// Reads `file` (or mpop's default config) and the UIDLs of its accounts.
pub fn import(file: Option<&Path>) -> Result<Imported, ImportError> {
    let path = match file {
        Some(path) => path.to_owned(),
        None => first_existing(Tool::Mpop, default_configs())?,
    };
    let text = read(&path)?;
    let text = String::from_utf8_lossy(&text);
    let mut imported = Imported {
        sources: vec![path.clone()],
        ..Imported::default()
    };
    // Every UIDLs file read, with the lists it holds and whether each was claimed.
    let mut files: BTreeMap<PathBuf, Vec<Claimable>> = BTreeMap::new();
    for (name, commands) in parse_config(&text, &path)? {
        let (mut account, uidls_file) = convert(&name, &commands);
        if account.host.is_empty() {
            imported
                .warnings
                .push(format!("mpop account {name} has no host: not imported"));
            continue;
        }
        if commands.iter().any(|(c, _, _)| c == "eval") {
            account
                .note("mpop: eval lines were not run by the import; check the settings they made");
        }
        let candidates = match &uidls_file {
            Some(pattern) => vec![uidls_path(pattern, &account.host, &account.user)],
            None => vec![
                uidls_path("~/.mpop_uidls/%U_at_%H", &account.host, &account.user),
                super::home(".mpop_uidls"),
                dirs::data_dir()
                    .unwrap_or_else(|| super::home(".local/share"))
                    .join("mpop")
                    .join("uidls")
                    .join(format!("{}_at_{}", account.user, account.host)),
            ],
        };
        for candidate in candidates.into_iter().filter(|c| c.is_file()) {
            if !files.contains_key(&candidate) {
                let lists = parse_uidls(&read(&candidate)?, &candidate)?;
                files.insert(
                    candidate.clone(),
                    lists
                        .into_iter()
                        .map(|(h, u, l)| (h, u, l, false))
                        .collect(),
                );
            }
            for (host, user, uids, claimed) in files.get_mut(&candidate).into_iter().flatten() {
                if *host == account.host && *user == account.user {
                    *claimed = true;
                    account.seen.extend(uids.iter().map(|u| (u.clone(), None)));
                    account.seen_from = Some(candidate.clone());
                }
            }
            if account.seen_from.is_some() {
                break;
            }
        }
        imported.accounts.push(account);
    }
    // mpop's account `default` is what it fetches when no account is named; usually it just
    // inherits another (`account default : alice`). Last, so that it is the one dropped when
    // it is the same mailbox as another account.
    if let Some(index) = imported.accounts.iter().position(|a| a.name == DEFAULT) {
        let default = imported.accounts.remove(index);
        imported.accounts.push(default);
    }
    for (file, lists) in &files {
        for (host, user, uids, claimed) in lists {
            if !claimed && !uids.is_empty() {
                imported.warnings.push(format!(
                    "{}: {} of {user} at {host}, which no account in {} names: not imported",
                    file.display(),
                    crate::ui::count(uids.len() as u64, "UID"),
                    path.display()
                ));
            }
        }
    }
    Ok(imported)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::Line;

    /// Written by mpop 1.4.18 after fetching two messages from Dovecot.
    const UIDLS: &[u8] = b"# This file was generated by mpop version 1.4.18.\n#\n# Lines starting with a space begin a new UID list and have\n# the following format: \" number-of-uids hostname user\".\n# The list of UIDs follows in ascending order, with one UID per line.\n#\n 2 localhost alice\n000000016b0f5f15\n000000026b0f5f15\n 0 pop.example.com bob\n";

    #[test]
    fn uidls_files_written_by_mpop_parse() {
        let lists = parse_uidls(UIDLS, Path::new("u")).unwrap();
        assert_eq!(lists.len(), 2);
        assert_eq!(
            (lists[0].0.as_str(), lists[0].1.as_str()),
            ("localhost", "alice")
        );
        let uids: Vec<&str> = lists[0].2.iter().map(Uid::as_str).collect();
        assert_eq!(uids, ["000000016b0f5f15", "000000026b0f5f15"]);
        assert!(lists[1].2.is_empty());
    }

    #[test]
    fn a_short_uid_list_is_damage() {
        let error = parse_uidls(b" 3 h u\na\n 1 h v\nb\n", Path::new("u")).unwrap_err();
        assert!(error.to_string().contains("u:3"), "{error}");
    }

    const CONFIG: &str = r#"# mpop config
defaults
tls on
tls_starttls off
keep on

account work
host pop.example.com
user alice
passwordeval "gpg -q -d ~/.mail.gpg"
delivery maildir ~/Maildir/work
tls_certcheck off
killsize 10m

account other : work
host pop.example.org
password sekrit
keep off
"#;

    #[test]
    fn accounts_inherit_defaults_and_parents() {
        let accounts = parse_config(CONFIG, Path::new("rc")).unwrap();
        assert_eq!(accounts.len(), 2);
        let (work, _) = convert(&accounts[0].0, &accounts[0].1);
        assert_eq!(work.get("tls"), Some(&"implicit".into()));
        assert_eq!(work.get("port"), Some(&995.into()));
        assert_eq!(work.get("delete"), Some(&false.into()));
        assert_eq!(
            work.get("password_command"),
            Some(&super::super::shell("gpg -q -d ~/.mail.gpg"))
        );
        let notes: Vec<&String> = work
            .lines
            .iter()
            .filter_map(|l| match l {
                Line::Note(n) => Some(n),
                _ => None,
            })
            .collect();
        assert!(
            notes.iter().any(|n| n.contains("tls_certcheck off")),
            "{notes:?}"
        );
        assert_eq!(work.get("delete_larger_than"), Some(&"10M".into()));
        let (other, _) = convert(&accounts[1].0, &accounts[1].1);
        assert_eq!(other.host, "pop.example.org");
        assert_eq!(other.user, "alice");
        assert!(other.plaintext_password);
        assert_eq!(other.get("delete"), Some(&true.into()));
        // The rendered TOML is a valid pop3 config.
        let text = format!("{}\n{}", work.to_toml(), other.to_toml());
        crate::config::parse(&text, Path::new("x")).unwrap();
    }

    #[test]
    fn killsize_filter_and_proxy_become_pop3_keys() {
        let rc = "account a\nhost h\nuser u\npassword p\nkillsize 20m\nskipsize 5k\n\
                  filter \"spamc -c --size %S\"\nproxy_host 127.0.0.1\nproxy_port 9050\n\
                  account b : a\nkillsize 0\nproxy_host ::1\nproxy_port \"\"\nfilter\n\
                  account c : a\nkillsize off\nskipsize lots\nproxy_host \"\"\n";
        let accounts = parse_config(rc, Path::new("rc")).unwrap();
        let (a, _) = convert(&accounts[0].0, &accounts[0].1);
        assert_eq!(a.get("delete_larger_than"), Some(&"20M".into()));
        assert_eq!(a.get("max_message_size"), Some(&"5K".into()));
        assert_eq!(
            a.get("filter_command"),
            Some(&super::super::shell("spamc -c --size %S"))
        );
        assert!(a.to_toml().contains("POP3_FILTER_SIZE"), "{}", a.to_toml());
        assert_eq!(a.get("proxy"), Some(&"socks5h://127.0.0.1:9050".into()));
        let (b, _) = convert(&accounts[1].0, &accounts[1].1);
        assert_eq!(
            b.get("delete_larger_than"),
            None,
            "killsize 0 deletes everything"
        );
        assert!(
            b.to_toml().contains("# mpop: killsize 0"),
            "{}",
            b.to_toml()
        );
        assert_eq!(b.get("filter_command"), None, "an empty filter is none");
        assert_eq!(b.get("proxy"), Some(&"socks5h://[::1]:1080".into()));
        let (c, _) = convert(&accounts[2].0, &accounts[2].1);
        assert_eq!(c.get("delete_larger_than"), None);
        assert_eq!(c.get("max_message_size"), None);
        assert!(c.to_toml().contains("# mpop: skipsize lots: not a size"));
        assert_eq!(c.get("proxy"), None);
        // Every rendered account is a valid pop3 config.
        let text = format!("{}\n{}\n{}", a.to_toml(), b.to_toml(), c.to_toml());
        crate::config::parse(&text, Path::new("x")).unwrap();
    }

    #[test]
    fn plain_tcp_becomes_starttls_with_a_note() {
        let accounts =
            parse_config("account a\nhost h\nuser u\npassword p\n", Path::new("rc")).unwrap();
        let (a, _) = convert(&accounts[0].0, &accounts[0].1);
        assert_eq!(a.get("tls"), Some(&"starttls".into()));
        assert_eq!(a.get("port"), Some(&110.into()));
        assert!(a.to_toml().contains("# mpop used no TLS"));
    }

    /// The trial's mpoprc: `delivery mda "..."` kept mpop's quotes inside the `sh -c` string,
    /// so sh looked for a program named `/usr/bin/tee -a ... >/dev/null`.
    #[test]
    fn mpop_delivery_mda_quotes_are_removed() {
        let rc = "account dave\nhost localhost\nuser dave\npassword p\n\
                  delivery mda \"/usr/bin/tee -a /x/dave.mbox >/dev/null\"\n\
                  account m : dave\ndelivery maildir \"~/Mail box\"\n\
                  account b : dave\ndelivery\tmbox   \"/var/mail/dave\"  \n";
        let accounts = parse_config(rc, Path::new("rc")).unwrap();
        let (dave, _) = convert(&accounts[0].0, &accounts[0].1);
        assert_eq!(
            dave.get("mda"),
            Some(&super::super::shell(
                "/usr/bin/tee -a /x/dave.mbox >/dev/null"
            ))
        );
        assert!(dave.warnings.is_empty(), "{:?}", dave.warnings);
        let (m, _) = convert(&accounts[1].0, &accounts[1].1);
        assert_eq!(m.get("maildir"), Some(&"~/Mail box".into()));
        let (b, _) = convert(&accounts[2].0, &accounts[2].1);
        assert_eq!(b.get("mbox"), Some(&"/var/mail/dave".into()));
    }

    /// mpop's manual's procmail line: `%F` is the envelope sender, which pop3 does not pass to
    /// an MDA; it becomes what mpop used without one, said in a note and a warning.
    #[test]
    fn mpop_delivery_mda_percent_f_becomes_mailer_daemon_with_a_note() {
        let rc = "account a\nhost h\nuser u\npassword p\ndelivery mda \"/usr/bin/procmail -f '%F' -d $USER\"\n";
        let accounts = parse_config(rc, Path::new("rc")).unwrap();
        let (a, _) = convert(&accounts[0].0, &accounts[0].1);
        assert_eq!(
            a.get("mda"),
            Some(&super::super::shell(
                "/usr/bin/procmail -f 'MAILER-DAEMON' -d $USER"
            ))
        );
        let text = a.to_toml();
        assert!(
            text.contains("#   /usr/bin/procmail -f '%F' -d $USER"),
            "{text}"
        );
        assert!(text.contains("MAILER-DAEMON here"), "{text}");
        assert_eq!(a.warnings.len(), 1, "{:?}", a.warnings);
        crate::config::parse(&text, Path::new("x")).unwrap();
    }

    /// mpop removes a pair of quotes around an argument and nothing else: no escapes
    /// (`mpop --pretend` 1.4.18 shows `passwordeval "echo \"x\""` as `echo \"x\"`).
    #[test]
    fn mpop_arguments_are_unquoted_as_mpop_does() {
        assert_eq!(unquote(r#""echo \"x\" y""#), r#"echo \"x\" y"#);
        assert_eq!(unquote(r#"  "a \\ b"  "#), r#"a \\ b"#);
        assert_eq!(unquote(r#""unterminated"#), r#""unterminated"#);
        assert_eq!(unquote(r#""a" b"#), r#""a" b"#);
        assert_eq!(unquote(r#""""#), "");
        assert_eq!(unquote(r#"""#), r#"""#);
        let rc = "account a\nhost h\nuser u\npasswordeval \"pass show \\\"mail\\\"\"\nfilter \"spamc -c\"\n";
        let accounts = parse_config(rc, Path::new("rc")).unwrap();
        let (a, _) = convert(&accounts[0].0, &accounts[0].1);
        assert_eq!(
            a.get("password_command"),
            Some(&super::super::shell(r#"pass show \"mail\""#))
        );
        assert_eq!(
            a.get("filter_command"),
            Some(&super::super::shell("spamc -c"))
        );
    }

    /// The trial's `account default : alice` was imported as a second account on the same
    /// mailbox (same state, same lock): it becomes `default_account = "alice"`.
    #[test]
    fn mpop_account_default_becomes_default_account() {
        let dir = tempfile::tempdir().unwrap();
        let rc = dir.path().join("mpoprc");
        std::fs::write(
            &rc,
            "defaults\ntls on\n\naccount alice\nhost pop.example.com\nuser alice\npassword p\n\n\
             account bob\nhost pop.example.com\nuser bob\npassword q\n\n\
             account default : alice\n\n\
             account alice2 : alice\nkeep on\n",
        )
        .unwrap();
        let imported = crate::import::read_tool(Tool::Mpop, std::slice::from_ref(&rc)).unwrap();
        let names: Vec<&str> = imported.accounts.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["alice", "bob"]);
        assert_eq!(imported.default_account.as_deref(), Some("alice"));
        let alice = imported.accounts[0].to_toml();
        assert!(
            alice.contains(
                "# mpop account alice2 is the same mailbox (alice@pop.example.com port 110)"
            ),
            "{alice}"
        );
        assert!(
            alice.contains("# mpop account default is the same mailbox"),
            "{alice}"
        );
        assert_eq!(imported.warnings.len(), 2, "{:?}", imported.warnings);
        let text = imported.to_toml(
            Tool::Mpop,
            &imported.accounts.iter().collect::<Vec<_>>(),
            Some("alice"),
        );
        let parsed = crate::config::parse(&text, Path::new("x")).unwrap();
        assert_eq!(parsed.default_account.as_deref(), Some("alice"));

        // An account `default` of its own mailbox stays, and is the default.
        std::fs::write(&rc, "account default\nhost h\nuser u\npassword p\naccount other\nhost h2\nuser u\npassword p\n").unwrap();
        let imported = crate::import::read_tool(Tool::Mpop, &[rc]).unwrap();
        assert_eq!(imported.accounts.len(), 2);
        assert_eq!(imported.default_account.as_deref(), Some("default"));
    }
}
