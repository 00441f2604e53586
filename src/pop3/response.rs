//! Single-line replies: status lines with RFC 2449 response codes, scan listings, unique-id
//! listings and the `STAT` answer. Every parser takes one line without its line ending.

use std::fmt;

use super::{Error, MaildropStat, MessageNumber, Result, ScanListing, Uid, UniqueIdListing};

/// RFC 2449 §4: a status line, CRLF included, may be at most 512 octets.
pub const MAX_STATUS_LINE: usize = 512;

/// An extended response code (RFC 2449 §8, RFC 3206), the bracketed word after the status
/// indicator. It tells a temporary refusal from a permanent one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseCode {
    /// `[IN-USE]`: another session holds the maildrop lock. Temporary.
    InUse,
    /// `[LOGIN-DELAY]`: the user logged in too recently. Temporary.
    LoginDelay,
    /// `[SYS/TEMP]`: a temporary system failure.
    SysTemp,
    /// `[SYS/PERM]`: a permanent system failure.
    SysPerm,
    /// `[AUTH]`: the credentials were refused.
    Auth,
    /// Any other code, kept verbatim (may hold a hierarchy like `A/B`).
    Other(String),
}

impl ResponseCode {
    fn parse(code: &str) -> ResponseCode {
        match code.to_ascii_uppercase().as_str() {
            "IN-USE" => ResponseCode::InUse,
            "LOGIN-DELAY" => ResponseCode::LoginDelay,
            "SYS/TEMP" => ResponseCode::SysTemp,
            "SYS/PERM" => ResponseCode::SysPerm,
            "AUTH" => ResponseCode::Auth,
            _ => ResponseCode::Other(code.to_owned()),
        }
    }

    /// Whether trying again later may succeed.
    pub fn is_temporary(&self) -> bool {
        matches!(
            self,
            ResponseCode::InUse | ResponseCode::LoginDelay | ResponseCode::SysTemp
        )
    }
}

impl fmt::Display for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ResponseCode::InUse => "IN-USE",
            ResponseCode::LoginDelay => "LOGIN-DELAY",
            ResponseCode::SysTemp => "SYS/TEMP",
            ResponseCode::SysPerm => "SYS/PERM",
            ResponseCode::Auth => "AUTH",
            ResponseCode::Other(code) => code,
        })
    }
}

/// A status line: `+OK` or `-ERR`, an optional response code and free text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusLine {
    /// `true` for `+OK`, `false` for `-ERR`.
    pub ok: bool,
    /// The RFC 2449 response code, if the server sent one.
    pub code: Option<ResponseCode>,
    /// The rest of the line (lossily decoded: servers may send 8-bit text).
    pub text: String,
}

impl fmt::Display for StatusLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.ok { "+OK" } else { "-ERR" })?;
        if let Some(code) = &self.code {
            write!(f, " [{code}]")?;
        }
        if !self.text.is_empty() {
            write!(f, " {}", self.text)?;
        }
        Ok(())
    }
}

/// A reply line during SASL authentication: either a final status or a `+ base64` challenge
/// (RFC 5034 §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthReply {
    /// The exchange ended with `+OK` or `-ERR`.
    Status(StatusLine),
    /// The server wants another response; the challenge text (base64, possibly empty).
    Continue(String),
}

