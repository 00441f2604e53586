//! Parse errors in the user's words: what a key must hold, which key was probably meant, where
//! a duplicate key first appeared. The toml crate speaks serde (`invalid type: string "995",
//! expected u16`); this turns that into `port must be a number from 1 to 65535, without quotes
//! (found the string "995")`. What each key holds comes from one table, checked against
//! [`keys`](super::keys) by a test, so a new key cannot go unexplained.

/// What the value of each key must be, as the error says it.
const WORDS: &str = "a list of words in brackets";
const FILE: &str = "a file name in quotes";
const SECONDS: &str = "a whole number of seconds, 1 or more, without quotes";
const BOOL: &str = "true or false, without quotes";
const SIZE: &str = "a size like \"50M\" or \"200K\", or a number of octets";

/// Every key of the file with what its value must be: the account keys of [`super::keys`] and
/// the top-level ones.
const KINDS: &[(&str, &str)] = &[
    ("default_account", "the name of an account, in quotes"),
    ("host", "a host name in quotes, e.g. \"pop.example.com\""),
    ("port", "a number from 1 to 65535, without quotes"),
    ("user", "a user name in quotes"),
    ("tls", "one of \"implicit\", \"starttls\" or \"none\""),
    ("ca_file", FILE),
    (
        "auth",
        "one of \"auto\", \"user\", \"plain\", \"apop\", \"xoauth2\" or \"oauthbearer\"",
    ),
    ("password_command", WORDS),
    (
        "password_env",
        "the name of an environment variable, in quotes",
    ),
    ("password_file", FILE),
    ("password", "a string in quotes"),
    ("allow_plaintext_password", BOOL),
    ("oauth_token_command", WORDS),
    (
        "tls_fingerprint",
        "a SHA-256 fingerprint in quotes (64 hex digits, colons allowed)",
    ),
    ("tls_min_version", "\"1.2\" or \"1.3\", in quotes"),
    ("tls_client_cert", FILE),
    ("tls_client_key", FILE),
    ("tls_server_name", "a host name in quotes"),
    ("timeout", SECONDS),
    ("proxy", "a URL in quotes, e.g. \"socks5://localhost:1080\""),
    ("maildir", "a folder name in quotes"),
    ("mbox", FILE),
    ("mda", WORDS),
    ("lmtp", "\"unix:/path\" or \"host:port\", in quotes"),
    (
        "smtp",
        "\"host\" or \"host:port\" in quotes, or true for localhost:25",
    ),
    ("recipient", "a mail address in quotes"),
    ("delete_rejected", BOOL),
    ("delete", BOOL),
    (
        "keep_days",
        "a whole number of days, 0 or more (0 keeps messages for ever), without quotes",
    ),
    ("max_message_size", SIZE),
    (
        "max_messages",
        "a whole number, 0 or more (0 = no limit), without quotes",
    ),
    ("delete_larger_than", SIZE),
    ("filter_command", WORDS),
    ("filter_timeout", SECONDS),
    ("on_new_mail", WORDS),
    ("state_dir", "a folder name in quotes"),
    ("add_received_header", BOOL),
];

/// Keys whose values are never shown, not even in an error.
const SECRET_KEYS: &[&str] = &["password"];

/// Where every key is listed, for the errors that cannot name the right one.
const WHERE_KEYS_ARE: &str =
    "every key is in config.example.toml, printed by `pop3 config example`";

/// The message for a toml error in `text`; never quotes a secret.
pub(super) fn explain(error: &toml::de::Error, text: &str) -> String {
    let message = error.message().trim();
    let span = error
        .span()
        .map(|s| s.start.min(text.len())..s.end.min(text.len()));
    let start = span.as_ref().map_or(0, |s| s.start);
    let line_text = line_at(text, start);
    if message == "duplicate key" {
        return duplicate(text, span.unwrap_or(0..0));
    }
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (name, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let reported = line_number(text, start);
        let others: Vec<String> = other_unknown_keys(text)
            .into_iter()
            .filter(|(line, _, _)| *line != reported)
            .map(|(line, key, expected)| format!("line {line}: {}", unknown_key(&key, expected)))
            .collect();
        if others.is_empty() {
            return unknown_key(name, expected);
        }
        // serde stops at the first one: the rest are found here, so that a file with several
        // typos is fixed in one go.
        return format!(
            "{}; also {}",
            unknown_key(name, expected),
            others.join("; ")
        );
    }
    let key = span.as_ref().and_then(|s| key_before(text, s.start));
    let secret_line = assigns_secret(line_text);
    match key.and_then(|key| KINDS.iter().find(|(k, _)| *k == key)) {
        Some((key, _)) if SECRET_KEYS.contains(key) => {
            format!("{key} must be a string in quotes (value not shown)")
        }
        Some((key, kind)) if is_serde_jargon(message) => {
            let found = span
                .filter(|_| !secret_line)
                .map(|s| found(&text[s]))
                .unwrap_or_default();
            let hint = command_hint(key, message);
            format!("{key} must be {kind}{hint}{found}")
        }
        // A message the program wrote itself (an invalid size, an invalid SMTP port) already
        // says what is wrong; it only needs the key.
        Some((key, _)) if !secret_line => {
            let message = message.replace("field", "key");
            if message.contains(key) {
                message
            } else {
                format!("{key}: {message}")
            }
        }
        _ if secret_line => {
            // A syntax error on a `password` line may quote the password itself.
            "the value of password is not valid: write it as a string in quotes, e.g. password = \"...\" (value not shown)".to_owned()
        }
        _ => message.replace("field", "key"),
    }
}

