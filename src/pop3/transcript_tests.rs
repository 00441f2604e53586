//! The canonical transcripts of `tests/fixtures/transcripts/` replayed against the real
//! [`Client`] over an in-memory stream. The integration tests serve the same files to the real
//! binary (`tests/it/support/scripted.rs`), so a change in what the client sends fails both.
//!
//! The replay is strict: the server's bytes are handed out one byte per read, each `C:` step
//! must match the next line the client wrote, `!quiet` fails when the client wrote more than
//! the script has read (it sent ahead of a reply), a client waiting for a reply that the
//! script only gives after a line the client never sent fails at once (a real server would
//! wait for ever), and at the end every line the client wrote must have been matched.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::rc::Rc;

use super::transcript::{Script, Step};
use super::{
    Capabilities, Client, Command, Error, MessageNumber, Reply, ResponseCode, Session, Uid,
};

/// The server side of a transcript, and what the client wrote.
struct Replay {
    name: &'static str,
    steps: VecDeque<(usize, Step)>,
    /// Bytes of `S` steps not yet read by the client.
    to_client: VecDeque<u8>,
    /// Everything the client wrote.
    written: Vec<u8>,
    /// How much of `written` the `C` steps have matched.
    matched: usize,
    /// The script closed the connection (or ended).
    closed: bool,
}

impl Replay {
    fn fail(&self, line_no: usize, why: &str) -> ! {
        panic!(
            "transcript {} line {line_no}: {why}\n--- client wrote ---\n{}",
            self.name,
            String::from_utf8_lossy(&self.written)
        )
    }

    /// The next complete line the client wrote and no step has matched yet.
    fn next_client_line(&mut self) -> Option<Vec<u8>> {
        let rest = &self.written[self.matched..];
        let end = rest.iter().position(|&b| b == b'\n')? + 1;
        self.matched += end;
        Some(rest[..end].to_vec())
    }

    /// Matches a `C` step against the next line the client wrote; `waiting` says the client
    /// is blocked reading, so a missing line can never come.
    fn expect(&mut self, line_no: usize, step: &Step, waiting: bool) {
        let Some(line) = self.next_client_line() else {
            let why = if waiting {
                "the client waits for a reply but has not sent the line this step expects"
            } else {
                "the client stopped before sending the line this step expects"
            };
            self.fail(line_no, &format!("{why}: {step:?}"));
        };
        let ok = line.strip_suffix(b"\r\n").is_some_and(|body| match step {
            Step::Expect(text) => body == text.as_bytes(),
            Step::ExpectPrefix(prefix) => body.starts_with(prefix.as_bytes()),
            _ => true,
        });
        if !ok {
            self.fail(
                line_no,
                &format!(
                    "expected {step:?} but the client sent {:?}",
                    String::from_utf8_lossy(&line)
                ),
            );
        }
    }

    /// Runs steps until the client has bytes to read or the connection is closed.
    fn serve(&mut self) -> io::Result<()> {
        while self.to_client.is_empty() && !self.closed {
            let Some((line_no, step)) = self.steps.pop_front() else {
                self.closed = true;
                break;
            };
            match step {
                Step::Send { bytes, .. } => self.to_client.extend(bytes),
                Step::Expect(_) | Step::ExpectAny | Step::ExpectPrefix(_) => {
                    self.expect(line_no, &step, true);
                }
                Step::Quiet(_) => {
                    if self.matched < self.written.len() {
                        self.fail(
                            line_no,
                            "`!quiet`: the client sent more before the reply it should wait for",
                        );
                    }
                }
                Step::Sleep(_) | Step::Flush => {}
                Step::Close => self.closed = true,
                Step::Abort => {
                    self.closed = true;
                    return Err(io::ErrorKind::ConnectionReset.into());
                }
                Step::StartTls => self.fail(line_no, "`!starttls` needs the scripted server"),
            }
        }
        Ok(())
    }

