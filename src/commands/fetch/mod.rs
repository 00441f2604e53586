//! `pop3 fetch-all`: download every message not downloaded before, deliver it, and delete it
//! from the server per the account's policy — never losing one and never delivering one twice.
//!
//! The order of events for each batch is what makes that true:
//! 1. RETR the messages (one pipelined stream for the whole run), streaming each into the
//!    target (Maildir `tmp/`, or a local spool file for the mbox and the MDA);
//! 2. make the batch durable (Maildir: one `syncfs` for the batch while the system is
//!    otherwise quiet, else each file `fdatasync`ed once complete on flush threads beside the
//!    download; renames into `new/`, one fsync of `new/`;
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
//! (`deliver::recover_interrupted`); an MDA cannot tell whether it delivered, so a kill between its
//! exit and the record re-delivers that one message.
//!
//! The code: `plan` lists the maildrop and chooses what to fetch and delete (the identity
//! rule lives there), `filter` deletes unread and asks `filter_command` before the download
//! and applies `max_messages`, `stream` runs the pipelined download and the committer thread,
//! `hook` runs `on_new_mail` after it,
//! `report` says what happened; delivery itself is `store::deliver`, one interface for
//! every target. Failures are `FetchError`s, mapped to exit codes in `exit::classify`.

mod filter;
mod hook;
mod plan;
mod report;
mod stream;

use std::collections::HashSet;
use std::path::PathBuf;

use clap::Args;

use crate::pop3::{self, Command, Uid};
use crate::store::deliver::{self, DeliverError, Delivery};
use crate::store::lock::{AccountLock, LockError};
use crate::store::state::{State, StateError};
use crate::ui::count;

use super::{Context, Verbosity};

pub(crate) use plan::{read_state, state_path};
pub(crate) use report::{
    interrupted as report_interrupted, summary as report_summary,
    summary_after_error as report_summary_after_error,
};

/// Arguments of `fetch-all`.
#[derive(Debug, Clone, Args)]
pub struct FetchArgs {
    /// Delete messages from the server once delivered (overrides the config)
    #[arg(long, conflicts_with = "keep")]
    pub delete: bool,
    /// Keep messages on the server (overrides delete and keep_days)
    #[arg(long)]
    pub keep: bool,
    /// Download every message again, whatever was downloaded before (a Maildir or mbox then
    /// holds a second copy of what it already had)
    #[arg(long)]
    pub all: bool,
    /// Offer again the messages an LMTP/SMTP server refused for good in earlier runs (they are
    /// skipped otherwise, once reported)
    #[arg(long)]
    pub retry_rejected: bool,
    /// Fetch every configured account, several at once
    #[arg(long)]
    pub all_accounts: bool,
    /// Show what would be fetched and deleted, and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// If another run holds the account, wait for it instead of exiting with 75
    #[arg(long)]
    pub wait: bool,
    /// Keep running: fetch, then again every INTERVAL (e.g. 5m, 30s, 1h, 1d) until SIGTERM/SIGINT
    #[arg(long, value_name = "INTERVAL", value_parser = super::daemon::parse_interval, conflicts_with = "dry_run")]
    pub every: Option<std::time::Duration>,
    /// Deliver into this Maildir for this run
    #[arg(long, value_name = "DIR", conflicts_with_all = ["mbox", "mda", "lmtp", "smtp"])]
    pub maildir: Option<PathBuf>,
    /// Append to this mbox file for this run
    #[arg(long, value_name = "FILE", conflicts_with_all = ["mda", "lmtp", "smtp"])]
    pub mbox: Option<PathBuf>,
    /// Pipe each message to this command for this run (split at spaces, e.g. "procmail -d al")
    #[arg(long, value_name = "COMMAND", conflicts_with_all = ["lmtp", "smtp"])]
    pub mda: Option<String>,
    /// Hand each message to this LMTP server for this run ("unix:/path" or "host:port")
    #[arg(long, value_name = "TARGET", conflicts_with = "smtp")]
    pub lmtp: Option<String>,
    /// Hand each message to this SMTP server for this run ("host" or "host:port", port 25 by default)
    #[arg(long, value_name = "TARGET")]
    pub smtp: Option<String>,
    /// Download at most N messages in this run, oldest first; the rest wait for the next (0: no
    /// limit, also lifting max_messages from the config file)
    #[arg(long, value_name = "N")]
    pub max_messages: Option<usize>,
    /// Delete messages bigger than SIZE (e.g. 20M) from the server without downloading them
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub delete_larger_than: Option<u64>,
}

