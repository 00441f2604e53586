//! The server's pre-login capabilities as the last `fetch-all` saw them, in a small file beside
//! the account's state. With it the next run logs in right after the greeting, skipping the
//! CAPA round trip (see `connect::open`); it is only kept for servers that announced
//! PIPELINING over implicit TLS, and forgotten whenever the server behaves otherwise.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::pop3::Capabilities;

/// The most a memory file may hold; a bigger one is not ours and is ignored.
const MAX_SIZE: u64 = 16 * 1024;

/// The memory file of the account whose state file is `state_path`, for the server on `port`:
/// the state is per mailbox, but another port may be another server program.
pub(crate) fn path_for(state_path: &Path, port: u16) -> PathBuf {
    let mut path = state_path.as_os_str().to_owned();
    path.push(format!(".{port}.capabilities"));
    PathBuf::from(path)
}

/// The memory file older versions kept beside a state file keyed by port (see `store::adopt`).
pub(crate) fn legacy_path_for(state_path: &Path) -> PathBuf {
    let mut path = state_path.as_os_str().to_owned();
    path.push(".capabilities");
    PathBuf::from(path)
}

/// The remembered capabilities, if a readable, sane file holds some.
pub(crate) fn recall(path: &Path) -> Option<Capabilities> {
    let file = std::fs::File::open(path).ok()?;
    if file.metadata().ok()?.len() > MAX_SIZE {
        return None;
    }
    let text = std::io::read_to_string(file).ok()?;
    let capabilities = Capabilities::from_lines(text.lines().map(str::to_owned));
    capabilities.is_known().then_some(capabilities)
}

/// Remembers `capabilities`, atomically (a torn file is never read back). Failing to write is
/// not an error: the next run just asks again. The caller holds the account lock, so
/// temporaries a killed run left behind can be removed.
pub(crate) fn remember(path: &Path, capabilities: &Capabilities) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let prefix = format!(".{}.tmp-", name.to_string_lossy());
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    let write = || -> std::io::Result<()> {
        let mut file = tempfile::Builder::new().prefix(&prefix).tempfile_in(dir)?;
        for line in capabilities.lines() {
            writeln!(file, "{line}")?;
        }
        file.persist(path)?;
        Ok(())
    };
    let _ = write();
}

/// Forgets what was remembered.
pub(crate) fn forget(path: &Path) {
    let _ = std::fs::remove_file(path);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_capabilities_are_recalled_and_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(&dir.path().join("state"), 995);
        assert_eq!(recall(&path), None);
        let capabilities = Capabilities::from_lines(["PIPELINING", "SASL PLAIN", "UIDL"]);
        remember(&path, &capabilities);
        assert_eq!(recall(&path), Some(capabilities));
        forget(&path);
        assert_eq!(recall(&path), None);
        // An empty or oversized file is no memory.
        std::fs::write(&path, "").unwrap();
        assert_eq!(recall(&path), None);
        std::fs::write(&path, "X\n".repeat(10_000)).unwrap();
        assert_eq!(recall(&path), None);
    }
}
