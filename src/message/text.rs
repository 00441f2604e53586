//! The body a person reads: the first plain-text part, else the HTML one rendered as text.

use mail_parser::{Message, PartType};

use super::html;

/// The first text/plain body part, else the first HTML one rendered as text, else the whole
/// body when the MIME structure is too broken to have body parts.
pub(super) fn body_text(message: &Message<'_>) -> (String, bool) {
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
pub(super) fn broken_body<'a>(message: &'a Message<'_>) -> Option<&'a str> {
    match message.parts.as_slice() {
        [only] if only.is_encoding_problem && message.text_body.is_empty() => match &only.body {
            PartType::Text(text) => Some(text.as_ref()),
            _ => None,
        },
        _ => None,
    }
}
