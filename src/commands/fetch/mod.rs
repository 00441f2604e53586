//! `pop3 fetch-all`: download every message not downloaded before, deliver it, and delete it
//! from the server per the account's policy — never losing one and never delivering one twice.
//!
//! The order of events for each batch is what makes that true:
//! 1. RETR the messages (one pipelined stream for the whole run), streaming each into the
//!    target (Maildir `tmp/`, or a local spool file for the mbox and the MDA);
//! 2. make the batch durable (Maildir: one `syncfs`, renames into `new/`, one fsync of `new/`;
//!    mbox: announce the append in the state journal, append under the lock, one fsync; MDA:
//!    its exit status);
//! 3. append the batch's unique-ids to the state journal and fsync it;
//! 4. only then queue DELE for the batch, in the same stream as the RETRs still to come;
//! 5. deletions count as done only after `+OK` to QUIT.
//!
//! Step 3, and step 2 for a Maildir, run on a committer thread while the download goes on. A
//! crash between 2 and 3 leaves messages delivered but not recorded; Maildir file names carry a
//! tag derived from the unique-id, so the next run recognises them instead of fetching again.
//! An mbox or an MDA cannot be searched like that, so there every message is its own batch and
//! the download waits for it to be recorded before the next one is delivered. The mbox append
//! is announced first (offset in the journal), so the next run settles an interrupted one
//! ([`recover_mbox_append`]); an MDA cannot tell whether it delivered, so a kill between its
//! exit and the record re-delivers that one message.

use std::collections::{HashMap, HashSet};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::Args;

use crate::config::{Account, DeliveryTarget};
use crate::connect::Connection;
use crate::exit::{ExitCode, Failure};
use crate::pop3::{self, Command, MessageNumber, Reply, StatusLine, Uid};
use crate::store::lock::AccountLock;
use crate::store::maildir::{self, Maildir, MaildirMessage, Staged};
use crate::store::mbox::{self, Mbox, MboxMessage, Recovered, Spooled};
use crate::store::mda::{self, MdaMessage};
use crate::store::state::{self, State};
use crate::store::unix_now as now;
use crate::ui::{count, human_size};

use super::top::{HeaderReply, fetch_headers_with_top};
use super::{Context, Verbosity};

/// Messages per durable batch: one flush, one state append and one DELE round per batch.
const BATCH_MESSAGES: usize = 200;
/// A batch also ends after this many octets, so a crash never costs much re-downloading.
const BATCH_OCTETS: u64 = 64 << 20;

/// Arguments of `fetch-all`.
#[derive(Debug, Clone, Args)]
pub struct FetchArgs {
    /// Delete messages from the server once delivered (overrides the config)
    #[arg(long, conflicts_with = "keep")]
    pub delete: bool,
    /// Keep messages on the server (overrides delete and keep_days)
    #[arg(long)]
    pub keep: bool,
    /// Download every message again, whatever was downloaded before
    #[arg(long)]
    pub all: bool,
    /// Fetch every configured account, several at once
    #[arg(long)]
    pub all_accounts: bool,
    /// Show what would be fetched and deleted, and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// If another run holds the account, wait for it instead of exiting with 75
    #[arg(long)]
    pub wait: bool,
    /// Deliver into this Maildir for this run
    #[arg(long, value_name = "DIR", conflicts_with_all = ["mbox", "mda"])]
    pub maildir: Option<PathBuf>,
    /// Append to this mbox file for this run
    #[arg(long, value_name = "FILE", conflicts_with = "mda")]
    pub mbox: Option<PathBuf>,
    /// Pipe each message to this command for this run (split at spaces, e.g. "procmail -d al")
    #[arg(long, value_name = "COMMAND")]
    pub mda: Option<String>,
}

/// What one run did.
#[derive(Debug, Default)]
pub struct Summary {
    /// Messages delivered.
    pub fetched: usize,
    /// Octets delivered (as received).
    pub octets: u64,
    /// Messages deleted from the server (QUIT confirmed).
    pub deleted: usize,
    /// Messages found already delivered by an interrupted run.
    pub recognised: usize,
    /// Messages left on the server because they are too big.
    pub too_big: usize,
    /// The maildrop held no message at all.
    pub empty: bool,
}

/// A message to download.
#[derive(Debug, Clone)]
struct Candidate {
    number: MessageNumber,
    size: u64,
    /// The unique-id the server gave it (or its digest form), for people to read.
    uid: Uid,
    /// What the state and the Maildir tag know it by (see [`identify`]): its unique-id, unless
    /// an earlier message in the listing holds the same one.
    key: Uid,
}

/// The account's effective policy for this run.
fn effective(account: &Account, args: &FetchArgs) -> (DeliveryTarget, bool, u32) {
    let target = if let Some(dir) = &args.maildir {
        DeliveryTarget::Maildir(dir.clone())
    } else if let Some(file) = &args.mbox {
        DeliveryTarget::Mbox(file.clone())
    } else if let Some(command) = &args.mda {
        DeliveryTarget::Mda(command.split_whitespace().map(str::to_owned).collect())
    } else {
        account.target.clone()
    };
    let (delete, keep_days) = if args.keep {
        (false, 0)
    } else {
        (args.delete || account.delete, account.keep_days)
    };
    (target, delete, keep_days)
}

/// The state file of an account.
pub fn state_path(account: &Account) -> PathBuf {
    account
        .state_dir
        .join(state::file_name(&account.host, account.port, &account.user))
}