/// Parses a size flag the way the config file writes one: "20M", "200K", "1G" or octets.
fn parse_size(text: &str) -> Result<u64, String> {
    match crate::config::ByteSize::parse(text) {
        Some(crate::config::ByteSize(n)) if n > 0 => Ok(n),
        _ => Err(format!(
            "{text:?}: write a size above 0 like \"20M\", \"200K\" or a number of octets"
        )),
    }
}

/// What one run did.
#[derive(Debug, Default)]
pub(crate) struct Summary {
    /// Messages delivered.
    pub(crate) fetched: usize,
    /// Octets delivered (as received).
    pub(crate) octets: u64,
    /// Messages deleted from the server (QUIT confirmed).
    pub(crate) deleted: usize,
    /// Messages found already delivered although the state did not record them: in the Maildir
    /// by their tags (an interrupted run, or a lost or truncated state file), or a complete mbox
    /// append that a killed run announced.
    pub(crate) recognised: usize,
    /// Messages left on the server because they are too big.
    pub(crate) too_big: usize,
    /// Messages an LMTP/SMTP server refused (for now or for good) in this run.
    pub(crate) refused_by_server: usize,
    /// Messages marked for deletion unread because of `delete_larger_than`.
    pub(crate) deleted_unread: usize,
    /// Messages `filter_command` marked for deletion unread (exit 1).
    pub(crate) filter_deleted: usize,
    /// Messages `filter_command` left on the server for good (exit 2).
    pub(crate) filter_skipped: usize,
    /// New messages left for the next run by `max_messages`.
    pub(crate) deferred: usize,
    /// The maildrop held no message at all.
    pub(crate) empty: bool,
    /// A dry run: nothing was fetched, and its plan on stdout already says what it would do.
    pub(crate) dry_run: bool,
    /// SIGTERM or SIGINT stopped the run before it asked for every message.
    pub(crate) interrupted: bool,
    /// The download ran to its end: every message it wanted was asked for and answered (a
    /// stop that comes later leaves nothing new on the server).
    pub(crate) asked_all: bool,
}

/// Why `fetch-all` failed for an account. Each message is the one line the user sees; the
/// exit code of each is chosen in `exit::classify`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    /// `--mda ""`.
    #[error("--mda needs a command")]
    MdaWithoutCommand,
    /// `--lmtp`/`--smtp` with a value the settings parser refuses.
    #[error("{0}")]
    BadServer(String),
    /// Another run holds the account.
    #[error("account {account}: {cause}")]
    Busy {
        /// The account's name.
        account: String,
        /// The lock's error.
        cause: LockError,
    },
    /// The account's lock could not be taken.
    #[error("{0}")]
    Lock(LockError),
    /// The state file could not be read or written.
    #[error("{0}")]
    State(StateError),
    /// Delivery failed; what was not delivered stays on the server.
    #[error("{0}")]
    Deliver(DeliverError),
    /// Without UIDL and TOP nothing identifies a message across runs.
    #[error(
        "the server has neither UIDL nor TOP, so pop3 cannot tell which messages it already fetched; use --delete (or delete = true) with this server"
    )]
    NoUidlNorTop,
    /// `filter_command` needs the headers of each message before it is downloaded.
    #[error(
        "filter_command needs the server's TOP command, which this server does not offer; remove filter_command for this account"
    )]
    FilterNeedsTop,
    /// The connection broke off during the download.
    #[error("the download was interrupted; undelivered messages stay on the server")]
    Interrupted(#[source] pop3::Error),
    /// The QUIT reply did not come, so the deletions did not happen.
    #[error(
        "{account}: the server did not confirm QUIT ({cause}): the {} marked for deletion stay on the server and will be deleted next time; nothing was lost",
        count(*.marked as u64, "message")
    )]
    QuitUnconfirmed {
        /// The account's name.
        account: String,
        /// Why QUIT failed.
        cause: pop3::Error,
        /// Messages whose DELE the server had accepted.
        marked: usize,
    },
    /// The LMTP/SMTP server refused messages: for now (`temporary`: they are tried again next
    /// run, exit 75) or, when none was refused for now, for good (reported this once, exit 65).
    #[error("{account}: {report}")]
    RefusedByServer {
        /// The account's name.
        account: String,
        /// Which messages, and the server's answers.
        report: String,
        /// Whether any refusal was temporary (4xx).
        temporary: bool,
    },
    /// Messages stay on the server against the user's wish (see `report::withheld_report`).
    #[error("{account}: {report}")]
    Withheld {
        /// The account's name.
        account: String,
        /// Which messages, and why.
        report: String,
    },
}

