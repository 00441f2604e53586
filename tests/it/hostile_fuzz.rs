//! A randomised hostile server against the real binary (issue 8): every command of `pop3` runs
//! against a server whose replies are randomly truncated, corrupted, inflated, made endless or
//! replaced by garbage. Whatever happens, the process must end on its own with a meaningful exit
//! code: never 70 (internal error), never killed by a signal (abort, out of memory under a
//! 1 GiB address-space limit), never "panicked" on stderr, never hanging.
//!
//! The short variant runs for a few seconds in the normal suite. For a long run:
//! `POP3_FUZZ_SECONDS=300 cargo test --locked hostile_server_fuzz -- --nocapture`; a finding
//! prints its seed, and `POP3_FUZZ_SEED=N` replays that one case.

use std::os::unix::process::CommandExt as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::cli::Pop3;
use crate::support::hostile::{Answer, HostileServer, Mailbox, Responder};

/// Address-space limit of the child: far above what pop3 needs (tens of MiB), far below what
/// trusting a claimed size or buffering an endless reply would take.
const MEMORY_LIMIT: u64 = 1 << 30;
/// A case that runs longer than this hangs (the client's own timeout is 1 s).
const CASE_DEADLINE: Duration = Duration::from_secs(60);
/// How much an "endless" reply sends at most: enough to cross line and listing bounds, small
/// enough to keep cases fast (bounds beyond it are tested one by one in `hostile_bounds`).
const ENDLESS_LIMIT: u64 = 8 << 20;

/// xorshift64*: small, deterministic, good enough to pick mutations.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const NUMBERS: &[&str] = &[
    "0",
    "1",
    "3",
    "99999",
    "4294967295",
    "4294967296",
    "1000000000000000",
    "18446744073709551615",
    "18446744073709551616",
    "-1",
    "",
    "x",
];

const ODD_BYTES: &[u8] = b"\0\x1b\x07\r\n. +-[]<>\xff\xc3\x9b0123456789";

/// One randomly mutated reply.
fn mutate(rng: &mut Rng, correct: Vec<u8>) -> Answer {
    let mut reply = correct;
    match rng.below(12) {
        // Cut short, then hang up.
        0 => {
            let at = rng.below(reply.len() + 1);
            reply.truncate(at);
            Answer::BytesThenClose(reply)
        }
        // A few odd bytes in odd places.
        1 => {
            for _ in 0..=rng.below(4) {
                let at = rng.below(reply.len() + 1);
                reply.insert(at, *rng.pick(ODD_BYTES));
            }
            Answer::Bytes(reply)
        }
        // A refusal, maybe with a response code and escape sequences.
        2 => {
            let code = rng.pick(&[
                "",
                "[IN-USE] ",
                "[SYS/TEMP] ",
                "[SYS/PERM] ",
                "[AUTH] ",
                "[X] ",
                "[",
            ]);
            let text = rng.pick(&["no", "\x1b]0;owned\x07\x1b[2J", "", "\u{202e}gnp.exe"]);
            Answer::Bytes(format!("-ERR {code}{text}\r\n").into_bytes())
        }
        // Every number replaced by an extreme one.
        3 => {
            let text = String::from_utf8_lossy(&reply).into_owned();
            let mut out = String::new();
            let mut in_number = false;
            for c in text.chars() {
                if c.is_ascii_digit() {
                    if !in_number {
                        let number = NUMBERS[rng.below(NUMBERS.len())];
                        out.push_str(number);
                    }
                    in_number = true;
                } else {
                    in_number = false;
                    out.push(c);
                }
            }
            Answer::Bytes(out.into_bytes())
        }
        // No terminator: the listing or message never ends, the server hangs up.
        4 => {
            if reply.ends_with(b".\r\n") {
                reply.truncate(reply.len() - 3);
            }
            Answer::BytesThenClose(reply)
        }
        // A line of it repeated without end.
        5 => {
            let lines: Vec<&[u8]> = reply.split_inclusive(|&b| b == b'\n').collect();
            let split = rng.below(lines.len()).max(usize::from(lines.len() > 1));
            let prefix = lines[..split].concat();
            let chunk = match rng.below(3) {
                0 => b"x".to_vec(),
                1 => lines.get(split).map_or(b"1 1\r\n".to_vec(), |l| l.to_vec()),
                _ => b"9 10\r\n".to_vec(),
            };
            Answer::Endless {
                prefix,
                chunk,
                limit: ENDLESS_LIMIT,
            }
        }
        // Garbage, then hang up.
        6 => {
            let garbage: Vec<u8> = (0..rng.below(2000)).map(|_| rng.next() as u8).collect();
            Answer::BytesThenClose(garbage)
        }
        // Bare LF everywhere.
        7 => Answer::Bytes(
            String::from_utf8_lossy(&reply)
                .replace("\r\n", "\n")
                .into_bytes(),
        ),
        // Silence beyond the client's timeout.
        8 => Answer::Stall(Duration::from_millis(1500)),
        // A line far longer than any limit.
        9 => {
            let at = rng.below(reply.len() + 1);
            let long = vec![*rng.pick(b"x1 ."); 5000 + rng.below(70_000)];
            reply.splice(at..at, long);
            Answer::Bytes(reply)
        }
        // Lines duplicated (a message listed twice, a unique-id used twice).
        10 => {
            let lines: Vec<&[u8]> = reply.split_inclusive(|&b| b == b'\n').collect();
            let mut out = Vec::new();
            for line in &lines {
                out.extend_from_slice(line);
                if rng.chance(30) && *line != b".\r\n" {
                    out.extend_from_slice(line);
                }
            }
            Answer::Bytes(out)
        }
        // A listing that names messages the maildrop lacks.
        _ => Answer::Bytes(
            format!(
                "+OK\r\n{} {}\r\n0 1\r\n2 uid-1\r\n.\r\n",
                rng.pick(NUMBERS),
                rng.pick(NUMBERS)
            )
            .into_bytes(),
        ),
    }
}