/// Runs `fetch-all` for one account.
pub fn run(context: &Context, args: &FetchArgs) -> anyhow::Result<Summary> {
    let account = &context.account;
    let (target, delete, keep_days) = effective(account, args);
    if let DeliveryTarget::Mda(argv) = &target
        && argv.is_empty()
    {
        return Err(Failure::new(ExitCode::Usage, "--mda needs a command").into());
    }
    let state_path = state_path(account);
    // A dry run takes no lock and writes nothing, not even a new state file.
    let _lock = if args.dry_run {
        None
    } else {
        let mut lock_path = state_path.clone().into_os_string();
        lock_path.push(".lock");
        Some(
            AccountLock::acquire(&PathBuf::from(lock_path), args.wait).map_err(|e| match e {
                crate::store::lock::LockError::Busy(_) => {
                    Failure::new(ExitCode::TempFail, format!("account {}: {e}", account.name))
                }
                other => Failure::new(ExitCode::IoError, other.to_string()),
            })?,
        )
    };
    let mut state = if args.dry_run {
        State::read_only(&state_path)
    } else {
        State::open(&state_path)
    }
    .map_err(|e| Failure::new(ExitCode::IoError, e.to_string()))?;
    let mut summary = Summary::default();
    if !args.dry_run
        && let DeliveryTarget::Mbox(path) = &target
    {
        summary.recognised += recover_mbox_append(&mut state, path, context)?;
    }

    let mut connection =
        context.connect_prefetching(&[Command::List(None), Command::Uidl(None)])?;
    let account_key = format!("{}:{}:{}", account.host, account.port, account.user);
    let Listing {
        messages: listing,
        unidentified,
    } = match listing_with_uids(&mut connection, delete, context) {
        Ok(listing) => listing,
        Err(error) => {
            // Nothing was marked: leave politely.
            let _ = connection.session.quit();
            return Err(error);
        }
    };
    let on_server: HashSet<Uid> = listing.iter().map(|c| c.key.clone()).collect();
    summary.empty = listing.is_empty() && unidentified.is_empty();

    let too_big_limit = account.max_message_size.unwrap_or(u64::MAX);
    let mut wanted = Vec::new();
    let mut too_big = Vec::new();
    for message in &listing {
        if !args.all && state.is_delivered(&message.key) {
            continue;
        }
        if message.size > too_big_limit {
            summary.too_big += 1;
            let reported = state.entry(&message.key).is_some_and(|e| e.size_reported);
            if args.dry_run {
                too_big.push(message.clone());
            }
            if !reported && !args.dry_run && context.verbosity != Verbosity::Quiet {
                eprintln!(
                    "pop3: {}: message {} ({}) is larger than max_message_size ({}); it stays on the server",
                    account.name,
                    message.number,
                    human_size(message.size),
                    human_size(too_big_limit)
                );
                state.record_size_reported(&message.key)?;
            }
            continue;
        }
        wanted.push(message.clone());
    }

    // Exactly once: a message delivered by a run that died before recording it is recognised
    // by the tag in its Maildir file name.
    if let DeliveryTarget::Maildir(root) = &target
        && !args.all
        && !wanted.is_empty()
        && !args.dry_run
    {
        let maildir = Maildir::open(root).map_err(|e| cannot_deliver(&target, e))?;
        let tags = maildir
            .delivered_tags()
            .map_err(|e| cannot_deliver(&target, e))?;
        let (known, rest): (Vec<_>, Vec<_>) = wanted
            .into_iter()
            .partition(|c| tags.contains(&maildir::tag_for(&account_key, c.key.as_str())));
        if !known.is_empty() {
            maildir
                .sync_dirs()
                .map_err(|e| cannot_deliver(&target, e))?;
        }
        let uids: Vec<Uid> = known.iter().map(|c| c.key.clone()).collect();
        state.record_delivered(&uids, now())?;
        summary.recognised += known.len();
        wanted = rest;
    }

    // Messages delivered by earlier runs that the policy now removes.
    let cutoff = now().saturating_sub(u64::from(keep_days) * 86_400);
    let wanted_numbers: HashSet<MessageNumber> = wanted.iter().map(|w| w.number).collect();
    let mut old_deletions: Vec<MessageNumber> = listing
        .iter()
        .filter(|m| {
            !wanted_numbers.contains(&m.number)
                && state
                    .entry(&m.key)
                    .and_then(|e| e.first_seen)
                    .is_some_and(|seen| delete || (keep_days > 0 && seen <= cutoff))
        })
        .map(|m| m.number)
        .collect();

    if args.dry_run {
        let mut out = std::io::stdout().lock();
        let octets: u64 = wanted.iter().map(|c| c.size).sum();
        writeln!(
            out,
            "{}: would fetch {} ({}) into {}",
            account.name,
            count(wanted.len() as u64, "message"),
            human_size(octets),
            describe(&target)
        )?;
        for message in &wanted {
            writeln!(
                out,
                "  fetch {:>6}  {:>9}  {}",
                message.number,
                human_size(message.size),
                message.uid
            )?;
        }
        for message in &too_big {
            writeln!(
                out,
                "  skip  {:>6}  {:>9}  {}  (larger than max_message_size)",
                message.number,
                human_size(message.size),
                message.uid
            )?;
        }
        for why in &unidentified {
            writeln!(out, "  leave {why}  (cannot be identified safely)")?;
        }
        let mut deleting = old_deletions.clone();
        if delete {
            deleting.extend(wanted.iter().map(|c| c.number));
        }
        deleting.sort();
        let numbers: Vec<String> = deleting.iter().map(|n| n.to_string()).collect();
        writeln!(
            out,
            "{}: would delete {} from the server{}",
            account.name,
            count(deleting.len() as u64, "message"),
            if numbers.is_empty() {
                String::new()
            } else {
                format!(": {}", numbers.join(" "))
            }
        )?;
        let _ = connection.session.quit();
        return Ok(summary);
    }

    let window = connection.pipeline_window();
    let progress = progress_bar(context, &wanted);
    let (jobs, job_queue) = std::sync::mpsc::channel();
    let (result_sender, results) = std::sync::mpsc::channel();
    let mut sink = Sink::open(&target, state.mbox_spool_path())?;
    if let Sink::Maildir {
        maildir, upcoming, ..
    } = &mut sink
    {
        let tags = wanted
            .iter()
            .map(|c| maildir::tag_for(&account_key, c.key.as_str()))
            .collect();
        *upcoming = Some(maildir.precreate(tags));
    }
    let (result, mut fetcher) = std::thread::scope(|scope| {
        let state = &mut state;
        scope.spawn(move || run_committer(job_queue, result_sender, state));
        let mut fetcher = Fetcher {
            wanted: &wanted,
            next_retr: 0,
            deletions: std::mem::take(&mut old_deletions).into(),
            delete_after_delivery: delete,
            sink,
            account_key: &account_key,
            received_header: account.add_received_header.then(|| {
                format!(
                    "Received: from {host} by pop3 (fetch-all) with POP3 for <{user}>;\n\t{date}\n",
                    host = account.host,
                    user = account.user,
                    date = crate::store::UtcTime::from_unix(now()).rfc5322()
                )
            }),
            progress: &progress,
            in_flight: None,
            uncommitted: Vec::new(),
            uncommitted_octets: 0,
            jobs: Some(jobs),
            results,
            pending_commits: 0,
            refused: Vec::new(),
            marked: HashSet::new(),
            failure: None,
            summary: &mut summary,
        };
        let result = connection.session.pipeline_with(window, &mut fetcher);
        if let Some(message) = fetcher.in_flight.take() {
            message.abort();
        }
        // Whatever arrived complete is kept, even when the exchange broke off.
        fetcher.finish();
        (result, fetcher)
    });
    let failure = fetcher.failure.take();
    let refused: Vec<String> = fetcher
        .refused
        .iter()
        .map(|(i, status)| {
            format!(
                "message {} ({}): {status}",
                wanted[*i].number, wanted[*i].uid
            )
        })
        .collect();
    let marked = std::mem::take(&mut fetcher.marked);
    drop(fetcher);
    if state.pending_append().is_none() {
        // Kept only while an interrupted append may need it for recovery.
        let _ = std::fs::remove_file(state.mbox_spool_path());
    }
    progress.finish_and_clear();
    if let Some(failure) = failure {
        return Err(failure.into());
    }
    if let Err(error) = result {
        return Err(anyhow::Error::new(error)
            .context("the download was interrupted; undelivered messages stay on the server"));
    }

    let quit = connection.session.quit();
    let deletions_confirmed = quit.is_ok();
    if deletions_confirmed {
        summary.deleted = marked.len();
    }
    // Forget messages that left the server, and those whose deletion the server confirmed (a
    // refused DELE leaves the message known, so it is not downloaded again).
    let deleted_uids: HashSet<&Uid> = if deletions_confirmed {
        listing
            .iter()
            .filter(|m| marked.contains(&m.number))
            .map(|m| &m.key)
            .collect()
    } else {
        HashSet::new()
    };
    let keep: HashSet<Uid> = on_server
        .iter()
        .filter(|u| !deleted_uids.contains(u))
        .cloned()
        .collect();
    if unidentified.is_empty() {
        state.compact(|uid| keep.contains(uid))?;
    } else {
        // Some messages could not be identified: forget nothing but what was deleted.
        state.compact(|uid| !deleted_uids.contains(uid))?;
    }

    if let Err(e) = quit
        && !marked.is_empty()
    {
        return Err(Failure::new(
            ExitCode::TempFail,
            format!(
                "{}: the server did not confirm QUIT ({e}): the {} marked for deletion stay on the server and will be deleted next time; nothing was lost",
                account.name,
                count(marked.len() as u64, "message")
            ),
        )
        .into());
    }
    if let Some(report) = withheld_report(&refused, &unidentified) {
        return Err(Failure::new(ExitCode::TempFail, format!("{}: {report}", account.name)).into());
    }
    Ok(summary)
}