/// The messages serde writes for a value of the wrong type or range.
fn is_serde_jargon(message: &str) -> bool {
    [
        "invalid type",
        "invalid value",
        "unknown variant",
        "invalid length",
        "data did not match any variant",
    ]
    .iter()
    .any(|p| message.starts_with(p))
}

/// ` (found ...)` for the value as written, shortened.
fn found(raw: &str) -> String {
    let raw = raw.trim();
    let shown: String = raw.chars().take(60).collect();
    let more = if shown.len() < raw.len() { "…" } else { "" };
    if raw.starts_with('"') || raw.starts_with('\'') {
        format!(" (found the string {shown}{more})")
    } else {
        format!(" (found {shown}{more})")
    }
}

/// For a command key written as one string: the list to write instead. mpop's `passwordeval`
/// is a shell line; here a command is a list so that no quoting can go wrong, and `sh -c`
/// stays available for the shell's syntax.
fn command_hint(key: &str, message: &str) -> String {
    if KINDS.iter().find(|(k, _)| *k == key).map(|(_, kind)| *kind) != Some(WORDS) {
        return String::new();
    }
    let written = message
        .strip_prefix("invalid type: string \"")
        .and_then(|rest| rest.strip_suffix("\", expected a sequence"));
    match written {
        Some(line) if !line.is_empty() && line.chars().all(plain_word_char) => {
            let words: Vec<String> = line
                .split_whitespace()
                .map(|w| format!("\"{w}\""))
                .collect();
            format!(", e.g. {key} = [{}]", words.join(", "))
        }
        Some(line) => format!(
            ", e.g. {key} = [\"sh\", \"-c\", {}] for a shell command line",
            toml_string(line)
        ),
        None => format!(", e.g. {key} = [\"pass\", \"show\", \"mail/work\"]"),
    }
}

/// Characters that mean the same to a shell and as a plain word.
fn plain_word_char(c: char) -> bool {
    c.is_alphanumeric() || " /._-+=:,@%".contains(c)
}

/// `text` as a TOML basic string.
fn toml_string(text: &str) -> String {
    // serde's message has already escaped quotes and backslashes the way TOML does.
    format!("\"{text}\"")
}

/// `key `X` appears twice (lines A and B)`, or the same for a table header.
fn duplicate(text: &str, span: std::ops::Range<usize>) -> String {
    let line = line_number(text, span.start);
    let this_line = line_at(text, span.start).trim();
    if this_line.starts_with('[') {
        let first = text
            .lines()
            .take(line - 1)
            .position(|l| l.trim() == this_line)
            .map(|i| format!(" (lines {} and {line})", i + 1))
            .unwrap_or_default();
        return format!("table {this_line} appears twice{first}: merge the two");
    }
    let key = text[span].trim().trim_matches(['"', '\'']).to_owned();
    // The first one is the latest earlier line that assigns the same key (the table it is in
    // is the same one, or toml would not complain).
    let first = text
        .lines()
        .take(line - 1)
        .enumerate()
        .filter(|(_, l)| assigned_key(l).is_some_and(|k| k == key))
        .last()
        .map(|(i, _)| format!(" (lines {} and {line})", i + 1))
        .unwrap_or_default();
    format!("key `{key}` appears twice{first}: keep one")
}

