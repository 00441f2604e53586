//! Turning raw RFC 5322 message bytes into what a person reads.
//!
//! This module owns all MIME and header parsing in the program and is the only user of
//! `mail-parser`: the header summary shown in listings ([`summarize`]), the full decoded header
//! list ([`all_headers`]) and the readable body with its attachment list ([`readable`]). Every
//! string it returns is display-safe: RFC 2047 words and charsets are decoded, and control
//! characters (ESC, CR, C1 controls such as CSI, ...) are removed so that a hostile message cannot
//! inject terminal escape sequences. None of its functions fail or panic, whatever the input:
//! broken or missing parts simply give empty strings.

mod html;

use std::panic::{AssertUnwindSafe, catch_unwind};

use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::quoted_printable::quoted_printable_decode;
use mail_parser::parsers::MessageStream;
use mail_parser::{
    Addr, Address, Encoding, Header, HeaderName, HeaderValue, Message, MessageParser, MessagePart,
    MimeHeaders, PartType,
};

/// The headers a person looks at, decoded (RFC 2047 encoded words, charsets) to display text.
///
/// Addresses are shown as `Name <addr>` (or just `addr`), several joined by `", "`. The date is
/// the RFC 5322 form of the parsed date, or the trimmed header text when it does not parse.
/// Missing headers give `""`. No field contains control characters.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Summary {
    /// The `From` header's addresses.
    pub from: String,
    /// The `To` header's addresses.
    pub to: String,
    /// The `Cc` header's addresses.
    pub cc: String,
    /// The decoded `Subject`.
    pub subject: String,
    /// The `Date`, e.g. `"Sat, 21 Nov 2026 10:00:00 +0000"`.
    pub date: String,
}

/// One attachment of a message, as listed to the user.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Attachment {
    /// What to call it: the file name; for an attached message (`message/rfc822`),
    /// `message: "Subject"`; else `"(unnamed)"`.
    pub name: String,
    /// The MIME type, e.g. `"application/pdf"`.
    pub content_type: String,
    /// The decoded size in bytes (for a text part, the size of its text once converted to
    /// UTF-8).
    pub size: usize,
}

/// An attachment with its content, for saving it; see [`attachment_files`].
#[derive(Debug, Clone, PartialEq)]
pub struct AttachmentFile {
    /// The attachment as it is listed.
    pub attachment: Attachment,
    /// The file name the message suggests, display-safe but not yet safe as a file name (it may
    /// hold `/`, `..`, ...): the part's file name, else an attached message's subject plus
    /// `.eml`; `""` when there is neither.
    pub suggested_name: String,
    /// The content, decoded from its transfer encoding (base64, quoted-printable) but not
    /// converted from its charset: the bytes the sender attached.
    pub content: Vec<u8>,
}

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

/// Summary of a message from its header bytes (what `TOP n 0` returns) or a whole message.
pub(crate) fn summarize(raw: &[u8]) -> Summary {
    guarded(Summary::default, || match parse(raw) {
        Some(message) => summary_of(raw, &message),
        None => Summary::default(),
    })
}

/// Every header of the message in order, name and decoded value (unfolded, RFC 2047 decoded,
/// control characters stripped), for `headers --json`.
pub(crate) fn all_headers(raw: &[u8]) -> Vec<(String, String)> {
    guarded(Vec::new, || {
        let Some(message) = parse(raw) else {
            return Vec::new();
        };
        message
            .headers()
            .iter()
            .map(|header| (clean_line(header.name.as_str()), header_text(raw, header)))
            .collect()
    })
}

/// The readable form of a whole message.
///
/// The text is the first text/plain body part, decoded from its transfer encoding and charset;
/// when there is only HTML, a plain-text rendering of it (`from_html` is then true); when there is
/// no text at all, an empty string. The attachments are every part that is an attachment,
/// including inline images, but not the text or HTML body parts themselves.
pub(crate) fn readable(raw: &[u8]) -> Readable {
    let empty = || Readable {
        summary: summarize(raw),
        text: String::new(),
        attachments: Vec::new(),
        from_html: false,
    };
    guarded(empty, || {
        let Some(message) = parse(raw) else {
            return empty();
        };
        let (text, from_html) = body_text(&message);
        Readable {
            summary: summary_of(raw, &message),
            text: clean_text(&text),
            attachments: attachments(&message),
            from_html,
        }
    })
}

