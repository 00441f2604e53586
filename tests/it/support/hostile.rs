//! An in-process POP3 server that answers whatever the client asks, through a function the test
//! supplies: for replies no script can describe (endless data, sizes of 10^15 octets, randomly
//! mutated replies). [`ScriptedServer`](super::scripted::ScriptedServer) checks what the client
//! sends; this one only answers, for as many connections as the client opens.
//!
//! [`Mailbox`] gives the correct replies of a small maildrop, so a test can start from a correct
//! server and change only what it is about.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// What the server sends in reply to one command line (or to the connection, for the greeting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// These bytes, as they are.
    Bytes(Vec<u8>),
    /// `prefix`, then `chunk` again and again until the client stops reading (or `limit`
    /// octets were sent, then the connection is closed).
    Endless {
        /// Sent once first.
        prefix: Vec<u8>,
        /// Repeated.
        chunk: Vec<u8>,
        /// Stop after about this many octets.
        limit: u64,
    },
    /// These bytes, then close the connection.
    BytesThenClose(Vec<u8>),
    /// Say nothing for this long, then carry on with the next command.
    Stall(Duration),
}

/// Answers one command line (`""` for the greeting). Called once per line, in order.
pub type Responder = Box<dyn FnMut(&str) -> Answer + Send>;

/// A running server on 127.0.0.1; stops when dropped.
pub struct HostileServer {
    /// The port it listens on.
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HostileServer {
    /// Serves every connection with a fresh responder from `make`.
    pub fn start(mut make: impl FnMut() -> Responder + Send + 'static) -> HostileServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let responder = make();
                let stopping = Arc::clone(&stopping);
                // One thread per connection: a client may open a second one while the first
                // is still being answered.
                thread::spawn(move || serve(stream, responder, &stopping));
            }
        });
        HostileServer {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(stream: TcpStream, mut responder: Responder, stop: &AtomicBool) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(30)));
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut reader = BufReader::new(stream);
    if !answer(&mut writer, responder(""), stop) {
        return;
    }
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.by_ref().take(64 * 1024).read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        let command = text.trim_end_matches(['\r', '\n']).to_owned();
        let quit = command.eq_ignore_ascii_case("QUIT");
        if !answer(&mut writer, responder(&command), stop) || quit {
            let _ = writer.shutdown(Shutdown::Both);
            return;
        }
    }
}

/// Sends one answer; false when the connection is finished.
fn answer(writer: &mut TcpStream, answer: Answer, stop: &AtomicBool) -> bool {
    match answer {
        Answer::Bytes(bytes) => writer.write_all(&bytes).is_ok(),
        Answer::BytesThenClose(bytes) => {
            let _ = writer.write_all(&bytes);
            let _ = writer.shutdown(Shutdown::Both);
            false
        }
        Answer::Stall(duration) => {
            thread::sleep(duration);
            true
        }
        Answer::Endless {
            prefix,
            chunk,
            limit,
        } => {
            if writer.write_all(&prefix).is_err() {
                return false;
            }
            // Many copies per write: the client must be the bottleneck, not this loop.
            let block = chunk.repeat((64 * 1024 / chunk.len().max(1)).max(1));
            let mut sent = 0u64;
            while sent < limit && !stop.load(Ordering::SeqCst) {
                if writer.write_all(&block).is_err() {
                    return false;
                }
                sent += block.len() as u64;
            }
            let _ = writer.shutdown(Shutdown::Both);
            false
        }
    }
}

/// A small, correct maildrop: the replies of a well-behaved server.
#[derive(Debug, Clone)]
pub struct Mailbox {
    /// The messages, CRLF line endings, not byte-stuffed.
    pub messages: Vec<Vec<u8>>,
    /// Their unique-ids.
    pub uids: Vec<String>,
    /// The capability lines.
    pub capabilities: Vec<String>,
}

impl Mailbox {
    /// `count` short messages with distinct unique-ids; TOP, UIDL, USER and PIPELINING.
    pub fn new(count: usize) -> Mailbox {
        let messages = (1..=count)
            .map(|i| {
                format!(
                    "From: Sender {i} <s{i}@example.org>\r\nTo: alice@example.org\r\n\
                     Subject: message {i}\r\nDate: Sat, 21 Nov 2026 10:00:00 +0000\r\n\
                     Message-ID: <{i}@example.org>\r\n\r\nBody of message {i}.\r\n.dot line\r\n"
                )
                .into_bytes()
            })
            .collect();
        Mailbox {
            messages,
            uids: (1..=count).map(|i| format!("uid-{i}")).collect(),
            capabilities: ["TOP", "UIDL", "USER", "PIPELINING"]
                .map(String::from)
                .to_vec(),
        }
    }

    /// The correct reply to `command` (`""`: the greeting).
    pub fn reply(&self, command: &str) -> Vec<u8> {
        let mut words = command.split_ascii_whitespace();
        let verb = words.next().unwrap_or("").to_ascii_uppercase();
        let argument = words.next().and_then(|w| w.parse::<usize>().ok());
        let message = |n: Option<usize>| n.filter(|&n| n >= 1 && n <= self.messages.len());
        let total: usize = self.messages.iter().map(Vec::len).sum();
        let ok = |text: &str| format!("+OK {text}\r\n").into_bytes();
        let no_such = b"-ERR no such message\r\n".to_vec();
        match verb.as_str() {
            "" => ok("ready <1896.697170952@example.org>"),
            "CAPA" => {
                let mut reply = b"+OK\r\n".to_vec();
                for line in &self.capabilities {
                    reply.extend_from_slice(line.as_bytes());
                    reply.extend_from_slice(b"\r\n");
                }
                reply.extend_from_slice(b".\r\n");
                reply
            }
            "USER" | "PASS" | "NOOP" | "RSET" | "APOP" => ok(""),
            "QUIT" => ok("bye"),
            "STAT" => ok(&format!("{} {total}", self.messages.len())),
            "LIST" | "UIDL" if argument.is_some() => match message(argument) {
                Some(n) if verb == "LIST" => ok(&format!("{n} {}", self.messages[n - 1].len())),
                Some(n) => ok(&format!("{n} {}", self.uids[n - 1])),
                None => no_such,
            },
            "LIST" | "UIDL" => {
                let mut reply = b"+OK\r\n".to_vec();
                for (i, m) in self.messages.iter().enumerate() {
                    let line = if verb == "LIST" {
                        format!("{} {}\r\n", i + 1, m.len())
                    } else {
                        format!("{} {}\r\n", i + 1, self.uids[i])
                    };
                    reply.extend_from_slice(line.as_bytes());
                }
                reply.extend_from_slice(b".\r\n");
                reply
            }
            "RETR" | "TOP" => match message(argument) {
                Some(n) => {
                    let mut text = self.messages[n - 1].clone();
                    if verb == "TOP" {
                        let end = text
                            .windows(4)
                            .position(|w| w == b"\r\n\r\n")
                            .map_or(text.len(), |i| i + 4);
                        text.truncate(end);
                    }
                    let mut reply = ok("");
                    reply.extend_from_slice(&stuff(&text));
                    reply.extend_from_slice(b".\r\n");
                    reply
                }
                None => no_such,
            },
            "DELE" => match message(argument) {
                Some(_) => ok("marked"),
                None => no_such,
            },
            _ => b"-ERR unknown command\r\n".to_vec(),
        }
    }
}

/// Byte-stuffs a message (RFC 1939 §3).
pub fn stuff(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 16);
    let mut at_line_start = true;
    for &b in text {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    out
}