/// The unknown keys of a file (line, key, the keys known there as serde lists them, or "" for
/// an account's), by a scan of its lines: `key = ...` lines at the top
/// (only `default_account` is known there) and in `[defaults]` and `[accounts.NAME]` (the
/// account keys). Lines inside a multi-line array or string are skipped. Used only once serde
/// has refused the file for an unknown key, to name the others too.
fn other_unknown_keys(text: &str) -> Vec<(usize, String, &'static str)> {
    enum Table {
        Top,
        Account,
        Other,
    }
    let mut table = Table::Top;
    let mut open_brackets = 0i32;
    let mut in_string: Option<&str> = None;
    let mut unknown = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if let Some(quotes) = in_string {
            if trimmed.contains(quotes) {
                in_string = None;
            }
            continue;
        }
        if open_brackets > 0 {
            open_brackets += bracket_balance(trimmed);
            continue;
        }
        if trimmed.starts_with('[') {
            let name = trimmed
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("");
            let name = name.trim();
            table = if name == "defaults" || name.starts_with("accounts.") {
                Table::Account
            } else {
                Table::Other
            };
            continue;
        }
        let Some(key) = assigned_key(trimmed).filter(|_| !trimmed.starts_with('#')) else {
            continue;
        };
        let value = trimmed.split_once('=').map_or("", |(_, v)| v.trim());
        for quotes in ["\"\"\"", "'''"] {
            if value.starts_with(quotes) && value.matches(quotes).count() == 1 {
                in_string = Some(quotes);
            }
        }
        open_brackets = bracket_balance(value).max(0);
        let known = match table {
            Table::Top => key == "default_account",
            Table::Account => super::keys().contains(&key),
            Table::Other => true,
        };
        if !known {
            let expected = match table {
                Table::Top => "`default_account`, `defaults`, `accounts`",
                _ => "",
            };
            unknown.push((index + 1, key.to_owned(), expected));
        }
    }
    unknown
}

/// Opening minus closing brackets of a value, outside quoted strings.
fn bracket_balance(value: &str) -> i32 {
    let mut balance = 0;
    let mut quote = None;
    for c in value.chars() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '[') => balance += 1,
            (None, ']') => balance -= 1,
            (None, '#') => break,
            _ => {}
        }
    }
    balance
}

/// `unknown key `X``, with the nearest known key when one is close.
fn unknown_key(name: &str, expected: &str) -> String {
    let candidates: Vec<&str> = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .chain(if expected.is_empty() {
            super::keys().to_vec()
        } else {
            Vec::new()
        })
        .collect();
    let best = candidates
        .iter()
        .map(|c| (edit_distance(name, c), *c))
        .min()
        .filter(|(d, c)| *d <= 2.max(c.len() / 3));
    match best {
        Some((_, key)) => format!("unknown key `{name}`: did you mean `{key}`?"),
        None => format!("unknown key `{name}` ({WHERE_KEYS_ARE})"),
    }
}

/// The key assigned just before `at` (`key = `, `"key" = `, in a table or inline table).
fn key_before(text: &str, at: usize) -> Option<&str> {
    let before = text.get(..at)?.trim_end().strip_suffix('=')?.trim_end();
    let before = before.trim_end_matches(['"', '\'']);
    // The key is the run of key characters at the end; `char_indices` keeps the cut on a
    // character boundary whatever the text before it holds.
    let start = before
        .char_indices()
        .rev()
        .find(|&(_, c)| !(c.is_alphanumeric() || c == '_' || c == '-'))
        .map_or(0, |(i, c)| i + c.len_utf8());
    Some(&before[start..]).filter(|k| !k.is_empty())
}

/// The key a line assigns (`key = ...`), if it is one.
fn assigned_key(line: &str) -> Option<&str> {
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches(['"', '\'']);
    let key = key.rsplit('.').next().unwrap_or(key).trim();
    Some(key).filter(|k| !k.is_empty())
}

