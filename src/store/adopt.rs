//! Adopting state files named by older versions of pop3, which keyed an account's state by
//! user, host AND port (`user@host_995-<digest>`): a new port or TLS mode then meant an empty
//! state, and everything on the server was fetched again. The state is now keyed by the
//! mailbox, user and host (`user@host-<digest>`, see `state::file_name`).
//!
//! When the new file does not exist yet, the old files of the same user and host (any port,
//! any ASCII case of the host) are adopted under the account lock and their own old locks:
//! exactly one is renamed; several (the account was used on several ports) are merged, the
//! union of their records, since one user on one host is one mailbox whatever the port. The
//! union never loses mail: a message is skipped only when its exact unique-id was recorded. The
//! risk is the opposite case, a host that serves different mailboxes to one user name on
//! different ports: a message of one whose unique-id was recorded for the other is skipped.
//! Such accounts need their own `state_dir`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::lock::{AccountLock, LockError};
use super::state::{self, State, StateError};

/// Adoption failed; nothing was changed that a later run cannot finish.
#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    /// An old file's lock is held (an older pop3 is running on it) or cannot be taken.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// An old file cannot be read, or the new one cannot be written.
    #[error(transparent)]
    State(#[from] StateError),
}

/// The lock file of the state file at `state_path`.
pub(crate) fn lock_path(state_path: &Path) -> PathBuf {
    let mut path = state_path.as_os_str().to_owned();
    path.push(".lock");
    PathBuf::from(path)
}

/// The state files that older versions named for `user` at `host` (any port, any ASCII case of
/// the host) in `dir`, sorted. A name counts only if the old naming rule gives exactly that
/// name for this user, so another account's file (or a look-alike) is never taken.
pub(crate) fn legacy_files(dir: &Path, host: &str, user: &str) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .filter(|entry| {
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                return false;
            };
            is_legacy_name(name, host, user) && entry.file_type().is_ok_and(|t| t.is_file())
        })
        .map(|entry| entry.path())
        .collect();
    found.sort();
    found
}

/// Whether `name` is what the old rule names the state of `user` at `host` (in any ASCII case)
/// on some port.
fn is_legacy_name(name: &str, host: &str, user: &str) -> bool {
    let Some((stem, _digest)) = name.rsplit_once('-') else {
        return false;
    };
    let Some((user_at_host, port)) = stem.rsplit_once('_') else {
        return false;
    };
    let Ok(port) = port.parse::<u16>() else {
        return false;
    };
    // The host as written then is unknown: try it as written now, in lower case, and as the
    // name spells it (a host of plain letters, digits, dots and dashes is kept as it was).
    let spelled = user_at_host
        .split_once('@')
        .map(|(_, host)| host)
        .filter(|spelled| spelled.eq_ignore_ascii_case(host));
    [Some(host), Some(&host.to_ascii_lowercase()[..]), spelled]
        .into_iter()
        .flatten()
        .any(|candidate| state::legacy_file_name(candidate, port, user) == name)
}

/// A read-only view of the mailbox's state: the file at `state_path`, or, while it does not
/// exist, the union of the old files that the next `fetch-all` adopts. Creates nothing.
pub(crate) fn read_only(state_path: &Path, host: &str, user: &str) -> Result<State, StateError> {
    if !state_path.exists()
        && let Some(dir) = state_path.parent()
    {
        let legacy = legacy_files(dir, host, user);
        if !legacy.is_empty() {
            return State::read_union(state_path, &legacy).map(|(state, _)| state);
        }
    }
    State::read_only(state_path)
}

/// Adopts the old files of `user` at `host` as the state file at `state_path`, if that does not
/// exist yet. The caller holds the lock of `state_path`; the old files' locks are taken too
/// (waiting for them with `wait`), so an older pop3 still running on one is never cut short.
/// Returns the files adopted (none when there was nothing to do).
pub(crate) fn adopt(
    state_path: &Path,
    host: &str,
    user: &str,
    wait: bool,
) -> Result<Vec<PathBuf>, AdoptError> {
    let Some(dir) = state_path.parent() else {
        return Ok(Vec::new());
    };
    if state_path.exists() {
        return Ok(Vec::new());
    }
    let legacy = legacy_files(dir, host, user);
    if legacy.is_empty() {
        return Ok(Vec::new());
    }
    let locks = legacy
        .iter()
        .map(|old| AccountLock::acquire(&lock_path(old), wait))
        .collect::<Result<Vec<_>, _>>()?;
    let io_error = |path: &Path| {
        let path = path.to_owned();
        move |source| StateError::Io { path, source }
    };
    let new_spool = state::mbox_spool_path_of(state_path);
    if let [old] = legacy.as_slice() {
        // The spool first: a crash before the state's rename leaves the old file, and this
        // runs again (finding the spool already moved).
        move_if_present(&state::mbox_spool_path_of(old), &new_spool)
            .map_err(io_error(&new_spool))?;
        fs::rename(old, state_path).map_err(io_error(state_path))?;
    } else {
        let (union, pending_source) = State::read_union(state_path, &legacy)?;
        if let Some(index) = pending_source {
            move_if_present(&state::mbox_spool_path_of(&legacy[index]), &new_spool)
                .map_err(io_error(&new_spool))?;
        }
        // Durable before any old file goes: a crash in between leaves old files that are
        // no longer read (the new file exists), never a lost record.
        union.write_new()?;
        for old in &legacy {
            fs::remove_file(old).map_err(io_error(old))?;
            // Another file's unsettled append cannot be carried over: its message is simply
            // fetched again (at worst a duplicate, never a loss).
            let _ = fs::remove_file(state::mbox_spool_path_of(old));
        }
    }
    for old in &legacy {
        // The capability memory was per port; the next run just asks again.
        let _ = fs::remove_file(super::capability_memory::legacy_path_for(old));
        // Removed while held: only an older pop3 could still use that name.
        let _ = fs::remove_file(lock_path(old));
    }
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir))?;
    drop(locks);
    Ok(legacy)
}