/// One line naming the messages left on the server against the user's wish, and why: those
/// the server refused to send, and those pop3 could not identify (it never guesses). `None`
/// when nothing was withheld. Past [`REPORTED_BY_NAME`] of a kind only a count follows, so a
/// broken listing of a million messages still gives one readable line.
fn withheld_report(refused: &[String], unidentified: &[String]) -> Option<String> {
    let named = |items: &[String]| {
        let mut text = items
            .iter()
            .take(REPORTED_BY_NAME)
            .cloned()
            .collect::<Vec<_>>()
            .join("; ");
        if items.len() > REPORTED_BY_NAME {
            text.push_str(&format!("; and {} more", items.len() - REPORTED_BY_NAME));
        }
        text
    };
    let mut parts = Vec::new();
    if !refused.is_empty() {
        parts.push(format!("the server refused to send {}", named(refused)));
    }
    if !unidentified.is_empty() {
        parts.push(format!("could not safely identify {}", named(unidentified)));
    }
    (!parts.is_empty()).then(|| format!("{}; they stay on the server", parts.join("; ")))
}

/// How many withheld messages of each kind the report names one by one.
const REPORTED_BY_NAME: usize = 10;

fn describe(target: &DeliveryTarget) -> String {
    match target {
        DeliveryTarget::Maildir(dir) => format!("Maildir {}", dir.display()),
        DeliveryTarget::Mbox(file) => format!("mbox {}", file.display()),
        DeliveryTarget::Mda(argv) => format!("mda `{}`", argv.join(" ")),
    }
}