    /// After the client is done: the `C` steps left must match what it still wrote (a final
    /// QUIT whose reply it did not read, say), and nothing may be left unmatched.
    fn finish(&mut self) -> Vec<u8> {
        while let Some((line_no, step)) = self.steps.pop_front() {
            match step {
                Step::Expect(_) | Step::ExpectAny | Step::ExpectPrefix(_) => {
                    self.expect(line_no, &step, false);
                }
                Step::Close | Step::Abort => break,
                _ => {}
            }
        }
        if self.matched < self.written.len() {
            panic!(
                "transcript {}: the client sent more than the transcript shows: {:?}",
                self.name,
                String::from_utf8_lossy(&self.written[self.matched..])
            );
        }
        std::mem::take(&mut self.written)
    }
}

/// The client's end of the replay; the test keeps another handle to check what was written
/// after the session (consumed by `quit`) is gone.
struct ReplayStream(Rc<RefCell<Replay>>);

impl Read for ReplayStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut replay = self.0.borrow_mut();
        replay.serve()?;
        match (replay.to_client.pop_front(), buf.first_mut()) {
            (Some(byte), Some(slot)) => {
                *slot = byte;
                Ok(1)
            }
            (Some(byte), None) => {
                replay.to_client.push_front(byte);
                Ok(0)
            }
            (None, _) => Ok(0),
        }
    }
}

impl Write for ReplayStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().written.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A transcript ready to be replayed: [`Fixture::connect`] for the client, then
/// [`Fixture::finish`] for the lines the client wrote.
struct Fixture(Rc<RefCell<Replay>>);

impl Fixture {
    fn new(name: &'static str, text: &str) -> Fixture {
        let steps = Script::parse(text).steps.into();
        Fixture(Rc::new(RefCell::new(Replay {
            name,
            steps,
            to_client: VecDeque::new(),
            written: Vec::new(),
            matched: 0,
            closed: false,
        })))
    }

    /// The client's end, for `Client::connect`.
    fn stream(&self) -> ReplayStream {
        ReplayStream(Rc::clone(&self.0))
    }

    /// Checks the rest of the transcript against what the client wrote; returns its lines.
    fn finish(self) -> Vec<String> {
        let written = self.0.borrow_mut().finish();
        String::from_utf8(written)
            .expect("the client wrote UTF-8")
            .split_terminator("\r\n")
            .map(str::to_owned)
            .collect()
    }
}

/// Loads `tests/fixtures/transcripts/NAME.txt`, at compile time: no path is needed at run time.
macro_rules! fixture {
    ($name:literal) => {
        Fixture::new(
            $name,
            include_str!(concat!("../../tests/fixtures/transcripts/", $name, ".txt")),
        )
    };
}

fn n(number: u32) -> MessageNumber {
    MessageNumber::new(number).unwrap()
}

/// The retrieved message, byte-stuffing removed.
fn retr(session: &mut Session<ReplayStream>, number: u32) -> String {
    let mut data = Vec::new();
    session
        .retr(n(number), &mut |chunk| {
            data.extend_from_slice(chunk);
            Ok(())
        })
        .unwrap();
    String::from_utf8(data).unwrap()
}

/// CAPA, USER/PASS and CAPA again: the opening the USER/PASS transcripts share. Returns the
/// capabilities announced after login.
fn user_login(mut client: Client<ReplayStream>) -> (Capabilities, Session<ReplayStream>) {
    assert!(client.capa().unwrap().user());
    let mut session = client.login_user("alice", "pw").unwrap();
    (session.capa().unwrap(), session)
}

/// Message A of `tests/it/support/fetch.rs`, as it arrives after unstuffing.
const MESSAGE_A: &str = "From: alice@example.org\r\nTo: bob@example.org\r\nSubject: one\r\n\r\n\
    First message.\r\n.leading dot\r\n.\r\n..two dots\r\nend\r\n";