fn move_if_present(from: &Path, to: &Path) -> io::Result<()> {
    match fs::rename(from, to) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pop3::Uid;

    fn uid(text: &str) -> Uid {
        Uid::new(text).unwrap()
    }

    #[test]
    fn only_the_old_files_of_this_user_and_host_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let ours = [
            state::legacy_file_name("Pop.Example.com", 995, "bob"),
            state::legacy_file_name("pop.example.com", 110, "bob"),
        ];
        let theirs = [
            state::legacy_file_name("pop.example.com", 995, "bobby"),
            state::legacy_file_name("pop.example.org", 995, "bob"),
            format!("{}.lock", ours[0]),
            "bob@pop.example.com_995-000000000000".to_owned(),
            state::file_name("pop.example.com", "bob"),
        ];
        for name in ours.iter().chain(&theirs) {
            fs::write(dir.path().join(name), "pop3-state 1\n").unwrap();
        }
        let mut expected: Vec<PathBuf> = ours.iter().map(|n| dir.path().join(n)).collect();
        expected.sort();
        assert_eq!(legacy_files(dir.path(), "pop.EXAMPLE.com", "bob"), expected);
    }

    #[test]
    fn one_old_file_is_renamed_with_its_mbox_spool() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join(state::legacy_file_name("h", 995, "u"));
        fs::write(&old, "pop3-state 1\n+ a 5\nm b 7\n").unwrap();
        fs::write(state::mbox_spool_path_of(&old), "spooled").unwrap();
        fs::write(lock_path(&old), "").unwrap();
        let new = dir.path().join(state::file_name("h", "u"));
        assert_eq!(adopt(&new, "h", "u", false).unwrap(), vec![old.clone()]);
        assert!(!old.exists() && !lock_path(&old).exists());
        let state = State::read_only(&new).unwrap();
        assert!(state.is_delivered(&uid("a")));
        assert_eq!(state.pending_append(), Some((uid("b"), 7)));
        assert_eq!(
            fs::read_to_string(state::mbox_spool_path_of(&new)).unwrap(),
            "spooled"
        );
        // Done once: the new file is what counts from now on.
        fs::write(&old, "pop3-state 1\n+ c 5\n").unwrap();
        assert!(adopt(&new, "h", "u", false).unwrap().is_empty());
    }

    #[test]
    fn several_old_files_are_merged_into_their_union() {
        let dir = tempfile::tempdir().unwrap();
        let tls = dir.path().join(state::legacy_file_name("h", 995, "u"));
        let plain = dir.path().join(state::legacy_file_name("h", 110, "u"));
        fs::write(&tls, "pop3-state 1\n+ a 9\n+ b 5\nr x\n").unwrap();
        fs::write(&plain, "pop3-state 1\n+ a 3\n+ c 4\ns big\n").unwrap();
        let new = dir.path().join(state::file_name("h", "u"));
        let before = read_only(&new, "h", "u").unwrap();
        assert_eq!(before.delivered_count(), 3);
        assert!(!new.exists(), "a read-only view created the file");
        assert_eq!(adopt(&new, "h", "u", false).unwrap().len(), 2);
        assert!(!tls.exists() && !plain.exists());
        let state = State::read_only(&new).unwrap();
        assert_eq!(state.delivered_count(), 3);
        assert_eq!(state.entry(&uid("a")).unwrap().first_seen, Some(3));
        assert!(state.is_rejected(&uid("x")));
        assert!(state.entry(&uid("big")).unwrap().size_reported);
        assert!(!state.is_delivered(&uid("d")));
    }

    #[test]
    fn an_old_file_held_by_a_running_older_pop3_is_not_adopted() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join(state::legacy_file_name("h", 995, "u"));
        fs::write(&old, "pop3-state 1\n+ a 9\n").unwrap();
        let held = AccountLock::acquire(&lock_path(&old), false).unwrap();
        let new = dir.path().join(state::file_name("h", "u"));
        assert!(matches!(
            adopt(&new, "h", "u", false),
            Err(AdoptError::Lock(LockError::Busy(_)))
        ));
        assert!(old.exists() && !new.exists());
        drop(held);
        assert_eq!(adopt(&new, "h", "u", false).unwrap(), vec![old]);
    }
}
