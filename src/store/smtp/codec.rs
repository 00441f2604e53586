//! The sans-I/O half of the SMTP/LMTP client: reply parsing (RFC 5321 §4.2, enhanced status
//! codes of RFC 3463), command encoding, the EHLO/LHLO extension list, the DATA encoder
//! (CRLF line endings and byte-stuffing, RFC 5321 §4.5.2) and the scan of a local message that
//! decides its envelope sender and MAIL parameters. Nothing here touches a socket.

use std::io::{self, Read};

/// The longest reply line accepted. RFC 5321 §4.5.3.1.5 allows 512 octets; real servers send
/// longer EHLO lines, and anything beyond this is a broken or hostile server.
pub const MAX_REPLY_LINE: usize = 4096;
/// The most lines one reply may have (an EHLO reply lists one extension per line).
pub const MAX_REPLY_LINES: usize = 128;
/// The most characters of server text kept per reply line (for messages to people).
const MAX_KEPT_TEXT: usize = 512;
/// The longest address accepted in an envelope (RFC 5321 §4.5.3.1.3: a path is at most 256
/// octets including the angle brackets).
pub const MAX_PATH: usize = 254;

/// A protocol violation by the server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// A reply line does not start with a three-digit code.
    #[error("malformed reply line from the server: {0:?}")]
    Malformed(String),
    /// The lines of a multi-line reply carry different codes.
    #[error("the lines of a multi-line reply carry different codes ({0} and {1})")]
    MixedCodes(u16, u16),
    /// A reply line is longer than [`MAX_REPLY_LINE`].
    #[error("a reply line from the server is longer than {MAX_REPLY_LINE} octets")]
    LineTooLong,
    /// A reply has more than [`MAX_REPLY_LINES`] lines.
    #[error("a reply from the server has more than {MAX_REPLY_LINES} lines")]
    TooManyLines,
}

/// An enhanced mail system status code (RFC 3463), e.g. `5.1.1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnhancedCode {
    /// 2, 4 or 5.
    pub class: u8,
    /// The subject (0 to 999).
    pub subject: u16,
    /// The detail (0 to 999).
    pub detail: u16,
}

impl std::fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// A complete server reply: its code, the enhanced status code when the server gives one, and
/// the text of each line (control characters replaced, each line bounded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit reply code.
    pub code: u16,
    /// The enhanced status code of the first line, if any (RFC 2034).
    pub enhanced: Option<EnhancedCode>,
    /// The text of each line, without the code, the separator and the enhanced code.
    pub lines: Vec<String>,
}

impl Reply {
    /// 2xx.
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// 4xx: try again later.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// 5xx: do not retry unchanged.
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }
}

impl std::fmt::Display for Reply {
    /// One line: `550 5.1.1 text of line one; line two`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(enhanced) = self.enhanced {
            write!(f, " {enhanced}")?;
        }
        let text: Vec<&str> = self
            .lines
            .iter()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
            .collect();
        if !text.is_empty() {
            write!(f, " {}", text.join("; "))?;
        }
        Ok(())
    }
}

/// Collects reply lines into a [`Reply`]; feed it one line (without CRLF) at a time.
#[derive(Debug, Default)]
pub struct ReplyParser {
    code: Option<u16>,
    enhanced: Option<EnhancedCode>,
    lines: Vec<String>,
}

impl ReplyParser {
    /// A parser waiting for the first line of a reply.
    pub fn new() -> ReplyParser {
        ReplyParser::default()
    }