/// 1-based number of the line holding byte `at`.
pub(super) fn line_number(text: &str, at: usize) -> usize {
    let at = at.min(text.len());
    // Count newline bytes: a cut inside a multi-byte character cannot hide one.
    text.as_bytes()[..at]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn line_at(text: &str, at: usize) -> &str {
    text.lines()
        .nth(line_number(text, at) - 1)
        .unwrap_or_default()
}

/// Whether a line of TOML assigns a secret key (`password = ...`, also quoted, dotted or
/// inside an inline table).
fn assigns_secret(line: &str) -> bool {
    SECRET_KEYS.iter().any(|key| {
        line.match_indices(key).any(|(at, _)| {
            let before = line[..at].chars().next_back();
            let after = line[at + key.len()..].trim_start_matches(['"', '\'', ' ', '\t']);
            !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-')
                && after.starts_with('=')
        })
    })
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(above + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;
    use std::path::Path;

    fn error(text: &str) -> String {
        parse(text, Path::new("/c.toml")).unwrap_err().to_string()
    }

    /// Found by `config_text_never_panics`: a multi-byte character before a key cut a string
    /// inside the character.
    #[test]
    fn key_before_cuts_on_a_character_boundary() {
        let text = "e\u{0b8f}D\u{fe05}x =";
        assert_eq!(key_before(text, text.len()), Some("x"));
        assert_eq!(line_number("\u{fe05}\n\u{fe05}", 5), 2);
        assert_eq!(line_number("\u{fe05}", 1), 1);
        let _ = parse("e\u{0b8f}D\u{fe05}x = 1\n", Path::new("/c.toml"));
    }

    #[test]
    fn every_key_says_what_its_value_must_be() {
        for key in super::super::keys() {
            assert!(KINDS.iter().any(|(k, _)| k == key), "{key} has no kind");
        }
    }

    #[test]
    fn config_type_errors_are_in_plain_words_not_serde_jargon() {
        for (text, want) in [
            (
                "[defaults]\nport = \"995\"\n",
                "/c.toml:2: port must be a number from 1 to 65535, without quotes (found the string \"995\")",
            ),
            (
                "[defaults]\ntimeout = -5\n",
                "/c.toml:2: timeout must be a whole number of seconds, 1 or more, without quotes (found -5)",
            ),
            (
                "[accounts.a]\nhost = \"h\"\nkeep_days = 1.5\n",
                "/c.toml:3: keep_days must be a whole number of days, 0 or more (0 keeps messages for ever), without quotes (found 1.5)",
            ),
            (
                "[defaults]\npassword_command = \"pass show mail/work\"\n",
                "/c.toml:2: password_command must be a list of words in brackets, e.g. password_command = [\"pass\", \"show\", \"mail/work\"] (found the string \"pass show mail/work\")",
            ),
            (
                "[accounts]\na = { host = \"h\", port = 70000 }\n",
                "/c.toml:2: port must be a number from 1 to 65535, without quotes (found 70000)",
            ),
            (
                "[accounts.a]\ntls = \"maybe\"\n",
                "/c.toml:2: tls must be one of \"implicit\", \"starttls\" or \"none\" (found the string \"maybe\")",
            ),
        ] {
            assert_eq!(error(text), want);
        }
        let err = error("[defaults]\nmda = \"procmail -d $USER | tee\"\n");
        assert!(
            err.contains("mda = [\"sh\", \"-c\", \"procmail -d $USER | tee\"]"),
            "{err}"
        );
    }

    /// Trial 3: two typos were reported one at a time (serde stops at the first).
    #[test]
    fn every_unknown_key_of_the_file_is_named_at_once() {
        let err = error(
            "defualt_account = \"a\"\n[defaults]\nprot = 1\nmda = [\n  \"x = y\",\n]\n\
             s = \"\"\"\nz = 1\n\"\"\"\n[accounts.a]\nhost = \"h\"\nkeep_day = 3\n",
        );
        for part in [
            "line 1: unknown key `defualt_account`: did you mean `default_account`?",
            "line 3: unknown key `prot`: did you mean `port`?",
            "12: unknown key `keep_day`: did you mean `keep_days`?",
            "unknown key `s`",
        ] {
            assert!(err.contains(part), "{part}: {err}");
        }
        // Lines inside a multi-line array or string are not keys.
        assert!(!err.contains("`x`") && !err.contains("`z`"), "{err}");
        // One typo: the message is as before.
        assert_eq!(
            error("[defaults]\nprot = 1\n"),
            "/c.toml:2: unknown key `prot`: did you mean `port`?"
        );
    }

    #[test]
    fn config_duplicate_key_names_both_lines_and_never_the_value() {
        let err = error("[defaults]\npassword = \"s3cr3t\"\nhost = \"h\"\npassword = \"other\"\n");
        assert_eq!(
            err,
            "/c.toml:4: key `password` appears twice (lines 2 and 4): keep one"
        );
        let err = error("[accounts.a]\nhost = \"a\"\n\n[accounts.a]\nuser = \"b\"\n");
        assert!(
            err.contains("[accounts.a] appears twice (lines 1 and 4)"),
            "{err}"
        );
    }

    #[test]
    fn config_unknown_key_suggests_the_nearest_not_every_key() {
        assert_eq!(
            error("[defaults]\npasword = \"x\"\n"),
            "/c.toml:2: unknown key `pasword`: did you mean `password`?"
        );
        assert_eq!(
            error("[default]\nhost = \"x\"\n"),
            "/c.toml:1: unknown key `default`: did you mean `defaults`?"
        );
        let err = error("[defaults]\ncolour = \"x\"\n");
        assert!(
            err.contains("unknown key `colour`") && err.contains("pop3 config example"),
            "{err}"
        );
        assert!(err.len() < 150, "{err}");
    }
}
