//! POP3 commands and their encoding on the wire (RFC 1939 §3: a keyword, arguments separated by
//! single spaces, CRLF).
//!
//! Arguments come from users and servers (a user name, a UID), so encoding refuses CR, LF and NUL
//! inside them: otherwise one argument could smuggle a second command into the session.

use super::{Error, MessageNumber, Result};

/// A command the client sends.
#[derive(Clone, PartialEq, Eq)]
pub enum Command<'a> {
    /// `USER name` (RFC 1939 §7).
    User(&'a str),
    /// `PASS secret` (RFC 1939 §7).
    Pass(&'a str),
    /// `APOP name digest` (RFC 1939 §7).
    Apop {
        /// The mailbox name.
        user: &'a str,
        /// Lower-case hex MD5 of the greeting's timestamp followed by the secret.
        digest: &'a str,
    },
    /// `AUTH mechanism [initial-response]` (RFC 5034).
    Auth {
        /// The SASL mechanism name, e.g. `PLAIN`.
        mechanism: &'a str,
        /// The base64 initial response, which holds credentials.
        initial_response: Option<&'a str>,
    },
    /// A base64 line answering a SASL `+` continuation; it holds credentials.
    SaslResponse(&'a str),
    /// `CAPA` (RFC 2449).
    Capa,
    /// `STLS` (RFC 2595).
    Stls,
    /// `STAT`.
    Stat,
    /// `LIST [msg]`.
    List(Option<MessageNumber>),
    /// `UIDL [msg]`.
    Uidl(Option<MessageNumber>),
    /// `RETR msg`.
    Retr(MessageNumber),
    /// `TOP msg lines`.
    Top(MessageNumber, u32),
    /// `DELE msg`.
    Dele(MessageNumber),
    /// `NOOP`.
    Noop,
    /// `RSET`.
    Rset,
    /// `QUIT`.
    Quit,
}

impl Command<'_> {
    /// The command keyword, as it appears on the wire.
    pub fn keyword(&self) -> &'static str {
        match self {
            Command::User(_) => "USER",
            Command::Pass(_) => "PASS",
            Command::Apop { .. } => "APOP",
            Command::Auth { .. } => "AUTH",
            Command::SaslResponse(_) => "AUTH",
            Command::Capa => "CAPA",
            Command::Stls => "STLS",
            Command::Stat => "STAT",
            Command::List(_) => "LIST",
            Command::Uidl(_) => "UIDL",
            Command::Retr(_) => "RETR",
            Command::Top(..) => "TOP",
            Command::Dele(_) => "DELE",
            Command::Noop => "NOOP",
            Command::Rset => "RSET",
            Command::Quit => "QUIT",
        }
    }

    /// Appends the command line, CRLF included, to `out`. Secrets are copied straight from
    /// the argument into `out`, with no copy in between: the caller wipes `out` (and should
    /// size it with [`Command::encoded_len`] so that growing it leaves no stale copy).
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<()> {
        for argument in self.text_arguments() {
            if argument.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
                return Err(Error::InvalidArgument {
                    command: self.keyword(),
                });
            }
        }
        let (head, arguments) = self.parts();
        out.extend_from_slice(head.as_bytes());
        for argument in arguments.iter().flatten() {
            if !head.is_empty() {
                out.push(b' ');
            }
            out.extend_from_slice(argument.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        Ok(())
    }

    /// The length of the encoded line, CRLF included.
    pub fn encoded_len(&self) -> usize {
        let (head, arguments) = self.parts();
        let spaces = usize::from(!head.is_empty());
        head.len()
            + arguments
                .iter()
                .flatten()
                .map(|a| a.len() + spaces)
                .sum::<usize>()
            + 2
    }

    /// The keyword (empty for a SASL response line) and up to two arguments, borrowed where
    /// they are text so that secrets are not copied.
    fn parts(&self) -> (&'static str, [Option<std::borrow::Cow<'_, str>>; 2]) {
        use std::borrow::Cow::{Borrowed, Owned};
        let keyword = self.keyword();
        match self {
            Command::User(a) | Command::Pass(a) => (keyword, [Some(Borrowed(a)), None]),
            Command::Apop { user, digest } => {
                (keyword, [Some(Borrowed(user)), Some(Borrowed(digest))])
            }
            Command::Auth {
                mechanism,
                initial_response,
            } => (
                keyword,
                [Some(Borrowed(mechanism)), initial_response.map(Borrowed)],
            ),
            Command::SaslResponse(response) => ("", [Some(Borrowed(response)), None]),
            Command::List(n) | Command::Uidl(n) => {
                (keyword, [n.map(|n| Owned(n.to_string())), None])
            }
            Command::Retr(n) | Command::Dele(n) => (keyword, [Some(Owned(n.to_string())), None]),
            Command::Top(n, lines) => (
                keyword,
                [Some(Owned(n.to_string())), Some(Owned(lines.to_string()))],
            ),
            Command::Capa
            | Command::Stls
            | Command::Stat
            | Command::Noop
            | Command::Rset
            | Command::Quit => (keyword, [None, None]),
        }
    }

    /// The command line, CRLF included.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// The command line with every secret replaced by `***`: safe for traces and error messages.
    pub fn redacted(&self) -> String {
        self.line(true)
    }

    fn line(&self, redact: bool) -> String {
        let secret = |s: &str| {
            if redact {
                "***".to_owned()
            } else {
                s.to_owned()
            }
        };
        match self {
            Command::User(name) => format!("USER {name}"),
            Command::Pass(password) => format!("PASS {}", secret(password)),
            Command::Apop { user, digest } => format!("APOP {user} {}", secret(digest)),
            Command::Auth {
                mechanism,
                initial_response: None,
            } => format!("AUTH {mechanism}"),
            Command::Auth {
                mechanism,
                initial_response: Some(response),
            } => format!("AUTH {mechanism} {}", secret(response)),
            Command::SaslResponse(response) => secret(response),
            Command::List(Some(n)) => format!("LIST {n}"),
            Command::Uidl(Some(n)) => format!("UIDL {n}"),
            Command::Retr(n) => format!("RETR {n}"),
            Command::Top(n, lines) => format!("TOP {n} {lines}"),
            Command::Dele(n) => format!("DELE {n}"),
            other => other.keyword().to_owned(),
        }
    }

    /// Arguments that carry free text and so must be checked for line breaks.
    fn text_arguments(&self) -> Vec<&str> {
        match self {
            Command::User(a) | Command::Pass(a) | Command::SaslResponse(a) => vec![a],
            Command::Apop { user, digest } => vec![user, digest],
            Command::Auth {
                mechanism,
                initial_response,
            } => std::iter::once(*mechanism)
                .chain(initial_response.iter().copied())
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Whether the reply is a multi-line response (RFC 1939 §3) when it starts with `+OK`.
    pub fn has_multiline_reply(&self) -> bool {
        matches!(
            self,
            Command::Capa
                | Command::List(None)
                | Command::Uidl(None)
                | Command::Retr(_)
                | Command::Top(..)
        )
    }
}

/// Debug never shows secrets: a `Command` may end up in a log or a panic message.
impl std::fmt::Debug for Command<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Command({:?})", self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(number: u32) -> MessageNumber {
        MessageNumber::new(number).unwrap()
    }

    #[test]
    fn encodes_exact_bytes() {
        let cases: Vec<(Command, &[u8])> = vec![
            (Command::User("alice"), b"USER alice\r\n"),
            (Command::Pass("s3cret pass"), b"PASS s3cret pass\r\n"),
            (Command::Stat, b"STAT\r\n"),
            (Command::List(None), b"LIST\r\n"),
            (Command::List(Some(n(7))), b"LIST 7\r\n"),
            (Command::Uidl(Some(n(2))), b"UIDL 2\r\n"),
            (Command::Retr(n(12)), b"RETR 12\r\n"),
            (Command::Top(n(3), 0), b"TOP 3 0\r\n"),
            (Command::Dele(n(1)), b"DELE 1\r\n"),
            (Command::Capa, b"CAPA\r\n"),
            (Command::Stls, b"STLS\r\n"),
            (Command::Quit, b"QUIT\r\n"),
            (
                Command::Auth {
                    mechanism: "PLAIN",
                    initial_response: Some("AGFsaWNlAHB3"),
                },
                b"AUTH PLAIN AGFsaWNlAHB3\r\n",
            ),
            (
                Command::Apop {
                    user: "mrose",
                    digest: "c4c9334bac560ecc979e58001b3e22fb",
                },
                b"APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n",
            ),
        ];
        for (command, expected) in cases {
            assert_eq!(command.encode().unwrap(), expected, "{command:?}");
        }
    }

    #[test]
    fn encoded_len_is_exact() {
        let commands = [
            Command::User("alice"),
            Command::Pass("pw"),
            Command::SaslResponse("AGFsaWNlAHB3"),
            Command::Auth {
                mechanism: "XOAUTH2",
                initial_response: None,
            },
            Command::Auth {
                mechanism: "PLAIN",
                initial_response: Some("AGFsaWNlAHB3"),
            },
            Command::Top(n(3), 10),
            Command::List(None),
            Command::Quit,
        ];
        for command in commands {
            assert_eq!(
                command.encode().unwrap().len(),
                command.encoded_len(),
                "{command:?}"
            );
        }
        assert_eq!(Command::SaslResponse("x").encode().unwrap(), b"x\r\n");
    }

    #[test]
    fn refuses_line_breaks_in_arguments() {
        for evil in ["alice\r\nDELE 1", "alice\nQUIT", "a\rb", "nul\0"] {
            assert!(matches!(
                Command::User(evil).encode(),
                Err(Error::InvalidArgument { command: "USER" })
            ));
            assert!(Command::Pass(evil).encode().is_err());
            assert!(Command::SaslResponse(evil).encode().is_err());
        }
    }

    #[test]
    fn redaction_hides_every_secret() {
        let secret = "hunter2";
        let commands = [
            Command::Pass(secret),
            Command::Apop {
                user: "bob",
                digest: secret,
            },
            Command::Auth {
                mechanism: "PLAIN",
                initial_response: Some(secret),
            },
            Command::SaslResponse(secret),
        ];
        for command in commands {
            assert!(!command.redacted().contains(secret));
            assert!(!format!("{command:?}").contains(secret));
            assert!(command.redacted().contains("***"));
        }
        assert_eq!(Command::User("bob").redacted(), "USER bob");
    }
}