    /// Takes one line (CR LF already removed). Returns the reply once its last line came.
    pub fn push_line(&mut self, line: &[u8]) -> Result<Option<Reply>, ReplyError> {
        if line.len() > MAX_REPLY_LINE {
            return Err(ReplyError::LineTooLong);
        }
        let malformed = || ReplyError::Malformed(printable(&line[..line.len().min(80)]));
        if line.len() < 3 || !line[..3].iter().all(u8::is_ascii_digit) {
            return Err(malformed());
        }
        let code = u16::from(line[0] - b'0') * 100
            + u16::from(line[1] - b'0') * 10
            + u16::from(line[2] - b'0');
        if !(200..600).contains(&code) && !(100..200).contains(&code) {
            return Err(malformed());
        }
        let (last, text) = match line.get(3) {
            None => (true, &[][..]),
            Some(b' ') => (true, &line[4..]),
            Some(b'-') => (false, &line[4..]),
            Some(_) => return Err(malformed()),
        };
        match self.code {
            Some(first) if first != code => return Err(ReplyError::MixedCodes(first, code)),
            Some(_) => {}
            None => self.code = Some(code),
        }
        if self.lines.len() >= MAX_REPLY_LINES {
            return Err(ReplyError::TooManyLines);
        }
        let mut text = text;
        if self.lines.is_empty()
            && let Some((enhanced, rest)) = parse_enhanced(text, (code / 100) as u8)
        {
            self.enhanced = Some(enhanced);
            text = rest;
        } else if let Some(enhanced) = self.enhanced
            && let Some((next, rest)) = parse_enhanced(text, enhanced.class)
            && next == enhanced
        {
            // Servers repeat the enhanced code on every line; show it once.
            text = rest;
        }
        self.lines
            .push(printable(&text[..text.len().min(MAX_KEPT_TEXT)]));
        if !last {
            return Ok(None);
        }
        let parser = std::mem::take(self);
        Ok(Some(Reply {
            code,
            enhanced: parser.enhanced,
            lines: parser.lines,
        }))
    }
}

/// `class.subject.detail ` at the start of `text` (RFC 3463 §2), when its class matches the
/// reply code's.
fn parse_enhanced(text: &[u8], class: u8) -> Option<(EnhancedCode, &[u8])> {
    let end = text.iter().position(|&b| b == b' ').unwrap_or(text.len());
    let word = std::str::from_utf8(&text[..end]).ok()?;
    let mut parts = word.split('.');
    let (c, s, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || c.len() != 1 || s.is_empty() || s.len() > 3 || d.is_empty() {
        return None;
    }
    if d.len() > 3 || !(c.bytes().chain(s.bytes()).chain(d.bytes())).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let enhanced = EnhancedCode {
        class: c.parse().ok()?,
        subject: s.parse().ok()?,
        detail: d.parse().ok()?,
    };
    if enhanced.class != class {
        return None;
    }
    Some((enhanced, text.get(end + 1..).unwrap_or_default()))
}

/// Server text made safe to print: UTF-8 (lossy), control characters as `?`.
fn printable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// What the server announced in its EHLO/LHLO reply (RFC 5321 §4.1.1.1) that this client uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extensions {
    /// PIPELINING (RFC 2920).
    pub pipelining: bool,
    /// SIZE (RFC 1870), with the server's limit when it gives one (0 = none).
    pub size: Option<u64>,
    /// 8BITMIME (RFC 6152).
    pub eight_bit_mime: bool,
    /// SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
    /// ENHANCEDSTATUSCODES (RFC 2034).
    pub enhanced_status_codes: bool,
    /// CHUNKING (RFC 3030): `BDAT n LAST` instead of DATA, so no 354 has to be awaited.
    pub chunking: bool,
}

impl Extensions {
    /// The extensions listed in a positive EHLO/LHLO reply (the first line is the greeting).
    pub fn from_ehlo(reply: &Reply) -> Extensions {
        let mut ext = Extensions::default();
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let Some(keyword) = words.next() else {
                continue;
            };
            match keyword.to_ascii_uppercase().as_str() {
                "PIPELINING" => ext.pipelining = true,
                "SIZE" => ext.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0)),
                "8BITMIME" => ext.eight_bit_mime = true,
                "SMTPUTF8" => ext.smtputf8 = true,
                "ENHANCEDSTATUSCODES" => ext.enhanced_status_codes = true,
                "CHUNKING" => ext.chunking = true,
                _ => {}
            }
        }
        ext
    }
}

