//! Whole messages (the fixtures in `tests/fixtures/messages/`) through every part of this
//! module: summary, body, attachments, display safety, and no panic on damaged input.

use super::safe::is_unsafe;
use super::*;

const PLAIN: &[u8] = include_bytes!("../../tests/fixtures/messages/01-plain.eml");
const ALTERNATIVE: &[u8] =
    include_bytes!("../../tests/fixtures/messages/02-multipart-alternative.eml");
const HTML_ONLY: &[u8] = include_bytes!("../../tests/fixtures/messages/03-html-only.eml");
const ATTACHMENT: &[u8] = include_bytes!("../../tests/fixtures/messages/04-attachment.eml");
const ENCODED: &[u8] = include_bytes!("../../tests/fixtures/messages/05-encoded-headers.eml");
const MALFORMED: &[u8] = include_bytes!("../../tests/fixtures/messages/06-malformed-headers.eml");
const HTML_BLOCKS: &[u8] = include_bytes!("../../tests/fixtures/messages/read/html-blocks.eml");
const ATTACHED_MESSAGE: &[u8] =
    include_bytes!("../../tests/fixtures/messages/read/attached-message.eml");
const HOSTILE_NAMES: &[u8] =
    include_bytes!("../../tests/fixtures/messages/read/hostile-attachment-names.eml");
const INLINE_PHOTO: &[u8] = include_bytes!("../../tests/fixtures/messages/read/inline-photo.eml");
const ALL: [&[u8]; 10] = [
    PLAIN,
    ALTERNATIVE,
    HTML_ONLY,
    ATTACHMENT,
    ENCODED,
    MALFORMED,
    HTML_BLOCKS,
    ATTACHED_MESSAGE,
    HOSTILE_NAMES,
    INLINE_PHOTO,
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
            "=?UTF-8?B?not*valid*base64?= and =?bogus?X?zzz?= \u{ff}\u{fe} raw 8-bit",
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
                "=?UTF-8?B?not*valid*base64?= and =?bogus?X?zzz?= \u{ff}\u{fe} raw 8-bit"
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
    // JSON keeps the value as the message has it: serde_json escapes the controls.
    let headers = all_headers(raw.as_bytes());
    assert_eq!(
        headers[1].1,
        "\x1b[31mRed\x1b[0m alert \u{9b}2J\u{202e}txt.exe"
    );
}

const LATIN1_RAW: &[u8] =
    include_bytes!("../../tests/fixtures/messages/read/latin1-raw-headers.eml");

#[test]
fn raw_latin1_headers_are_decoded_with_the_declared_charset_not_shown_as_u_fffd() {
    let summary = summarize(LATIN1_RAW);
    assert_eq!(summary.from, "Jürgen Müller <juergen@example.de>");
    assert_eq!(summary.to, "Renée <renee@example.org>");
    assert_eq!(summary.subject, "Grüße aus Köln");
    let headers = all_headers(LATIN1_RAW);
    assert_eq!(headers[2], ("Subject".into(), "Grüße aus Köln".into()));
    // headers --json keeps what display strips.
    assert_eq!(headers[5].1, "Old\x1b[31mMailer");
    // Without a declared charset, bytes that are not UTF-8 are taken as Latin-1, and UTF-8
    // beside them stays UTF-8.
    let mixed = b"Subject: caf\xe9 and caf\xc3\xa9\r\n\r\n";
    assert_eq!(summarize(mixed).subject, "café and café");
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
fn inline_attachments_in_multipart_mixed_are_listed_and_saved() {
    // iPhone Mail sends a photo as an inline part of multipart/mixed; mail-parser files such a
    // part among the body parts, which hid it.
    let r = readable(INLINE_PHOTO);
    assert_eq!(
        r.text,
        "Hi Bob,\n\nthe photo from the trip, my notes and the report."
    );
    let listed: Vec<(&str, &str, usize)> = r
        .attachments
        .iter()
        .map(|a| (a.name.as_str(), a.content_type.as_str(), a.size))
        .collect();
    assert_eq!(
        listed,
        [
            ("pixel.png", "image/png", 70),
            ("notes.txt", "text/plain", 27),
            ("report.pdf", "application/pdf", 25),
        ]
    );
    let files = attachment_files(INLINE_PHOTO);
    assert_eq!(
        files.iter().map(|f| &f.attachment).collect::<Vec<_>>(),
        r.attachments.iter().collect::<Vec<_>>()
    );
    assert_eq!(files[0].suggested_name, "pixel.png");
    assert!(files[0].content.starts_with(b"\x89PNG\r\n\x1a\n"));
    assert_eq!(files[0].content.len(), 70);
    assert_eq!(files[1].content, b"Day 1: lake.\nDay 2: hills.\n");
    assert!(files[2].content.starts_with(b"%PDF-1.4\n"));
}

#[test]
fn inline_parts_without_a_name_are_body_not_attachments() {
    // Text shown inline without a file name is part of the body (Apple Mail's text, image,
    // text); an unnamed inline image is still listed.
    let raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n\
        --b\r\nContent-Type: text/plain\r\n\r\nfirst\r\n\
        --b\r\nContent-Type: image/gif\r\nContent-Disposition: inline\r\n\
        Content-Transfer-Encoding: base64\r\n\r\nR0lGODlh\r\n\
        --b\r\nContent-Type: text/plain\r\n\r\nsecond\r\n--b--\r\n";
    let r = readable(raw);
    assert_eq!(r.text, "first");
    assert_eq!(
        r.attachments,
        vec![Attachment {
            name: "(unnamed)".into(),
            content_type: "image/gif".into(),
            size: 6,
        }]
    );
    // The HTML alternative of a plain-text body is not an attachment either.
    assert!(readable(ALTERNATIVE).attachments.is_empty());
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
                // Values for JSON keep control characters (JSON escapes them); names are safe.
                for (name, _) in all_headers(&corrupted) {
                    assert_one_safe_line(&name, pos, byte);
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
