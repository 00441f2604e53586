//! What this side is called: the host name given in LHLO/EHLO and the login name of the
//! running user (the default envelope recipient), both asked of the C library. Separate
//! because it is the only `unsafe` code of the delivery driver, and the config layer asks it
//! for the default recipient without any connection.

/// The name this host gives in LHLO/EHLO: its host name when that is a plausible domain,
/// else `localhost`.
pub(super) fn client_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = &buf[..end];
    let plausible = !name.is_empty()
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if ok && plausible {
        String::from_utf8_lossy(name).into_owned()
    } else {
        "localhost".to_owned()
    }
}

/// The login name of the user running this process (from the password database, else `$USER`),
/// the default envelope recipient.
pub fn local_user() -> Option<String> {
    // SAFETY: getpwuid_r writes into the buffers given; `result` points into `pwd` or is null.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 4096];
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(
            libc::geteuid(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        );
        if rc == 0 && !result.is_null() && !pwd.pw_name.is_null() {
            let name = std::ffi::CStr::from_ptr(pwd.pw_name).to_string_lossy();
            if !name.is_empty() {
                return Some(name.into_owned());
            }
        }
    }
    std::env::var("USER").ok().filter(|u| !u.is_empty())
}