/// Strips a trailing CRLF or bare LF (servers that send bare LF are tolerated).
pub fn trim_line_ending(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Parses a status line (without its line ending).
pub fn parse_status_line(line: &[u8]) -> Result<StatusLine> {
    let (ok, rest) = if let Some(rest) = strip_indicator(line, b"+OK") {
        (true, rest)
    } else if let Some(rest) = strip_indicator(line, b"-ERR") {
        (false, rest)
    } else {
        return Err(Error::Protocol(format!(
            "expected +OK or -ERR, got {:?}",
            printable(line)
        )));
    };
    let rest = String::from_utf8_lossy(rest);
    let rest = rest.trim_start_matches(' ');
    // RFC 2449 §8: a response code is a bracketed word right after the indicator.
    if let Some(after_bracket) = rest.strip_prefix('[')
        && let Some(end) = after_bracket.find(']')
    {
        let code = &after_bracket[..end];
        if !code.is_empty() && !code.contains(' ') {
            return Ok(StatusLine {
                ok,
                code: Some(ResponseCode::parse(code)),
                text: after_bracket[end + 1..].trim_start_matches(' ').to_owned(),
            });
        }
    }
    Ok(StatusLine {
        ok,
        code: None,
        text: rest.to_owned(),
    })
}

/// Parses a reply that may be a SASL continuation (`+ challenge`) or a status line.
pub fn parse_auth_reply(line: &[u8]) -> Result<AuthReply> {
    if line == b"+" {
        return Ok(AuthReply::Continue(String::new()));
    }
    if let Some(challenge) = line.strip_prefix(b"+ ") {
        return Ok(AuthReply::Continue(
            String::from_utf8_lossy(challenge).trim().to_owned(),
        ));
    }
    parse_status_line(line).map(AuthReply::Status)
}

/// `+OK` must be followed by a space, or end the line; `+OKAY` is not a status indicator.
fn strip_indicator<'a>(line: &'a [u8], indicator: &[u8]) -> Option<&'a [u8]> {
    let rest = line.strip_prefix(indicator)?;
    (rest.is_empty() || rest[0] == b' ').then_some(rest)
}

/// Parses the text of a `STAT` reply: `nn mm ...` (RFC 1939 §5).
pub fn parse_stat(text: &str) -> Result<MaildropStat> {
    let mut words = text.split_ascii_whitespace();
    let messages = words.next().and_then(|w| w.parse().ok());
    let octets = words.next().and_then(|w| w.parse().ok());
    match (messages, octets) {
        (Some(messages), Some(octets)) => Ok(MaildropStat { messages, octets }),
        _ => Err(Error::Protocol(format!("malformed STAT reply {text:?}"))),
    }
}

/// Splits a listing line into its message number and the word after it (RFC 1939 §5, §7:
/// `msg word ...`); servers may append more words, which are ignored. Words are split at ASCII
/// whitespace on the raw bytes, so a word with 8-bit or control bytes stays one word.
fn number_and_word<'a>(line: &'a [u8], what: &str) -> Result<(MessageNumber, &'a [u8])> {
    let mut words = line
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty());
    let number = words
        .next()
        .and_then(|w| std::str::from_utf8(w).ok())
        .and_then(|w| w.parse().ok())
        .and_then(MessageNumber::new);
    match (number, words.next()) {
        (Some(number), Some(word)) => Ok((number, word)),
        _ => Err(malformed(what, line)),
    }
}

fn malformed(what: &str, line: &[u8]) -> Error {
    Error::Protocol(format!("malformed {what} {:?}", printable(line)))
}

/// Parses a scan listing: `msg size`.
pub fn parse_scan_listing(line: &[u8]) -> Result<ScanListing> {
    let (number, size) = number_and_word(line, "scan listing")?;
    let size = std::str::from_utf8(size)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| malformed("scan listing", line))?;
    Ok(ScanListing { number, size })
}

/// Parses a unique-id listing: `msg uid`. An id that breaks RFC 1939 §7 (longer than 70
/// octets, or bytes outside 0x21..=0x7E) still names its message: it becomes its digest form
/// (see [`Uid::from_listing`]). Only a line without a message number and an id is malformed.
pub fn parse_unique_id_listing(line: &[u8]) -> Result<UniqueIdListing> {
    let (number, uid) = number_and_word(line, "unique-id listing")?;
    Ok(UniqueIdListing {
        number,
        uid: Uid::from_listing(uid),
    })
}

/// Marks the digest form of a unique-id that breaks RFC 1939. With the 64 hex digits it is 72
/// octets long, so it can never equal an id a server may send (at most 70).
const DIGEST_FORM_PREFIX: &str = "~sha256:";

