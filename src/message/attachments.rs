//! Attachments: the list shown with a message, and their content for saving them.

use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::quoted_printable::quoted_printable_decode;
use mail_parser::{Encoding, Message, MessagePart, MimeHeaders, PartType};

use super::safe::clean_line;
use super::summary::summary_of;
use super::text::{body_part, broken_body};
use super::{guarded, parse};

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

/// Every attachment of the message (the ones [`readable`](super::readable) lists, in the same order) with its
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

pub(super) fn attachments(message: &Message<'_>) -> Vec<Attachment> {
    attachment_parts(message).map(attachment).collect()
}

/// The parts that are attachments, in message order; see [`is_attachment`].
fn attachment_parts<'a, 'x>(
    message: &'a Message<'x>,
) -> impl Iterator<Item = &'a MessagePart<'x>> + 'a {
    let broken = broken_body(message).is_some();
    let body = body_part(message);
    (0..message.parts.len() as u32)
        .filter(move |&id| !broken && is_attachment(message, id, body))
        .filter_map(|id| message.part(id))
}

/// Whether part `id` is an attachment, the one rule for listing and saving: every part but
/// `body` (the part shown as the text) and multipart containers that has a file name, or is
/// not text, or is text that `mail-parser` does not count as a body part (an attached or
/// unnamed `text/csv`, say), whatever its disposition. `mail-parser` files an inline image or
/// named text of `multipart/mixed` (iPhone Mail sends photos so) among the body parts, which
/// alone would hide it; an unnamed inline text part stays body (the HTML alternative, say).
fn is_attachment(message: &Message<'_>, id: u32, body: Option<u32>) -> bool {
    let Some(part) = message.part(id) else {
        return false;
    };
    if Some(id) == body {
        return false;
    }
    match &part.body {
        PartType::Multipart(_) => false,
        PartType::Text(_) | PartType::Html(_) => {
            file_name(part).is_some()
                || !(message.text_body.contains(&id) || message.html_body.contains(&id))
        }
        PartType::Binary(_) | PartType::InlineBinary(_) | PartType::Message(_) => true,
    }
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