/// Every attachment of the message (the ones [`readable`] lists, in the same order) with its
/// content, for saving them to files.
pub fn attachment_files(raw: &[u8]) -> Vec<AttachmentFile> {
    guarded(Vec::new, || {
        let Some(message) = parse(raw) else {
            return Vec::new();
        };
        attachment_parts(&message)
            .map(|part| AttachmentFile {
                attachment: attachment(part),
                suggested_name: suggested_name(part),
                content: content(&message, part),
            })
            .collect()
    })
}

/// Runs `f`, turning a panic inside `mail-parser` into `fallback()`: a malformed message must
/// never bring the program down. (`mail-parser` is careful, but still has `unwrap`s,
/// `unreachable!`s and `debug_assert!`s on its parsing paths.)
fn guarded<T>(fallback: impl FnOnce() -> T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| fallback())
}

fn parse(raw: &[u8]) -> Option<Message<'_>> {
    MessageParser::new().parse(raw)
}

fn summary_of(raw: &[u8], message: &Message<'_>) -> Summary {
    Summary {
        from: addresses(raw, message, &HeaderName::From),
        to: addresses(raw, message, &HeaderName::To),
        cc: addresses(raw, message, &HeaderName::Cc),
        subject: first(message, &HeaderName::Subject)
            .map(|header| header_text(raw, header))
            .unwrap_or_default(),
        date: first(message, &HeaderName::Date)
            .map(|header| date(raw, header))
            .unwrap_or_default(),
    }
}

/// The first header called `name`. (`mail-parser`'s own accessors return the last one.)
fn first<'a, 'x>(message: &'a Message<'x>, name: &HeaderName<'_>) -> Option<&'a Header<'x>> {
    message.headers().iter().find(|header| &header.name == name)
}

/// The header's value bytes, re-terminated so that `mail-parser`'s field parsers see a complete
/// line even when the input stopped in the middle of the header block.
fn value_line(raw: &[u8], header: &Header<'_>) -> Vec<u8> {
    let bytes = raw
        .get(header.offset_start as usize..header.offset_end as usize)
        .unwrap_or_default();
    let mut line = bytes.to_vec();
    line.push(b'\n');
    line
}

/// A header's value as unstructured text: unfolded, RFC 2047 decoded, display-safe.
fn header_text(raw: &[u8], header: &Header<'_>) -> String {
    let line = value_line(raw, header);
    match MessageStream::new(&line).parse_unstructured() {
        HeaderValue::Text(text) => clean_line(&text),
        _ => String::new(),
    }
}

fn date(raw: &[u8], header: &Header<'_>) -> String {
    let line = value_line(raw, header);
    match MessageStream::new(&line).parse_date() {
        HeaderValue::DateTime(date) if date.is_valid() => date.to_rfc822(),
        _ => header_text(raw, header),
    }
}

/// All addresses of every header called `name` (obsolete syntax allows repeating `To` and
/// `Cc`; a repeated `From` is shown in full rather than hidden). Falls back to the header text
/// when the field does not parse as addresses.
fn addresses(raw: &[u8], message: &Message<'_>, name: &HeaderName<'_>) -> String {
    let shown: Vec<String> = message
        .headers()
        .iter()
        .filter(|header| &header.name == name)
        .map(|header| {
            let line = value_line(raw, header);
            let formatted = match MessageStream::new(&line).parse_address() {
                HeaderValue::Address(address) => format_address(&address),
                _ => String::new(),
            };
            if formatted.is_empty() {
                header_text(raw, header)
            } else {
                formatted
            }
        })
        .filter(|shown| !shown.is_empty())
        .collect();
    shown.join(", ")
}