impl Uid {
    /// The unique-id for the id word of a listing line, whatever its bytes: the id itself when
    /// RFC 1939 allows it; otherwise (popa3d-style long ids, 8-bit or control bytes) its digest
    /// form, `~sha256:` and the SHA-256 of its bytes in hex. Equal bytes give equal ids, and
    /// the digest form is longer than any valid id, so the two kinds never collide.
    pub fn from_listing(word: &[u8]) -> Uid {
        if let Some(uid) = std::str::from_utf8(word).ok().and_then(Uid::new) {
            return uid;
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, word);
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        Uid(format!("{DIGEST_FORM_PREFIX}{hex}"))
    }

    /// A unique-id as pop3 writes it (state file, `--uid`): a valid RFC 1939 id, or the digest
    /// form [`Uid::from_listing`] gives an invalid one.
    pub fn parse(text: &str) -> Option<Uid> {
        if let Some(hex) = text.strip_prefix(DIGEST_FORM_PREFIX)
            && hex.len() == 64
            && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Some(Uid(text.to_owned()));
        }
        Uid::new(text)
    }
}

/// A short, printable rendering of server bytes for error messages.
pub(crate) fn printable(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(80)]);
    let mut shown: String = text
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if bytes.len() > 80 {
        shown.push('…');
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        let ok = parse_status_line(b"+OK Dovecot ready.").unwrap();
        assert!(ok.ok);
        assert_eq!(ok.code, None);
        assert_eq!(ok.text, "Dovecot ready.");

        assert_eq!(parse_status_line(b"+OK").unwrap().text, "");

        let err = parse_status_line(b"-ERR [IN-USE] Mailbox locked").unwrap();
        assert!(!err.ok);
        assert_eq!(err.code, Some(ResponseCode::InUse));
        assert_eq!(err.text, "Mailbox locked");
        assert_eq!(err.to_string(), "-ERR [IN-USE] Mailbox locked");

        let cases = [
            ("-ERR [LOGIN-DELAY] wait", ResponseCode::LoginDelay),
            ("-ERR [SYS/TEMP] later", ResponseCode::SysTemp),
            ("-ERR [SYS/PERM] never", ResponseCode::SysPerm),
            ("-ERR [AUTH] Authentication failed.", ResponseCode::Auth),
            ("-ERR [auth] lower case", ResponseCode::Auth),
            (
                "-ERR [X-VENDOR/THING] hmm",
                ResponseCode::Other("X-VENDOR/THING".into()),
            ),
        ];
        for (line, code) in cases {
            assert_eq!(
                parse_status_line(line.as_bytes()).unwrap().code,
                Some(code),
                "{line}"
            );
        }
        assert!(ResponseCode::InUse.is_temporary());
        assert!(!ResponseCode::Auth.is_temporary());
    }

    #[test]
    fn brackets_that_are_not_response_codes_stay_text() {
        let line = parse_status_line(b"-ERR [no such] message").unwrap();
        assert_eq!(line.code, None);
        assert_eq!(line.text, "[no such] message");
        let line = parse_status_line(b"-ERR [unclosed").unwrap();
        assert_eq!(line.code, None);
    }

    #[test]
    fn rejects_what_is_not_a_status_line() {
        for bad in [&b"OK"[..], b"+OKAY", b"-ERROR x", b"", b"* OK imap"] {
            assert!(parse_status_line(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn eight_bit_text_is_decoded_lossily() {
        let line = parse_status_line(b"-ERR Fehler \xfc").unwrap();
        assert!(line.text.starts_with("Fehler "));
    }

    #[test]
    fn auth_replies() {
        assert_eq!(
            parse_auth_reply(b"+ ").unwrap(),
            AuthReply::Continue(String::new())
        );
        assert_eq!(
            parse_auth_reply(b"+").unwrap(),
            AuthReply::Continue(String::new())
        );
        assert_eq!(
            parse_auth_reply(b"+ eyJzdGF0dXMiOiI0MDEifQ==").unwrap(),
            AuthReply::Continue("eyJzdGF0dXMiOiI0MDEifQ==".into())
        );
        assert!(matches!(
            parse_auth_reply(b"+OK Logged in.").unwrap(),
            AuthReply::Status(StatusLine { ok: true, .. })
        ));
    }

    #[test]
    fn stat_and_listings() {
        assert_eq!(
            parse_stat("2 320").unwrap(),
            MaildropStat {
                messages: 2,
                octets: 320
            }
        );
        assert!(parse_stat("two").is_err());
        let scan = parse_scan_listing(b"1 120 extra").unwrap();
        assert_eq!((scan.number.get(), scan.size), (1, 120));
        assert!(parse_scan_listing(b"0 120").is_err());
        assert!(parse_scan_listing(b"x 120").is_err());
        assert!(parse_scan_listing(b"1").is_err());
        let uid = parse_unique_id_listing(b"3 QhdPYR:00WBw1Ph7x7").unwrap();
        assert_eq!(uid.uid.as_str(), "QhdPYR:00WBw1Ph7x7");
        // A hostile UID is still a valid UID; what matters is that no one uses it as a path.
        assert_eq!(
            parse_unique_id_listing(b"4 ../../x").unwrap().uid.as_str(),
            "../../x"
        );
        assert!(parse_unique_id_listing(b"4").is_err());
        assert!(parse_unique_id_listing(b"junk line").is_err());
    }

    #[test]
    fn ids_that_break_rfc_1939_get_their_digest_form() {
        let long = "a".repeat(71);
        let odd: &[u8] = b"2 caf\xe9\x01x";
        let from_long = parse_unique_id_listing(format!("1 {long}").as_bytes()).unwrap();
        let from_odd = parse_unique_id_listing(odd).unwrap();
        let escape = parse_unique_id_listing(b"3 caf\xc3\xa9\x1b[2J").unwrap();
        let invalid_utf8 = parse_unique_id_listing(&[b'4', b' ', 0xff]).unwrap();
        assert_eq!(from_odd.number.get(), 2);
        for uid in [
            &from_long.uid,
            &from_odd.uid,
            &escape.uid,
            &invalid_utf8.uid,
        ] {
            assert!(uid.as_str().starts_with("~sha256:") && uid.as_str().len() == 72);
            assert_eq!(Uid::parse(uid.as_str()).as_ref(), Some(uid), "round trip");
        }
        assert_ne!(from_long.uid, from_odd.uid);
        // Equal bytes, equal ids; a valid id is kept as it is.
        assert_eq!(Uid::from_listing(long.as_bytes()), from_long.uid);
        assert_eq!(Uid::from_listing(b"abc").as_str(), "abc");
        // Only pop3's own digest form is accepted beyond RFC 1939.
        assert_ne!(
            Uid::from_listing(&[b'a'; 72]),
            from_long.uid,
            "distinct ids stay distinct"
        );
        assert!(Uid::parse(&format!("~sha256:{}", "g".repeat(64))).is_none());
        assert!(Uid::parse(&format!("~sha256:{}", "a".repeat(63))).is_none());
        assert!(Uid::parse(&long).is_none());
        assert!(Uid::parse("ok").is_some());
    }

    #[test]
    fn uid_validation() {
        assert!(Uid::new("").is_none());
        assert!(Uid::new(&"a".repeat(71)).is_none());
        assert!(Uid::new(&"a".repeat(70)).is_some());
        assert!(Uid::new("has space").is_none());
        assert!(MessageNumber::new(0).is_none());
    }

    #[test]
    fn line_endings() {
        assert_eq!(trim_line_ending(b"+OK\r\n"), b"+OK");
        assert_eq!(trim_line_ending(b"+OK\n"), b"+OK");
        assert_eq!(trim_line_ending(b"+OK"), b"+OK");
    }
}