fn cannot_deliver(target: &DeliveryTarget, error: std::io::Error) -> Failure {
    Failure::new(
        ExitCode::IoError,
        format!("cannot deliver to {}: {error}", describe(target)),
    )
}

/// Settles an mbox append that a killed run announced and never settled: a complete copy is
/// recorded as delivered (and counted), a torn one is cut off the end of the mbox. Runs under
/// the account lock, before anything is downloaded.
fn recover_mbox_append(
    state: &mut State,
    path: &std::path::Path,
    context: &Context,
) -> Result<usize, Failure> {
    let Some((uid, offset)) = state.pending_append() else {
        return Ok(0);
    };
    let target = DeliveryTarget::Mbox(path.to_owned());
    let mut mbox = Mbox::open_locked(path).map_err(|e| cannot_deliver(&target, e))?;
    let found = mbox
        .recover(offset, &state.mbox_spool_path())
        .map_err(|e| cannot_deliver(&target, e))?;
    let delivered = found == Recovered::Complete;
    state
        .record_append_settled(delivered, now())
        .map_err(|e| Failure::new(ExitCode::IoError, e.to_string()))?;
    drop(mbox);
    let _ = std::fs::remove_file(state.mbox_spool_path());
    if found == Recovered::Unrecognised {
        eprintln!(
            "pop3: {}: {} changed since a run was interrupted while appending message {uid}; it is delivered again",
            context.account.name,
            path.display()
        );
    }
    Ok(usize::from(delivered))
}

/// Appends one spooled message to the mbox, locked only for the copy: announced in the state
/// journal before its first byte, settled (recorded as delivered) after the mbox is flushed
/// and before the lock is released.
fn append_to_mbox(
    path: &std::path::Path,
    spooled: &Spooled,
    uid: &Uid,
    state: &mut State,
) -> Result<(), Failure> {
    let mut mbox = Mbox::open_locked(path).map_err(commit_failed)?;
    let appended = mbox.append(spooled, |offset| {
        state
            .record_append_pending(uid, offset)
            .map_err(|e| std::io::Error::other(e.to_string()))
    });
    let settled = state.record_append_settled(appended.is_ok(), now());
    appended.map_err(commit_failed)?;
    settled.map_err(|e| Failure::new(ExitCode::IoError, e.to_string()))
}

/// Making a batch durable failed: what was not committed stays on the server.
fn commit_failed(error: std::io::Error) -> Failure {
    Failure::new(
        ExitCode::IoError,
        format!("cannot deliver: {error}; undelivered messages stay on the server"),
    )
}

/// The maildrop as this run sees it.
struct Listing {
    /// Every message that could be identified.
    messages: Vec<Candidate>,
    /// Messages that could not be identified (their TOP was refused), as report lines. While
    /// there are any, the state forgets nothing: such a message may be one it knows.
    unidentified: Vec<String>,
}

/// The maildrop's messages with their unique-ids. Without UIDL, a digest of each message's
/// header block (TOP n 0) stands in for the unique-id. Without TOP as well, nothing identifies
/// a message across runs: only delete mode is safe then (every message fetched is removed), and
/// each message gets an id valid for this run only.
///
/// The server is not trusted to be consistent: a number LIST gives twice is one message, a
/// number UIDL names but LIST lacks is reported, never fetched blindly, and every step is a
/// map lookup (a listing of a million messages costs no more than sorting it).
fn listing_with_uids(
    connection: &mut Connection,
    delete: bool,
    context: &Context,
) -> anyhow::Result<Listing> {
    let scan = distinct_numbers(connection.session.list()?);
    let capabilities = connection.capabilities.clone();
    let uids: Option<Vec<pop3::UniqueIdListing>> =
        if capabilities.uidl() || !capabilities.is_known() {
            match connection.session.uidl() {
                Ok(uids) => Some(uids),
                Err(pop3::Error::Server { .. }) => None,
                Err(e) => return Err(e.into()),
            }
        } else {
            None
        };
    let numbers: Vec<_> = scan.iter().map(|m| m.number).collect();
    let mut unidentified = Vec::new();
    // Messages already reported as unidentified, so each is reported once.
    let mut reported: HashSet<MessageNumber> = HashSet::new();
    let uid_by_number: HashMap<MessageNumber, Uid> = match uids {
        Some(uids) => {
            let listed: HashSet<MessageNumber> = numbers.iter().copied().collect();
            let mut by_number: HashMap<MessageNumber, Uid> = HashMap::new();
            let mut absent_from_list: Vec<MessageNumber> = Vec::new();
            for u in uids {
                if !listed.contains(&u.number) {
                    absent_from_list.push(u.number);
                    continue;
                }
                match by_number.get(&u.number) {
                    None => {
                        by_number.insert(u.number, u.uid);
                    }
                    Some(first) if *first == u.uid => {}
                    // Two ids for one message: either may be the one recorded last time.
                    Some(first) => {
                        if reported.insert(u.number) {
                            unidentified.push(format!(
                                "message {} (UIDL gives it two unique ids, {first} and {})",
                                u.number, u.uid
                            ));
                        }
                    }
                }
            }
            for number in &reported {
                by_number.remove(number);
            }
            absent_from_list.sort();
            absent_from_list.dedup();
            for number in absent_from_list {
                unidentified.push(format!("message {number} (in UIDL but missing from LIST)"));
            }
            by_number
        }
        None if numbers.is_empty() => HashMap::new(),
        None => match fetch_headers_with_top(connection, &numbers)? {
            Some(headers) => {
                context.note(
                    "the server has no UIDL; identifying messages by a digest of their headers",
                );
                let mut by_number = HashMap::new();
                for (&number, reply) in numbers.iter().zip(headers) {
                    match reply {
                        HeaderReply::Headers(raw) => {
                            by_number.insert(number, digest_uid(&raw));
                        }
                        HeaderReply::Refused(status) => {
                            reported.insert(number);
                            unidentified.push(format!("message {number} (TOP refused: {status})"))
                        }
                    }
                }
                by_number
            }
            None if delete => {
                context
                    .note("the server has neither UIDL nor TOP; fetching and deleting everything");
                let run = format!("N{}.{}", now(), std::process::id());
                numbers
                    .iter()
                    .map(|&n| {
                        (
                            n,
                            Uid::new(&format!("{run}.{n}")).expect("a valid unique-id"),
                        )
                    })
                    .collect()
            }
            None => {
                return Err(Failure::new(
                    ExitCode::Unavailable,
                    "the server has neither UIDL nor TOP, so pop3 cannot tell which messages it already fetched; use --delete (or delete = true) with this server",
                )
                .into());
            }
        },
    };
    let mut identified = Vec::with_capacity(scan.len());
    for m in scan {
        match uid_by_number.get(&m.number) {
            Some(uid) => identified.push((m, uid.clone())),
            None if reported.contains(&m.number) => {}
            None => unidentified.push(format!("message {} (missing from UIDL)", m.number)),
        }
    }
    Ok(Listing {
        messages: identify(identified),
        unidentified,
    })
}

