//! Text for people: sizes, counts, columns cut to a terminal's width, compact dates, commands
//! shown with shell quoting.

/// How every command says that the maildrop holds no message.
pub(crate) const EMPTY_MAILBOX: &str = "the mailbox is empty";

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
pub(crate) fn count(n: u64, singular: &str) -> String {
    if n == 1 {
        format!("1 {singular}")
    } else {
        format!("{n} {singular}s")
    }
}

/// How many terminal columns `text` takes.
pub(crate) fn display_width(text: &str) -> usize {
    unicode_width::UnicodeWidthStr::width(text)
}

/// Cuts `text` to at most `width` terminal columns, ending in `…` when cut, and pads it with
/// spaces to exactly `width` columns. Wide (e.g. CJK) characters count as two columns.
pub(crate) fn fit(text: &str, width: usize) -> String {
    use unicode_width::UnicodeWidthChar;
    let mut out = String::new();
    let mut used = 0;
    let total = display_width(text);
    if total <= width {
        out.push_str(text);
        used = total;
    } else if width > 0 {
        for c in text.chars() {
            let w = c.width().unwrap_or(0);
            if used + w > width - 1 {
                break;
            }
            out.push(c);
            used += w;
        }
        out.push('…');
        used += 1;
    }
    out.extend(std::iter::repeat_n(' ', width.saturating_sub(used)));
    out
}

/// A header line's value as shown: `(none)` for a header the message lacks (an empty value
/// would read as a display fault), cut to `width` columns when one is given.
pub(crate) fn header_value(value: &str, width: Option<usize>) -> String {
    let value = if value.is_empty() { "(none)" } else { value };
    match width {
        Some(width) => fit(value, width).trim_end().to_owned(),
        None => value.to_owned(),
    }
}

/// `Sat, 21 Nov 2026 10:00:00 +0000` becomes `21 Nov 2026 10:00`, for narrow columns; other
/// forms are returned unchanged.
pub(crate) fn compact_date(date: &str) -> String {
    let words: Vec<&str> = date.split_whitespace().collect();
    let words = match words.first() {
        Some(first) if first.ends_with(',') => &words[1..],
        _ => &words[..],
    };
    match words {
        [day, month, year, time, ..] if time.len() >= 5 && time.as_bytes()[2] == b':' => {
            format!("{day} {month} {year} {}", &time[..5])
        }
        _ => date.to_owned(),
    }
}

/// `word` as one shell word, always in single quotes (a `'` inside becomes `'\''`).
pub(crate) fn sh_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// `argv` as one line a person can read and paste into a shell: an argument with spaces, quotes
/// or other shell characters (or an empty one) is shown in single quotes, so the boundaries
/// between arguments survive (`sh -c '/usr/bin/procmail -d %T'`).
pub(crate) fn command_line(argv: &[String]) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./:=@%+,".contains(c);
    let words: Vec<String> = argv
        .iter()
        .map(|arg| {
            if !arg.is_empty() && arg.chars().all(plain) {
                arg.clone()
            } else {
                sh_quote(arg)
            }
        })
        .collect();
    words.join(" ")
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

    #[test]
    fn fitting_columns() {
        assert_eq!(fit("hello", 7), "hello  ");
        assert_eq!(fit("hello world", 6), "hello…");
        assert_eq!(fit("日本語のメール", 6), "日本… ");
        assert_eq!(fit("abc", 0), "");
        assert_eq!(
            compact_date("Sat, 21 Nov 2026 10:00:00 +0000"),
            "21 Nov 2026 10:00"
        );
        assert_eq!(compact_date("yesterday"), "yesterday");
    }

    fn argv<const N: usize>(words: [&str; N]) -> Vec<String> {
        words.map(str::to_owned).to_vec()
    }

    /// Trial: ``mda `sh -c /usr/bin/procmail -d %T` failed`` lost the argument boundaries.
    #[test]
    fn a_shown_command_keeps_its_argument_boundaries() {
        assert_eq!(
            command_line(&argv(["sh", "-c", "/usr/bin/procmail -d %T"])),
            "sh -c '/usr/bin/procmail -d %T'"
        );
        assert_eq!(
            command_line(&argv(["procmail", "-f", "it's", "", "a$b", "x;y"])),
            "procmail -f 'it'\\''s' '' 'a$b' 'x;y'"
        );
        assert_eq!(
            command_line(&argv(["/usr/bin/maildrop", "-d", "alice@example.org"])),
            "/usr/bin/maildrop -d alice@example.org"
        );
    }
}