/// Runs `fetch-all` for one account, then `on_new_mail` when it delivered anything (even if
/// it failed afterwards: what was delivered stays delivered).
/// The summary says what it did also when it failed (for the line a stop prints).
pub(crate) fn run(context: &Context, args: &FetchArgs) -> (Summary, anyhow::Result<()>) {
    let mut summary = Summary {
        dry_run: args.dry_run,
        ..Summary::default()
    };
    // Stopped before this account's turn (`--all-accounts`): it is not started.
    if crate::signals::stop_requested() {
        summary.interrupted = true;
        return (summary, Ok(()));
    }
    let result = fetch(context, args, &mut summary);
    if summary.fetched > 0 && !args.dry_run {
        hook::on_new_mail(context, summary.fetched);
    }
    (summary, result)
}

/// The run itself; `summary` says what it did, also when it fails part-way.
fn fetch(context: &Context, args: &FetchArgs, summary: &mut Summary) -> anyhow::Result<()> {
    let account = &context.account;
    let policy = plan::Policy::new(account, args)?;
    let state_path = state_path(account);
    // A dry run takes no lock and writes nothing, not even a new state file.
    let _lock = if args.dry_run {
        None
    } else {
        Some(lock(context, &state_path, args.wait)?)
    };
    if !args.dry_run {
        adopt(context, &state_path, args.wait)?;
    }
    let mut state = if args.dry_run {
        plan::read_state(account)
    } else {
        State::open(&state_path)
    }
    .map_err(FetchError::State)?;
    if !args.dry_run
        && let Some(interrupted) =
            deliver::recover_interrupted(&policy.target, &mut state).map_err(FetchError::Deliver)?
    {
        report::interrupted_append(context, &policy.target, &interrupted);
        summary.recognised +=
            usize::from(interrupted.found == crate::store::mbox::Recovered::Complete);
    }

    let listings = [Command::List(None), Command::Uidl(None)];
    // A dry run writes nothing, not even the capability memory.
    let mut connection = if args.dry_run {
        context.connect_prefetching(&listings)?
    } else {
        let memory = crate::store::capability_memory::path_for(&state_path, account.port);
        context.connect_remembering(&listings, &memory)?
    };
    // Refused before anything is decided: without TOP the filter cannot see any message.
    if account.filter_command.is_some()
        && connection.capabilities.is_known()
        && !connection.capabilities.top()
    {
        let _ = connection.session.quit();
        return Err(FetchError::FilterNeedsTop.into());
    }
    let plan::Listing {
        messages: listing,
        unidentified,
    } = match plan::listing_with_uids(&mut connection, policy.delete, context) {
        Ok(listing) => listing,
        Err(error) => {
            // Nothing was marked: leave politely.
            let _ = connection.session.quit();
            return Err(error);
        }
    };
    summary.empty = listing.is_empty() && unidentified.is_empty();
    let mut plan = plan::plan(context, args, &policy, &listing, &mut state, summary)?;
    let filter_failures = filter::select(
        &mut connection,
        context,
        &policy,
        &mut plan,
        &mut state,
        summary,
        args.dry_run,
    )?;
    if args.dry_run {
        report::dry_run(context, &policy.target, &plan, &unidentified, policy.delete)?;
        let _ = connection.session.quit();
        return Ok(());
    }
    filter::delete_unfetched(
        &mut connection,
        context,
        &policy,
        &mut plan,
        &mut state,
        summary,
    )?;

    let delivery = Delivery::open(
        &policy.target,
        &plan::account_key(account),
        state.mbox_spool_path(),
        account.timeout,
    )
    .map_err(FetchError::Deliver)?;
    let outcome = stream::download(
        &mut connection,
        context,
        &plan.wanted,
        plan.old_deletions,
        policy.delete,
        delivery,
        &mut state,
        summary,
    )?;
    let refused: Vec<String> = outcome
        .refused
        .iter()
        .map(|(i, status)| {
            let message = &plan.wanted[*i];
            format!("message {} ({}): {status}", message.number, message.uid)
        })
        .collect();
    let marked = outcome.marked;
    let refused_by_server = report::refused_by_server(
        &plan.wanted,
        &outcome.deferred,
        &outcome.rejected,
        policy.target.delete_rejected(),
    );
    summary.refused_by_server = outcome.deferred.len() + outcome.rejected.len();
    summary.interrupted = outcome.stopped || outcome.dropped;
    summary.asked_all = !summary.interrupted;

    // A connection the stop shut down cannot end with QUIT: nothing was deleted, and what
    // was marked is recorded, so the next run deletes it.
    let quit = if outcome.dropped {
        drop(connection);
        Err(pop3::Error::ConnectionClosed)
    } else {
        connection.session.quit()
    };
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
    let compacted = if unidentified.is_empty() {
        let on_server: HashSet<&Uid> = listing.iter().map(|c| &c.key).collect();
        state.compact(|uid| on_server.contains(uid) && !deleted_uids.contains(uid))
    } else {
        // Some messages could not be identified: forget nothing but what was deleted.
        state.compact(|uid| !deleted_uids.contains(uid))
    };
    compacted.map_err(FetchError::State)?;

    if let Err(cause) = quit
        && !marked.is_empty()
        && !outcome.dropped
    {
        return Err(FetchError::QuitUnconfirmed {
            account: account.name.clone(),
            cause,
            marked: marked.len(),
        }
        .into());
    }
    if let Some(report) = refused_by_server {
        return Err(FetchError::RefusedByServer {
            account: account.name.clone(),
            report,
            temporary: !outcome.deferred.is_empty(),
        }
        .into());
    }
    if let Some(report) = report::withheld_report(&refused, &unidentified, &filter_failures) {
        return Err(FetchError::Withheld {
            account: account.name.clone(),
            report,
        }
        .into());
    }
    Ok(())
}

