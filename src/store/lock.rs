//! The per-account lock: `flock(2)` on a file beside the state file. The kernel releases it
//! when the process dies however it dies, so there are never stale locks to clean up.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Held while one run works on an account; dropping it releases the lock.
#[derive(Debug)]
pub struct AccountLock {
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
    pub fn acquire(path: &Path, wait: bool) -> Result<AccountLock, LockError> {
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
        let operation = if wait {
            libc::LOCK_EX
        } else {
            libc::LOCK_EX | libc::LOCK_NB
        };
        loop {
            // SAFETY: flock on a descriptor we own.
            if unsafe { libc::flock(file.as_raw_fd(), operation) } == 0 {
                return Ok(AccountLock { _file: file });
            }
            let error = io::Error::last_os_error();
            match error.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return Err(LockError::Busy(path.to_owned())),
                _ => return Err(io_error(error)),
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
}