fn format_address(address: &Address<'_>) -> String {
    let shown: Vec<String> = match address {
        Address::List(list) => list.iter().map(format_addr).collect(),
        Address::Group(groups) => groups
            .iter()
            .map(|group| {
                let members: Vec<String> = group
                    .addresses
                    .iter()
                    .map(format_addr)
                    .filter(|shown| !shown.is_empty())
                    .collect();
                match group.name.as_deref().map(clean_line) {
                    Some(name) if !name.is_empty() => format!("{name}: {};", members.join(", ")),
                    _ => members.join(", "),
                }
            })
            .collect(),
    };
    shown
        .into_iter()
        .filter(|shown| !shown.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
}

fn format_addr(addr: &Addr<'_>) -> String {
    let name = addr.name.as_deref().map(clean_line).unwrap_or_default();
    let address = addr.address.as_deref().map(clean_line).unwrap_or_default();
    match (name.is_empty(), address.is_empty()) {
        (_, true) => name,
        (true, false) => address,
        (false, false) => {
            // Quote a name that would otherwise read as several addresses or a group.
            if name.contains([',', ';', ':', '<', '>', '@', '"']) {
                let escaped = name.replace('\\', "\\\\").replace('"', "\\\"");
                format!("\"{escaped}\" <{address}>")
            } else {
                format!("{name} <{address}>")
            }
        }
    }
}

/// The first text/plain body part, else the first HTML one rendered as text, else the whole
/// body when the MIME structure is too broken to have body parts.
fn body_text(message: &Message<'_>) -> (String, bool) {
    if let Some(text) = message.text_bodies().find_map(|part| match &part.body {
        PartType::Text(text) => Some(text.as_ref()),
        _ => None,
    }) {
        return (text.to_owned(), false);
    }
    if let Some(html) = message
        .text_bodies()
        .chain(message.html_bodies())
        .find_map(|part| match &part.body {
            PartType::Html(html) => Some(html.as_ref()),
            _ => None,
        })
    {
        return (html::to_text(html), true);
    }
    match broken_body(message) {
        Some(text) => (text.to_owned(), false),
        None => (String::new(), false),
    }
}

/// The text of a message whose only part is a body `mail-parser` could not decode as what its
/// headers claim (say, "multipart" with no boundary in sight). `mail-parser` files such a part
/// as an attachment; the person reading is better served by seeing it as the body.
fn broken_body<'a>(message: &'a Message<'_>) -> Option<&'a str> {
    match message.parts.as_slice() {
        [only] if only.is_encoding_problem && message.text_body.is_empty() => match &only.body {
            PartType::Text(text) => Some(text.as_ref()),
            _ => None,
        },
        _ => None,
    }
}

fn attachments(message: &Message<'_>) -> Vec<Attachment> {
    attachment_parts(message).map(attachment).collect()
}

/// The parts that are attachments, not the text or HTML body itself.
fn attachment_parts<'a, 'x>(
    message: &'a Message<'x>,
) -> impl Iterator<Item = &'a MessagePart<'x>> + 'a {
    let broken = broken_body(message).is_some();
    message
        .attachments
        .iter()
        .filter(move |id| {
            !broken && !message.text_body.contains(id) && !message.html_body.contains(id)
        })
        .filter_map(|&id| message.part(id))
}

/// The part's own file name, display-safe, if it has a non-empty one.
fn file_name(part: &MessagePart<'_>) -> Option<String> {
    part.attachment_name()
        .map(clean_line)
        .filter(|name| !name.is_empty())
}

/// The subject of an attached message, display-safe (`""` when it has none).
fn attached_subject(nested: &Message<'_>) -> String {
    summary_of(nested.raw_message.as_ref(), nested).subject
}

fn suggested_name(part: &MessagePart<'_>) -> String {
    match (file_name(part), &part.body) {
        (Some(name), _) => name,
        (None, PartType::Message(nested)) => match attached_subject(nested) {
            subject if subject.is_empty() => String::new(),
            subject => format!("{subject}.eml"),
        },
        (None, _) => String::new(),
    }
}

/// The bytes the sender attached. A text part is decoded again from the raw message, because
/// `mail-parser` has already converted its charset to UTF-8.
fn content(message: &Message<'_>, part: &MessagePart<'_>) -> Vec<u8> {
    match &part.body {
        PartType::Binary(bytes) | PartType::InlineBinary(bytes) => bytes.to_vec(),
        PartType::Message(nested) => nested.raw_message().to_vec(),
        PartType::Text(text) | PartType::Html(text) => {
            let raw = message
                .raw_message
                .get(part.offset_body as usize..part.offset_end as usize);
            let decoded = raw.and_then(|raw| match part.encoding {
                Encoding::None => Some(raw.to_vec()),
                Encoding::QuotedPrintable => quoted_printable_decode(raw),
                Encoding::Base64 => base64_decode(raw),
            });
            decoded.unwrap_or_else(|| text.as_bytes().to_vec())
        }
        PartType::Multipart(_) => Vec::new(),
    }
}

