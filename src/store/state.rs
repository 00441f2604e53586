//! The per-account state: which unique-ids were delivered, and when each was first seen (for
//! `keep_days`). One file per mailbox, keyed by user and host (host case-insensitive), not by
//! port or TLS mode: moving from port 110 with STLS to 995 is the same mailbox, and a new key
//! would fetch everything again. Files named by older versions (user, host and port) are
//! adopted by `store::adopt`.
//!
//! The file is a journal of records, one per line, appended and fsynced per delivered batch:
//!
//! ```text
//! pop3-state 1
//! + <uid> <first-seen unix seconds>     delivered
//! s <uid>                               too big; already reported, don't nag again
//! r <uid>                               refused permanently (5xx) by the LMTP/SMTP server;
//!                                       reported once, not offered again
//! k <uid>                               deleted unread (delete_larger_than, filter exit 1);
//!                                       DELE again until the server confirms it
//! f <uid>                               filter_command said skip (exit 2); don't ask again
//! - <uid>                               forget every earlier record of <uid> (it left the
//!                                       server); records are read in order
//! m <uid> <offset>                      an mbox append of <uid> starts at byte <offset>
//! m-                                    no mbox append is in progress
//! ```
//!
//! `<uid>` is the message's key (`commands::fetch`'s identity rule): its unique-id, or the
//! `~sha256:` digest form for an id that breaks RFC 1939 or that an earlier message shares.
//!
//! The `m` records make mbox delivery exactly once: an append is announced (fsynced) before its
//! first byte is written and settled after the mbox is flushed, so a run finding an unsettled
//! one knows a kill interrupted it and where to look (see `store::mbox::Mbox::recover`).
//!
//! A new file stays empty until its first records, which come with the header line; an empty
//! file reads as an empty state. A crash can only leave a torn last line, which has no
//! newline and is ignored on reading:
//! every complete line was written before the batch it describes was deleted from the server.
//! Once a run that wrote to it finds the journal grown past twice the live records plus
//! [`JOURNAL_SLACK`] lines, it is compacted: the live records are written to a temporary file,
//! fsynced and renamed over the old one, so a crash leaves either the old or the new file.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::pop3::Uid;

const HEADER: &str = "pop3-state 1";

/// Lines the journal may hold beyond twice its live records before a run that writes to it
/// rewrites it as a snapshot: about 30 KB, read in well under a millisecond.
const JOURNAL_SLACK: usize = 1024;

/// What the state knows about one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Entry {
    /// Unix time when it was delivered (first seen) — the clock for `keep_days`.
    pub first_seen: Option<u64>,
    /// Whether the "too big" report was already given.
    pub size_reported: bool,
    /// Whether the LMTP/SMTP server refused it permanently (reported, not retried).
    pub rejected: bool,
    /// Deleted without downloading (and reported): DELE it again until the server commits it.
    pub delete_unfetched: bool,
    /// `filter_command` said to leave it on the server: it is not asked again.
    pub filter_skipped: bool,
}

/// The state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing failed.
    #[error("state file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The file is not a state file, or a complete line is malformed.
    #[error(
        "state file {} is damaged at line {line}: delete or correct that line, or move the file away to start over (then a Maildir recognises the messages it already holds, but any other target gets every message still on the server again)",
        path.display()
    )]
    Damaged {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
}

/// An open state file.
#[derive(Debug)]
pub(crate) struct State {
    path: PathBuf,
    /// `None` for a read-only view (`--dry-run`), which must never write.
    journal: Option<File>,
    entries: HashMap<Uid, Entry>,
    /// Whether the file differs from a compact snapshot (records were appended).
    appended: bool,
    /// Lines in the file: a run that only added records leaves the journal as it is until it
    /// has grown well past the live records (see [`State::compact`]).
    lines: usize,
    /// An mbox append announced and not settled: the unique-id and the offset.
    pending_append: Option<(Uid, u64)>,
}

