//! The body a person reads: the first plain-text part, else the HTML one rendered as text.

use mail_parser::{Message, PartType};

use super::html;

/// The first text/plain body part, else the first HTML one rendered as text, else the whole
/// body when the MIME structure is too broken to have body parts.
pub(super) fn body_text(message: &Message<'_>) -> (String, bool) {
    match body_part(message)
        .and_then(|id| message.part(id))
        .map(|part| &part.body)
    {
        Some(PartType::Text(text)) => return (text.as_ref().to_owned(), false),
        Some(PartType::Html(html)) => return (html::to_text(html), true),
        _ => {}
    }
    match broken_body(message) {
        Some(text) => (text.to_owned(), false),
        None => (String::new(), false),
    }
}

/// The id of the part shown as the body: the first text/plain body part, else the first HTML
/// one (`mail-parser` lists an HTML-only body among the text bodies too).
pub(super) fn body_part(message: &Message<'_>) -> Option<u32> {
    let is = |id: u32, html: bool| {
        matches!(
            (message.part(id).map(|part| &part.body), html),
            (Some(PartType::Text(_)), false) | (Some(PartType::Html(_)), true)
        )
    };
    let text = message.text_body.iter().copied().find(|&id| is(id, false));
    text.or_else(|| {
        message
            .text_body
            .iter()
            .chain(&message.html_body)
            .copied()
            .find(|&id| is(id, true))
    })
}

/// The text of a message whose only part is a body `mail-parser` could not decode as what its
/// headers claim (say, "multipart" with no boundary in sight). `mail-parser` files such a part
/// as an attachment; the person reading is better served by seeing it as the body.
pub(super) fn broken_body<'a>(message: &'a Message<'_>) -> Option<&'a str> {
    match message.parts.as_slice() {
        [only] if only.is_encoding_problem && message.text_body.is_empty() => match &only.body {
            PartType::Text(text) => Some(text.as_ref()),
            _ => None,
        },
        _ => None,
    }
}
