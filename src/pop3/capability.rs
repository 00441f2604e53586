//! The capability list a server announces in reply to `CAPA` (RFC 2449 §6).

/// What the server said it supports. A server without `CAPA` yields the default (nothing known).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    lines: Vec<String>,
}

impl Capabilities {
    /// Builds the model from the lines of a `CAPA` multi-line response.
    pub fn from_lines<I, S>(lines: I) -> Capabilities
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Capabilities {
            lines: lines
                .into_iter()
                .map(Into::into)
                .filter(|l| !l.trim().is_empty())
                .collect(),
        }
    }

    /// The capability lines as the server sent them.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// Whether the server answered `CAPA` with anything at all.
    pub fn is_known(&self) -> bool {
        !self.lines.is_empty()
    }

    /// Whether a capability tag (the first word of a line, case-insensitive) is present.
    pub fn has(&self, tag: &str) -> bool {
        self.find(tag).is_some()
    }

    /// The arguments of a capability, e.g. `["PLAIN", "LOGIN"]` for `SASL PLAIN LOGIN`.
    pub fn arguments(&self, tag: &str) -> Vec<&str> {
        self.find(tag)
            .map(|line| line.split_ascii_whitespace().skip(1).collect())
            .unwrap_or_default()
    }

    fn find(&self, tag: &str) -> Option<&str> {
        self.lines.iter().map(String::as_str).find(|line| {
            line.split_ascii_whitespace()
                .next()
                .is_some_and(|first| first.eq_ignore_ascii_case(tag))
        })
    }

    /// `TOP` (RFC 2449 §6.3).
    pub fn top(&self) -> bool {
        self.has("TOP")
    }

    /// `UIDL` (RFC 2449 §6.5).
    pub fn uidl(&self) -> bool {
        self.has("UIDL")
    }

    /// `USER`: USER/PASS login is allowed (RFC 2449 §6.4).
    pub fn user(&self) -> bool {
        self.has("USER")
    }

    /// `PIPELINING` (RFC 2449 §6.6): the client may send several commands without waiting.
    pub fn pipelining(&self) -> bool {
        self.has("PIPELINING")
    }

    /// `STLS` (RFC 2595 §4).
    pub fn stls(&self) -> bool {
        self.has("STLS")
    }

    /// Whether `SASL` lists `mechanism` (RFC 5034 §6).
    pub fn sasl(&self, mechanism: &str) -> bool {
        self.arguments("SASL")
            .iter()
            .any(|m| m.eq_ignore_ascii_case(mechanism))
    }

    /// The `IMPLEMENTATION` string, if the server names itself.
    pub fn implementation(&self) -> Option<&str> {
        self.find("IMPLEMENTATION")
            .and_then(|line| line.split_once(' ').map(|(_, rest)| rest.trim()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dovecot_capabilities() {
        let capa = Capabilities::from_lines([
            "CAPA",
            "TOP",
            "UIDL",
            "RESP-CODES",
            "PIPELINING",
            "AUTH-RESP-CODE",
            "STLS",
            "USER",
            "SASL PLAIN LOGIN",
            "IMPLEMENTATION Dovecot (Debian)",
        ]);
        assert!(capa.is_known());
        assert!(capa.top() && capa.uidl() && capa.pipelining() && capa.stls() && capa.user());
        assert!(capa.sasl("plain") && capa.sasl("LOGIN") && !capa.sasl("XOAUTH2"));
        assert_eq!(capa.implementation(), Some("Dovecot (Debian)"));
        assert_eq!(capa.arguments("SASL"), ["PLAIN", "LOGIN"]);
    }

    #[test]
    fn tags_match_whole_words_only() {
        let capa = Capabilities::from_lines(["TOPLESS", "sasl-ir", "uidl"]);
        assert!(!capa.top());
        assert!(capa.uidl(), "tags are case-insensitive");
        assert!(!capa.sasl("PLAIN"));
        assert!(!Capabilities::default().is_known());
    }
}