/// The file name for a mailbox (user and host; the host's ASCII case does not count):
/// readable, and safe whatever the user and host contain.
pub(crate) fn file_name(host: &str, user: &str) -> String {
    let host = host.to_ascii_lowercase();
    // A digest keeps distinct mailboxes apart even when their sanitised names collide.
    let short = short_digest(&format!("{host}\0{user}"));
    format!("{}@{}-{short}", safe_name(user), safe_name(&host))
}

/// The file name older versions gave an account's state: keyed by host (as written), port
/// and user. Only for finding such files to adopt (`store::adopt`).
pub(crate) fn legacy_file_name(host: &str, port: u16, user: &str) -> String {
    let short = short_digest(&format!("{host}\0{port}\0{user}"));
    format!("{}@{}_{port}-{short}", safe_name(user), safe_name(host))
}

/// `text` with anything but ASCII letters, digits, `.`, `-` and `_` replaced, at most 64
/// characters: never a path separator.
fn safe_name(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect()
}

/// The first 12 hex digits of the SHA-256 of `text`.
fn short_digest(text: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    digest.as_ref()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The mbox spool file that belongs to the state file at `path` (see [`State::mbox_spool_path`]).
pub(crate) fn mbox_spool_path_of(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!(".{name}.mbox-spool"))
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_owned(),
        source,
    }
}