/// A command this client sends. Arguments are checked when the command is built
/// ([`check_address`]), so encoding cannot fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    /// `LHLO name` (RFC 2033 §4.1).
    Lhlo(&'a str),
    /// `EHLO name`.
    Ehlo(&'a str),
    /// `HELO name`, for servers that do not know EHLO.
    Helo(&'a str),
    /// `MAIL FROM:<sender> params`.
    MailFrom {
        /// The reverse path, empty for the null sender `<>`.
        sender: &'a str,
        /// `SIZE=n`, when the server offers SIZE.
        size: Option<u64>,
        /// `BODY=8BITMIME`.
        eight_bit: bool,
        /// `SMTPUTF8`.
        smtputf8: bool,
    },
    /// `RCPT TO:<recipient>`.
    RcptTo(&'a str),
    /// `DATA`.
    Data,
    /// `BDAT n LAST` (RFC 3030 §2): the whole message as one chunk of `n` octets follows.
    BdatLast(u64),
    /// `RSET`.
    Rset,
    /// `QUIT`.
    Quit,
}

impl Command<'_> {
    /// Appends the command and its CRLF to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let text = match self {
            Command::Lhlo(name) => format!("LHLO {name}"),
            Command::Ehlo(name) => format!("EHLO {name}"),
            Command::Helo(name) => format!("HELO {name}"),
            Command::MailFrom {
                sender,
                size,
                eight_bit,
                smtputf8,
            } => {
                let mut text = format!("MAIL FROM:<{sender}>");
                if let Some(size) = size {
                    text.push_str(&format!(" SIZE={size}"));
                }
                if *eight_bit {
                    text.push_str(" BODY=8BITMIME");
                }
                if *smtputf8 {
                    text.push_str(" SMTPUTF8");
                }
                text
            }
            Command::RcptTo(recipient) => format!("RCPT TO:<{recipient}>"),
            Command::Data => "DATA".to_owned(),
            Command::BdatLast(size) => format!("BDAT {size} LAST"),
            Command::Rset => "RSET".to_owned(),
            Command::Quit => "QUIT".to_owned(),
        };
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// Checks that `address` can go between the angle brackets of an SMTP path: not empty, at most
/// [`MAX_PATH`] octets, no control characters, no `<` or `>`, whitespace only inside a quoted
/// local part. Returns a reason when it cannot.
pub fn check_address(address: &str) -> Result<(), &'static str> {
    if address.is_empty() {
        return Err("it is empty");
    }
    if address.len() > MAX_PATH {
        return Err("it is longer than 254 octets");
    }
    let mut quoted = false;
    let mut escaped = false;
    for c in address.chars() {
        if c.is_control() {
            return Err("it contains a control character");
        }
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' | '>' => return Err("it contains '<' or '>'"),
            c if c.is_whitespace() && !quoted => return Err("it contains a space"),
            _ => {}
        }
    }
    if quoted {
        return Err("it has an unterminated quote");
    }
    Ok(())
}

/// Encodes a message for DATA while it streams: every line ends in CRLF (a bare LF becomes
/// CRLF; a bare CR is passed on unchanged, it ends no line), a line starting with `.` gets
/// another `.` (RFC 5321 §4.5.2), and [`DataEncoder::finish`] ends the last line and adds the
/// terminating `.`. Chunks may split the input anywhere.
#[derive(Debug)]
pub struct DataEncoder {
    at_line_start: bool,
    pending_cr: bool,
    /// DATA needs byte-stuffing and the `.` line; BDAT (RFC 3030) sends the octets as they are.
    data: bool,
}

impl Default for DataEncoder {
    fn default() -> Self {
        DataEncoder::new()
    }
}

impl DataEncoder {
    /// An encoder at the start of a message.
    pub fn new() -> DataEncoder {
        DataEncoder {
            at_line_start: true,
            pending_cr: false,
            data: true,
        }
    }

    /// An encoder for a BDAT chunk: line endings normalised as for DATA, but no byte-stuffing
    /// and no `.` line (RFC 3030 §2).
    pub fn for_bdat() -> DataEncoder {
        DataEncoder {
            data: false,
            ..DataEncoder::new()
        }
    }

    /// Appends the encoding of `input` to `out`.
    pub fn encode(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + input.len() / 32);
        while let Some(&first) = input.first() {
            if self.pending_cr {
                self.pending_cr = false;
                if first == b'\n' {
                    out.extend_from_slice(b"\r\n");
                    self.at_line_start = true;
                    input = &input[1..];
                    continue;
                }
                out.push(b'\r');
            }
            if self.data && self.at_line_start && first == b'.' {
                out.push(b'.');
            }
            self.at_line_start = false;
            match memchr::memchr2(b'\r', b'\n', input) {
                None => {
                    out.extend_from_slice(input);
                    return;
                }
                Some(end) => {
                    out.extend_from_slice(&input[..end]);
                    if input[end] == b'\n' {
                        out.extend_from_slice(b"\r\n");
                        self.at_line_start = true;
                    } else {
                        self.pending_cr = true;
                    }
                    input = &input[end + 1..];
                }
            }
        }
    }

    /// Ends the message: a CR held back becomes CRLF, an unterminated last line gets its CRLF,
    /// then the `.` line.
    pub fn finish(mut self, out: &mut Vec<u8>) {
        if self.pending_cr {
            out.extend_from_slice(b"\r\n");
            self.at_line_start = true;
        }
        if !self.at_line_start {
            out.extend_from_slice(b"\r\n");
        }
        if self.data {
            out.extend_from_slice(b".\r\n");
        }
    }
}

