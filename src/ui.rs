//! Presentation helpers: sizes for people, and stderr messages. stdout carries data only;
//! progress, prompts, warnings and errors go to stderr.

/// Formats a size in octets for people: `512 bytes`, `24.1 KiB`, `3.0 MiB`.
pub fn human_size(octets: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if octets < 1024 {
        return if octets == 1 {
            "1 byte".into()
        } else {
            format!("{octets} bytes")
        };
    }
    let mut value = octets as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `1 message`, `3 messages`.
pub fn count(n: u64, singular: &str) -> String {
    if n == 1 {
        format!("1 {singular}")
    } else {
        format!("{n} {singular}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(human_size(0), "0 bytes");
        assert_eq!(human_size(1), "1 byte");
        assert_eq!(human_size(1023), "1023 bytes");
        assert_eq!(human_size(24_678), "24.1 KiB");
        assert_eq!(human_size(3 * 1024 * 1024), "3.0 MiB");
        assert_eq!(count(1, "message"), "1 message");
        assert_eq!(count(3, "message"), "3 messages");
    }
}
