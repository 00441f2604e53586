//! What a run decides before downloading, after the plan and before the stream (so the stream
//! stays one pipelined exchange): deleting messages unread (`delete_larger_than`), asking
//! `filter_command` about each new message, and stopping at `max_messages`. Also the one place
//! that runs a child process with a time limit, for the filter and for the `on_new_mail` hook.
//!
//! The filter follows mpop's `filter`: the message's header block (from `TOP n 0`, LF line
//! ends) on stdin; exit 0 delivers it, 1 deletes it without downloading, 2 leaves it on the
//! server and is remembered (it is not asked again); anything else, a signal, a timeout or a
//! filter that cannot be started is a failure, and the message stays on the server, not
//! remembered, so the next run asks again. A failure never loses mail.

use std::io::{self, Seek, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::config::{Account, PasswordSource};
use crate::connect::Connection;
use crate::pop3::Uid;
use crate::ui::human_size;

use super::plan::{Candidate, Plan, Policy};
use super::{Context, FetchError, Summary};
use crate::commands::shared::top::{HeaderReply, fetch_headers_with_top};

/// How a child process ended.
pub(super) enum ChildEnd {
    /// It exited (or was killed by a signal) on its own.
    Exited(ExitStatus),
    /// It ran past its time and was killed, with its process group.
    TimedOut,
}

/// Runs `argv` with `stdin` (or nothing) as its input and `env` added to its environment; its
/// stdout goes to our stderr, so it can never mix with data on our stdout. After `timeout` it
/// is killed with everything it started (it runs in its own process group).
///
/// The password never reaches it: a `password_env` variable was taken out of our environment
/// when the config was read, and is removed here again in case it came back.
pub(super) fn run_child(
    account: &Account,
    argv: &[String],
    stdin: Option<&[u8]>,
    env: &[(&str, String)],
    timeout: Duration,
) -> io::Result<ChildEnd> {
    let input = match stdin {
        // A file, not a pipe: a child that does not read its input can never block us, nor can
        // a grandchild that keeps the pipe open after a timeout.
        Some(bytes) => {
            let mut file = tempfile::tempfile()?;
            file.write_all(bytes)?;
            file.rewind()?;
            Stdio::from(file)
        }
        None => Stdio::null(),
    };
    let mut command = Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(input)
        .stdout(io::stderr())
        .process_group(0);
    if let PasswordSource::Env(var) = &account.password {
        command.env_remove(var);
    }
    let mut child = command.spawn()?;
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(ChildEnd::Exited(status));
        }
        let now = Instant::now();
        if now >= deadline {
            if let Ok(group) = i32::try_from(child.id()) {
                // SAFETY: kill(2) on the process group we created for this child.
                unsafe {
                    libc::kill(-group, libc::SIGKILL);
                }
            }
            let _ = child.kill();
            let _ = child.wait();
            return Ok(ChildEnd::TimedOut);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Records, reports and queues for deletion the messages bigger than `delete_larger_than`.
/// The record comes first and is durable before any DELE is sent, so a deletion the server
/// does not commit (QUIT lost) is retried by the next run without being reported again.
pub(super) fn delete_unfetched(
    connection: &mut Connection,
    context: &Context,
    policy: &Policy,
    plan: &mut Plan,
    state: &mut crate::store::state::State,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let doomed = std::mem::take(&mut plan.unfetched_deletions);
    if doomed.is_empty() {
        return Ok(());
    }
    let keys: Vec<Uid> = doomed.iter().map(|c| c.key.clone()).collect();
    state
        .record_delete_unfetched(&keys)
        .map_err(FetchError::State)?;
    // From and Subject, when the server can say them cheaply (one pipelined TOP round).
    let headers = if connection.capabilities.top() {
        let numbers: Vec<_> = doomed.iter().map(|c| c.number).collect();
        fetch_headers_with_top(connection, &numbers)?
    } else {
        None
    };
    let limit = policy.delete_larger_than.unwrap_or_default();
    for (i, message) in doomed.iter().enumerate() {
        let about = match headers.as_ref().and_then(|h| h.get(i)) {
            Some(HeaderReply::Headers(raw)) => {
                let s = crate::message::summarize(raw);
                format!(" (From: {}, Subject: {})", s.from, s.subject)
            }
            _ => String::new(),
        };
        // Even with -q: the one notice of a message destroyed unread.
        eprintln!(
            "pop3: {}: message {} ({}, uid {}) is larger than delete_larger_than ({}): deleting it from the server unread{about}",
            context.account.name,
            message.number,
            human_size(message.size),
            message.uid,
            human_size(limit),
        );
        plan.old_deletions.push(message.number);
    }
    summary.deleted_unread += doomed.len();
    Ok(())
}

/// What the filter said about one message.
enum Verdict {
    Deliver,
    Delete,
    Skip,
    /// This message stays; the next message is asked all the same.
    Failed(String),
    /// This message stays, and asking the next ones is pointless (a timeout, or a filter that
    /// cannot be started).
    Stop(String),
}

/// Asks the filter about `message`, whose header block is `headers`.
fn ask(account: &Account, argv: &[String], message: &Candidate, headers: &[u8]) -> Verdict {
    // LF line ends, as the message is delivered and as Unix tools expect.
    let mut input = Vec::with_capacity(headers.len());
    let mut rest = headers;
    while let Some(at) = memchr::memmem::find(rest, b"\r\n") {
        input.extend_from_slice(&rest[..at]);
        input.push(b'\n');
        rest = &rest[at + 2..];
    }
    input.extend_from_slice(rest);
    let env = [
        ("POP3_FILTER_SIZE", message.size.to_string()),
        ("POP3_FILTER_ACCOUNT", account.name.clone()),
        ("POP3_FILTER_HOST", account.host.clone()),
        ("POP3_FILTER_USER", account.user.clone()),
        ("POP3_FILTER_NUMBER", message.number.to_string()),
        ("POP3_FILTER_UID", message.uid.to_string()),
    ];
    let timeout = account.filter_timeout;
    match run_child(account, argv, Some(&input), &env, timeout) {
        Ok(ChildEnd::Exited(status)) => match (status.code(), status.signal()) {
            (Some(0), _) => Verdict::Deliver,
            (Some(1), _) => Verdict::Delete,
            (Some(2), _) => Verdict::Skip,
            (Some(code), _) => Verdict::Failed(format!("exited with {code}")),
            (None, Some(signal)) => Verdict::Failed(format!("killed by signal {signal}")),
            (None, None) => Verdict::Failed(format!("ended ({status})")),
        },
        Ok(ChildEnd::TimedOut) => Verdict::Stop(format!(
            "no answer within {}s (filter_timeout), stopped",
            timeout.as_secs()
        )),
        Err(e) => Verdict::Stop(format!("cannot run `{}`: {e}", argv[0])),
    }
}

/// Chooses what this run downloads among the new messages of `plan`: with `filter_command`,
/// those it says to deliver (the others it deletes or skips, recorded before any DELE); then
/// no more than `max_messages`, oldest (lowest number) first, the rest left for the next run.
/// The filter is asked about no more messages than needed: in rounds of pipelined `TOP n 0`,
/// each as big as the number still missing. It does not run in a dry run.
///
/// Returns the messages the filter failed on, as report lines: they stay on the server and
/// make the run fail (exit 75), but do not stop the others.
pub(super) fn select(
    connection: &mut Connection,
    context: &Context,
    policy: &Policy,
    plan: &mut Plan,
    state: &mut crate::store::state::State,
    summary: &mut Summary,
    dry_run: bool,
) -> anyhow::Result<Vec<String>> {
    let account = &context.account;
    let limit = policy.max_messages.unwrap_or(usize::MAX);
    let filter = match &account.filter_command {
        Some(argv) if !dry_run => argv,
        _ => {
            plan.deferred = plan.wanted.len().saturating_sub(limit);
            plan.wanted.truncate(limit);
            summary.deferred = plan.deferred;
            return Ok(Vec::new());
        }
    };
    let candidates = std::mem::take(&mut plan.wanted);
    let mut accepted = Vec::new();
    let mut failures = Vec::new();
    let mut next = 0;
    let mut stopped = false;
    while !stopped && accepted.len() < limit && next < candidates.len() {
        let round = &candidates[next..candidates.len().min(next + (limit - accepted.len()))];
        next += round.len();
        let numbers: Vec<_> = round.iter().map(|c| c.number).collect();
        let Some(headers) = fetch_headers_with_top(connection, &numbers)? else {
            return Err(FetchError::FilterNeedsTop.into());
        };
        let mut deletions = Vec::new();
        let mut skips = Vec::new();
        for (message, reply) in round.iter().zip(headers) {
            let name = format!("message {} ({})", message.number, message.uid);
            if stopped {
                failures.push(format!("{name}: not asked"));
                continue;
            }
            let raw = match reply {
                HeaderReply::Headers(raw) => raw,
                HeaderReply::Refused(status) => {
                    let status = crate::message::display_safe(&status.to_string());
                    failures.push(format!("{name}: TOP refused: {status}"));
                    continue;
                }
            };
            match ask(account, filter, message, &raw) {
                Verdict::Deliver => accepted.push(message.clone()),
                // `--keep` deletes nothing: the message stays, to be asked again next time.
                Verdict::Delete if policy.keep => {
                    context.note(&format!(
                        "filter_command: delete {name}; kept on the server (--keep)"
                    ));
                }
                Verdict::Delete => {
                    context.note(&format!("filter_command: delete {name} unread"));
                    deletions.push(message);
                }
                Verdict::Skip => {
                    context.note(&format!("filter_command: leave {name} on the server"));
                    skips.push(message);
                }
                Verdict::Failed(why) => failures.push(format!("{name}: {why}")),
                Verdict::Stop(why) => {
                    failures.push(format!("{name}: {why}"));
                    stopped = true;
                }
            }
        }
        let keys = |messages: &[&Candidate]| -> Vec<Uid> {
            messages.iter().map(|m| m.key.clone()).collect()
        };
        state
            .record_delete_unfetched(&keys(&deletions))
            .map_err(FetchError::State)?;
        state
            .record_filter_skipped(&keys(&skips))
            .map_err(FetchError::State)?;
        plan.old_deletions
            .extend(deletions.iter().map(|m| m.number));
        summary.filter_deleted += deletions.len();
        summary.filter_skipped += skips.len();
    }
    let unasked = candidates.len() - next;
    if stopped && unasked > 0 {
        failures.push(format!("{unasked} more not asked"));
    } else {
        plan.deferred = unasked;
        summary.deferred = unasked;
    }
    plan.wanted = accepted;
    Ok(failures)
}
