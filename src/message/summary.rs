//! The header summary shown in listings and the decoded header list of `headers --json`.

use mail_parser::parsers::MessageStream;
use mail_parser::{Addr, Address, Header, HeaderName, HeaderValue, Message};

use super::safe::clean_line;
use super::{guarded, parse};

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

/// Summary of a message from its header bytes (what `TOP n 0` returns) or a whole message.
pub(crate) fn summarize(raw: &[u8]) -> Summary {
    guarded(Summary::default, || match parse(raw) {
        Some(message) => summary_of(raw, &message),
        None => Summary::default(),
    })
}

/// Every header of the message in order, name and decoded value (unfolded, RFC 2047 decoded,
/// 8-bit bytes decoded as in [`Summary`]), for `headers --json`. Values are kept as they are,
/// control characters included: JSON escapes them, which makes them safe for a terminal, and a
/// script gets what the message says.
pub(crate) fn all_headers(raw: &[u8]) -> Vec<(String, String)> {
    guarded(Vec::new, || {
        let Some(message) = parse(raw) else {
            return Vec::new();
        };
        let decode = header_decoder(&message);
        message
            .headers()
            .iter()
            .map(|header| {
                let line = value_line(raw, header, decode);
                let value = match MessageStream::new(&line).parse_unstructured() {
                    HeaderValue::Text(text) => text.trim().to_owned(),
                    _ => String::new(),
                };
                (clean_line(header.name.as_str()), value)
            })
            .collect()
    })
}

pub(super) fn summary_of(raw: &[u8], message: &Message<'_>) -> Summary {
    let decode = header_decoder(message);
    Summary {
        from: addresses(raw, message, &HeaderName::From, decode),
        to: addresses(raw, message, &HeaderName::To, decode),
        cc: addresses(raw, message, &HeaderName::Cc, decode),
        subject: first(message, &HeaderName::Subject)
            .map(|header| header_text(raw, header, decode))
            .unwrap_or_default(),
        date: first(message, &HeaderName::Date)
            .map(|header| date(raw, header, decode))
            .unwrap_or_default(),
    }
}

/// Turns raw header bytes that are not UTF-8 into text.
type Decode = fn(&[u8]) -> String;

/// How to read raw 8-bit bytes in this message's headers (RFC 5322 forbids them, but old
/// mailers write them in the charset of the body): the top-level Content-Type's charset when
/// mail-parser knows it and it is not UTF-8, else `None`, which means Latin-1 for the bytes
/// that are not valid UTF-8 (what MUAs such as mutt do).
fn header_decoder(message: &Message<'_>) -> Option<Decode> {
    let charset =
        first(message, &HeaderName::ContentType).and_then(|header| match &header.value {
            HeaderValue::ContentType(content_type) => content_type.attribute("charset"),
            _ => None,
        })?;
    if charset.eq_ignore_ascii_case("utf-8") || charset.eq_ignore_ascii_case("utf8") {
        return None;
    }
    mail_parser::decoders::charsets::map::charset_decoder(charset.as_bytes())
}

/// Valid UTF-8 as it is, every other byte as the Latin-1 character of that value.
fn utf8_else_latin1(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        text.push_str(chunk.valid());
        text.extend(chunk.invalid().iter().map(|&b| char::from(b)));
    }
    text
}

/// The first header called `name`. (`mail-parser`'s own accessors return the last one.)
fn first<'a, 'x>(message: &'a Message<'x>, name: &HeaderName<'_>) -> Option<&'a Header<'x>> {
    message.headers().iter().find(|header| &header.name == name)
}

/// The header's value bytes, re-terminated so that `mail-parser`'s field parsers see a complete
/// line even when the input stopped in the middle of the header block.
/// Raw 8-bit bytes are decoded first (see [`header_decoder`]); RFC 2047 encoded words are
/// ASCII, so this leaves them to the parser.
fn value_line(raw: &[u8], header: &Header<'_>, decode: Option<Decode>) -> Vec<u8> {
    let bytes = raw
        .get(header.offset_start as usize..header.offset_end as usize)
        .unwrap_or_default();
    let mut line = match (std::str::from_utf8(bytes), decode) {
        (Ok(_), _) => bytes.to_vec(),
        (Err(_), Some(decode)) => decode(bytes).into_bytes(),
        (Err(_), None) => utf8_else_latin1(bytes).into_bytes(),
    };
    line.push(b'\n');
    line
}

/// A header's value as unstructured text: unfolded, RFC 2047 decoded, display-safe.
fn header_text(raw: &[u8], header: &Header<'_>, decode: Option<Decode>) -> String {
    let line = value_line(raw, header, decode);
    match MessageStream::new(&line).parse_unstructured() {
        HeaderValue::Text(text) => clean_line(&text),
        _ => String::new(),
    }
}

fn date(raw: &[u8], header: &Header<'_>, decode: Option<Decode>) -> String {
    let line = value_line(raw, header, decode);
    match MessageStream::new(&line).parse_date() {
        HeaderValue::DateTime(date) if date.is_valid() => date.to_rfc822(),
        _ => header_text(raw, header, decode),
    }
}

/// All addresses of every header called `name` (obsolete syntax allows repeating `To` and
/// `Cc`; a repeated `From` is shown in full rather than hidden). Falls back to the header text
/// when the field does not parse as addresses.
fn addresses(
    raw: &[u8],
    message: &Message<'_>,
    name: &HeaderName<'_>,
    decode: Option<Decode>,
) -> String {
    let shown: Vec<String> = message
        .headers()
        .iter()
        .filter(|header| &header.name == name)
        .map(|header| {
            let line = value_line(raw, header, decode);
            let formatted = match MessageStream::new(&line).parse_address() {
                HeaderValue::Address(address) => format_address(&address),
                _ => String::new(),
            };
            if formatted.is_empty() {
                header_text(raw, header, decode)
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
