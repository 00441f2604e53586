//! Finding, reading and parsing the config file. Errors name the file, the line and the key,
//! and never show a password.

use std::path::{Path, PathBuf};

use super::{ConfigError, ConfigFile};

/// The file to read: `--config`, else `POP3_CONFIG` (clap folds both into `explicit`), else the
/// platform default. Returns the path and whether it was asked for explicitly.
pub(crate) fn config_path(explicit: Option<&Path>) -> Option<(PathBuf, bool)> {
    match explicit {
        Some(path) => Some((path.to_owned(), true)),
        None => dirs::config_dir().map(|dir| (dir.join("pop3").join("config.toml"), false)),
    }
}

/// A loaded configuration file and where it came from.
#[derive(Debug, Clone, Default)]
pub struct LoadedConfig {
    /// The parsed file (empty when there is none).
    pub file: ConfigFile,
    /// The file's path, when one was read.
    pub path: Option<PathBuf>,
    /// Things the user should know, e.g. a password in a file others can read.
    pub warnings: Vec<String>,
}

/// Reads the configuration file. A missing default file is not an error (everything can come
/// from the command line); a missing explicit one is.
pub(crate) fn load(explicit: Option<&Path>) -> Result<LoadedConfig, ConfigError> {
    let Some((path, is_explicit)) = config_path(explicit) else {
        return Ok(LoadedConfig::default());
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !is_explicit => {
            return Ok(LoadedConfig::default());
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ConfigError::NotFound(path));
        }
        Err(source) => return Err(ConfigError::Read { path, source }),
    };
    let file = parse(&text, &path)?;
    let mut warnings = Vec::new();
    let has_inline_password =
        file.defaults.password.is_some() || file.accounts.values().any(|a| a.password.is_some());
    if has_inline_password && readable_by_others(&path) {
        warnings.push(format!(
            "{} holds a password and is readable by other users; run: chmod 600 {}",
            path.display(),
            path.display()
        ));
    }
    Ok(LoadedConfig {
        file,
        path: Some(path),
        warnings,
    })
}

/// Parses configuration text; errors name the file, the line and the key.
pub fn parse(text: &str, path: &Path) -> Result<ConfigFile, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let start = e.span().map_or(0, |span| span.start.min(text.len()));
        ConfigError::Parse {
            path: path.to_owned(),
            line: super::explain::line_number(text, start),
            message: super::explain::explain(&e, text),
        }
    })
}

/// Whether group or others may read `path`.
pub(crate) fn readable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o044 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_name_the_line_and_key() {
        let text = "[accounts.work]\nhost = \"x\"\nhots = \"y\"\n";
        let err = parse(text, Path::new("/c.toml")).unwrap_err().to_string();
        assert!(err.starts_with("/c.toml:3: unknown key `hots`"), "{err}");
        let err = parse("bogus = 1\n", Path::new("/c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/c.toml:1") && err.contains("bogus"), "{err}");
        let err = parse("[accounts.a]\ntls = \"maybe\"\n", Path::new("/c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(":2:") && err.contains("maybe"), "{err}");
    }

    #[test]
    fn a_config_error_never_echoes_the_password() {
        for (text, secret) in [
            ("[accounts.a]\npassword = 8675309\n", "8675309"),
            ("[defaults]\npassword = true\n", "true"),
            ("[defaults]\npassword = 3.14159\n", "3.14159"),
            ("[defaults]\n\"password\" = [\"s3cr3t\"]\n", "s3cr3t"),
            ("[defaults]\npassword = { x = \"s3cr3t\" }\n", "s3cr3t"),
            ("accounts.a.password = 8675309\n", "8675309"),
            (
                "[accounts]\na = { host = \"h\", password = 8675309 }\n",
                "8675309",
            ),
            ("[defaults]\npassword = s3cr3t\n", "s3cr3t"),
            ("[defaults]\npassword = \"s3cr3t\n", "s3cr3t"),
        ] {
            let err = parse(text, Path::new("/c.toml")).unwrap_err().to_string();
            assert!(!err.contains(secret), "{text:?} gave {err}");
            assert!(err.contains("password"), "{text:?} gave {err}");
        }
        // Other keys still say what is wrong.
        let err = parse("[defaults]\nport = \"x\"\n", Path::new("/c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("port must be a number"), "{err}");
    }

    #[test]
    fn the_password_is_a_secret_from_the_moment_it_is_read() {
        let file = parse("[defaults]\npassword = \"hunter2\"\n", Path::new("/c")).unwrap();
        assert!(!format!("{file:?}").contains("hunter2"));
        assert_eq!(file.defaults.password.unwrap().expose(), "hunter2");
    }
}