/// The argument lists tried, `MAILDIR` and `OUT` standing for paths in the case's directory.
const COMMANDS: &[&[&str]] = &[
    &["login-check"],
    &["stat"],
    &["stat", "--json"],
    &["list"],
    &["list", "--json"],
    &["headers"],
    &["headers", "--json"],
    &["headers", "1", "2"],
    &["headers", "--uid", "uid-2"],
    &["read", "1"],
    &["read", "2", "--raw"],
    &["read", "1", "--output", "OUT"],
    &["read", "--uid", "uid-1"],
    &["delete", "1", "--yes"],
    &["delete", "--uid", "uid-2", "--yes"],
    &["browse"],
    &["fetch-all", "--maildir", "MAILDIR"],
    &["fetch-all", "--maildir", "MAILDIR", "--delete"],
];

/// What one case did.
struct CaseResult {
    code: Option<i32>,
    signal: Option<i32>,
    stderr: String,
    elapsed: Duration,
}

fn run_case(seed: u64) -> (String, CaseResult) {
    let mut rng = Rng::new(seed);
    let command = *rng.pick(COMMANDS);
    let messages = rng.below(4);
    let percent = *rng.pick(&[5, 15, 30, 60]);
    let server_seed = rng.next();
    let server = HostileServer::start(move || {
        let mailbox = Mailbox::new(messages);
        let mut rng = Rng::new(server_seed);
        let responder: Responder = Box::new(move |line: &str| {
            let correct = mailbox.reply(line);
            if rng.chance(percent) {
                mutate(&mut rng, correct)
            } else {
                Answer::Bytes(correct)
            }
        });
        responder
    });
    let dir = tempfile::tempdir().unwrap();
    let args: Vec<String> = command
        .iter()
        .map(|a| match *a {
            "MAILDIR" => dir.path().join("Maildir").display().to_string(),
            "OUT" => dir.path().join("out.eml").display().to_string(),
            other => other.to_owned(),
        })
        .collect();
    let description = format!("seed {seed}: pop3 {}", command.join(" "));
    let (mut child_command, _home) = Pop3::scripted_plain(server.port)
        .args(["--timeout", "1"])
        .args(&args)
        .into_command();
    let stdout = std::fs::File::create(dir.path().join("stdout")).unwrap();
    let stderr = std::fs::File::create(dir.path().join("stderr")).unwrap();
    child_command
        .stdin(Stdio::piped())
        .stdout(stdout)
        .stderr(stderr);
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        child_command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: MEMORY_LIMIT,
                rlim_max: MEMORY_LIMIT,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let started = Instant::now();
    let mut child = child_command.spawn().expect("spawn pop3");
    {
        use std::io::Write as _;
        // browse reads its answers from stdin: read everything, delete everything.
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(b"y\ny\ny\ny\ny\ny\ny\ny\n");
    }
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > CASE_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let elapsed = started.elapsed();
    drop(server);
    let stderr = std::fs::read(dir.path().join("stderr")).unwrap_or_default();
    use std::os::unix::process::ExitStatusExt as _;
    let result = CaseResult {
        code: status.and_then(|s| s.code()),
        signal: status.and_then(|s| s.signal()),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        elapsed,
    };
    (description, result)
}

/// What is wrong with a case's outcome, if anything.
fn finding(result: &CaseResult) -> Option<String> {
    if result.code.is_none() && result.signal.is_none() {
        return Some(format!("hung for {:?}", result.elapsed));
    }
    if let Some(signal) = result.signal {
        return Some(format!("killed by signal {signal}"));
    }
    if result.code == Some(70) {
        return Some("exit 70 (internal error)".into());
    }
    if result.stderr.contains("panicked") || result.stderr.contains("internal error") {
        return Some("panic message on stderr".into());
    }
    if result.stderr.contains(['\u{1b}', '\u{7}', '\u{9b}']) {
        return Some("control characters on stderr".into());
    }
    None
}

fn fuzz_for(duration: Duration, min_cases: u64) {
    let replay: Option<u64> = std::env::var("POP3_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok());
    let base = replay.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    let started = Instant::now();
    let mut cases = 0u64;
    let mut codes = std::collections::BTreeMap::<String, u64>::new();
    let mut findings = Vec::new();
    loop {
        let seed = base.wrapping_add(cases);
        let (description, result) = run_case(seed);
        cases += 1;
        let code = match (result.code, result.signal) {
            (Some(code), _) => code.to_string(),
            (None, Some(signal)) => format!("signal {signal}"),
            (None, None) => "hung".into(),
        };
        *codes.entry(code).or_default() += 1;
        if let Some(what) = finding(&result) {
            findings.push(format!("{description}: {what}\n{}", result.stderr));
        }
        if replay.is_some() || (cases >= min_cases && started.elapsed() >= duration) {
            break;
        }
    }
    eprintln!(
        "hostile server fuzz: {cases} cases in {:.1} s (first seed {base}), exit codes {codes:?}, {} findings",
        started.elapsed().as_secs_f64(),
        findings.len()
    );
    assert!(findings.is_empty(), "{}", findings.join("\n---\n"));
}

#[test]
fn hostile_server_fuzz() {
    let seconds = std::env::var("POP3_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    fuzz_for(Duration::from_secs(seconds), 12);
}
