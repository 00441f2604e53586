//! Where things are: `~` and relative paths in the config file, and the default state directory.

use std::path::{Path, PathBuf};

/// The platform's state directory for pop3 (`~/.local/state/pop3` on Linux).
pub(crate) fn default_state_dir() -> PathBuf {
    dirs::state_dir()
        .or_else(dirs::data_local_dir)
        .unwrap_or_else(|| PathBuf::from("."))
        .join("pop3")
}

/// Expands a leading `~/` to the home directory; a relative path is taken relative to the
/// directory of the config file (so it does not depend on where cron starts the program).
pub(crate) fn expand_path(path: &Path, base_dir: Option<&Path>) -> PathBuf {
    if let Ok(rest) = path.strip_prefix("~")
        && let Some(home) = dirs::home_dir()
    {
        return home.join(rest);
    }
    match base_dir {
        Some(base) if path.is_relative() => base.join(path),
        _ => path.to_owned(),
    }
}
