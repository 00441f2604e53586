//! SIGTERM and SIGINT stop `fetch-all` between messages (trial item 4): no new RETR, what is in
//! flight is received (or, from a stalled server, abandoned after a short deadline), what
//! arrived is durable and recorded, in delete mode exactly that is deleted, and the process
//! exits 143 / 130 (0 under `--every`) with one line saying how far it got. Before, the whole
//! maildrop's RETRs left in the first write, so a stop fetched everything.
//!
//! The server here is a small POP3 maildrop that streams slowly (a throttled link) and can stall
//! in the middle of a message; it serves any number of connections and applies DELE at QUIT, so
//! a second run sees what the first left.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::fetch::Fixture;

/// One message of the maildrop: `Subject: N` and `size` octets in all.
fn message(n: usize, size: usize) -> Vec<u8> {
    let mut text = format!("From: a@example.org\r\nSubject: {n}\r\n\r\n").into_bytes();
    let line = [b'x'; 78];
    while text.len() + 80 <= size {
        text.extend_from_slice(&line);
        text.extend_from_slice(b"\r\n");
    }
    text
}

#[derive(Default)]
struct Maildrop {
    /// (unique-id, message) of what is on the server.
    messages: Vec<(String, Vec<u8>)>,
    /// Unique-ids deleted by a confirmed QUIT.
    deleted: Vec<String>,
    /// Sessions that ended with QUIT.
    quits: usize,
    /// Messages sent complete (in any session).
    sent: usize,
    /// Whether a message stalled.
    stalled: bool,
}

/// A throttled POP3 server (PIPELINING, UIDL, USER).
struct SlowServer {
    port: u16,
    drop: Arc<Mutex<Maildrop>>,
    /// Octets per second when streaming a message; 0 for no limit.
    rate: Arc<Mutex<u64>>,
    /// The message (1-based, in the first session) that stalls half-way, if any.
    stall: Arc<Mutex<Option<usize>>>,
    stop: Arc<AtomicBool>,
}

impl SlowServer {
    fn start(count: usize, size: usize, rate: u64) -> SlowServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let drop = Arc::new(Mutex::new(Maildrop {
            messages: (1..=count)
                .map(|n| (format!("uid-{n}"), message(n, size)))
                .collect(),
            ..Maildrop::default()
        }));
        let server = SlowServer {
            port,
            drop,
            rate: Arc::new(Mutex::new(rate)),
            stall: Arc::new(Mutex::new(None)),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (drop, rate, stall, stop) = (
            Arc::clone(&server.drop),
            Arc::clone(&server.rate),
            Arc::clone(&server.stall),
            Arc::clone(&server.stop),
        );
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let (drop, rate, stall, stop) = (
                    Arc::clone(&drop),
                    Arc::clone(&rate),
                    Arc::clone(&stall),
                    Arc::clone(&stop),
                );
                std::thread::spawn(move || {
                    let _ = serve(client, &drop, &rate, &stall, &stop);
                });
            }
        });
        server
    }

    fn unthrottle(&self) {
        *self.rate.lock().unwrap() = 0;
        *self.stall.lock().unwrap() = None;
    }

    fn on_server(&self) -> usize {
        self.drop.lock().unwrap().messages.len()
    }
}

impl Drop for SlowServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(
    client: TcpStream,
    maildrop: &Mutex<Maildrop>,
    rate: &Mutex<u64>,
    stall: &Mutex<Option<usize>>,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut out = client.try_clone()?;
    let mut lines = BufReader::new(client);
    // A snapshot: message numbers are valid for the session.
    let messages = maildrop.lock().unwrap().messages.clone();
    let mut marked = Vec::new();
    out.write_all(b"+OK slow maildrop\r\n")?;
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let number = |i: usize| -> Option<usize> {
            let n: usize = words.get(i)?.parse().ok()?;
            (1..=messages.len()).contains(&n).then_some(n)
        };
        match words.first().map(|w| w.to_ascii_uppercase()).as_deref() {
            Some("CAPA") => out.write_all(b"+OK\r\nUSER\r\nUIDL\r\nPIPELINING\r\n.\r\n")?,
            Some("USER" | "PASS" | "NOOP") => out.write_all(b"+OK\r\n")?,
            Some("LIST") => {
                let mut reply = String::from("+OK\r\n");
                for (i, (_, body)) in messages.iter().enumerate() {
                    reply += &format!("{} {}\r\n", i + 1, body.len());
                }
                out.write_all(format!("{reply}.\r\n").as_bytes())?;
            }
            Some("UIDL") => {
                let mut reply = String::from("+OK\r\n");
                for (i, (uid, _)) in messages.iter().enumerate() {
                    reply += &format!("{} {uid}\r\n", i + 1);
                }
                out.write_all(format!("{reply}.\r\n").as_bytes())?;
            }
            Some("RETR") => {
                let Some(n) = number(1) else {
                    out.write_all(b"-ERR no such message\r\n")?;
                    continue;
                };
                out.write_all(b"+OK\r\n")?;
                let body = &messages[n - 1].1;
                for (i, chunk) in body.chunks(16 * 1024).enumerate() {
                    if *stall.lock().unwrap() == Some(n) && i * 16 * 1024 >= body.len() / 2 {
                        // Stalled: nothing more until the client goes away.
                        maildrop.lock().unwrap().stalled = true;
                        while !stop.load(Ordering::SeqCst) {
                            std::thread::sleep(Duration::from_millis(50));
                        }
                        return Ok(());
                    }
                    out.write_all(chunk)?;
                    let rate = *rate.lock().unwrap();
                    if rate > 0 {
                        std::thread::sleep(Duration::from_secs_f64(
                            chunk.len() as f64 / rate as f64,
                        ));
                    }
                }
                out.write_all(b".\r\n")?;
                maildrop.lock().unwrap().sent += 1;
            }
            Some("DELE") => match number(1) {
                Some(n) => {
                    marked.push(messages[n - 1].0.clone());
                    out.write_all(b"+OK\r\n")?;
                }
                None => out.write_all(b"-ERR no such message\r\n")?,
            },
            Some("QUIT") => {
                let mut drop = maildrop.lock().unwrap();
                drop.messages.retain(|(uid, _)| !marked.contains(uid));
                drop.deleted.extend(marked);
                drop.quits += 1;
                out.write_all(b"+OK bye\r\n")?;
                return Ok(());
            }
            _ => out.write_all(b"-ERR unknown command\r\n")?,
        }
    }
}