/// The scan listing with each message number once (the first line for it wins), in order of
/// number: a server that lists a message twice must not get it delivered twice.
fn distinct_numbers(mut scan: Vec<pop3::ScanListing>) -> Vec<pop3::ScanListing> {
    // A stable sort keeps the first of equal numbers first.
    scan.sort_by_key(|m| m.number);
    scan.dedup_by_key(|m| m.number);
    scan
}

/// The identity rule: what the state and the Maildir tags know each message by. `messages`
/// come in order of message number, which is the maildrop's order (new mail is appended).
///
/// - A message whose unique-id no earlier message holds is known by that unique-id, so the
///   records of earlier versions (plain unique-ids) keep their meaning.
/// - A message whose unique-id an earlier message holds too (popa3d derives ids from the
///   headers, so two copies of a message share one) is known by a digest (`~sha256:` and 64
///   hex digits) of the unique-id, its size and its ordinal among the messages with that same
///   unique-id and size. Copies are thus fetched once each; a copy of a different size never
///   passes for another one.
fn identify(messages: Vec<(pop3::ScanListing, Uid)>) -> Vec<Candidate> {
    let mut holders: HashMap<Uid, u64> = HashMap::new();
    let mut same_size: HashMap<(Uid, u64), u64> = HashMap::new();
    messages
        .into_iter()
        .map(|(m, uid)| {
            let earlier = holders.entry(uid.clone()).or_default();
            *earlier += 1;
            let ordinal = same_size.entry((uid.clone(), m.size)).or_default();
            *ordinal += 1;
            let key = if *earlier == 1 {
                uid.clone()
            } else {
                shared_uid_key(&uid, m.size, *ordinal)
            };
            Candidate {
                number: m.number,
                size: m.size,
                uid,
                key,
            }
        })
        .collect()
}

/// The key of a message whose unique-id an earlier message holds (see [`identify`]). The NUL
/// bytes make it an id no server may send, so it takes the digest form (`~sha256:` and 64 hex
/// digits), which never equals a plain unique-id.
fn shared_uid_key(uid: &Uid, size: u64, ordinal: u64) -> Uid {
    Uid::from_listing(format!("shared\0{uid}\0{size}\0{ordinal}").as_bytes())
}

fn digest_uid(headers: &[u8]) -> Uid {
    let digest = ring::digest::digest(&ring::digest::SHA256, headers);
    let hex: String = digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Uid::new(&format!("H{hex}")).expect("hex digits are a valid unique-id")
}

/// The delivery target for a run.
enum Sink {
    Maildir {
        maildir: Maildir,
        staged: Vec<Staged>,
        upcoming: Option<maildir::Precreator>,
    },
    Mbox {
        path: PathBuf,
        spool_path: PathBuf,
        spooled: Option<Spooled>,
    },
    Mda(Vec<String>),
}

/// A message being delivered.
enum InFlight {
    Maildir(MaildirMessage),
    Mbox(MboxMessage),
    Mda(MdaMessage),
}

impl Sink {
    fn open(target: &DeliveryTarget, mbox_spool: PathBuf) -> Result<Sink, Failure> {
        Ok(match target {
            DeliveryTarget::Maildir(root) => Sink::Maildir {
                maildir: Maildir::open(root).map_err(|e| cannot_deliver(target, e))?,
                staged: Vec::new(),
                upcoming: None,
            },
            DeliveryTarget::Mbox(path) => Sink::Mbox {
                path: path.clone(),
                spool_path: mbox_spool,
                spooled: None,
            },
            DeliveryTarget::Mda(argv) => Sink::Mda(argv.clone()),
        })
    }