/// What the envelope of a local message needs, learnt by reading it once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageScan {
    /// Size in octets once every line ends in CRLF (the `SIZE=` of RFC 1870).
    pub size: u64,
    /// Some octet is above 127: `BODY=8BITMIME`.
    pub eight_bit: bool,
    /// The address of the first `Return-Path:` header; `None` when absent, `<>` or unparsable
    /// (then the null sender is used).
    pub return_path: Option<String>,
}

/// The most octets of one header line (unfolded) examined for `Return-Path:`.
const MAX_RETURN_PATH_LINE: usize = 4096;

/// Reads from `reader` into `buf` once, trying again when a signal interrupted the read:
/// how many octets arrived, 0 at the end.
pub(crate) fn read_some(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match reader.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Reads `message` to its end and returns its [`MessageScan`], in bounded memory.
pub fn scan_message(mut message: impl Read) -> io::Result<MessageScan> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    let mut eight_bit = false;
    let mut prev = 0u8;
    let mut headers = HeaderScan::default();
    loop {
        let n = match read_some(&mut message, &mut buf)? {
            0 => break,
            n => n,
        };
        let chunk = &buf[..n];
        size += n as u64;
        for (i, &b) in chunk.iter().enumerate() {
            let before = if i == 0 { prev } else { chunk[i - 1] };
            if b == b'\n' && before != b'\r' {
                size += 1;
            }
        }
        eight_bit |= chunk.iter().any(|&b| b >= 0x80);
        if !headers.done {
            headers.feed(chunk);
        }
        prev = chunk[n - 1];
    }
    if !prev.eq(&b'\n') && size > 0 {
        size += 2;
    }
    headers.end_line();
    Ok(MessageScan {
        size,
        eight_bit,
        return_path: headers.return_path,
    })
}

/// Finds the first `Return-Path:` header of the header section, unfolding it.
#[derive(Debug, Default)]
struct HeaderScan {
    line: Vec<u8>,
    too_long: bool,
    /// The Return-Path header being collected (it may continue on folded lines).
    collecting: Option<Vec<u8>>,
    return_path: Option<String>,
    found: bool,
    done: bool,
}

impl HeaderScan {
    fn feed(&mut self, chunk: &[u8]) {
        for &b in chunk {
            if self.done {
                return;
            }
            if b == b'\n' {
                self.end_line();
            } else if self.line.len() < MAX_RETURN_PATH_LINE {
                self.line.push(b);
            } else {
                self.too_long = true;
            }
        }
    }

    fn end_line(&mut self) {
        if self.done {
            return;
        }
        let mut line = std::mem::take(&mut self.line);
        let too_long = std::mem::replace(&mut self.too_long, false);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        if continuation {
            if let Some(value) = &mut self.collecting {
                if too_long || value.len() + line.len() > MAX_RETURN_PATH_LINE {
                    self.collecting = None;
                    self.found = true;
                } else {
                    value.extend_from_slice(&line);
                }
            }
            return;
        }
        if let Some(value) = self.collecting.take() {
            self.return_path = parse_return_path(&value);
        }
        if line.is_empty() {
            self.done = true;
            return;
        }
        const NAME: &[u8] = b"return-path:";
        if !self.found && line.len() >= NAME.len() && line[..NAME.len()].eq_ignore_ascii_case(NAME)
        {
            self.found = true;
            if !too_long {
                self.collecting = Some(line[NAME.len()..].to_vec());
            }
        }
    }
}

