//! The AUTHORIZATION state (RFC 1939 §4): the greeting, STLS, and the logins that turn a
//! [`Client`] into a [`Session`]: USER/PASS, APOP (RFC 1939 §7) and SASL (RFC 5034, which
//! carries PLAIN and the OAuth mechanisms). Separate because it is the only place that handles
//! secrets on the wire, and the only state in which the stream may still be swapped for TLS.

use std::io::{Read, Write};

use super::Session;
use super::connection::{Connection, Direction, Tracer};
use crate::pop3::command::Command;
use crate::pop3::response::{
    AuthReply, MAX_STATUS_LINE, StatusLine, parse_auth_reply, parse_status_line,
};
use crate::pop3::{Capabilities, Error, Result};

/// What the server said when the connection opened.
#[derive(Debug, Clone)]
pub struct Greeting {
    /// The greeting status line.
    pub status: StatusLine,
    /// The APOP timestamp (`<...@...>`, RFC 1939 §7), when the server offers APOP.
    pub apop_timestamp: Option<String>,
}

impl Greeting {
    fn new(status: StatusLine) -> Greeting {
        let apop_timestamp = status.text.find('<').and_then(|start| {
            let rest = &status.text[start..];
            rest.find('>').map(|end| rest[..=end].to_owned())
        });
        Greeting {
            status,
            apop_timestamp,
        }
    }
}

/// A connection in the AUTHORIZATION state.
pub struct Client<S> {
    connection: Connection<S>,
    /// Commands to send in the same write as the login (see [`Client::send_after_login`]).
    after_login: Vec<Command<'static>>,
}

impl<S: Read + Write> Client<S> {
    /// Wraps a freshly opened stream and reads the server's greeting.
    pub fn connect(stream: S, tracer: Option<Tracer>) -> Result<(Client<S>, Greeting)> {
        let mut connection = Connection::new(stream, tracer);
        let line = connection.read_line(MAX_STATUS_LINE)?;
        connection.trace(Direction::Server, &String::from_utf8_lossy(&line));
        let status = parse_status_line(&line)?;
        if !status.ok {
            return Err(Error::Server {
                command: "the connection".into(),
                status,
            });
        }
        Ok((
            Client {
                connection,
                after_login: Vec::new(),
            },
            Greeting::new(status),
        ))
    }

    /// Resumes after a TLS upgrade: no greeting follows STLS (RFC 2595 §4).
    pub(crate) fn resume(stream: S, tracer: Option<Tracer>) -> Client<S> {
        Client {
            connection: Connection::new(stream, tracer),
            after_login: Vec::new(),
        }
    }

