//! A secret (password or token) whose `Debug` and `Display` never show the value, and whose
//! memory is wiped when dropped.

use zeroize::Zeroizing;

/// A password or token. Read it with [`Secret::expose`] only where it is sent.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: String) -> Secret {
        Secret(Zeroizing::new(value))
    }

    /// The secret value itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Secrets taken out of the environment, by variable name: several accounts may name the same
/// variable, and it is gone from the environment after the first read.
static FROM_ENV: std::sync::Mutex<Vec<(String, Secret)>> = std::sync::Mutex::new(Vec::new());

/// The value of the environment variable `var` as a secret, removing the variable from the
/// process environment the first time (children — an MDA, a password or token command — must
/// not inherit it) and wiping its bytes there first, so that no copy lingers in memory or in
/// `/proc/PID/environ`. `None` when the variable is not set (or not UTF-8).
///
/// Changing the environment is only sound while no other thread reads it: pop3 calls this
/// while resolving the account, before it starts any thread or child process.
pub fn from_env(var: &str) -> Option<Secret> {
    let mut taken = FROM_ENV.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, secret)) = taken.iter().find(|(name, _)| name == var) {
        return Some(secret.clone());
    }
    let value = Secret::new(std::env::var(var).ok()?);
    wipe_env(var);
    taken.push((var.to_owned(), value.clone()));
    Some(value)
}

/// Overwrites the value of `var` in the environment block, then removes the variable.
fn wipe_env(var: &str) {
    if var.is_empty() || var.contains(['=', '\0']) {
        return;
    }
    if let Ok(name) = std::ffi::CString::new(var) {
        // SAFETY: getenv returns the variable's own NUL-terminated value inside the
        // environment block (writable memory), or null; we write only within its length, and no
        // other thread touches the environment at this point (see `from_env`).
        unsafe {
            let value = libc::getenv(name.as_ptr());
            if !value.is_null() {
                let len = libc::strlen(value);
                for i in 0..len {
                    std::ptr::write_volatile(value.add(i), b'*' as libc::c_char);
                }
            }
        }
    }
    // SAFETY: as above, single-threaded at this point.
    unsafe { std::env::remove_var(var) };
}

/// Reads a secret from the config file. A value of the wrong type is refused without showing
/// it (serde's own message would print `invalid type: integer `8675309``, i.e. the password).
impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_string(SecretVisitor)
    }
}

/// Refuses every type but a string, with a message that never contains the value.
struct SecretVisitor;

const NOT_A_STRING: &str =
    "a password must be a string in quotes, e.g. password = \"...\" (value not shown)";

impl<'de> serde::de::Visitor<'de> for SecretVisitor {
    type Value = Secret;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Secret, E> {
        Ok(Secret::new(value.to_owned()))
    }
    fn visit_string<E: serde::de::Error>(self, value: String) -> Result<Secret, E> {
        Ok(Secret::new(value))
    }
    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Secret, E> {
        Err(E::custom(NOT_A_STRING))
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Secret, E> {
        Err(E::custom(NOT_A_STRING))
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Secret, E> {
        Err(E::custom(NOT_A_STRING))
    }
    fn visit_i128<E: serde::de::Error>(self, _: i128) -> Result<Secret, E> {
        Err(E::custom(NOT_A_STRING))
    }
    fn visit_u128<E: serde::de::Error>(self, _: u128) -> Result<Secret, E> {
        Err(E::custom(NOT_A_STRING))
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Secret, E> {
        Err(E::custom(NOT_A_STRING))
    }
    fn visit_char<E: serde::de::Error>(self, _: char) -> Result<Secret, E> {
        Err(E::custom(NOT_A_STRING))
    }
    fn visit_bytes<E: serde::de::Error>(self, _: &[u8]) -> Result<Secret, E> {
        Err(E::custom(NOT_A_STRING))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<Secret, A::Error> {
        Err(serde::de::Error::custom(NOT_A_STRING))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, _: A) -> Result<Secret, A::Error> {
        Err(serde::de::Error::custom(NOT_A_STRING))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_shows_the_value() {
        let secret = Secret::new("hunter2".into());
        assert_eq!(format!("{secret} {secret:?}"), "*** Secret(***)");
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn a_config_password_of_the_wrong_type_is_not_shown() {
        #[derive(Debug, serde::Deserialize)]
        struct File {
            #[allow(dead_code)]
            password: Secret,
        }
        let err = toml::from_str::<File>("password = 8675309").unwrap_err();
        assert!(!err.message().contains("8675309"), "{err}");
        assert!(err.message().contains("value not shown"), "{err}");
    }
}