impl State {
    /// Opens (or creates) the state file at `path`. The caller must hold the account lock.
    pub(crate) fn open(path: &Path) -> Result<State, StateError> {
        if let Some(dir) = path.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io_error(path))?;
        }
        let (mut state, text) = State::load(path)?;
        remove_stale_temporaries(path);
        // Created (empty) here, so that an unwritable directory is reported before anything
        // is downloaded; the header goes out with the first records (see `append`).
        state.journal = Some(open_journal(path).map_err(io_error(path))?);
        if !text.is_empty() && !text.ends_with(b"\n") {
            // A torn last line: start from a clean snapshot.
            state.rewrite()?;
        }
        Ok(state)
    }

    /// A read-only view of the state at `path` that creates and changes nothing (an empty
    /// state when there is no file yet). For `--dry-run` and `login-check`.
    pub(crate) fn read_only(path: &Path) -> Result<State, StateError> {
        State::load(path).map(|(state, _)| state)
    }

    /// Reads and parses the file (a missing file is an empty state), without a journal to
    /// write to; returns the raw text too.
    fn load(path: &Path) -> Result<(State, Vec<u8>), StateError> {
        let text = match fs::read(path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_error(path)(e)),
        };
        let entries = parse(&text).map_err(|line| StateError::Damaged {
            path: path.to_owned(),
            line,
        })?;
        let state = State {
            path: path.to_owned(),
            journal: None,
            entries,
            appended: false,
            lines: text.iter().filter(|&&b| b == b'\n').count(),
            pending_append: parse_pending_append(&text),
        };
        Ok((state, text))
    }

    /// The union of the state files at `sources`, as a read-only state for `path` (which is
    /// not read): a unique-id counts as delivered (or reported, refused, ...) if any of them
    /// says so, and its first-seen time is the earliest. Only one unsettled mbox append can be
    /// carried over: the first found; the index of its source is returned with the union.
    pub(crate) fn read_union(
        path: &Path,
        sources: &[PathBuf],
    ) -> Result<(State, Option<usize>), StateError> {
        let mut union = State {
            path: path.to_owned(),
            journal: None,
            entries: HashMap::new(),
            appended: false,
            lines: 0,
            pending_append: None,
        };
        let mut pending_source = None;
        for (index, source) in sources.iter().enumerate() {
            let (state, _) = State::load(source)?;
            for (uid, entry) in state.entries {
                let into = union.entries.entry(uid).or_default();
                into.first_seen = match (into.first_seen, entry.first_seen) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                into.size_reported |= entry.size_reported;
                into.rejected |= entry.rejected;
                into.delete_unfetched |= entry.delete_unfetched;
                into.filter_skipped |= entry.filter_skipped;
            }
            if union.pending_append.is_none() && state.pending_append.is_some() {
                union.pending_append = state.pending_append;
                pending_source = Some(index);
            }
        }
        Ok((union, pending_source))
    }

    /// Writes this (read-only) state as the file at its path, atomically and durably; the
    /// caller holds the account lock.
    pub(crate) fn write_new(mut self) -> Result<(), StateError> {
        self.rewrite()
    }

    /// How many delivered messages are remembered.
    pub(crate) fn delivered_count(&self) -> usize {
        self.entries
            .values()
            .filter(|e| e.first_seen.is_some())
            .count()
    }

    /// What is known about `uid`.
    pub(crate) fn entry(&self, uid: &Uid) -> Option<Entry> {
        self.entries.get(uid).copied()
    }

    /// Whether `uid` was delivered before.
    pub(crate) fn is_delivered(&self, uid: &Uid) -> bool {
        self.entries
            .get(uid)
            .is_some_and(|e| e.first_seen.is_some())
    }

    /// Records a batch of delivered messages durably (one append, one fsync).
    pub(crate) fn record_delivered(&mut self, uids: &[Uid], now: u64) -> Result<(), StateError> {
        if uids.is_empty() {
            return Ok(());
        }
        let mut lines = String::new();
        for uid in uids {
            lines.push_str(&format!("+ {uid} {now}\n"));
        }
        self.append(&lines)?;
        self.appended = true;
        for uid in uids {
            self.entries.entry(uid.clone()).or_default().first_seen = Some(now);
        }
        Ok(())
    }

    /// Records that the "too big" report for `uid` was given.
    pub(crate) fn record_size_reported(&mut self, uid: &Uid) -> Result<(), StateError> {
        self.append(&format!("s {uid}\n"))?;
        self.appended = true;
        self.entries.entry(uid.clone()).or_default().size_reported = true;
        Ok(())
    }

    /// Records durably that the LMTP/SMTP server refused `uid` permanently: it is not offered
    /// again (a different message has a different key).
    pub(crate) fn record_rejected(&mut self, uid: &Uid) -> Result<(), StateError> {
        self.record_flags(std::slice::from_ref(uid), "r", |entry| {
            entry.rejected = true
        })
    }

    /// Whether the LMTP/SMTP server refused `uid` permanently in an earlier run.
    pub(crate) fn is_rejected(&self, uid: &Uid) -> bool {
        self.entries.get(uid).is_some_and(|e| e.rejected)
    }

    /// Records durably (one append, one fsync) that `uids` are to be deleted without being
    /// downloaded, before their DELE is sent: a DELE the server does not commit is retried by
    /// the next run, without reporting it again.
    pub(crate) fn record_delete_unfetched(&mut self, uids: &[Uid]) -> Result<(), StateError> {
        self.record_flags(uids, "k", |entry| entry.delete_unfetched = true)
    }

    /// Records durably that `filter_command` said to leave `uids` on the server.
    pub(crate) fn record_filter_skipped(&mut self, uids: &[Uid]) -> Result<(), StateError> {
        self.record_flags(uids, "f", |entry| entry.filter_skipped = true)
    }

    fn record_flags(
        &mut self,
        uids: &[Uid],
        kind: &str,
        set: impl Fn(&mut Entry),
    ) -> Result<(), StateError> {
        if uids.is_empty() {
            return Ok(());
        }
        let lines: String = uids.iter().map(|uid| format!("{kind} {uid}\n")).collect();
        self.append(&lines)?;
        self.appended = true;
        for uid in uids {
            set(self.entries.entry(uid.clone()).or_default());
        }
        Ok(())
    }

    /// The mbox append that a killed run announced and never settled, if any.
    pub(crate) fn pending_append(&self) -> Option<(Uid, u64)> {
        self.pending_append.clone()
    }

    /// Announces durably that `uid` is about to be appended to the mbox at `offset`.
    pub(crate) fn record_append_pending(
        &mut self,
        uid: &Uid,
        offset: u64,
    ) -> Result<(), StateError> {
        self.append(&format!("m {uid} {offset}\n"))?;
        self.appended = true;
        self.pending_append = Some((uid.clone(), offset));
        Ok(())
    }

    /// Settles the announced mbox append durably: with `delivered`, records its message as
    /// delivered in the same write.
    pub(crate) fn record_append_settled(
        &mut self,
        delivered: bool,
        now: u64,
    ) -> Result<(), StateError> {
        let Some((uid, _)) = self.pending_append.clone() else {
            return Ok(());
        };
        let lines = if delivered {
            format!("+ {uid} {now}\nm-\n")
        } else {
            "m-\n".to_owned()
        };
        self.append(&lines)?;
        self.appended = true;
        self.pending_append = None;
        if delivered {
            self.entries.entry(uid).or_default().first_seen = Some(now);
        }
        Ok(())
    }

    /// The spool file of mbox delivery: beside the state file, so that it is still there for
    /// the next run when a kill interrupts an append.
    pub(crate) fn mbox_spool_path(&self) -> PathBuf {
        mbox_spool_path_of(&self.path)
    }

    /// Appends `lines` (complete records) to the journal and syncs them. The first records of
    /// a new (empty) file carry the header, and the directory is synced after them so that
    /// the file's name is as durable as its records; an empty file reads as an empty state.
    /// A new file is not written as a snapshot at open: that cost two syncs and a rename
    /// before the connection of every first run, and a run that delivers nothing writes nothing.
    fn append(&mut self, lines: &str) -> Result<(), StateError> {
        let path = self.path.clone();
        let journal = self
            .journal
            .as_mut()
            .expect("a read-only state is never written");
        let new_file = self.lines == 0;
        let text = if new_file {
            format!("{HEADER}\n{lines}")
        } else {
            lines.to_owned()
        };
        journal
            .write_all(text.as_bytes())
            .map_err(io_error(&path))?;
        // Counted once written, synced or not: a later append must not repeat the header.
        self.lines += text.matches('\n').count();
        journal.sync_data().map_err(io_error(&path))?;
        if new_file {
            File::open(path.parent().unwrap_or(Path::new(".")))
                .and_then(|dir| dir.sync_all())
                .map_err(io_error(&path))?;
        }
        Ok(())
    }

    /// Forgets the entries `keep` rejects (e.g. messages that left the server) with a `- UID`
    /// record each, appended and synced like any other record. The file is rewritten as a
    /// compact snapshot only by a run that wrote to it, once the journal has grown past twice
    /// the live records plus [`JOURNAL_SLACK`] lines: a rewrite costs two more syncs and a
    /// rename, which every delete run paid at its end when forgetting meant rewriting. An idle
    /// run writes nothing.
    pub(crate) fn compact(&mut self, keep: impl Fn(&Uid) -> bool) -> Result<(), StateError> {
        if self.journal.is_none() {
            return Ok(());
        }
        let mut forgotten: Vec<Uid> = self
            .entries
            .keys()
            .filter(|uid| !keep(uid))
            .cloned()
            .collect();
        forgotten.sort();
        for uid in &forgotten {
            self.entries.remove(uid);
        }
        let overgrown = self.lines + forgotten.len() > 2 * self.entries.len() + JOURNAL_SLACK;
        if overgrown && (self.appended || !forgotten.is_empty()) {
            return self.rewrite();
        }
        if !forgotten.is_empty() {
            let lines: String = forgotten.iter().map(|uid| format!("- {uid}\n")).collect();
            self.append(&lines)?;
        }
        Ok(())
    }

    /// Writes the entries to a temporary file, fsyncs it, renames it over the state file and
    /// fsyncs the directory: a crash leaves either the old file or the new one.
    fn rewrite(&mut self) -> Result<(), StateError> {
        let mut text = format!("{HEADER}\n");
        let mut uids: Vec<_> = self.entries.iter().collect();
        uids.sort_by(|a, b| a.0.cmp(b.0));
        for (uid, entry) in uids {
            if let Some(seen) = entry.first_seen {
                text.push_str(&format!("+ {uid} {seen}\n"));
            }
            if entry.size_reported {
                text.push_str(&format!("s {uid}\n"));
            }
            if entry.rejected {
                text.push_str(&format!("r {uid}\n"));
            }
            if entry.delete_unfetched {
                text.push_str(&format!("k {uid}\n"));
            }
            if entry.filter_skipped {
                text.push_str(&format!("f {uid}\n"));
            }
        }
        if let Some((uid, offset)) = &self.pending_append {
            text.push_str(&format!("m {uid} {offset}\n"));
        }
        let path = self.path.clone();
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut temp = tempfile::Builder::new()
            .prefix(&temporary_prefix(&path))
            .tempfile_in(dir)
            .map_err(io_error(&path))?;
        temp.write_all(text.as_bytes())
            .and_then(|()| temp.as_file().sync_all())
            .map_err(io_error(&path))?;
        temp.persist(&path).map_err(|e| io_error(&path)(e.error))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_error(&path))?;
        self.journal = Some(open_journal(&path).map_err(io_error(&path))?);
        self.appended = false;
        self.lines = text.matches('\n').count();
        Ok(())
    }
}

