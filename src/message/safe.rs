//! The one filter between a message (or a server) and the terminal: no control characters, no
//! bidirectional overrides.

/// Makes text from the server (a greeting, an `-ERR` line, a capability, an error message
/// quoting any of those, the `--debug` dialogue) safe to show on a terminal, with the same
/// filter as headers: control characters other than `\n` and `\t` (ESC, CR, BEL, C1 controls
/// such as CSI) and bidirectional overrides are removed, so a hostile server cannot retitle the
/// window, clear the screen or disguise what it wrote.
pub fn display_safe(text: &str) -> String {
    text.chars()
        .filter(|&c| c == '\n' || c == '\t' || !is_unsafe(c))
        .collect()
}

/// A character that must not reach a terminal: a control character or a bidirectional
/// override. The one filter behind [`display_safe`], headers and body text.
pub(super) fn is_unsafe(c: char) -> bool {
    c.is_control() || is_bidi_control(c)
}

/// Display-safe single line: whitespace controls (CR, LF, TAB, ...) become spaces, other control
/// characters and bidirectional overrides are removed, ends are trimmed.
pub(super) fn clean_line(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .filter_map(|c| match c {
            '\t' | '\n' | '\r' | '\u{0b}' | '\u{0c}' => Some(' '),
            c if is_unsafe(c) => None,
            c => Some(c),
        })
        .collect();
    cleaned.trim().to_owned()
}

/// Display-safe body text: CRLF becomes LF, control characters other than `\n` and `\t` are
/// removed, trailing whitespace is trimmed.
pub(super) fn clean_text(s: &str) -> String {
    let mut cleaned: String = s
        .replace("\r\n", "\n")
        .chars()
        .filter(|&c| c == '\n' || c == '\t' || !c.is_control())
        .collect();
    cleaned.truncate(cleaned.trim_end().len());
    cleaned
}

/// Unicode embedding, override and isolate controls, which can make a header display as
/// something other than what it says (they are format characters, not `char::is_control`).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}