/// Takes the account's lock, beside its state file.
fn lock(
    context: &Context,
    state_path: &std::path::Path,
    wait: bool,
) -> Result<AccountLock, FetchError> {
    AccountLock::acquire(&crate::store::adopt::lock_path(state_path), wait)
        .map_err(|cause| lock_error(context, cause))
}

fn lock_error(context: &Context, cause: LockError) -> FetchError {
    match cause {
        LockError::Busy(_) => FetchError::Busy {
            account: context.account.name.clone(),
            cause,
        },
        other => FetchError::Lock(other),
    }
}

/// Adopts the state files older versions named by port (see `store::adopt`); the caller holds
/// the account lock. Said with `-v`, since the files change name.
fn adopt(context: &Context, state_path: &std::path::Path, wait: bool) -> Result<(), FetchError> {
    use crate::store::adopt::AdoptError;
    let account = &context.account;
    let adopted = crate::store::adopt::adopt(state_path, &account.host, &account.user, wait)
        .map_err(|error| match error {
            AdoptError::Lock(cause) => lock_error(context, cause),
            AdoptError::State(cause) => FetchError::State(cause),
        })?;
    if !adopted.is_empty() && context.verbosity == crate::commands::Verbosity::Verbose {
        let names: Vec<String> = adopted.iter().map(|p| p.display().to_string()).collect();
        eprintln!(
            "{}: state of older versions adopted into {}: {}",
            account.name,
            state_path.display(),
            names.join(", ")
        );
    }
    Ok(())
}