    /// Pipelines `commands` behind the login (RFC 2449 §6.6): they leave in the same write as
    /// the login's last command, so that, say, the post-login CAPA, LIST and UIDL cost no
    /// round trip of their own. Their replies are read when the [`Session`] asks for them;
    /// should the login fail, they are never read (they were answered with `-ERR` or not at
    /// all). Only for servers that announced PIPELINING, and only for logins that take one
    /// exchange: a SASL mechanism without an initial response ignores this.
    pub(crate) fn send_after_login(&mut self, commands: &[Command<'static>]) {
        self.after_login = commands.to_vec();
    }

    /// Sends the login's last command(s) with the commands to pipeline behind them, which
    /// then wait in `ahead` for the session.
    fn send_login(&mut self, login: &[Command<'_>]) -> Result<()> {
        let tail = std::mem::take(&mut self.after_login);
        let mut commands = login.to_vec();
        commands.extend(tail.iter().cloned());
        self.connection.send(&commands)?;
        self.connection.ahead.extend(tail);
        Ok(())
    }

    fn into_session(self) -> Session<S> {
        Session {
            connection: self.connection,
        }
    }

    /// Whether the server has said something nobody asked for, as far as the buffer and
    /// `pending` (a look at the stream that must not block) can tell. RFC 1939 has the server
    /// speak only when spoken to, so in AUTHORIZATION that is a goodbye (an idle timeout).
    pub(crate) fn spoke_unasked(&self, pending: impl FnOnce(&S) -> bool) -> bool {
        self.connection.start != self.connection.end || pending(&self.connection.stream)
    }

    /// Asks for the capability list; a server without `CAPA` yields an empty list.
    pub(crate) fn capa(&mut self) -> Result<Capabilities> {
        self.connection.capa()
    }

    /// Sends `STLS`. On `+OK` returns the bare stream and the tracer, ready for the TLS
    /// handshake; continue with [`Client::resume`] over the TLS stream.
    pub(crate) fn stls(mut self) -> Result<(S, Option<Tracer>)> {
        self.connection.command(Command::Stls)?;
        // Anything already received arrived before TLS: an attacker may have injected it.
        if self.connection.start != self.connection.end {
            return Err(Error::StlsInjection);
        }
        Ok((self.connection.stream, self.connection.tracer))
    }

    /// Logs in with `USER` and `PASS` (RFC 1939 §7).
    pub fn login_user(mut self, user: &str, password: &str) -> Result<Session<S>> {
        if self.after_login.is_empty() {
            self.connection.command(Command::User(user))?;
            self.connection.command(Command::Pass(password))?;
        } else {
            // Pipelined: a refused USER makes the server refuse PASS too, and is reported.
            let (user, pass) = (Command::User(user), Command::Pass(password));
            self.send_login(&[user.clone(), pass.clone()])?;
            self.connection.read_status(&user)?;
            self.connection.read_status(&pass)?;
        }
        Ok(self.into_session())
    }

    /// Logs in with `APOP` (RFC 1939 §7): the secret itself is never sent, only an MD5 digest
    /// over the greeting's timestamp and the secret.
    pub(crate) fn login_apop(
        mut self,
        user: &str,
        password: &str,
        timestamp: &str,
    ) -> Result<Session<S>> {
        use md5::{Digest, Md5};
        // md-5's `zeroize` feature wipes the hasher's buffered input (which holds the
        // password) when `finalize` consumes it.
        let mut hasher = Md5::new();
        hasher.update(timestamp.as_bytes());
        hasher.update(password.as_bytes());
        let hash = zeroize::Zeroizing::new(<[u8; 16]>::from(hasher.finalize()));
        // 32 hex digits, in a buffer that never grows and is wiped on drop.
        let mut digest = zeroize::Zeroizing::new(String::with_capacity(32));
        for b in hash.iter() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            digest.push(HEX[usize::from(b >> 4)] as char);
            digest.push(HEX[usize::from(b & 15)] as char);
        }
        let apop = Command::Apop {
            user,
            digest: &digest,
        };
        self.send_login(std::slice::from_ref(&apop))?;
        self.connection.read_status(&apop)?;
        Ok(self.into_session())
    }

    /// Authenticates with a SASL mechanism (RFC 5034). `initial_response` is the base64
    /// payload sent on the `AUTH` line, if any; `respond` answers each base64 challenge with
    /// the next base64 line. Payloads are secrets: never traced, and wiped once sent.
    pub(crate) fn authenticate(
        mut self,
        mechanism: &str,
        initial_response: Option<&str>,
        mut respond: impl FnMut(&str) -> zeroize::Zeroizing<String>,
    ) -> Result<Session<S>> {
        let auth = Command::Auth {
            mechanism,
            initial_response,
        };
        if initial_response.is_some() {
            self.send_login(std::slice::from_ref(&auth))?;
        } else {
            // A challenge-response exchange: nothing may follow AUTH until it is over.
            self.after_login.clear();
            self.connection.send(std::slice::from_ref(&auth))?;
        }
        loop {
            let line = self.connection.read_line(MAX_STATUS_LINE)?;
            match parse_auth_reply(&line)? {
                AuthReply::Continue(_) if !self.connection.ahead.is_empty() => {
                    // The server would take the pipelined commands for SASL answers.
                    return Err(Error::Protocol(
                        "the server asked for more after a complete SASL initial response".into(),
                    ));
                }
                AuthReply::Continue(challenge) => {
                    self.connection.trace(Direction::Server, "+ ***");
                    let answer = respond(&challenge);
                    self.connection.send(&[Command::SaslResponse(&answer)])?;
                }
                AuthReply::Status(status) => {
                    self.connection
                        .trace(Direction::Server, &String::from_utf8_lossy(&line));
                    if status.ok {
                        return Ok(self.into_session());
                    }
                    return Err(Error::Server {
                        command: auth.redacted(),
                        status,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pop3::ResponseCode;
    use crate::pop3::client::test_streams::*;
    use std::io::{self, Cursor};

    #[test]
    fn greeting_timestamp_and_apop_digest() {
        // The example of RFC 1939 §7.
        let server = b"+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n+OK\r\n";
        let (client, greeting) = Client::connect(OneByteStream::new(server), None).unwrap();
        let timestamp = greeting.apop_timestamp.unwrap();
        assert_eq!(timestamp, "<1896.697170952@dbc.mtview.ca.us>");
        let session = client.login_apop("mrose", "tanstaaf", &timestamp).unwrap();
        assert_eq!(
            session.connection.stream.written,
            b"APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n"
        );
    }

    #[test]
    fn err_replies_carry_the_response_code() {
        let server = b"+OK hi\r\n+OK\r\n-ERR [IN-USE] locked\r\n";
        let (client, _) = Client::connect(OneByteStream::new(server), None).unwrap();
        let err = client.login_user("alice", "secret").err().unwrap();
        assert_eq!(err.response_code(), Some(&ResponseCode::InUse));
        let text = err.to_string();
        assert!(
            text.contains("PASS ***") && !text.contains("secret"),
            "{text}"
        );
    }

    #[test]
    fn sasl_exchange_with_continuations() {
        let server = b"+OK hi\r\n+ \r\n+OK logged in\r\n";
        let (client, _) = Client::connect(OneByteStream::new(server), None).unwrap();
        let mut challenges = Vec::new();
        let session = client
            .authenticate("PLAIN", None, |c| {
                challenges.push(c.to_owned());
                zeroize::Zeroizing::new("AGFsaWNlAHB3".into())
            })
            .unwrap();
        assert_eq!(challenges, [""]);
        assert_eq!(
            session.connection.stream.written,
            b"AUTH PLAIN\r\nAGFsaWNlAHB3\r\n"
        );
    }

    #[test]
    fn stls_refuses_bytes_sent_before_the_handshake() {
        let server = b"+OK hi\r\n+OK Begin TLS\r\n+OK injected\r\n";
        let (client, _) = Client::connect(OneByteStream::new(server), None).unwrap();
        // One byte per read means the injected bytes are not yet buffered: read them eagerly
        // with a stream that delivers everything at once instead.
        drop(client);
        struct AllAtOnce(Cursor<Vec<u8>>, Vec<u8>);
        impl Read for AllAtOnce {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.0.read(buf)
            }
        }
        impl Write for AllAtOnce {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.1.extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let (client, _) =
            Client::connect(AllAtOnce(Cursor::new(server.to_vec()), Vec::new()), None).unwrap();
        assert!(matches!(client.stls(), Err(Error::StlsInjection)));
    }

    #[test]
    fn status_line_over_512_octets_is_an_error() {
        let mut server = b"+OK ".to_vec();
        server.extend(std::iter::repeat_n(b'x', 600));
        server.extend_from_slice(b"\r\n");
        assert!(matches!(
            Client::connect(OneByteStream::new(&server), None),
            Err(Error::LineTooLong { limit: 512 })
        ));
    }

    #[test]
    fn tracer_never_sees_secrets() {
        use std::sync::{Arc, Mutex};
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let tracer: Tracer = Box::new(move |direction, line| {
            log.lock().unwrap().push(format!("{direction:?} {line}"));
        });
        let server = b"+OK hi\r\n+OK\r\n+OK\r\n";
        let (client, _) = Client::connect(OneByteStream::new(server), Some(tracer)).unwrap();
        client.login_user("alice", "topsecret").unwrap();
        let seen = seen.lock().unwrap().join("\n");
        assert!(seen.contains("Client PASS ***"), "{seen}");
        assert!(!seen.contains("topsecret"));
    }
}
