//! The rc file's grammar: tokens, keywords, and `poll`/`user` entries. What the settings mean
//! for pop3 is [`convert`](mod@super::convert)'s business.

use std::path::Path;

use crate::import::ImportError;

/// A token: a word or a quoted string (quoted strings are never keywords), with its line.
#[derive(Debug, Clone, PartialEq)]
struct Token {
    text: String,
    quoted: bool,
    line: usize,
}

fn tokenize(text: &str, path: &Path) -> Result<Vec<Token>, ImportError> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while let Some(&c) = chars.peek() {
        match c {
            '\n' => {
                line += 1;
                chars.next();
            }
            c if c.is_whitespace() || matches!(c, ',' | ':' | ';') => {
                chars.next();
            }
            '#' => {
                while chars.peek().is_some_and(|&c| c != '\n') {
                    chars.next();
                }
            }
            '"' | '\'' => {
                let quote = c;
                let start = line;
                chars.next();
                let mut word = String::new();
                loop {
                    match chars.next() {
                        None => {
                            return Err(ImportError::Parse {
                                path: path.to_owned(),
                                line: start,
                                message: "unterminated quoted string".into(),
                            });
                        }
                        Some('\\') if quote == '"' => match chars.next() {
                            Some('n') => word.push('\n'),
                            Some('t') => word.push('\t'),
                            Some(other) => word.push(other),
                            None => {}
                        },
                        Some(c) if c == quote => break,
                        Some(c) => {
                            if c == '\n' {
                                line += 1;
                            }
                            word.push(c);
                        }
                    }
                }
                tokens.push(Token {
                    text: word,
                    quoted: true,
                    line: start,
                });
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || matches!(c, ',' | ':' | ';' | '#') {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(Token {
                    text: word,
                    quoted: false,
                    line,
                });
            }
        }
    }
    Ok(tokens)
}

const NOISE: &[&str] = &["and", "with", "has", "wants", "options", "here", "there"];

/// Keywords that take one argument.
const WITH_ARGUMENT: &[&str] = &[
    "via",
    "proto",
    "protocol",
    "port",
    "service",
    "auth",
    "authenticate",
    "timeout",
    "envelope",
    "qvirtual",
    "interface",
    "monitor",
    "plugin",
    "plugout",
    "principal",
    "esmtpname",
    "esmtppassword",
    "user",
    "username",
    "pass",
    "password",
    "smtpaddress",
    "smtpname",
    "mda",
    "bsmtp",
    "preconnect",
    "postconnect",
    "limit",
    "warnings",
    "batchlimit",
    "fetchlimit",
    "fetchsizelimit",
    "fastuidl",
    "expunge",
    "sslproto",
    "sslcertfile",
    "sslcertpath",
    "sslcommonname",
    "sslfingerprint",
    "sslkey",
    "sslcert",
    "properties",
    "folder",
    "smtphost",
    "fetchdomains",
    "antispam",
    "aka",
    "localdomains",
    "lmtp_host",
];

/// Keywords that take a list of arguments (up to the next keyword).
const WITH_LIST: &[&str] = &[
    "is",
    "to",
    "aka",
    "localdomains",
    "folder",
    "smtphost",
    "fetchdomains",
    "antispam",
];

/// Flags (may be preceded by `no`).
const FLAGS: &[&str] = &[
    "keep",
    "flush",
    "limitflush",
    "fetchall",
    "rewrite",
    "stripcr",
    "forcecr",
    "pass8bits",
    "dropstatus",
    "dropdelivered",
    "mimedecode",
    "idle",
    "ssl",
    "sslcertck",
    "uidl",
    "dns",
    "checkalias",
    "lmtp",
    "showdots",
    "tracepolls",
];

fn is_keyword(token: &Token) -> bool {
    !token.quoted
        && (WITH_ARGUMENT.contains(&token.text.as_str())
            || WITH_LIST.contains(&token.text.as_str())
            || FLAGS.contains(&token.text.as_str())
            || matches!(
                token.text.as_str(),
                "poll" | "skip" | "server" | "defaults" | "set" | "no"
            ))
}

/// One `user` entry of one `poll` entry: (keyword, argument) pairs, server part first.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    /// The poll name.
    pub poll: String,
    /// `skip` instead of `poll`.
    pub skipped: bool,
    /// The settings, server options first; a flag has `None`, `no FLAG` is `("no FLAG", None)`.
    pub options: Vec<(String, Option<String>)>,
}

impl Entry {
    pub(super) fn get(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_deref().unwrap_or(""))
    }

    pub(super) fn has(&self, flag: &str) -> bool {
        self.options.iter().any(|(k, _)| k == flag)
    }
}

/// Options as written: (keyword, argument).
type Options = Vec<(String, Option<String>)>;

