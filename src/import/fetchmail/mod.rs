//! fetchmail: `~/.fetchmailrc` and `~/.fetchids`.
//!
//! The rc file is free-form: `poll HOST [server options] user NAME [user options]...`, with
//! noise words (`and`, `with`, `has`, `wants`, `options`, `here`, `there`) and punctuation
//! (`,` `:` `;`) that mean nothing, `#` comments, and "double" or 'single' quoted strings.
//! `.fetchids` holds one line per unique-id, `USER@HOST UID`, where HOST is the poll name (or
//! `via`) and USER may itself contain `@` (fetchmail splits at the first space after an `@`).
//!
//! [`rc`] reads the rc file's grammar into entries; [`convert`](mod@convert) turns an entry into
//! a pop3 account; this module finds the files and matches `.fetchids` to the accounts.

mod convert;
mod rc;

use std::path::{Path, PathBuf};

pub use convert::convert;
pub use rc::{Entry, parse_config};

use super::{ImportError, Imported, Tool, first_existing, read};
use crate::pop3::Uid;

/// `$FETCHMAILHOME` or the home directory.
fn fetchmail_home() -> PathBuf {
    std::env::var_os("FETCHMAILHOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::import::home(""))
}

fn default_configs() -> Vec<PathBuf> {
    match std::env::var_os("FETCHMAILHOME") {
        Some(dir) => vec![PathBuf::from(dir).join("fetchmailrc")],
        None => vec![crate::import::home(".fetchmailrc")],
    }
}

/// Parses `.fetchids` into (user, host, unique-id) triples.
pub fn parse_fetchids(text: &[u8]) -> Vec<(String, String, Uid)> {
    let text = String::from_utf8_lossy(text);
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim_start_matches([' ', '\t']);
        // Split as fetchmail does: the first space after the first '@' ends USER@HOST.
        let Some(at) = line.find('@') else { continue };
        let Some(space) = line[at..].find(' ').map(|s| s + at) else {
            continue;
        };
        let user_host = line[..space].trim_end();
        let id = line[space..].trim_start_matches(' ');
        let id = id.split([' ', '\t']).next().unwrap_or_default();
        let Some((user, host)) = user_host.rsplit_once('@') else {
            continue;
        };
        if let Some(uid) = crate::import::uid(id) {
            out.push((user.to_owned(), host.to_owned(), uid));
        }
    }
    out
}

/// Reads `file` (or `~/.fetchmailrc`) and `~/.fetchids`.
pub fn import(file: Option<&Path>) -> Result<Imported, ImportError> {
    let path = match file {
        Some(path) => path.to_owned(),
        None => first_existing(Tool::Fetchmail, default_configs())?,
    };
    let text = read(&path)?;
    let (entries, sets) = parse_config(&String::from_utf8_lossy(&text), &path)?;
    let mut imported = Imported {
        sources: vec![path.clone()],
        ..Imported::default()
    };
    let mut idfile = fetchmail_home().join(".fetchids");
    for set in &sets {
        if let Some(file) = set.strip_prefix("idfile ") {
            idfile = crate::import::expand(file);
        }
    }
    let ids = super::read_optional(&idfile)?
        .map(|bytes| parse_fetchids(&bytes))
        .unwrap_or_default();
    let mut claimed = vec![false; ids.len()];
    let users_per_poll = |poll: &str| entries.iter().filter(|e| e.poll == poll).count();
    for entry in entries.iter().filter(|e| !e.poll.is_empty()) {
        let user = entry
            .get("user")
            .or(entry.get("username"))
            .unwrap_or_default();
        let name = if users_per_poll(&entry.poll) > 1 {
            format!("{}-{user}", entry.poll)
        } else {
            entry.poll.clone()
        };
        let mut account = match convert(&name, entry) {
            Ok(account) => account,
            Err(warning) => {
                imported.warnings.push(warning);
                continue;
            }
        };
        if entry.skipped {
            account.note("fetchmail: this entry was marked skip (polled only when named)");
        }
        // fetchids are keyed by the query name (via, else the poll name) and the remote user,
        // compared without regard to case.
        for (index, (u, h, uid)) in ids.iter().enumerate() {
            if h.eq_ignore_ascii_case(&account.host) && u.eq_ignore_ascii_case(&account.user) {
                claimed[index] = true;
                account.seen.push((uid.clone(), None));
                account.seen_from = Some(idfile.clone());
            }
        }
        imported.accounts.push(account);
    }
    let mut unknown: Vec<(&str, &str, usize)> = Vec::new();
    for ((user, host, _), claimed) in ids.iter().zip(&claimed) {
        if !claimed {
            match unknown.iter_mut().find(|(u, h, _)| u == user && h == host) {
                Some(entry) => entry.2 += 1,
                None => unknown.push((user, host, 1)),
            }
        }
    }
    for (user, host, count) in unknown {
        imported.warnings.push(format!(
            "{}: {} of {user} at {host}, which no entry in {} names: not imported",
            idfile.display(),
            crate::ui::count(count as u64, "UID"),
            path.display()
        ));
    }
    for set in sets {
        imported.warnings.push(format!(
            "fetchmail: set {set}: global setting, not imported"
        ));
    }
    Ok(imported)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by fetchmail 6.4.37 after fetching two messages from Dovecot in keep mode.
    const FETCHIDS: &[u8] = b"alice@localhost 000000016b0f5f15\nalice@localhost 000000026b0f5f15\nbob@corp.com@pop.corp.com <uid@with@at>\n";

    #[test]
    fn fetchids_written_by_fetchmail_parse() {
        let ids = parse_fetchids(FETCHIDS);
        assert_eq!(ids.len(), 3);
        assert_eq!(
            (ids[0].0.as_str(), ids[0].1.as_str(), ids[0].2.as_str()),
            ("alice", "localhost", "000000016b0f5f15")
        );
        assert_eq!(
            (ids[2].0.as_str(), ids[2].1.as_str(), ids[2].2.as_str()),
            ("bob@corp.com", "pop.corp.com", "<uid@with@at>")
        );
    }
}