#[test]
fn transcript_login_user_stat() {
    let fixture = fixture!("login-user-stat");
    let (client, greeting) = Client::connect(fixture.stream(), None).unwrap();
    assert_eq!(greeting.status.text, "ready");
    assert!(greeting.apop_timestamp.is_none());
    let (capabilities, mut session) = user_login(client);
    assert!(capabilities.user() && capabilities.uidl());
    let stat = session.stat().unwrap();
    assert_eq!((stat.messages, stat.octets), (3, 24678));
    let uids: Vec<_> = session.uidl().unwrap().into_iter().map(|u| u.uid).collect();
    assert_eq!(uids, ["a", "b", "c"].map(|u| Uid::new(u).unwrap()));
    // Nothing marked: QUIT is sent, its reply not awaited.
    assert!(session.quit().unwrap().is_none());
    assert_eq!(fixture.finish().last().unwrap(), "QUIT");
}

#[test]
fn transcript_login_apop() {
    let fixture = fixture!("login-apop");
    let (mut client, greeting) = Client::connect(fixture.stream(), None).unwrap();
    let timestamp = greeting.apop_timestamp.expect("APOP timestamp");
    assert_eq!(timestamp, "<1896.697170952@dbc.mtview.ca.us>");
    assert!(!client.capa().unwrap().is_known());
    let mut session = client.login_apop("mrose", "tanstaaf", &timestamp).unwrap();
    assert!(!session.capa().unwrap().is_known());
    assert_eq!(session.stat().unwrap().messages, 1);
    assert!(session.quit().unwrap().is_none());
    let sent = fixture.finish();
    assert!(!sent.iter().any(|l| l.contains("tanstaaf")), "{sent:?}");
}

#[test]
fn transcript_login_sasl_plain() {
    let fixture = fixture!("login-sasl-plain");
    let (mut client, _) = Client::connect(fixture.stream(), None).unwrap();
    assert!(client.capa().unwrap().sasl("PLAIN"));
    let mut session = client
        .authenticate("PLAIN", Some("AGFsaWNlAHB3"), |_| {
            panic!("no challenge follows a complete initial response")
        })
        .unwrap();
    assert!(!session.capa().unwrap().is_known());
    let stat = session.stat().unwrap();
    assert_eq!((stat.messages, stat.octets), (1, 10));
    assert!(session.quit().unwrap().is_none());
    fixture.finish();
}

#[test]
fn transcript_login_refused() {
    let fixture = fixture!("login-refused");
    let (mut client, _) = Client::connect(fixture.stream(), None).unwrap();
    client.capa().unwrap();
    let err = client.login_user("alice", "pw").err().expect("refused");
    assert_eq!(err.response_code(), Some(&ResponseCode::InUse));
    assert!(matches!(err, Error::Server { .. }), "{err}");
    assert_eq!(fixture.finish(), ["CAPA", "USER alice", "PASS pw"]);
}

/// LIST and UIDL of the listing transcripts: message 1, 120 octets, unique-id "abc".
fn assert_one_listing(session: &mut Session<ReplayStream>) {
    let list = session.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!((list[0].number, list[0].size), (n(1), 120));
    let uids = session.uidl().unwrap();
    assert_eq!(uids.len(), 1);
    assert_eq!((uids[0].number, uids[0].uid.as_str()), (n(1), "abc"));
}

#[test]
fn transcript_list_uidl_lockstep() {
    let fixture = fixture!("list-uidl-lockstep");
    let (client, _) = Client::connect(fixture.stream(), None).unwrap();
    let (capabilities, mut session) = user_login(client);
    assert!(capabilities.uidl() && !capabilities.pipelining());
    assert_one_listing(&mut session);
    assert!(session.quit().unwrap().is_none());
    fixture.finish();
}

#[test]
fn transcript_list_uidl_pipelined() {
    let fixture = fixture!("list-uidl-pipelined");
    let (mut client, _) = Client::connect(fixture.stream(), None).unwrap();
    assert!(client.capa().unwrap().pipelining());
    client.send_after_login(&[Command::Capa, Command::List(None), Command::Uidl(None)]);
    let mut session = client.login_user("alice", "pw").unwrap();
    assert!(session.capa().unwrap().pipelining());
    assert_one_listing(&mut session);
    assert!(session.quit().unwrap().is_none());
    fixture.finish();
}