/// A `poll` statement being read: name, skipped, server options, one option list per user.
type Poll = (String, bool, Options, Vec<Options>);

/// Parses the rc file into one entry per (poll, user). `defaults` options go into every poll
/// after them; `set` statements are returned apart.
pub fn parse_config(text: &str, path: &Path) -> Result<(Vec<Entry>, Vec<String>), ImportError> {
    let tokens = tokenize(text, path)?;
    let mut sets = Vec::new();
    let mut entries: Vec<Entry> = Vec::new();
    let mut defaults: Vec<(String, Option<String>)> = Vec::new();
    // The current poll: its name, whether skipped, the server options, its users.
    let mut current: Option<Poll> = None;
    let mut in_defaults = false;
    let flush = |current: &mut Option<Poll>, entries: &mut Vec<Entry>| {
        if let Some((poll, skipped, server, users)) = current.take() {
            for user in users {
                let mut options: Vec<(String, Option<String>)> = server.clone();
                options.extend(user);
                entries.push(Entry {
                    poll: poll.clone(),
                    skipped,
                    options,
                });
            }
        }
    };
    let mut i = 0;
    let parse_error = |token: &Token, message: String| ImportError::Parse {
        path: path.to_owned(),
        line: token.line,
        message,
    };
    while i < tokens.len() {
        let token = &tokens[i];
        i += 1;
        let word = token.text.as_str();
        if !token.quoted && NOISE.contains(&word) {
            continue;
        }
        match word {
            "set" if !token.quoted => {
                // `set no NAME`, `set NAME VALUE` or `set NAME`.
                let first = tokens.get(i).map(|t| t.text.clone()).unwrap_or_default();
                let words = if first == "no" || is_value_set(&first) {
                    2
                } else {
                    1
                };
                let statement: Vec<String> = tokens[i..(i + words).min(tokens.len())]
                    .iter()
                    .map(|t| t.text.clone())
                    .collect();
                i += statement.len();
                sets.push(statement.join(" "));
            }
            "poll" | "skip" | "server" | "defaults" if !token.quoted => {
                flush(&mut current, &mut entries);
                in_defaults = word == "defaults";
                if in_defaults {
                    current = Some((String::new(), true, Vec::new(), Vec::new()));
                } else {
                    let name = tokens.get(i).ok_or_else(|| {
                        parse_error(token, format!("{word} without a server name"))
                    })?;
                    i += 1;
                    current = Some((
                        name.text.clone(),
                        word == "skip",
                        defaults.clone(),
                        Vec::new(),
                    ));
                }
            }
            _ => {
                let Some((_, _, server, users)) = current.as_mut() else {
                    return Err(parse_error(
                        token,
                        format!("{word:?} before any poll statement"),
                    ));
                };
                let (key, value) = if word == "no" && !token.quoted {
                    let flag = tokens
                        .get(i)
                        .ok_or_else(|| parse_error(token, "no without a keyword".into()))?;
                    i += 1;
                    (format!("no {}", flag.text), None)
                } else if !token.quoted && WITH_LIST.contains(&word) {
                    let mut values = Vec::new();
                    while i < tokens.len()
                        && !is_keyword(&tokens[i])
                        && !NOISE.contains(&tokens[i].text.as_str())
                    {
                        values.push(tokens[i].text.clone());
                        i += 1;
                    }
                    (word.to_owned(), Some(values.join(" ")))
                } else if !token.quoted && WITH_ARGUMENT.contains(&word) {
                    // `envelope` and `idle` may stand alone; take the argument only when it is not a keyword.
                    match tokens.get(i) {
                        Some(next)
                            if !is_keyword(next)
                                || matches!(
                                    word,
                                    "user" | "username" | "pass" | "password" | "mda"
                                ) =>
                        {
                            i += 1;
                            (word.to_owned(), Some(next.text.clone()))
                        }
                        _ => (word.to_owned(), None),
                    }
                } else if !token.quoted && FLAGS.contains(&word) {
                    (word.to_owned(), None)
                } else {
                    (format!("unknown {word}"), None)
                };
                if matches!(key.as_str(), "user" | "username") {
                    users.push(vec![(key, value)]);
                } else if let Some(user) = users.last_mut() {
                    user.push((key, value));
                } else {
                    server.push((key, value));
                }
                if in_defaults {
                    defaults = current.as_ref().map(|c| c.2.clone()).unwrap_or_default();
                }
            }
        }
    }
    flush(&mut current, &mut entries);
    Ok((entries, sets))
}

fn is_value_set(name: &str) -> bool {
    matches!(
        name,
        "daemon" | "logfile" | "idfile" | "postmaster" | "pidfile" | "properties"
    )
}
