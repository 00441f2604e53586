//! Transcripts: a POP3 dialogue written as `S:` (server) and `C:` (client) lines, one step per
//! line, parsed into [`Script`] steps. The syntax is described in
//! `tests/fixtures/transcripts/README.md`.
//!
//! Test-only, and shared by two builds: the unit tests replay transcripts against [`Client`]
//! over an in-memory stream (`transcript_tests`), and the integration tests' scripted POP3
//! server (`tests/it/support/scripted.rs`, which includes this file with `#[path]`) serves
//! them over TCP to the real binary. So one fixture file means the same dialogue to both, and
//! this file uses nothing but `std`.
//!
//! [`Client`]: super::Client

// Each of the two builds uses a part of it (the unit replay has no TLS, the server shows steps).
#![allow(dead_code)]

use std::time::Duration;

/// Decodes the escapes of an `S=:` step.
pub fn unescape(text: &str, line_no: usize) -> Vec<u8> {
    let bad = |why: &str| -> ! { panic!("script line {line_no}: {why} in {text:?}") };
    let mut out = Vec::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        match chars.next() {
            Some('r') => out.push(b'\r'),
            Some('n') => out.push(b'\n'),
            Some('t') => out.push(b'\t'),
            Some('0') => out.push(0),
            Some('\\') => out.push(b'\\'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                match u8::from_str_radix(&hex, 16) {
                    Ok(b) if hex.len() == 2 => out.push(b),
                    _ => bad("bad \\xNN escape"),
                }
            }
            Some(other) => bad(&format!("unknown escape \\{other}")),
            None => bad("trailing backslash"),
        }
    }
    out
}

/// One step of a [`Script`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Bytes to send, and how the step looked in the script (for the transcript).
    Send { bytes: Vec<u8>, shown: String },
    /// Read a line; it must be `text` + CRLF.
    Expect(String),
    /// Read a line; any content.
    ExpectAny,
    /// Read a line; it must start with the prefix.
    ExpectPrefix(String),
    /// `!close`: close the connection cleanly.
    Close,
    /// `!abort`: drop the connection at once.
    Abort,
    /// `!sleep MS`.
    Sleep(Duration),
    /// `!quiet MS`: wait, then fail if the client sent anything not yet read.
    Quiet(Duration),
    /// `!starttls`: the server side of a TLS handshake.
    StartTls,
    /// `!flush`.
    Flush,
}

/// A parsed transcript (see the module docs for the syntax).
#[derive(Debug, Clone)]
pub struct Script {
    /// Steps with the script line numbers they came from (1-based).
    pub steps: Vec<(usize, Step)>,
}

impl Script {
    /// Parses a transcript. Panics (it is a test helper) on a line it does not understand.
    pub fn parse(text: &str) -> Script {
        let mut steps = Vec::new();
        for (idx, raw) in text.lines().enumerate() {
            let line_no = idx + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some((_, last)) = steps.last()
                && matches!(last, Step::Close | Step::Abort)
            {
                panic!("script line {line_no}: step after !close/!abort: {line:?}");
            }
            let arg = |prefix: &str| -> Option<String> {
                line.strip_prefix(prefix)
                    .map(|rest| rest.trim_start().to_owned())
            };
            let step = if let Some(text) = arg("S=:") {
                Step::Send {
                    bytes: unescape(&text, line_no),
                    shown: format!("S=: {text}"),
                }
            } else if let Some(text) = arg("S-:") {
                let mut bytes = text.clone().into_bytes();
                bytes.push(b'\n');
                Step::Send {
                    bytes,
                    shown: format!("S-: {text}   [bare LF]"),
                }
            } else if let Some(text) = arg("S:") {
                let mut bytes = text.clone().into_bytes();
                bytes.extend_from_slice(b"\r\n");
                Step::Send {
                    bytes,
                    shown: format!("S: {text}"),
                }
            } else if let Some(text) = arg("C~") {
                Step::ExpectPrefix(text)
            } else if let Some(text) = arg("C:") {
                if text == "*" {
                    Step::ExpectAny
                } else {
                    Step::Expect(text)
                }
            } else if let Some(cmd) = line.strip_prefix('!') {
                let mut words = cmd.split_whitespace();
                let name = words.next().unwrap_or("");
                let step = match name {
                    "close" => Step::Close,
                    "abort" => Step::Abort,
                    "starttls" => Step::StartTls,
                    "flush" => Step::Flush,
                    "sleep" | "quiet" => {
                        let ms = words.next().and_then(|w| w.parse::<u64>().ok()).unwrap_or_else(
                            || panic!("script line {line_no}: `!{name} MS` needs milliseconds: {line:?}"),
                        );
                        let wait = Duration::from_millis(ms);
                        if name == "sleep" {
                            Step::Sleep(wait)
                        } else {
                            Step::Quiet(wait)
                        }
                    }
                    _ => panic!("script line {line_no}: unknown directive {line:?}"),
                };
                if words.next().is_some() {
                    panic!("script line {line_no}: extra words after directive: {line:?}");
                }
                step
            } else {
                panic!(
                    "script line {line_no}: cannot parse step {line:?} (expected S:, S-:, S=:, C:, C~ or !directive)"
                );
            };
            steps.push((line_no, step));
        }
        Script { steps }
    }
}
