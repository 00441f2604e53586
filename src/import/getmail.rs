//! getmail 6: rc files (INI: `[retriever]`, `[destination]`, `[options]`, `[filter-*]`) in the
//! getmail directory (`$XDG_CONFIG_HOME/getmail/` if it exists, else `~/.getmail/`), and the
//! `oldmail-SERVER-PORT-USER` files beside them.
//!
//! An oldmail file has one line per unique-id: `UID\0FIRST-SEEN-UNIX-TIME`. getmail writes a
//! `/` in a unique-id as `-`; POP3 servers rarely use `/`, and such a message would only be
//! downloaded once more, never lost.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{ImportError, Imported, ImportedAccount, Tool, argv, read};
use crate::pop3::Uid;

/// The getmail directory, as getmail picks it.
fn getmail_dir() -> PathBuf {
    let xdg = dirs::config_dir()
        .unwrap_or_else(|| super::home(".config"))
        .join("getmail");
    if xdg.exists() {
        xdg
    } else {
        super::home(".getmail")
    }
}

/// An rc file: section -> key -> value (keys lowercased, as configparser does).
pub type Ini = BTreeMap<String, BTreeMap<String, String>>;

/// Parses INI text as Python's configparser reads getmail's files.
pub fn parse_ini(text: &str, path: &Path) -> Result<Ini, ImportError> {
    let mut ini = Ini::new();
    let mut section: Option<String> = None;
    let mut last_key: Option<String> = None;
    for (index, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        let error = |message: &str| ImportError::Parse {
            path: path.to_owned(),
            line: index + 1,
            message: message.to_owned(),
        };
        if raw.starts_with([' ', '\t']) {
            // A continuation of the previous value.
            let (Some(s), Some(k)) = (&section, &last_key) else {
                return Err(error("indented line outside a value"));
            };
            let value = ini
                .entry(s.clone())
                .or_default()
                .entry(k.clone())
                .or_default();
            value.push('\n');
            value.push_str(trimmed);
            continue;
        }
        if let Some(name) = trimmed.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            section = Some(name.trim().to_owned());
            ini.entry(name.trim().to_owned()).or_default();
            last_key = None;
            continue;
        }
        let Some(s) = &section else {
            return Err(error("a setting before any [section]"));
        };
        let split = trimmed
            .find(['=', ':'])
            .ok_or_else(|| error("expected KEY = VALUE"))?;
        let key = trimmed[..split].trim().to_lowercase();
        let value = trimmed[split + 1..].trim().to_owned();
        ini.entry(s.clone()).or_default().insert(key.clone(), value);
        last_key = Some(key);
    }
    Ok(ini)
}

/// A Python tuple of strings as getmail writes them: `("a", "b")`, `('a',)`, or a bare string.
pub fn parse_tuple(text: &str) -> Vec<String> {
    let text = text.trim();
    let Some(inner) = text.strip_prefix('(').and_then(|t| t.strip_suffix(')')) else {
        return vec![text.to_owned()];
    };
    let mut out = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let Some(quote) = chars.next() else { break };
        let mut word = String::new();
        if quote == '"' || quote == '\'' {
            while let Some(c) = chars.next() {
                match c {
                    '\\' => word.extend(chars.next()),
                    c if c == quote => break,
                    c => word.push(c),
                }
            }
        } else {
            word.push(quote);
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                word.push(c);
                chars.next();
            }
            word = word.trim().to_owned();
        }
        out.push(word);
    }
    out
}