fn attachment(part: &MessagePart<'_>) -> Attachment {
    let name = match (&part.body, file_name(part)) {
        (PartType::Message(nested), _) => match attached_subject(nested) {
            subject if subject.is_empty() => "message: (no subject)".to_owned(),
            subject => format!("message: \"{subject}\""),
        },
        (_, Some(name)) => name,
        (_, None) => "(unnamed)".to_owned(),
    };
    let content_type = match part.content_type() {
        Some(ct) => match ct.subtype() {
            Some(subtype) => format!("{}/{}", ct.ctype(), subtype),
            None => ct.ctype().to_owned(),
        },
        None => match part.body {
            PartType::Text(_) => "text/plain",
            PartType::Html(_) => "text/html",
            PartType::Message(_) => "message/rfc822",
            _ => "application/octet-stream",
        }
        .to_owned(),
    };
    let size = match &part.body {
        PartType::Text(text) | PartType::Html(text) => text.len(),
        PartType::Binary(bytes) | PartType::InlineBinary(bytes) => bytes.len(),
        PartType::Message(nested) => nested.raw_message().len(),
        PartType::Multipart(_) => part.offset_end.saturating_sub(part.offset_body) as usize,
    };
    Attachment {
        name,
        content_type: clean_line(&content_type.to_ascii_lowercase()),
        size,
    }
}

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
fn is_unsafe(c: char) -> bool {
    c.is_control() || is_bidi_control(c)
}