/// The address in a `Return-Path:` value (RFC 5322 §3.6.7: `<addr-spec>` or `<>`), or `None`
/// for the null path or anything unparsable. A bare address without brackets is accepted, as
/// some MTAs write it.
pub fn parse_return_path(value: &[u8]) -> Option<String> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let inner = match (value.find('<'), value.rfind('>')) {
        (Some(open), Some(close)) if open < close => {
            // Only comments or nothing may surround the brackets.
            let outside = format!("{}{}", &value[..open], &value[close + 1..]);
            let outside = outside.trim();
            let comment = outside.starts_with('(') && outside.ends_with(')');
            if !outside.is_empty() && !comment {
                return None;
            }
            value[open + 1..close].trim()
        }
        (None, None) => value,
        _ => return None,
    };
    // A source route (`<@a,@b:user@c>`, RFC 5321 §4.1.2) is obsolete: keep the mailbox.
    let inner = match inner.strip_prefix('@') {
        Some(route) => route.split_once(':')?.1,
        None => inner,
    };
    if inner.is_empty() || !inner.contains('@') || check_address(inner).is_err() {
        return None;
    }
    Some(inner.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(text: &[u8]) -> Result<Vec<Reply>, ReplyError> {
        let mut parser = ReplyParser::new();
        let mut replies = Vec::new();
        for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if let Some(reply) = parser.push_line(line)? {
                replies.push(reply);
            }
        }
        Ok(replies)
    }

    #[test]
    fn multi_line_reply_with_enhanced_codes() {
        let replies = parse_all(
            b"250-mx.example.com\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n\
              250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250 SMTPUTF8\r\n550-5.1.1 no such\r\n550 5.1.1 user\r\n",
        )
        .unwrap();
        assert_eq!(replies.len(), 2);
        let ext = Extensions::from_ehlo(&replies[0]);
        assert_eq!(
            ext,
            Extensions {
                pipelining: true,
                size: Some(10_240_000),
                eight_bit_mime: true,
                smtputf8: true,
                enhanced_status_codes: true,
                chunking: true,
            }
        );
        let rejected = &replies[1];
        assert_eq!(rejected.code, 550);
        assert!(rejected.is_permanent());
        assert_eq!(
            rejected.enhanced,
            Some(EnhancedCode {
                class: 5,
                subject: 1,
                detail: 1
            })
        );
        assert_eq!(rejected.to_string(), "550 5.1.1 no such; user");
    }

    #[test]
    fn code_alone_and_mismatched_enhanced_class() {
        let replies = parse_all(b"250\r\n451 5.1.1 odd\r\n").unwrap();
        assert_eq!(replies[0].to_string(), "250");
        assert_eq!(replies[1].enhanced, None, "class must match the reply code");
        assert_eq!(replies[1].to_string(), "451 5.1.1 odd");
    }

    #[test]
    fn malformed_replies_are_errors() {
        for bad in [
            &b"25 ok"[..],
            b"abc ok",
            b"250x ok",
            b"999 too big",
            b"099 low",
            b"",
        ] {
            assert!(
                matches!(
                    ReplyParser::new().push_line(bad),
                    Err(ReplyError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
        assert_eq!(
            parse_all(b"250-a\r\n251 b\r\n"),
            Err(ReplyError::MixedCodes(250, 251))
        );
        let long = vec![b'2'; MAX_REPLY_LINE + 1];
        assert_eq!(
            ReplyParser::new().push_line(&long),
            Err(ReplyError::LineTooLong)
        );
    }

    #[test]
    fn endless_multi_line_reply_is_bounded() {
        let mut parser = ReplyParser::new();
        let mut result = Ok(None);
        for _ in 0..=MAX_REPLY_LINES {
            result = parser.push_line(b"250-again");
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(ReplyError::TooManyLines));
    }

    #[test]
    fn control_characters_in_server_text_are_masked() {
        let reply = parse_all(b"421 bye\x1b[31m\r\n").unwrap().remove(0);
        assert_eq!(reply.to_string(), "421 bye?[31m");
    }

    #[test]
    fn command_bytes() {
        let mut out = Vec::new();
        Command::Lhlo("host").encode(&mut out);
        Command::MailFrom {
            sender: "",
            size: None,
            eight_bit: false,
            smtputf8: false,
        }
        .encode(&mut out);
        Command::MailFrom {
            sender: "a@b",
            size: Some(42),
            eight_bit: true,
            smtputf8: true,
        }
        .encode(&mut out);
        Command::RcptTo("alice").encode(&mut out);
        Command::Data.encode(&mut out);
        Command::Rset.encode(&mut out);
        Command::Quit.encode(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "LHLO host\r\nMAIL FROM:<>\r\nMAIL FROM:<a@b> SIZE=42 BODY=8BITMIME SMTPUTF8\r\n\
             RCPT TO:<alice>\r\nDATA\r\nRSET\r\nQUIT\r\n"
        );
    }

    #[test]
    fn addresses_that_could_inject_commands_are_refused() {
        assert!(check_address("alice@example.com").is_ok());
        assert!(check_address("\"john doe\"@example.com").is_ok());
        assert!(check_address("alice").is_ok());
        for bad in [
            "",
            "a@b>\r\nRCPT TO:<evil@x",
            "a b@c",
            "a<b",
            "\"open@x",
            &"x".repeat(300),
        ] {
            assert!(check_address(bad).is_err(), "{bad:?}");
        }
    }

    fn encode_split(input: &[u8], split: usize) -> Vec<u8> {
        let mut encoder = DataEncoder::new();
        let mut out = Vec::new();
        encoder.encode(&input[..split], &mut out);
        encoder.encode(&input[split..], &mut out);
        encoder.finish(&mut out);
        out
    }

    #[test]
    fn bdat_encoding_normalises_line_ends_without_byte_stuffing() {
        let input: &[u8] = b".a\n..b\r\nc";
        for split in 0..=input.len() {
            let mut encoder = DataEncoder::for_bdat();
            let mut out = Vec::new();
            encoder.encode(&input[..split], &mut out);
            encoder.encode(&input[split..], &mut out);
            encoder.finish(&mut out);
            assert_eq!(out, b".a\r\n..b\r\nc\r\n", "split at {split}");
        }
        let mut out = Vec::new();
        Command::BdatLast(42).encode(&mut out);
        assert_eq!(out, b"BDAT 42 LAST\r\n");
    }

    #[test]
    fn dot_stuffing_and_crlf_across_every_split() {
        let cases: &[(&[u8], &[u8])] = &[
            (
                b".start\r\nmid.dle\r\n.\r\n..two\r\n",
                b"..start\r\nmid.dle\r\n..\r\n...two\r\n.\r\n",
            ),
            (b"lf only\n.dot\nend", b"lf only\r\n..dot\r\nend\r\n.\r\n"),
            (b"bare\rcr\r\n.x\r", b"bare\rcr\r\n..x\r\n.\r\n"),
            (b"a\r.b\n", b"a\r.b\r\n.\r\n"),
            (b"", b".\r\n"),
            (b"\n\n.", b"\r\n\r\n..\r\n.\r\n"),
        ];
        for (input, expected) in cases {
            for split in 0..=input.len() {
                assert_eq!(
                    encode_split(input, split),
                    *expected,
                    "input {:?} split at {split}",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }

    #[test]
    fn return_path_forms() {
        let parse = |s: &str| parse_return_path(s.as_bytes());
        assert_eq!(
            parse(" <alice@example.com>"),
            Some("alice@example.com".into())
        );
        assert_eq!(parse("<>"), None);
        assert_eq!(parse(""), None);
        assert_eq!(parse("bob@example.com"), Some("bob@example.com".into()));
        assert_eq!(
            parse("<bob@example.com> (comment)"),
            Some("bob@example.com".into())
        );
        assert_eq!(
            parse("<@relay.example:carol@example.com>"),
            Some("carol@example.com".into())
        );
        assert_eq!(parse("garbage <a@b> more"), None);
        assert_eq!(parse("<no-at-sign>"), None);
        assert_eq!(parse("<a@b>\r\nRCPT TO:<x>"), None);
        assert_eq!(parse("<a b@c>"), None);
    }

    #[test]
    fn scan_reads_size_eight_bit_and_the_first_return_path() {
        let message = b"Received: x\r\nreturn-path:\r\n  <first@example.com>\r\nReturn-Path: <second@example.com>\r\n\r\nbody \xc3\xa9\nReturn-Path: <body@example.com>\n";
        let scan = scan_message(&message[..]).unwrap();
        assert_eq!(scan.return_path.as_deref(), Some("first@example.com"));
        assert!(scan.eight_bit);
        // Two bare LFs become CRLF.
        assert_eq!(scan.size, message.len() as u64 + 2);
        let mut encoded = Vec::new();
        let mut encoder = DataEncoder::new();
        encoder.encode(message, &mut encoded);
        encoder.finish(&mut encoded);
        assert_eq!(
            scan.size + 3,
            encoded.len() as u64,
            "size excludes only the final dot line"
        );

        let plain = scan_message(&b"Subject: x\r\n\r\nno return path"[..]).unwrap();
        assert_eq!(plain.return_path, None);
        assert!(!plain.eight_bit);
        assert_eq!(plain.size, 28 + 2);
        let body_only = scan_message(&b"\r\nReturn-Path: <a@b>\r\n"[..]).unwrap();
        assert_eq!(
            body_only.return_path, None,
            "a header after the blank line is body"
        );
        let null = scan_message(&b"Return-Path: <>\r\n\r\n"[..]).unwrap();
        assert_eq!(null.return_path, None);
    }
}