fn truthy(text: &str) -> bool {
    matches!(
        text.trim().to_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

/// The oldmail file name for a POP3 retriever, with getmail's character replacement.
pub fn oldmail_name(server: &str, port: u16, username: &str) -> String {
    let name = format!("oldmail-{server}-{port}-{username}");
    let mut out = String::new();
    let mut in_run = false;
    for c in name.chars() {
        if matches!(c, '/' | '\\' | ':' | ';' | '<' | '>' | '|') {
            if !in_run {
                out.push('-');
            }
            in_run = true;
        } else {
            out.push(c);
            in_run = false;
        }
    }
    out
}

/// Parses an oldmail file.
pub fn parse_oldmail(text: &[u8]) -> Vec<(Uid, Option<u64>)> {
    let text = String::from_utf8_lossy(text);
    text.lines()
        .filter_map(|line| {
            let (id, time) = line.trim().split_once('\0')?;
            Some((super::uid(id)?, time.trim().parse().ok()))
        })
        .collect()
}

/// Converts one rc file. `Err` when it is not a POP3 retriever.
pub fn convert(name: &str, ini: &Ini) -> Result<(ImportedAccount, PathBuf, u16), String> {
    let empty = BTreeMap::new();
    let retriever = ini.get("retriever").unwrap_or(&empty);
    let kind = retriever
        .get("type")
        .map(String::as_str)
        .unwrap_or_default();
    let ssl = kind.ends_with("SSLRetriever");
    if !kind.contains("POP3") {
        return Err(format!(
            "getmail {name}: retriever {kind:?} is not POP3: not imported"
        ));
    }
    let host = retriever.get("server").cloned().unwrap_or_default();
    let user = retriever.get("username").cloned().unwrap_or_default();
    let port = retriever
        .get("port")
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or(if ssl { 995 } else { 110 });
    let mut account = ImportedAccount::new(name, &host, &user);
    account.set("port", i64::from(port));
    if ssl {
        account.set("tls", "implicit");
    } else {
        account.set("tls", "starttls");
        account.note("getmail used no TLS here; pop3 asks for STLS: if the server cannot, set tls = \"none\" and allow_plaintext_password = true");
    }
    if kind.starts_with("BrokenUIDL") {
        account.note("getmail: BrokenUIDL retriever: pop3 recognises messages by a digest of their headers when the server has no UIDL");
    }
    if kind.starts_with("Multidrop") {
        account.note("getmail: multidrop retriever: pop3 delivers every message to one place");
    }
    let options = ini.get("options").unwrap_or(&empty);
    let mut has_password = false;
    for (key, value) in retriever {
        match key.as_str() {
            "type" | "server" | "username" | "port" | "getmaildir" => {}
            "password" => {
                has_password = true;
                super::plaintext(&mut account, Tool::Getmail, value);
            }
            "password_command" => {
                has_password = true;
                account.set("password_command", argv(&parse_tuple(value)));
            }
            "ca_certs" => account.set("ca_file", value.as_str()),
            "certfile" => account.set("tls_client_cert", value.as_str()),
            "keyfile" => account.set("tls_client_key", value.as_str()),
            "ssl_cert_hostname" => account.set("tls_server_name", value.as_str()),
            "use_apop" if truthy(value) => account.set("auth", "apop"),
            "use_apop" => {}
            "timeout" if value.parse::<i64>().is_ok() => {
                account.set("timeout", value.parse::<i64>().unwrap_or(60))
            }
            "ssl_fingerprints" => {
                let prints = parse_tuple(value);
                match prints.first() {
                    Some(first) if first.len() == 95 => {
                        account.set("tls_fingerprint", first.as_str());
                        if prints.len() > 1 {
                            account.note(format!("getmail accepted more fingerprints; pop3 takes one: {}", prints[1..].join(" ")));
                        }
                    }
                    _ => account.note(format!("getmail: ssl_fingerprints {value}: pop3 takes one SHA-256 fingerprint, not imported")),
                }
            }
            other => account.note(format!(
                "getmail: {other} = {value}: no equivalent in pop3, not imported"
            )),
        }
    }
    if !has_password {
        if options.get("use_netrc").is_some_and(|v| truthy(v)) {
            super::netrc_password(&mut account, Tool::Getmail, &host);
        } else {
            super::keyring_or_netrc(
                &mut account,
                Tool::Getmail,
                &["service", &host, "username", &user],
                false,
            );
        }
    }
    destination(&mut account, ini.get("destination").unwrap_or(&empty));
    let mut delete = false;
    let mut received = true;
    for (key, value) in options {
        match key.as_str() {
            "delete" => delete = truthy(value),
            "delete_after" => match value.parse::<i64>() {
                Ok(days) if days > 0 => account.set("keep_days", days),
                _ => {}
            },
            "max_message_size" => match value.parse::<i64>() {
                Ok(size) => account.set("max_message_size", size),
                Err(_) => account.note(format!("getmail: max_message_size = {value}: not a number, not imported")),
            },
            "max_messages_per_session" => match value.parse::<u32>() {
                Ok(count) => account.set("max_messages", i64::from(count)),
                Err(_) => account.note(format!("getmail: max_messages_per_session = {value}: not a number, not imported")),
            },
            "received" => received = truthy(value),
            "read_all" if !truthy(value) => {}
            "read_all" => account.note("getmail: read_all = true fetched every message each time; pop3 fetches only new ones (fetch-all --all fetches all)"),
            "use_netrc" | "verbose" => {}
            other => account.note(format!("getmail: {other} = {value}: no equivalent in pop3, not imported")),
        }
    }
    if !options.contains_key("read_all") {
        account.note("getmail: read_all was not set (default true: every message each time); pop3 fetches only new ones");
    }
    for section in ini.keys().filter(|s| s.starts_with("filter")) {
        account.note(format!(
            "getmail: [{section}]: filters have no equivalent in pop3 (use an mda)"
        ));
    }
    account.set("delete", delete);
    account.set("add_received_header", received);
    let dir = retriever
        .get("getmaildir")
        .map(|d| super::expand(d))
        .unwrap_or_else(getmail_dir);
    Ok((account, dir, port))
}

fn destination(account: &mut ImportedAccount, section: &BTreeMap<String, String>) {
    let kind = section.get("type").map(String::as_str).unwrap_or_default();
    let path = section.get("path").cloned().unwrap_or_default();
    let mut handled = vec!["type", "path"];
    match kind {
        "Maildir" => account.set("maildir", path.trim_end_matches('/')),
        "Mboxrd" => account.set("mbox", path),
        "MDA_external" => {
            let mut words = vec![path];
            words.extend(
                section
                    .get("arguments")
                    .map(|a| parse_tuple(a))
                    .unwrap_or_default(),
            );
            account.set("mda", argv(&words));
            handled.extend(["arguments", "allow_root_commands"]);
        }
        // getmail6's MDA_lmtp: `host` (a host name, or a socket path as Python's smtplib.LMTP
        // takes it) and `port` (default smtplib.LMTP_PORT, 2003); `override` is the recipient.
        "MDA_lmtp" => {
            let host = section
                .get("host")
                .map(String::as_str)
                .unwrap_or("localhost");
            let lmtp = if host.starts_with('/') {
                format!("unix:{host}")
            } else {
                let port = section.get("port").map(String::as_str).unwrap_or("2003");
                format!("{host}:{port}")
            };
            account.set("lmtp", lmtp);
            handled.extend(["host", "port"]);
            if let Some(recipient) = section.get("override") {
                account.set("recipient", recipient.as_str());
                handled.push("override");
            }
        }
        other => {
            account.note(format!(
                "getmail: destination {other}: no equivalent in pop3; set maildir, mbox, mda, lmtp or smtp"
            ));
        }
    }
    for (key, value) in section {
        if !handled.contains(&key.as_str()) {
            account.note(format!(
                "getmail: destination {key} = {value}: no equivalent in pop3, not imported"
            ));
        }
    }
}

/// Reads `files` (rc files; default: every rc file in the getmail directory) and the oldmail
/// files beside them.
pub fn import(files: &[PathBuf]) -> Result<Imported, ImportError> {
    let dir = getmail_dir();
    let files: Vec<PathBuf> = if files.is_empty() {
        let rc = dir.join("getmailrc");
        if rc.exists() {
            vec![rc]
        } else {
            let entries = std::fs::read_dir(&dir).map_err(|_| ImportError::NoConfig {
                tool: Tool::Getmail,
                looked: vec![
                    dirs::config_dir().unwrap_or_default().join("getmail"),
                    super::home(".getmail"),
                ],
            })?;
            let mut found: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    let name = p.file_name().unwrap_or_default().to_string_lossy();
                    p.is_file()
                        && !name.starts_with("oldmail-")
                        && !name.ends_with(".json")
                        && !name.starts_with('.')
                })
                .collect();
            found.sort();
            found
        }
    } else {
        files.to_vec()
    };
    if files.is_empty() {
        return Err(ImportError::NoConfig {
            tool: Tool::Getmail,
            looked: vec![dir.join("getmailrc")],
        });
    }
    let mut imported = Imported {
        sources: files.clone(),
        ..Imported::default()
    };
    let mut used = Vec::new();
    let mut dirs_seen = Vec::new();
    for file in &files {
        let ini = parse_ini(&String::from_utf8_lossy(&read(file)?), file)?;
        let stem = file
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let name = match stem.as_str() {
            "getmailrc" => ini
                .get("retriever")
                .and_then(|r| r.get("server"))
                .cloned()
                .unwrap_or(stem.clone()),
            _ => stem
                .trim_start_matches("getmailrc-")
                .trim_end_matches(".rc")
                .to_owned(),
        };
        let (mut account, oldmail_dir, port) = match convert(&name, &ini) {
            Ok(converted) => converted,
            Err(warning) => {
                imported.warnings.push(warning);
                continue;
            }
        };
        let oldmail = oldmail_dir.join(oldmail_name(&account.host, port, &account.user));
        if let Some(bytes) = super::read_optional(&oldmail)? {
            account.seen = parse_oldmail(&bytes);
            account.seen_from = Some(oldmail.clone());
        }
        used.push(oldmail);
        if !dirs_seen.contains(&oldmail_dir) {
            dirs_seen.push(oldmail_dir);
        }
        imported.accounts.push(account);
    }
    for dir in dirs_seen {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut stray: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("oldmail-"))
            })
            .filter(|p| !used.contains(p))
            .collect();
        stray.sort();
        for path in stray {
            imported.warnings.push(format!(
                "{}: no imported rc file names this account (IMAP, or another rc file): not imported",
                path.display()
            ));
        }
    }
    Ok(imported)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by getmail 6.18.11 after fetching two messages from Dovecot.
    const OLDMAIL: &[u8] = b"000000016b0f5f15\x001796169515\n000000026b0f5f15\x001796169515\n";

    #[test]
    fn oldmail_files_written_by_getmail_parse() {
        let seen = parse_oldmail(OLDMAIL);
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].0.as_str(), "000000016b0f5f15");
        assert_eq!(seen[1].1, Some(1_796_169_515));
        // Lines without the NUL separator are not getmail's: skipped, as getmail does.
        assert!(parse_oldmail(b"garbage\n").is_empty());
    }

    #[test]
    fn oldmail_names_follow_getmail() {
        assert_eq!(
            oldmail_name("localhost", 48387, "alice"),
            "oldmail-localhost-48387-alice"
        );
        assert_eq!(oldmail_name("h", 995, "a/b::c"), "oldmail-h-995-a-b-c");
    }

    const RC: &str = "[retriever]\ntype = SimplePOP3SSLRetriever\nserver = pop.example.com\nusername = alice\npassword_command = (\"/usr/bin/pass\", \"show\",\n    'mail')\nssl_version = TLSv1_2\n\n[destination]\ntype = Maildir\npath = ~/Maildir/\n\n[options]\nread_all = false\ndelete = true\ndelete_after = 7\nmax_messages_per_session = 100\nmax_message_size = 1048576\nmessage_log = ~/.getmail/log\n\n[filter-1]\ntype = Filter_classifier\n";

    #[test]
    fn rc_files_parse_into_pop3_accounts() {
        let ini = parse_ini(RC, Path::new("rc")).unwrap();
        let (account, _, port) = convert("work", &ini).unwrap();
        assert_eq!(port, 995);
        assert_eq!(
            account.get("password_command"),
            Some(&argv(&["/usr/bin/pass", "show", "mail"]))
        );
        assert_eq!(account.get("maildir"), Some(&"~/Maildir".into()));
        assert_eq!(account.get("keep_days"), Some(&7.into()));
        assert_eq!(account.get("max_messages"), Some(&100.into()));
        assert_eq!(account.get("max_message_size"), Some(&1_048_576.into()));
        assert_eq!(account.get("delete"), Some(&true.into()));
        let toml = account.to_toml();
        for expected in ["ssl_version = TLSv1_2", "message_log", "[filter-1]"] {
            assert!(toml.contains(expected), "{expected} missing from\n{toml}");
        }
        crate::config::parse(&toml, Path::new("x")).unwrap();
        let imap = parse_ini(
            "[retriever]\ntype = SimpleIMAPSSLRetriever\n",
            Path::new("rc"),
        )
        .unwrap();
        assert!(convert("i", &imap).is_err());
    }

    #[test]
    fn tuples_parse_like_python() {
        assert_eq!(parse_tuple("(\"a\", 'b c',)"), ["a", "b c"]);
        assert_eq!(parse_tuple("plain"), ["plain"]);
    }

    #[test]
    fn an_lmtp_destination_becomes_the_lmtp_key() {
        let rc = |destination: &str| {
            let text = format!(
                "[retriever]\ntype = SimplePOP3SSLRetriever\nserver = pop.example.com\nusername = alice\npassword = x\n\n[destination]\ntype = MDA_lmtp\n{destination}"
            );
            let ini = parse_ini(&text, Path::new("rc")).unwrap();
            convert("work", &ini).unwrap().0
        };
        let socket = rc("host = /run/dovecot/lmtp\noverride = alice\n");
        assert_eq!(socket.get("lmtp"), Some(&"unix:/run/dovecot/lmtp".into()));
        assert_eq!(socket.get("recipient"), Some(&"alice".into()));
        let tcp = rc("host = localhost\n");
        assert_eq!(
            tcp.get("lmtp"),
            Some(&"localhost:2003".into()),
            "smtplib.LMTP_PORT"
        );
        crate::config::parse(&socket.to_toml(), Path::new("x")).unwrap();
    }
}