/// The subjects (message numbers) of the messages in the local Maildir's `new/`, sorted, with
/// repeats kept: a duplicate shows.
fn delivered(fixture: &Fixture) -> Vec<usize> {
    let mut numbers: Vec<usize> = fixture
        .new_messages()
        .iter()
        .map(|text| {
            let at = text.find("Subject: ").unwrap() + 9;
            text[at..].lines().next().unwrap().trim().parse().unwrap()
        })
        .collect();
    numbers.sort();
    numbers
}

fn spawn(fixture: &Fixture, port: u16, args: &[&str]) -> (Child, tempfile::TempDir) {
    let maildir = fixture.maildir();
    let mut all = vec!["--maildir", maildir.to_str().unwrap()];
    all.extend_from_slice(args);
    let (mut command, home) = fixture.command(port, &all).into_command();
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (child, home)
}

/// Waits until the server has sent `n` messages complete (or, with `n` 0, until it stalls),
/// then sends `signal`; returns when it was sent. The server's view, not the Maildir's: a
/// commit's syncfs can lag by seconds on a busy machine.
fn signal_after(child: &Child, server: &SlowServer, n: usize, signal: i32) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(30);
    let reached = || {
        let drop = server.drop.lock().unwrap();
        if n == 0 { drop.stalled } else { drop.sent >= n }
    };
    while !reached() {
        assert!(
            Instant::now() < deadline,
            "the server got nowhere within 30 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
    Instant::now()
}

/// Waits for the child (killing it after 20 s): its exit code, stderr, and how long it took.
fn finish(mut child: Child, since: Instant) -> (Option<i32>, String, Duration) {
    use std::io::Read;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if since.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = since.elapsed();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status.and_then(|s| s.code()), stderr, took)
}

/// The second run, at full speed, fetches exactly the rest.
fn second_run_fetches_the_rest(
    fixture: &Fixture,
    server: &SlowServer,
    count: usize,
    args: &[&str],
) {
    server.unthrottle();
    let maildir = fixture.maildir();
    let mut all = vec!["--maildir", maildir.to_str().unwrap()];
    all.extend_from_slice(args);
    let outcome = fixture.command(server.port, &all).run();
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert_eq!(
        delivered(fixture),
        (1..=count).collect::<Vec<_>>(),
        "every message once, none twice"
    );
}

const COUNT: usize = 20;
const SIZE: usize = 600 * 1024;

#[test]
fn sigterm_during_fetch_all_stops_between_messages_and_exits_143() {
    // 20 x 600 KB at 2 MB/s: 6 s for everything; the stop comes after the second message.
    let server = SlowServer::start(COUNT, SIZE, 2_000_000);
    let fixture = Fixture::new();
    let (child, _home) = spawn(&fixture, server.port, &["--keep", "-v"]);
    let sent = signal_after(&child, &server, 2, libc::SIGTERM);
    let (code, stderr, took) = finish(child, sent);
    assert_eq!(code, Some(143), "{stderr}");
    assert!(took < Duration::from_secs(10), "took {took:?}: {stderr}");
    let got = delivered(&fixture);
    assert!(!got.is_empty() && got.len() < COUNT, "{got:?}\n{stderr}");
    // What is in the Maildir is exactly what the state records.
    assert_eq!(
        fixture.delivered().len(),
        got.len(),
        "{}",
        fixture.state_text()
    );
    assert!(
        stderr.contains(&format!(
            "interrupted: fetched {} messages, the rest stay on the server",
            got.len()
        )),
        "{stderr}"
    );
    assert!(fixture.maildir_files("tmp").is_empty(), "tmp/ cleaned");
    second_run_fetches_the_rest(&fixture, &server, COUNT, &["--keep"]);
}