    fn start(&mut self, tag: &str) -> std::io::Result<InFlight> {
        Ok(match self {
            Sink::Maildir {
                maildir, upcoming, ..
            } => match upcoming.as_mut().and_then(|files| files.next(tag)) {
                Some(file) => InFlight::Maildir(file?),
                None => InFlight::Maildir(maildir.start(tag)?),
            },
            Sink::Mbox { spool_path, .. } => InFlight::Mbox(mbox::spool(spool_path)?),
            Sink::Mda(argv) => InFlight::Mda(mda::start(argv)?),
        })
    }

    fn finish(&mut self, message: InFlight) -> std::io::Result<()> {
        match (self, message) {
            (Sink::Maildir { staged, .. }, InFlight::Maildir(m)) => staged.push(m.finish()?),
            (Sink::Mbox { spooled, .. }, InFlight::Mbox(m)) => *spooled = Some(m.finish()?),
            (_, InFlight::Mbox(_)) => unreachable!("an mbox message belongs to an mbox"),
            (_, InFlight::Mda(m)) => m.finish()?,
            (_, InFlight::Maildir(_)) => unreachable!("a Maildir message belongs to a Maildir"),
        }
        Ok(())
    }

    /// Hands over what must be made durable: the batch's Maildir files, or the spooled mbox
    /// message; an MDA already took responsibility for each message.
    fn take_work(&mut self) -> std::io::Result<CommitWork> {
        match self {
            Sink::Maildir {
                maildir, staged, ..
            } => Ok(CommitWork::Maildir {
                maildir: maildir.clone(),
                staged: std::mem::take(staged),
            }),
            Sink::Mbox { path, spooled, .. } => Ok(match spooled.take() {
                Some(spooled) => CommitWork::Mbox {
                    path: path.clone(),
                    spooled,
                },
                None => CommitWork::Nothing,
            }),
            Sink::Mda(_) => Ok(CommitWork::Nothing),
        }
    }

    /// How many delivered messages may wait for their commit. A Maildir recognises what an
    /// interrupted run delivered, so it can commit in large batches; an mbox or an MDA cannot,
    /// so each message is recorded right after delivery.
    fn batch_limit(&self) -> usize {
        match self {
            Sink::Maildir { .. } => BATCH_MESSAGES,
            Sink::Mbox { .. } | Sink::Mda(_) => 1,
        }
    }

    /// Whether the download waits for each commit before the next message is delivered: an
    /// mbox or an MDA cannot tell us later what it already has, so no unrecorded backlog may
    /// build up behind the download.
    fn waits_for_commit(&self) -> bool {
        !matches!(self, Sink::Maildir { .. })
    }
}

/// A batch's delivery, to be made durable.
enum CommitWork {
    Maildir {
        maildir: Maildir,
        staged: Vec<Staged>,
    },
    /// One spooled message to append (see [`append_to_mbox`]).
    Mbox { path: PathBuf, spooled: Spooled },
    /// Nothing left to flush (see [`Sink::take_work`]).
    Nothing,
}

impl CommitWork {
    /// Maildir: one syncfs, renames, fsync of new/ (files discarded on failure).
    fn commit(self) -> std::io::Result<()> {
        match self {
            CommitWork::Maildir { maildir, staged } => {
                let result = maildir.commit(&staged);
                if result.is_err() {
                    maildir.discard(&staged);
                }
                result
            }
            CommitWork::Mbox { .. } => unreachable!("appended by append_to_mbox"),
            CommitWork::Nothing => Ok(()),
        }
    }
}

/// A batch on its way to the committer thread.
struct CommitJob {
    work: CommitWork,
    /// Indexes into the wanted messages.
    indexes: Vec<usize>,
    uids: Vec<Uid>,
}

/// The committer's answer for one batch, in order.
type CommitResult = Result<Vec<usize>, Failure>;

/// The committer thread: makes each batch durable, then records it in the state, then reports
/// it (after which its DELEs may be sent). It runs beside the download so the network never
/// waits for the disk.
fn run_committer(
    jobs: std::sync::mpsc::Receiver<CommitJob>,
    results: std::sync::mpsc::Sender<CommitResult>,
    state: &mut State,
) {
    for job in jobs {
        let result = match job.work {
            // A batch of one: `Sink::batch_limit`.
            CommitWork::Mbox { path, spooled } => {
                append_to_mbox(&path, &spooled, &job.uids[0], state).map(|()| job.indexes)
            }
            work => match work.commit() {
                Err(e) => Err(commit_failed(e)),
                Ok(()) => match state.record_delivered(&job.uids, now()) {
                    Ok(()) => Ok(job.indexes),
                    Err(e) => Err(Failure::new(ExitCode::IoError, e.to_string())),
                },
            },
        };
        let failed = result.is_err();
        if results.send(result).is_err() || failed {
            // After a failure nothing more is made durable: those messages are not recorded.
            return;
        }
    }
}

impl InFlight {
    fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            InFlight::Maildir(m) => m.write(data),
            InFlight::Mbox(m) => m.write(data),
            InFlight::Mda(m) => m.write(data),
        }
    }

    fn abort(self) {
        match self {
            InFlight::Maildir(m) => m.abort(),
            InFlight::Mbox(m) => m.abort(),
            InFlight::Mda(m) => m.abort(),
        }
    }
}