/// Temporary files of one account's rewrites start with this, so that cleaning up after a
/// killed run touches only this account's files (others may be mid-rewrite, under their own
/// lock).
fn temporary_prefix(path: &Path) -> String {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    format!(".{name}.tmp-")
}

/// Removes temporary files that a killed rewrite of this account left behind. The caller holds
/// the account lock, so none of them can be in use.
fn remove_stale_temporaries(path: &Path) {
    let prefix = temporary_prefix(path);
    let dir = path.parent().unwrap_or(Path::new("."));
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn open_journal(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// Parses the file; `Err(line)` names the first damaged complete line.
fn parse(text: &[u8]) -> Result<HashMap<Uid, Entry>, usize> {
    let mut entries: HashMap<Uid, Entry> = HashMap::new();
    if text.is_empty() {
        return Ok(entries);
    }
    // Only complete lines count: a torn last line was never acknowledged.
    let complete = match text.iter().rposition(|&b| b == b'\n') {
        Some(end) => &text[..=end],
        None => return Ok(entries),
    };
    let complete = std::str::from_utf8(complete).map_err(|_| 1usize)?;
    for (index, line) in complete.lines().enumerate() {
        let number = index + 1;
        if index == 0 {
            if line != HEADER {
                return Err(1);
            }
            continue;
        }
        let mut words = line.split(' ');
        match (
            words.next(),
            // Uid::parse: the digest form of an odd or shared id is longer than a plain one.
            words.next().and_then(Uid::parse),
            words.next(),
            words.next(),
        ) {
            (Some("+"), Some(uid), Some(seen), None) => {
                let seen = seen.parse().map_err(|_| number)?;
                let entry = entries.entry(uid).or_default();
                entry.first_seen = Some(entry.first_seen.map_or(seen, |s: u64| s.min(seen)));
            }
            (Some("s"), Some(uid), None, None) => {
                entries.entry(uid).or_default().size_reported = true;
            }
            (Some("r"), Some(uid), None, None) => {
                entries.entry(uid).or_default().rejected = true;
            }
            (Some("k"), Some(uid), None, None) => {
                entries.entry(uid).or_default().delete_unfetched = true;
            }
            (Some("f"), Some(uid), None, None) => {
                entries.entry(uid).or_default().filter_skipped = true;
            }
            (Some("-"), Some(uid), None, None) => {
                entries.remove(&uid);
            }
            (Some("m"), Some(_), Some(offset), None) => {
                offset.parse::<u64>().map_err(|_| number)?;
            }
            (Some("m-"), None, None, None) => {}
            _ => return Err(number),
        }
    }
    Ok(entries)
}

/// The last `m` record of the complete lines, unless an `m-` settled it (the file parses).
fn parse_pending_append(text: &[u8]) -> Option<(Uid, u64)> {
    let end = text.iter().rposition(|&b| b == b'\n')?;
    let complete = std::str::from_utf8(&text[..=end]).ok()?;
    let mut pending = None;
    for line in complete.lines() {
        if line == "m-" {
            pending = None;
        } else if let Some(rest) = line.strip_prefix("m ") {
            let (uid, offset) = rest.split_once(' ')?;
            pending = Some((Uid::new(uid)?, offset.parse().ok()?));
        }
    }
    pending
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uid(text: &str) -> Uid {
        Uid::new(text).unwrap()
    }

    #[test]
    fn records_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("acct");
        let mut state = State::open(&path).unwrap();
        state.record_delivered(&[uid("a"), uid("b")], 100).unwrap();
        state.record_size_reported(&uid("big")).unwrap();
        drop(state);
        let state = State::open(&path).unwrap();
        assert!(state.is_delivered(&uid("a")) && state.is_delivered(&uid("b")));
        assert!(!state.is_delivered(&uid("big")));
        assert!(state.entry(&uid("big")).unwrap().size_reported);
        assert_eq!(state.entry(&uid("a")).unwrap().first_seen, Some(100));
    }

    /// A new file is created empty at open (nothing synced before the download) and gets its
    /// header with the first records; an empty file left by a run that recorded nothing (or
    /// was killed first) reads as an empty state and takes records the same way.
    #[test]
    fn a_new_file_is_empty_until_its_first_records_which_bring_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acct");
        let mut state = State::open(&path).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"");
        state.compact(|_| true).unwrap();
        drop(state);
        assert_eq!(fs::read(&path).unwrap(), b"");

        let mut state = State::open(&path).unwrap();
        assert_eq!(state.delivered_count(), 0);
        state.record_delivered(&[uid("a")], 7).unwrap();
        state.record_delivered(&[uid("b")], 8).unwrap();
        drop(state);
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "pop3-state 1\n+ a 7\n+ b 8\n"
        );
        let state = State::open(&path).unwrap();
        assert!(state.is_delivered(&uid("a")) && state.is_delivered(&uid("b")));
    }

    #[test]
    fn unfetched_deletions_and_filter_skips_survive_reopening_and_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acct");
        // A state file written before these records existed stays valid.
        fs::write(&path, "pop3-state 1\n+ old 3\ns big\n").unwrap();
        let mut state = State::open(&path).unwrap();
        state
            .record_delete_unfetched(&[uid("huge"), uid("spam")])
            .unwrap();
        state.record_filter_skipped(&[uid("later")]).unwrap();
        drop(state);
        let mut state = State::open(&path).unwrap();
        assert!(state.entry(&uid("huge")).unwrap().delete_unfetched);
        assert!(state.entry(&uid("later")).unwrap().filter_skipped);
        assert!(!state.is_delivered(&uid("huge")) && !state.is_delivered(&uid("later")));
        assert!(state.is_delivered(&uid("old")));
        state.compact(|u| u.as_str() != "spam").unwrap();
        drop(state);
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "pop3-state 1\n+ old 3\ns big\nk huge\nk spam\nf later\n- spam\n"
        );
        let state = State::open(&path).unwrap();
        assert!(state.entry(&uid("spam")).is_none());
        assert!(state.entry(&uid("huge")).unwrap().delete_unfetched);
    }

    #[test]
    fn a_torn_last_line_is_ignored_and_repaired() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acct");
        fs::write(&path, "pop3-state 1\n+ a 5\n+ b 6").unwrap();
        let state = State::open(&path).unwrap();
        assert!(state.is_delivered(&uid("a")));
        assert!(!state.is_delivered(&uid("b")));
        drop(state);
        assert_eq!(fs::read_to_string(&path).unwrap(), "pop3-state 1\n+ a 5\n");
    }

    #[test]
    fn every_prefix_of_a_journal_reads_as_a_prefix_of_its_records() {
        let text = "pop3-state 1\n+ a 1\ns x\n+ b 2\n+ c 3\n";
        for cut in 0..=text.len() {
            let entries = parse(&text.as_bytes()[..cut]).unwrap_or_else(|line| {
                panic!("prefix of {cut} bytes read as damaged at line {line}")
            });
            let complete_records = text[..cut].matches('\n').count().saturating_sub(1);
            assert!(entries.len() <= complete_records, "cut {cut}");
        }
    }

    #[test]
    fn digest_form_records_are_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acct");
        let odd = Uid::from_listing(&[b'x'; 71]);
        let mut state = State::open(&path).unwrap();
        state
            .record_delivered(&[odd.clone(), uid("plain")], 9)
            .unwrap();
        state.compact(|_| true).unwrap();
        drop(state);
        let state = State::open(&path).unwrap();
        assert!(state.is_delivered(&odd) && state.is_delivered(&uid("plain")));
    }

    #[test]
    fn damage_is_reported_with_its_line() {
        assert_eq!(parse(b"pop3-state 1\n+ a 1\ngarbage\n"), Err(3));
        assert_eq!(parse(b"something else\n"), Err(1));
        assert_eq!(parse(b"pop3-state 1\n+ a notanumber\n"), Err(2));
    }

    /// Forgetting appends a `-` record (no rewrite); records are read in order, so a message
    /// forgotten and delivered again is remembered with its new time.
    #[test]
    fn forgetting_appends_a_record_and_later_records_count_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acct");
        let mut state = State::open(&path).unwrap();
        state
            .record_delivered(&[uid("gone"), uid("kept")], 7)
            .unwrap();
        state.compact(|u| u.as_str() == "kept").unwrap();
        assert!(!state.is_delivered(&uid("gone")));
        state.record_delivered(&[uid("new")], 8).unwrap();
        drop(state);
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "pop3-state 1\n+ gone 7\n+ kept 7\n- gone\n+ new 8\n"
        );
        let mut state = State::open(&path).unwrap();
        assert!(!state.is_delivered(&uid("gone")));
        assert!(state.is_delivered(&uid("kept")) && state.is_delivered(&uid("new")));
        state.record_delivered(&[uid("gone")], 9).unwrap();
        drop(state);
        let state = State::open(&path).unwrap();
        assert_eq!(state.entry(&uid("gone")).unwrap().first_seen, Some(9));
        assert_eq!(
            parse(b"pop3-state 1\n+ a 1\n- a\n- never\n").map(|e| e.len()),
            Ok(0)
        );
        assert_eq!(parse(b"pop3-state 1\n- a 1\n"), Err(2));
    }

    #[test]
    fn an_idle_run_rewrites_nothing_and_leftovers_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acct");
        let mut state = State::open(&path).unwrap();
        state.record_delivered(&[uid("a")], 1).unwrap();
        state.compact(|_| true).unwrap();
        let written = fs::metadata(&path).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        state.compact(|_| true).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), written);
        drop(state);
        // A rewrite killed before its rename leaves a temporary file; the next open removes
        // it, and leaves other accounts' files alone.
        fs::write(dir.path().join(".acct.tmp-XYZ"), "partial").unwrap();
        fs::write(dir.path().join(".other.tmp-XYZ"), "partial").unwrap();
        State::open(&path).unwrap();
        assert!(!dir.path().join(".acct.tmp-XYZ").exists());
        assert!(dir.path().join(".other.tmp-XYZ").exists());
    }

    #[test]
    fn an_unsettled_mbox_append_survives_reopening_and_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acct");
        let mut state = State::open(&path).unwrap();
        state.record_append_pending(&uid("a"), 10).unwrap();
        state.record_append_settled(true, 5).unwrap();
        state.record_append_pending(&uid("b"), 99).unwrap();
        drop(state);
        let mut state = State::open(&path).unwrap();
        assert!(state.is_delivered(&uid("a")));
        assert_eq!(state.pending_append(), Some((uid("b"), 99)));
        state.compact(|_| true).unwrap();
        drop(state);
        let mut state = State::open(&path).unwrap();
        assert_eq!(state.pending_append(), Some((uid("b"), 99)));
        state.record_append_settled(false, 6).unwrap();
        assert!(!state.is_delivered(&uid("b")));
        state.compact(|_| true).unwrap();
        drop(state);
        let state = State::open(&path).unwrap();
        assert!(state.pending_append().is_none());
        assert!(state.is_delivered(&uid("a")));
        assert!(!state.is_delivered(&uid("b")));
    }

    #[test]
    fn a_run_that_only_adds_records_keeps_the_journal_until_it_outgrows_the_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acct");
        let inode = || std::os::unix::fs::MetadataExt::ino(&fs::metadata(&path).unwrap());
        let mut state = State::open(&path).unwrap();
        let created = inode();
        // A keep run: records added, nothing forgotten: no snapshot (a rename would change
        // the inode), the records are in the journal.
        state.record_delivered(&[uid("a"), uid("b")], 1).unwrap();
        state.compact(|_| true).unwrap();
        assert_eq!(inode(), created);
        drop(state);
        let mut state = State::open(&path).unwrap();
        assert!(state.is_delivered(&uid("a")) && state.is_delivered(&uid("b")));
        // Records that add no message (a size report, again and again) grow the journal
        // past twice the live records plus the slack: then it is rewritten.
        for _ in 0..JOURNAL_SLACK + 4 {
            state.record_size_reported(&uid("a")).unwrap();
        }
        state.compact(|_| true).unwrap();
        assert_ne!(inode(), created);
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "pop3-state 1\n+ a 1\ns a\n+ b 1\n"
        );
        // Forgetting a message appends a record; many forgotten at once overgrow the
        // journal and rewrite it.
        let snapshot = inode();
        state.compact(|u| u.as_str() == "a").unwrap();
        assert_eq!(inode(), snapshot);
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "pop3-state 1\n+ a 1\ns a\n+ b 1\n- b\n"
        );
        let many: Vec<Uid> = (0..JOURNAL_SLACK).map(|i| uid(&format!("m{i}"))).collect();
        state.record_delivered(&many, 2).unwrap();
        state.compact(|u| u.as_str() == "a").unwrap();
        assert_ne!(inode(), snapshot);
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "pop3-state 1\n+ a 1\ns a\n"
        );
    }

    #[test]
    fn file_names_are_safe() {
        let name = file_name("pop.example.com", "../../etc/passwd");
        assert!(!name.contains('/'), "{name}");
        assert_ne!(name, file_name("pop.example.com", "../../etc/passw_"));
        let legacy = legacy_file_name("pop.example.com", 995, "../../etc/passwd");
        assert!(!legacy.contains('/'), "{legacy}");
        assert_ne!(
            legacy,
            legacy_file_name("pop.example.com", 110, "../../etc/passwd")
        );
    }

    #[test]
    fn file_names_ignore_the_port_and_the_case_of_the_host() {
        assert_eq!(
            file_name("POP.Example.com", "bob"),
            file_name("pop.example.com", "bob")
        );
        assert_ne!(
            file_name("pop.example.com", "bob"),
            file_name("pop.example.com", "Bob")
        );
    }

    #[test]
    fn a_rejected_record_survives_reopening_and_compaction_and_old_files_stay_valid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acct");
        // A file written before `r` records existed reads as it did.
        fs::write(&path, "pop3-state 1\n+ a 5\ns big\n").unwrap();
        let mut state = State::open(&path).unwrap();
        assert!(state.is_delivered(&uid("a")) && !state.is_rejected(&uid("a")));
        state.record_rejected(&uid("bad")).unwrap();
        drop(state);
        let mut state = State::open(&path).unwrap();
        assert!(state.is_rejected(&uid("bad")) && !state.is_delivered(&uid("bad")));
        state.compact(|_| true).unwrap();
        drop(state);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("r bad\n"), "{text}");
        assert!(State::open(&path).unwrap().is_rejected(&uid("bad")));
    }
}