/// Trial 3: a stop that came once every message had been asked for (pipelined) still said
/// "the rest stay on the server", though the run went on to fetch them all.
#[test]
fn a_stop_after_every_message_was_asked_for_says_none_is_left_behind() {
    // 3 x 600 KB at 2 MB/s: all three fit in the first look-ahead (2 MiB), so all are asked
    // for at once; the stop comes after the first.
    let server = SlowServer::start(3, SIZE, 2_000_000);
    let fixture = Fixture::new();
    let (child, _home) = spawn(&fixture, server.port, &["--keep"]);
    let sent = signal_after(&child, &server, 1, libc::SIGTERM);
    let (code, stderr, _) = finish(child, sent);
    assert_eq!(code, Some(143), "{stderr}");
    assert_eq!(delivered(&fixture), vec![1, 2, 3], "{stderr}");
    assert!(
        stderr.contains(
            "interrupted: fetched 3 messages; every new message had been asked for already, so none is left behind"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("the rest stay"), "{stderr}");
}

#[test]
fn sigint_while_the_server_stalls_mid_message_cuts_the_connection_and_exits_130() {
    let server = SlowServer::start(COUNT, SIZE, 2_000_000);
    // Message 4 stops half-way and never goes on (the server would wait forever).
    *server.stall.lock().unwrap() = Some(4);
    let fixture = Fixture::new();
    let (child, _home) = spawn(&fixture, server.port, &["--delete"]);
    let sent = signal_after(&child, &server, 0, libc::SIGINT);
    let (code, stderr, took) = finish(child, sent);
    assert_eq!(code, Some(130), "{stderr}");
    assert!(took < Duration::from_secs(10), "took {took:?}: {stderr}");
    // Cut off by the stop's deadline (3 s), not by the read timeout (5 s): no error line.
    assert!(!stderr.contains("timed out"), "{stderr}");
    assert_eq!(delivered(&fixture), vec![1, 2, 3], "{stderr}");
    assert_eq!(fixture.delivered().len(), 3, "{}", fixture.state_text());
    assert!(
        stderr.contains("interrupted: fetched 3 messages, the rest stay on the server"),
        "{stderr}"
    );
    assert!(fixture.maildir_files("tmp").is_empty(), "tmp/ cleaned");
    // The connection was dropped without QUIT: nothing deleted.
    assert_eq!(server.drop.lock().unwrap().quits, 0);
    assert_eq!(server.on_server(), COUNT);
    // The next run deletes what was recorded and fetches the rest.
    second_run_fetches_the_rest(&fixture, &server, COUNT, &["--delete"]);
    assert_eq!(server.on_server(), 0);
}

#[test]
fn sigterm_in_delete_mode_deletes_exactly_what_is_durable() {
    // 20 x 600 KB at 4 MB/s: what is asked for ahead (2 MiB) arrives well within the stop's
    // deadline, so the session ends with DELE for each delivered message and QUIT.
    let server = SlowServer::start(COUNT, SIZE, 4_000_000);
    let fixture = Fixture::new();
    let (child, _home) = spawn(&fixture, server.port, &["--delete"]);
    let sent = signal_after(&child, &server, 2, libc::SIGTERM);
    let (code, stderr, took) = finish(child, sent);
    assert_eq!(code, Some(143), "{stderr}");
    assert!(took < Duration::from_secs(10), "took {took:?}: {stderr}");
    let got = delivered(&fixture);
    assert!(!got.is_empty() && got.len() < COUNT, "{got:?}\n{stderr}");
    let maildrop = server.drop.lock().unwrap();
    assert_eq!(maildrop.quits, 1, "QUIT confirmed: {stderr}");
    let mut deleted: Vec<usize> = maildrop
        .deleted
        .iter()
        .map(|uid| uid["uid-".len()..].parse().unwrap())
        .collect();
    deleted.sort();
    assert_eq!(deleted, got, "deleted exactly what was delivered");
    drop(maildrop);
    // Deleted, so forgotten: the state holds nothing.
    assert!(fixture.delivered().is_empty(), "{}", fixture.state_text());
    second_run_fetches_the_rest(&fixture, &server, COUNT, &["--delete"]);
    assert_eq!(server.on_server(), 0);
}

#[test]
fn sigterm_during_a_fetch_all_every_cycle_stops_it_and_exits_0() {
    let server = SlowServer::start(COUNT, SIZE, 2_000_000);
    let fixture = Fixture::new();
    let (child, _home) = spawn(&fixture, server.port, &["--keep", "--every", "1m"]);
    let sent = signal_after(&child, &server, 2, libc::SIGTERM);
    let (code, stderr, took) = finish(child, sent);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(took < Duration::from_secs(10), "took {took:?}: {stderr}");
    let got = delivered(&fixture);
    assert!(!got.is_empty() && got.len() < COUNT, "{got:?}\n{stderr}");
    assert_eq!(fixture.delivered().len(), got.len());
    assert!(
        stderr.contains(&format!("interrupted: fetched {} messages", got.len())),
        "{stderr}"
    );
    second_run_fetches_the_rest(&fixture, &server, COUNT, &["--keep"]);
}