#[test]
fn transcript_retr_dot_stuffing() {
    let fixture = fixture!("retr-dot-stuffing");
    let (client, _) = Client::connect(fixture.stream(), None).unwrap();
    let (_, mut session) = user_login(client);
    assert_eq!(session.list().unwrap()[0].size, 112);
    let message = retr(&mut session, 1);
    assert_eq!(message, MESSAGE_A);
    assert_eq!(message.len(), 112, "the size LIST announced");
    assert!(session.quit().unwrap().is_none());
    fixture.finish();
}

#[test]
fn transcript_top_headers_pipelined() {
    let fixture = fixture!("top-headers-pipelined");
    let (client, _) = Client::connect(fixture.stream(), None).unwrap();
    let (capabilities, mut session) = user_login(client);
    assert!(capabilities.top() && capabilities.pipelining());
    let sizes: Vec<u64> = session.list().unwrap().iter().map(|l| l.size).collect();
    assert_eq!(sizes, [100, 200]);
    let mut headers = [String::new(), String::new()];
    let commands = [Command::Top(n(1), 0), Command::Top(n(2), 0)];
    session
        .pipeline(&commands, 10, &mut |i, reply| {
            match reply {
                Reply::Data(data) => headers[i] += &String::from_utf8_lossy(data),
                Reply::Refused(status) => panic!("TOP refused: {status:?}"),
                Reply::Accepted(_) | Reply::End => {}
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(
        headers,
        [
            "Subject: first\r\n\r\n",
            "Subject: second\r\nFrom: =?UTF-8?Q?J=C3=BCrgen?= <j@example.de>\r\n\r\n"
        ]
    );
    assert!(session.quit().unwrap().is_none());
    fixture.finish();
}

#[test]
fn transcript_dele_quit() {
    let fixture = fixture!("dele-quit");
    let (client, _) = Client::connect(fixture.stream(), None).unwrap();
    let (_, mut session) = user_login(client);
    assert_eq!(session.list().unwrap().len(), 2);
    session.dele(n(2)).unwrap();
    // After a DELE, QUIT waits for the server to confirm: only then is the message gone.
    let confirmed = session.quit().unwrap().expect("QUIT's reply after a DELE");
    assert_eq!(confirmed.text, "bye");
    fixture.finish();
}

#[test]
fn transcript_fetch_all_delete_two() {
    let fixture = fixture!("fetch-all-delete-two");
    let (client, _) = Client::connect(fixture.stream(), None).unwrap();
    let (capabilities, mut session) = user_login(client);
    assert!(!capabilities.pipelining());
    let sizes: Vec<u64> = session.list().unwrap().iter().map(|l| l.size).collect();
    assert_eq!(sizes, [112, 58]);
    let uids: Vec<String> = session
        .uidl()
        .unwrap()
        .iter()
        .map(|u| u.uid.as_str().to_owned())
        .collect();
    assert_eq!(uids, ["uid-A", "uid-B"]);
    assert_eq!(retr(&mut session, 1), MESSAGE_A);
    assert_eq!(
        retr(&mut session, 2),
        "From: carol@example.org\r\nSubject: two\r\n\r\nSecond message.\r\n"
    );
    // Without PIPELINING the DELEs go one at a time (window 1), and QUIT only after both.
    let commands = [Command::Dele(n(1)), Command::Dele(n(2))];
    let mut accepted = 0;
    session
        .pipeline(&commands, 1, &mut |_, reply| {
            accepted += usize::from(matches!(reply, Reply::Accepted(_)));
            Ok(())
        })
        .unwrap();
    assert_eq!(accepted, 2);
    assert_eq!(session.quit().unwrap().expect("confirmed").text, "bye");
    fixture.finish();
}