/// Drives the pipelined exchange of a run: RETR every wanted message, stream each into the
/// target, hand the delivered ones to the committer thread every [`BATCH_MESSAGES`] messages or
/// [`BATCH_OCTETS`] octets (and at the end), and queue their DELE once it reports them durable
/// and recorded. A Maildir download never waits for the disk; an mbox or MDA one waits for each
/// message to be recorded (see [`Sink::waits_for_commit`]).
struct Fetcher<'a> {
    wanted: &'a [Candidate],
    next_retr: usize,
    /// DELE commands ready to go: for messages already durable and recorded.
    deletions: std::collections::VecDeque<MessageNumber>,
    delete_after_delivery: bool,
    sink: Sink,
    account_key: &'a str,
    /// `Received:` header text to put above each message, when configured.
    received_header: Option<String>,
    progress: &'a indicatif::ProgressBar,
    in_flight: Option<InFlight>,
    /// Indexes (into `wanted`) delivered but not yet handed to the committer.
    uncommitted: Vec<usize>,
    uncommitted_octets: u64,
    /// To the committer thread, and its answers.
    jobs: Option<std::sync::mpsc::Sender<CommitJob>>,
    results: std::sync::mpsc::Receiver<CommitResult>,
    /// Batches handed over and not yet answered.
    pending_commits: usize,
    /// Messages the server refused to send.
    refused: Vec<(usize, StatusLine)>,
    /// Messages whose DELE the server accepted (deleted once QUIT is confirmed).
    marked: HashSet<MessageNumber>,
    /// Why delivery failed, in words for the user.
    failure: Option<Failure>,
    summary: &'a mut Summary,
}

/// What a pipelined command was for.
enum Job {
    Retr(usize),
    Dele(MessageNumber),
}

impl Fetcher<'_> {
    /// Hands the delivered messages to the committer thread.
    fn commit(&mut self) {
        if self.uncommitted.is_empty() {
            return;
        }
        let indexes = std::mem::take(&mut self.uncommitted);
        self.uncommitted_octets = 0;
        let work = match self.sink.take_work() {
            Ok(work) => work,
            Err(e) => {
                self.failure.get_or_insert(commit_failed(e));
                return;
            }
        };
        let job = CommitJob {
            work,
            uids: indexes
                .iter()
                .map(|&i| self.wanted[i].key.clone())
                .collect(),
            indexes,
        };
        let sent = self
            .jobs
            .as_ref()
            .is_some_and(|jobs| jobs.send(job).is_ok());
        if sent {
            self.pending_commits += 1;
        }
    }

    /// Takes in the committer's answers; with `wait`, until every batch is answered.
    fn collect_results(&mut self, wait: bool) {
        while self.pending_commits > 0 {
            let result = if wait {
                self.results.recv().ok()
            } else {
                self.results.try_recv().ok()
            };
            let Some(result) = result else {
                if wait {
                    // The committer stopped (after a failure it already reported).
                    self.pending_commits = 0;
                }
                return;
            };
            self.pending_commits -= 1;
            match result {
                Ok(indexes) => {
                    let delivered: Vec<&Candidate> =
                        indexes.iter().map(|&i| &self.wanted[i]).collect();
                    self.summary.fetched += delivered.len();
                    self.summary.octets += delivered.iter().map(|c| c.size).sum::<u64>();
                    if self.delete_after_delivery {
                        self.deletions.extend(delivered.iter().map(|c| c.number));
                    }
                }
                Err(failure) => {
                    self.failure.get_or_insert(failure);
                }
            }
        }
    }

    /// Finishes: hands over what is complete and waits until everything handed over is
    /// durable and recorded (or has failed).
    fn finish(&mut self) {
        self.commit();
        self.jobs = None;
        self.collect_results(true);
    }

    /// Keeps the user-facing failure and returns an error that stops the exchange.
    fn fail(&mut self, failure: Failure) -> std::io::Error {
        let error = std::io::Error::other(failure.message.clone());
        self.failure.get_or_insert(failure);
        error
    }

    fn delivery_failed(&mut self, error: std::io::Error) -> std::io::Error {
        let code = if error.raw_os_error() == Some(libc::ENOSPC) {
            ExitCode::IoError
        } else {
            ExitCode::TempFail
        };
        self.fail(Failure::new(
            code,
            format!("delivery failed: {error}; undelivered messages stay on the server"),
        ))
    }
}

