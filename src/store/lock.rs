//! The per-account lock: an exclusive lock on a file beside the state file (std's `File::lock`,
//! which is `flock(2)` on Linux). The kernel releases it when the process dies however it dies,
//! so there are never stale locks to clean up.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Held while one run works on an account; dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct AccountLock {
    _file: File,
}

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error("another pop3 run is already fetching this account (lock {}); try again later, or pass --wait", .0.display())]
    Busy(PathBuf),
    /// The lock file could not be opened or locked.
    #[error("cannot lock {}: {source}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

impl AccountLock {
    /// Takes the lock at `path`; with `wait`, blocks until it is free, else fails at once.
    pub(crate) fn acquire(path: &Path, wait: bool) -> Result<AccountLock, LockError> {
        let io_error = |source| LockError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io_error)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(path)
            .map_err(io_error)?;
        if !wait {
            return match file.try_lock() {
                Ok(()) => Ok(AccountLock { _file: file }),
                Err(std::fs::TryLockError::WouldBlock) => Err(LockError::Busy(path.to_owned())),
                Err(std::fs::TryLockError::Error(error)) => Err(io_error(error)),
            };
        }
        loop {
            match file.lock() {
                Ok(()) => return Ok(AccountLock { _file: file }),
                // A signal woke the wait: keep waiting.
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(io_error(error)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let first = AccountLock::acquire(&path, false).unwrap();
        assert!(matches!(
            AccountLock::acquire(&path, false),
            Err(LockError::Busy(_))
        ));
        drop(first);
        AccountLock::acquire(&path, false).unwrap();
    }

    #[test]
    fn a_waiting_run_takes_the_lock_once_the_holder_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let first = AccountLock::acquire(&path, false).unwrap();
        let waiting = path.clone();
        let waiter = std::thread::spawn(move || AccountLock::acquire(&waiting, true).is_ok());
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(!waiter.is_finished(), "took a lock that was held");
        drop(first);
        assert!(waiter.join().unwrap());
    }
}
