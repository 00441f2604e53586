//! Turning raw RFC 5322 message bytes into what a person reads.
//!
//! This module owns all MIME and header parsing in the program and is the only user of
//! `mail-parser`: the header summary shown in listings ([`summarize`]), the full decoded header
//! list ([`all_headers`]) and the readable body with its attachment list ([`readable`]). Every
//! string it returns is display-safe: RFC 2047 words and charsets are decoded, and control
//! characters (ESC, CR, C1 controls such as CSI, ...) are removed so that a hostile message cannot
//! inject terminal escape sequences. None of its functions fail or panic, whatever the input:
//! broken or missing parts simply give empty strings.
//!
//! The parts: [`summary`] reads the headers, [`text`] finds the body to show (with [`html`]
//! for HTML-only mail), [`attachments`] lists and extracts attachments, and [`safe`] is the
//! one filter every string passes before it reaches a terminal.

mod attachments;
mod html;
mod safe;
mod summary;
mod text;

use std::panic::{AssertUnwindSafe, catch_unwind};

use mail_parser::{Message, MessageParser};

pub use attachments::{Attachment, AttachmentFile, attachment_files};
pub use safe::display_safe;
pub use summary::Summary;
pub(crate) use summary::{all_headers, summarize};

/// The readable form of a whole message; see [`readable`].
#[derive(Debug, Clone)]
pub struct Readable {
    /// The header summary.
    pub summary: Summary,
    /// The body as plain text: LF line ends, no control characters except `\n` and `\t`, no
    /// trailing whitespace.
    pub text: String,
    /// Every attachment, in message order.
    pub attachments: Vec<Attachment>,
    /// True when `text` was rendered from an HTML body because there was no plain-text one.
    pub from_html: bool,
}

/// The readable form of a whole message.
///
/// The text is the first text/plain body part, decoded from its transfer encoding and charset;
/// when there is only HTML, a plain-text rendering of it (`from_html` is then true); when there is
/// no text at all, an empty string. The attachments are every part other than the one shown
/// as the text that has a file name or is not text, whatever its disposition (an inline photo
/// in `multipart/mixed` included), and text parts that are not body parts.
pub(crate) fn readable(raw: &[u8]) -> Readable {
    let empty = || Readable {
        summary: summary::summarize(raw),
        text: String::new(),
        attachments: Vec::new(),
        from_html: false,
    };
    guarded(empty, || {
        let Some(message) = parse(raw) else {
            return empty();
        };
        let (text, from_html) = text::body_text(&message);
        Readable {
            summary: summary::summary_of(raw, &message),
            text: safe::clean_text(&text),
            attachments: attachments::attachments(&message),
            from_html,
        }
    })
}

/// Runs `f`, turning a panic inside `mail-parser` into `fallback()`: a malformed message must
/// never bring the program down. (`mail-parser` is careful, but still has `unwrap`s,
/// `unreachable!`s and `debug_assert!`s on its parsing paths.)
fn guarded<T>(fallback: impl FnOnce() -> T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| fallback())
}

/// The parsed message, or `None` when `mail-parser` finds nothing it can use.
fn parse(raw: &[u8]) -> Option<Message<'_>> {
    MessageParser::new().parse(raw)
}

#[cfg(test)]
mod tests;