impl<'c> crate::pop3::client::PipelineDriver<'c> for Fetcher<'_> {
    type Tag = Job;

    fn next_command(&mut self, idle: bool) -> Option<(Command<'c>, Job)> {
        // Nothing left to download but batches still being committed: their DELEs are all
        // that remains, so wait for them.
        let downloads_done = self.next_retr == self.wanted.len() && self.in_flight.is_none();
        self.collect_results(idle && downloads_done);
        if self.failure.is_some() {
            return None;
        }
        if let Some(number) = self.deletions.pop_front() {
            return Some((Command::Dele(number), Job::Dele(number)));
        }
        let index = self.next_retr;
        let message = self.wanted.get(index)?;
        self.next_retr += 1;
        Some((Command::Retr(message.number), Job::Retr(index)))
    }

    fn on_reply(&mut self, job: &Job, reply: Reply<'_>) -> std::io::Result<()> {
        if let Some(failure) = &self.failure {
            return Err(std::io::Error::other(failure.message.clone()));
        }
        let index = match job {
            Job::Dele(number) => {
                match reply {
                    Reply::Accepted(_) => {
                        self.marked.insert(*number);
                    }
                    // Not fatal: the message stays known and is deleted on a later run.
                    Reply::Refused(status) => {
                        let status = crate::message::display_safe(&status.to_string());
                        eprintln!("pop3: DELE {number} refused: {status}")
                    }
                    _ => {}
                }
                return Ok(());
            }
            Job::Retr(index) => *index,
        };
        match reply {
            Reply::Accepted(_) => {
                let tag = maildir::tag_for(self.account_key, self.wanted[index].key.as_str());
                let started = self.sink.start(&tag).and_then(|mut message| {
                    if let Some(header) = &self.received_header {
                        message.write(header.as_bytes())?;
                    }
                    Ok(message)
                });
                match started {
                    Ok(message) => self.in_flight = Some(message),
                    Err(e) => return Err(self.delivery_failed(e)),
                }
            }
            Reply::Data(data) => {
                self.progress.inc(data.len() as u64);
                if let Some(message) = self.in_flight.as_mut()
                    && let Err(e) = message.write(data)
                {
                    return Err(self.delivery_failed(e));
                }
            }
            Reply::End => {
                if let Some(message) = self.in_flight.take() {
                    if let Err(e) = self.sink.finish(message) {
                        return Err(self.delivery_failed(e));
                    }
                    self.uncommitted.push(index);
                    self.uncommitted_octets += self.wanted[index].size;
                }
                let last = index + 1 == self.wanted.len();
                if last
                    || self.uncommitted.len() >= self.sink.batch_limit()
                    || self.uncommitted_octets >= BATCH_OCTETS
                {
                    self.commit();
                    if self.sink.waits_for_commit() {
                        self.collect_results(true);
                    }
                }
            }
            Reply::Refused(status) => {
                self.refused.push((index, status.clone()));
                if index + 1 == self.wanted.len() {
                    self.commit();
                }
            }
        }
        Ok(())
    }
}

fn progress_bar(context: &Context, wanted: &[Candidate]) -> indicatif::ProgressBar {
    if context.verbosity == Verbosity::Quiet
        || !std::io::stderr().is_terminal()
        || wanted.is_empty()
    {
        return indicatif::ProgressBar::hidden();
    }
    let total: u64 = wanted.iter().map(|c| c.size).sum();
    let bar = indicatif::ProgressBar::new(total);
    // The bar takes what the terminal has left (a fixed one overflowed 80 columns). The total
    // is what LIST announced, which a server may understate (RFC 1939 only asks for an exact
    // size; some count a missing final line ending or bare LFs differently): the count shown
    // stops at the total rather than running past 100%.
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix} [{wide_bar}] {done}/{total_bytes} {binary_bytes_per_sec} {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .with_key(
            "done",
            |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let done = state.pos().min(state.len().unwrap_or(u64::MAX));
                let _ = write!(w, "{}", indicatif::HumanBytes(done));
            },
        )
        .progress_chars("=> "),
    );
    bar.set_prefix(format!(
        "{}: {}",
        context.account.name,
        count(wanted.len() as u64, "message")
    ));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(number: u32, size: u64, uid: &str) -> (pop3::ScanListing, Uid) {
        let number = MessageNumber::new(number).unwrap();
        (pop3::ScanListing { number, size }, Uid::new(uid).unwrap())
    }

    fn keys(messages: Vec<(pop3::ScanListing, Uid)>) -> Vec<String> {
        identify(messages)
            .into_iter()
            .map(|c| c.key.as_str().to_owned())
            .collect()
    }

    #[test]
    fn the_first_holder_of_a_unique_id_keeps_it_and_copies_get_distinct_keys() {
        let now = keys(vec![
            listed(1, 100, "dup"),
            listed(2, 50, "solo"),
            listed(3, 100, "dup"),
            listed(4, 200, "dup"),
        ]);
        assert_eq!(&now[..2], ["dup", "solo"], "plain ids keep their meaning");
        assert!(now[2].starts_with("~sha256:") && now[3].starts_with("~sha256:"));
        assert_ne!(now[2], now[3]);
        // The same maildrop renumbered (a message before them was deleted) gives the same keys.
        let later = keys(vec![
            listed(1, 100, "dup"),
            listed(2, 50, "solo"),
            listed(3, 100, "dup"),
            listed(4, 200, "dup"),
            listed(5, 100, "dup"),
        ]);
        assert_eq!(later[..4], now[..], "stable across sessions");
        assert!(!now.contains(&later[4]), "a new copy is new");
    }

    #[test]
    fn a_message_number_listed_twice_is_one_message() {
        let n = |n| MessageNumber::new(n).unwrap();
        let scan = vec![
            pop3::ScanListing {
                number: n(2),
                size: 5,
            },
            pop3::ScanListing {
                number: n(1),
                size: 7,
            },
            pop3::ScanListing {
                number: n(2),
                size: 9,
            },
        ];
        let distinct = distinct_numbers(scan);
        assert_eq!(distinct.len(), 2);
        assert_eq!(
            (distinct[1].number, distinct[1].size),
            (n(2), 5),
            "first line wins"
        );
    }

    #[test]
    fn the_withheld_report_names_a_few_and_counts_the_rest() {
        assert_eq!(withheld_report(&[], &[]), None);
        let many: Vec<String> = (1..=25).map(|i| format!("message {i} (x)")).collect();
        let report = withheld_report(&[], &many).unwrap();
        assert!(
            report.starts_with("could not safely identify message 1 (x)"),
            "{report}"
        );
        assert!(report.contains("message 10 (x); and 15 more;"), "{report}");
        assert!(!report.contains("refused"), "{report}");
    }
}