/// Display-safe single line: whitespace controls (CR, LF, TAB, ...) become spaces, other control
/// characters and bidirectional overrides are removed, ends are trimmed.
fn clean_line(s: &str) -> String {
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
fn clean_text(s: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: &[u8] = include_bytes!("../tests/fixtures/messages/01-plain.eml");
    const ALTERNATIVE: &[u8] =
        include_bytes!("../tests/fixtures/messages/02-multipart-alternative.eml");
    const HTML_ONLY: &[u8] = include_bytes!("../tests/fixtures/messages/03-html-only.eml");
    const ATTACHMENT: &[u8] = include_bytes!("../tests/fixtures/messages/04-attachment.eml");
    const ENCODED: &[u8] = include_bytes!("../tests/fixtures/messages/05-encoded-headers.eml");
    const MALFORMED: &[u8] = include_bytes!("../tests/fixtures/messages/06-malformed-headers.eml");
    const HTML_BLOCKS: &[u8] = include_bytes!("../tests/fixtures/messages/read/html-blocks.eml");
    const ATTACHED_MESSAGE: &[u8] =
        include_bytes!("../tests/fixtures/messages/read/attached-message.eml");
    const HOSTILE_NAMES: &[u8] =
        include_bytes!("../tests/fixtures/messages/read/hostile-attachment-names.eml");
    const ALL: [&[u8]; 9] = [
        PLAIN,
        ALTERNATIVE,
        HTML_ONLY,
        ATTACHMENT,
        ENCODED,
        MALFORMED,
        HTML_BLOCKS,
        ATTACHED_MESSAGE,
        HOSTILE_NAMES,
    ];

    fn summary(from: &str, to: &str, cc: &str, subject: &str, date: &str) -> Summary {
        Summary {
            from: from.into(),
            to: to.into(),
            cc: cc.into(),
            subject: subject.into(),
            date: date.into(),
        }
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn plain_message() {
        let expected = summary(
            "Alice Example <alice@example.org>",
            "Bob Example <bob@example.net>",
            "",
            "Lunch on Thursday?",
            "Tue, 14 May 2024 09:12:00 +0200",
        );
        assert_eq!(summarize(PLAIN), expected);
        let r = readable(PLAIN);
        assert_eq!(r.summary, expected);
        assert!(!r.from_html);
        assert!(r.attachments.is_empty());
        assert_eq!(
            r.text,
            "Hi Bob,\n\nare you free for lunch on Thursday? The new place on Main Street\n\
             opens at noon.\n\nA line that starts with a dot follows (POP3 must byte-stuff it):\n\
             .\n..and this one starts with two dots.\n.signature-like line\n\nCheers,\nAlice"
        );
    }

    #[test]
    fn summary_of_the_header_block_alone() {
        let end = PLAIN.windows(2).position(|w| w == b"\n\n").unwrap() + 2;
        assert_eq!(summarize(&PLAIN[..end]), summarize(PLAIN));
    }

    #[test]
    fn multipart_alternative_prefers_plain_text() {
        let r = readable(ALTERNATIVE);
        assert_eq!(
            r.summary,
            summary(
                "Example Shop <newsletter@shop.example.com>",
                "bob@example.net",
                "",
                "Your order #10442 has shipped",
                "Wed, 15 May 2024 16:45:10 +0000",
            )
        );
        assert!(!r.from_html);
        assert!(r.attachments.is_empty());
        assert_eq!(
            r.text,
            "Hello Bob,\n\nyour order #10442 has shipped and should arrive within 2\u{2013}3 \
             business days.\n\nTracking number: 1Z999AA10123456784\n\nThanks for shopping with us!"
        );
    }

    #[test]
    fn html_only_is_rendered_as_text() {
        let r = readable(HTML_ONLY);
        assert_eq!(
            r.summary.from,
            "IT Service Desk <helpdesk@corp.example.com>"
        );
        assert_eq!(r.summary.to, "Bob Example <bob@example.net>");
        assert!(r.from_html);
        assert!(r.attachments.is_empty());
        assert_eq!(
            r.text,
            "Scheduled maintenance\n\nThe mail servers will be unavailable on Saturday from \
             22:00 to 23:30 (UTC\u{2212}4).\n\nCaf\u{e9} Wi-Fi is not affected.\n\n\
             \u{2014} IT Service Desk"
        );
    }

    #[test]
    fn html_block_elements_become_line_breaks() {
        let r = readable(HTML_BLOCKS);
        assert!(r.from_html);
        assert_eq!(
            r.text,
            "Planning meeting\n\nTuesday, 10:00 in room 4.\nBring your laptop.\n\nAgenda\n\n\
             1. Last quarter\n2. Roadmap\n  - mobile\n  - web\n3. Questions\n\n\
             Dial-in: +1 555 0100\nPIN: 4242\n\nRoom 4\nHost Dana\n\n\
             > Plans are nothing; planning is everything.\n\n\u{2014} Dana"
        );
    }

    #[test]
    fn attached_message_is_listed_by_its_subject() {
        let r = readable(ATTACHED_MESSAGE);
        assert_eq!(r.text, "Bob, see Erin's answer below.");
        let names: Vec<&str> = r.attachments.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["message: \"Re: hello\"", "menu.txt"]);
        assert_eq!(r.attachments[0].content_type, "message/rfc822");
        let files = attachment_files(ATTACHED_MESSAGE);
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].suggested_name, "Re: hello.eml");
        assert_eq!(files[0].attachment, r.attachments[0]);
        let eml = String::from_utf8(files[0].content.clone()).unwrap();
        assert!(
            eml.starts_with("From: Erin Example <erin@example.com>\n"),
            "{eml:?}"
        );
        assert!(eml.contains("notes, line 2\n--inner-boundary--"), "{eml:?}");
        assert_eq!(r.attachments[0].size, files[0].content.len());
        // The nested message is itself readable, with its own attachment.
        let nested = readable(&files[0].content);
        assert_eq!(nested.summary.subject, "Re: hello");
        assert_eq!(nested.attachments[0].name, "notes.txt");
        // Without a transfer encoding, the line break before the boundary is not content.
        assert_eq!(
            attachment_files(&files[0].content)[0].content,
            b"notes, line 1\nnotes, line 2"
        );
        // A text attachment is saved in its own charset, not converted to UTF-8.
        assert_eq!(files[1].suggested_name, "menu.txt");
        assert_eq!(files[1].content, b"Caf\xe9 cr\xe8me");
    }

    #[test]
    fn attached_message_without_subject() {
        let raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
            Content-Type: message/rfc822\r\n\r\nFrom: x@example.org\r\n\r\nbody\r\n--b--\r\n";
        assert_eq!(readable(raw).attachments[0].name, "message: (no subject)");
        assert_eq!(attachment_files(raw)[0].suggested_name, "");
    }

    #[test]
    fn attachment_files_match_the_listing_and_decode_content() {
        let files = attachment_files(ATTACHMENT);
        let listed = readable(ATTACHMENT).attachments;
        assert_eq!(
            files.iter().map(|f| &f.attachment).collect::<Vec<_>>(),
            listed.iter().collect::<Vec<_>>()
        );
        assert_eq!(files[0].suggested_name, "invoice-2024-05.pdf");
        assert!(files[0].content.starts_with(b"%PDF-1.4\n"));
        assert_eq!(files[0].content.len(), 331);
        assert_eq!(
            files[1].content,
            b"date,amount,currency\n2024-05-01,12.50,EUR\n2024-05-02,7.99,EUR\n"
        );
        assert!(attachment_files(PLAIN).is_empty());
        assert!(attachment_files(MALFORMED).is_empty());
    }

    #[test]
    fn hostile_attachment_names_are_display_safe_but_unchanged_otherwise() {
        let names: Vec<String> = attachment_files(HOSTILE_NAMES)
            .into_iter()
            .map(|f| f.suggested_name)
            .collect();
        assert_eq!(
            names,
            [
                "../../etc/passwd",
                "/abs/x",
                "CON",
                "line break .txt",
                "]0;owned[31mred.txt",
                "a.pdf",
                "a.pdf",
                "...",
                ".bashrc",
            ]
        );
    }

    #[test]
    fn attachments_are_listed_with_decoded_sizes() {
        let r = readable(ATTACHMENT);
        assert_eq!(r.summary.cc, "accounts@example.net");
        assert_eq!(r.summary.subject, "Invoice for May (attached)");
        assert_eq!(r.summary.date, "Mon, 20 May 2024 08:30:00 +0100");
        assert!(!r.from_html);
        assert_eq!(
            r.text,
            "Hi Bob,\n\nplease find the invoice for May attached, plus the expenses as CSV.\n\n\
             Carol"
        );
        assert_eq!(
            r.attachments,
            vec![
                Attachment {
                    name: "invoice-2024-05.pdf".into(),
                    content_type: "application/pdf".into(),
                    size: 331,
                },
                Attachment {
                    name: "expenses.csv".into(),
                    content_type: "text/csv".into(),
                    size: 62,
                },
            ]
        );
    }

    #[test]
    fn encoded_words_and_8bit_body() {
        let r = readable(ENCODED);
        assert_eq!(
            r.summary,
            summary(
                "J\u{fc}rgen M\u{fc}ller <juergen@example.de>",
                "\u{738b}\u{5c0f}\u{660e} <xiaoming@example.cn>",
                "Ren\u{e9}e Fran\u{e7}ois <renee@example.fr>",
                "Gr\u{fc}\u{df}e aus M\u{fc}nchen \u{2013} \u{4f60}\u{597d}\u{ff0c}\u{4e16}\u{754c}",
                "Thu, 23 May 2024 20:05:33 +0200",
            )
        );
        assert_eq!(
            r.text,
            "Hallo Xiaoming,\n\nviele Gr\u{fc}\u{df}e aus M\u{fc}nchen! Das Wetter ist sch\u{f6}n, \
             23 \u{b0}C.\n\n\u{4f60}\u{597d}\u{ff01}\u{5e0c}\u{671b}\u{4f60}\u{4e00}\u{5207}\
             \u{90fd}\u{597d}\u{3002}\n\nJ\u{fc}rgen"
        );
        assert_eq!(
            all_headers(ENCODED)[..4],
            pairs(&[
                ("From", "J\u{fc}rgen M\u{fc}ller <juergen@example.de>"),
                ("To", "\u{738b}\u{5c0f}\u{660e} <xiaoming@example.cn>"),
                ("Cc", "Ren\u{e9}e Fran\u{e7}ois <renee@example.fr>"),
                (
                    "Subject",
                    "Gr\u{fc}\u{df}e aus M\u{fc}nchen \u{2013} \u{4f60}\u{597d}\u{ff0c}\u{4e16}\u{754c}"
                ),
            ])[..]
        );
    }

    #[test]
    fn malformed_headers() {
        assert_eq!(
            summarize(MALFORMED),
            summary(
                "Unterminated Quote <broken@example.invalid",
                "bob@example.net",
                "",
                "=?UTF-8?B?not*valid*base64?= and =?bogus?X?zzz?= \u{fffd}\u{fffd} raw 8-bit",
                "Someday, 32 Foo 20x4 25:61:99 +9999",
            )
        );
        assert_eq!(
            all_headers(MALFORMED),
            pairs(&[
                ("From", "\"Unterminated Quote <broken@example.invalid"),
                ("To", "bob@example.net,, ,<>"),
                (
                    "Subject",
                    "=?UTF-8?B?not*valid*base64?= and =?bogus?X?zzz?= \u{fffd}\u{fffd} raw 8-bit"
                ),
                ("Subject", "a second Subject header"),
                ("Date", "Someday, 32 Foo 20x4 25:61:99 +9999"),
                ("X-Empty", ""),
                ("Content-Type", "multipart/mixed; boundary=\"never-used\""),
                ("Content-Transfer-Encoding", "base64"),
            ])
        );
        // The body is neither multipart nor base64: shown as it is, not as an attachment.
        let r = readable(MALFORMED);
        assert!(r.attachments.is_empty());
        assert_eq!(
            r.text,
            "This body claims to be base64 and multipart but is neither.\n!!! ===== !!!\n\
             --not-the-boundary\nThe end, without a final newline"
        );
    }

    #[test]
    fn quoted_printable_latin1_body() {
        let raw = b"From: a@example.org\r\nSubject: qp\r\nMIME-Version: 1.0\r\n\
            Content-Type: text/plain; charset=ISO-8859-1\r\n\
            Content-Transfer-Encoding: quoted-printable\r\n\r\n\
            Caf=E9 cr=E8me br=FBl=E9e, a soft=\r\n line break and =3D sign.\r\n\r\n\r\n";
        let r = readable(raw);
        assert!(!r.from_html);
        assert_eq!(
            r.text,
            "Caf\u{e9} cr\u{e8}me br\u{fb}l\u{e9}e, a soft line break and = sign."
        );
    }

    #[test]
    fn base64_utf8_body() {
        let raw = b"From: a@example.org\r\nContent-Type: text/plain; charset=utf-8\r\n\
            Content-Transfer-Encoding: base64\r\n\r\n\
            R3LDvMOfZSBhdXMgS8O2bG4g4oCUIOadseS6rApad2VpdGUgWmVpbGUK\r\n";
        assert_eq!(
            readable(raw).text,
            "Gr\u{fc}\u{df}e aus K\u{f6}ln \u{2014} \u{6771}\u{4eac}\nZweite Zeile"
        );
    }

    #[test]
    fn raw_8bit_utf8_headers() {
        let raw = "From: J\u{fc}rgen M\u{fc}ller <j@example.de>\r\nSubject: Gr\u{fc}\u{df}e \
                   aus K\u{f6}ln \u{6771}\u{4eac}\r\n\r\nHallo\r\n";
        let s = summarize(raw.as_bytes());
        assert_eq!(s.from, "J\u{fc}rgen M\u{fc}ller <j@example.de>");
        assert_eq!(s.subject, "Gr\u{fc}\u{df}e aus K\u{f6}ln \u{6771}\u{4eac}");
    }

    #[test]
    fn server_text_is_made_display_safe() {
        let hostile = "ready\u{1b}]0;owned\u{7}\u{1b}[2J \u{9b}31m\r\u{202e}txt.exe\nnext\tcol";
        assert_eq!(
            display_safe(hostile),
            "ready]0;owned[2J 31mtxt.exe\nnext\tcol"
        );
    }

    #[test]
    fn escape_sequences_are_stripped() {
        let raw = "From: \"\x1b]0;pwned\x07Eve\" <eve@example.org>\r\n\
                   Subject: \x1b[31mRed\x1b[0m alert \u{9b}2J\u{202e}txt.exe\r\n\
                   \r\nline\x1b[2J one\r\nbell\x07 and\ttab\rcr\r\n\x1b[0m\r\n";
        let r = readable(raw.as_bytes());
        assert_eq!(r.summary.subject, "[31mRed[0m alert 2Jtxt.exe");
        assert_eq!(r.summary.from, "\"]0;pwnedEve\" <eve@example.org>");
        assert_eq!(r.text, "line[2J one\nbell and\ttabcr\n[0m");
        let headers = all_headers(raw.as_bytes());
        assert_eq!(headers[1].1, "[31mRed[0m alert 2Jtxt.exe");
        for (name, value) in headers {
            assert!(!name.chars().chain(value.chars()).any(char::is_control));
        }
    }

    #[test]
    fn empty_input() {
        assert_eq!(summarize(b""), Summary::default());
        assert!(all_headers(b"").is_empty());
        let r = readable(b"");
        assert_eq!(r.summary, Summary::default());
        assert_eq!(r.text, "");
        assert!(r.attachments.is_empty());
        assert!(!r.from_html);
    }

    #[test]
    fn headers_only_as_top_returns_them() {
        let raw = b"From: Alice <alice@example.org>\r\nTo: bob@example.net, Carol \
            <carol@example.net>\r\nSubject: Hi\r\nDate: Sat, 21 Nov 2026 10:00:00 +0000\r\n\r\n";
        let expected = summary(
            "Alice <alice@example.org>",
            "bob@example.net, Carol <carol@example.net>",
            "",
            "Hi",
            "Sat, 21 Nov 2026 10:00:00 +0000",
        );
        assert_eq!(summarize(raw), expected);
        let r = readable(raw);
        assert_eq!(r.summary, expected);
        assert_eq!(r.text, "");
        assert!(r.attachments.is_empty());
        // Cut short in the middle of the last header line: still read.
        assert_eq!(summarize(b"Subject: Hi").subject, "Hi");
        assert_eq!(summarize(b"From: a@example.org").from, "a@example.org");
    }

    #[test]
    fn unparseable_date_is_shown_raw() {
        let raw = b"Date:  next Tuesday,\r\n  probably \r\nSubject: x\r\n\r\n";
        assert_eq!(summarize(raw).date, "next Tuesday, probably");
        let raw = b"Date: 31 Feb 2024 25:00:00 +0000\r\n\r\n";
        assert_eq!(summarize(raw).date, "31 Feb 2024 25:00:00 +0000");
    }

    #[test]
    fn inline_image_is_an_attachment_but_html_body_is_not() {
        let raw = b"From: a@example.org\r\nContent-Type: multipart/related; boundary=b\r\n\r\n\
            --b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Look: <img src=cid:1></p>\r\n\
            --b\r\nContent-Type: image/png; name=\"dot.png\"\r\nContent-ID: <1>\r\n\
            Content-Disposition: inline; filename=\"dot.png\"\r\n\
            Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--b--\r\n";
        let r = readable(raw);
        assert!(r.from_html);
        assert_eq!(r.text, "Look:");
        assert_eq!(
            r.attachments,
            vec![Attachment {
                name: "dot.png".into(),
                content_type: "image/png".into(),
                size: 8,
            }]
        );
    }

    #[test]
    fn groups_and_quoted_names() {
        let raw = b"To: undisclosed-recipients:;\r\nCc: \"Doe, John\" <j@example.org>, \
            Team: x@example.org, y@example.org;\r\n\r\n";
        let s = summarize(raw);
        assert_eq!(s.to, "undisclosed-recipients: ;");
        assert_eq!(
            s.cc,
            "\"Doe, John\" <j@example.org>, Team: x@example.org, y@example.org;"
        );
    }

    #[test]
    fn no_panic_on_any_truncation() {
        for raw in ALL {
            for end in 0..=raw.len() {
                let prefix = &raw[..end];
                let s = summarize(prefix);
                let r = readable(prefix);
                let _ = all_headers(prefix);
                let _ = attachment_files(prefix);
                for field in [&s.from, &s.to, &s.cc, &s.subject, &s.date] {
                    assert!(!field.chars().any(char::is_control), "{field:?}");
                }
                assert!(
                    !r.text
                        .chars()
                        .any(|c| c.is_control() && c != '\n' && c != '\t')
                );
            }
        }
    }

    fn assert_one_safe_line(text: &str, pos: usize, byte: u8) {
        assert!(
            !text.chars().any(is_unsafe),
            "byte {byte:#x} at {pos}: unsafe or multi-line {text:?}"
        );
    }

    #[test]
    fn no_panic_on_corrupted_bytes() {
        for raw in ALL {
            let mut corrupted = raw.to_vec();
            for pos in 0..raw.len() {
                for byte in [b'\n', b'"', b'=', b'-', b';', b'<', 0xff] {
                    corrupted[pos] = byte;
                    // Whatever the damage, every string that comes back is display-safe:
                    // single lines for headers, no control but \n and \t in the body.
                    let summary = summarize(&corrupted);
                    let Readable {
                        summary: full,
                        text,
                        attachments,
                        from_html: _,
                    } = readable(&corrupted);
                    for field in [&summary, &full]
                        .into_iter()
                        .flat_map(|s| [&s.from, &s.to, &s.cc, &s.subject, &s.date])
                    {
                        assert_one_safe_line(field, pos, byte);
                    }
                    for (name, value) in all_headers(&corrupted) {
                        assert_one_safe_line(&name, pos, byte);
                        assert_one_safe_line(&value, pos, byte);
                    }
                    for attachment in &attachments {
                        assert_one_safe_line(&attachment.name, pos, byte);
                        assert_one_safe_line(&attachment.content_type, pos, byte);
                    }
                    let _ = attachment_files(&corrupted);
                    assert!(
                        text.chars()
                            .all(|c| c == '\n' || c == '\t' || !is_unsafe(c)),
                        "byte {byte:#x} at {pos}: unsafe body text {text:?}"
                    );
                }
                corrupted[pos] = raw[pos];
            }
        }
    }
}
