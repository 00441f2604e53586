//! What `fetch-all` tells people: the progress bar, warnings on the way, the dry-run listing,
//! the report of messages left on the server against the user's wish, and the summary line.

use std::io::Write;

use crate::pop3::{MessageNumber, StatusLine};
use crate::store::deliver::{Interrupted, Target};
use crate::store::mbox::Recovered;
use crate::ui::progress::TransferProgress;
use crate::ui::{EMPTY_MAILBOX, count, human_size};

use super::plan::{Candidate, Plan};
use super::{Context, Summary, Verbosity};

/// How many withheld messages of each kind the report names one by one.
const REPORTED_BY_NAME: usize = 10;

/// The progress bar of the download: on a terminal, unless quiet or there is nothing to fetch.
pub(super) fn progress(context: &Context, wanted: &[Candidate]) -> TransferProgress {
    if context.verbosity == Verbosity::Quiet
        || !crate::ui::stderr_is_terminal()
        || wanted.is_empty()
    {
        return TransferProgress::hidden();
    }
    TransferProgress::new(
        format!(
            "{}: {}",
            context.account.name,
            count(wanted.len() as u64, "message")
        ),
        wanted.iter().map(|c| c.size).sum(),
    )
}

/// Says that `message` stays on the server because it is larger than `limit`; `false` (and
/// silence) when quiet, so that the report is still given once on a later run.
pub(super) fn too_big(context: &Context, message: &Candidate, limit: u64) -> bool {
    if context.verbosity == Verbosity::Quiet {
        return false;
    }
    eprintln!(
        "pop3: {}: message {} ({}) is larger than max_message_size ({}); it stays on the server",
        context.account.name,
        message.number,
        human_size(message.size),
        human_size(limit)
    );
    true
}

/// The server refused a DELE: not fatal, the message stays known and is deleted on a later run.
pub(super) fn dele_refused(number: MessageNumber, status: &StatusLine) {
    let status = crate::message::display_safe(&status.to_string());
    eprintln!("pop3: DELE {number} refused: {status}");
}

/// Warns when an mbox append a killed run left could not be recognised in the mbox.
pub(super) fn interrupted_append(context: &Context, target: &Target, interrupted: &Interrupted) {
    if interrupted.found != Recovered::Unrecognised {
        return;
    }
    let Target::Mbox(path) = target else {
        return;
    };
    eprintln!(
        "pop3: {}: {} changed since a run was interrupted while appending message {}; it is delivered again",
        context.account.name,
        path.display(),
        interrupted.key
    );
}

/// The `--dry-run` listing on stdout: what would be fetched, skipped, left and deleted.
pub(super) fn dry_run(
    context: &Context,
    target: &Target,
    plan: &Plan,
    unidentified: &[String],
    delete: bool,
) -> std::io::Result<()> {
    let name = &context.account.name;
    let mut out = crate::ui::stdout();
    let octets: u64 = plan.wanted.iter().map(|c| c.size).sum();
    let into = match target {
        Target::Server(_) => "and deliver to",
        _ => "into",
    };
    writeln!(
        out,
        "{name}: would fetch {} ({}) {into} {target}",
        count(plan.wanted.len() as u64, "message"),
        human_size(octets),
    )?;
    for message in &plan.wanted {
        writeln!(
            out,
            "  fetch {:>6}  {:>9}  {}",
            message.number,
            human_size(message.size),
            message.uid
        )?;
    }
    for message in &plan.too_big {
        writeln!(
            out,
            "  skip  {:>6}  {:>9}  {}  (larger than max_message_size)",
            message.number,
            human_size(message.size),
            message.uid
        )?;
    }
    for message in &plan.unfetched_deletions {
        writeln!(
            out,
            "  delete {:>5}  {:>9}  {}  (larger than delete_larger_than; not downloaded)",
            message.number,
            human_size(message.size),
            message.uid
        )?;
    }
    for why in unidentified {
        writeln!(out, "  leave {why}  (cannot be identified safely)")?;
    }
    if plan.deferred > 0 {
        writeln!(
            out,
            "  and {} left for a later run (max_messages)",
            count(plan.deferred as u64, "more new message")
        )?;
    }
    if context.account.filter_command.is_some() && !plan.wanted.is_empty() {
        writeln!(
            out,
            "  (filter_command is not run in a dry run; it decides on each message to fetch)"
        )?;
    }
    let mut deleting = plan.old_deletions.clone();
    deleting.extend(plan.unfetched_deletions.iter().map(|c| c.number));
    if delete {
        deleting.extend(plan.wanted.iter().map(|c| c.number));
    }
    deleting.sort();
    let numbers: Vec<String> = deleting.iter().map(|n| n.to_string()).collect();
    writeln!(
        out,
        "{name}: would delete {} from the server{}",
        count(deleting.len() as u64, "message"),
        if numbers.is_empty() {
            String::new()
        } else {
            format!(": {}", numbers.join(" "))
        }
    )
}

/// The first [`REPORTED_BY_NAME`] of `items`, each as `show` puts it, joined with `; `, then
/// "and N more" for the rest.
fn named<T>(items: &[T], show: impl Fn(&T) -> String) -> String {
    let mut text = items
        .iter()
        .take(REPORTED_BY_NAME)
        .map(show)
        .collect::<Vec<_>>()
        .join("; ");
    if items.len() > REPORTED_BY_NAME {
        text.push_str(&format!("; and {} more", items.len() - REPORTED_BY_NAME));
    }
    text
}

/// One line naming the messages left on the server against the user's wish, and why: those
/// the server refused to send, those pop3 could not identify (it never guesses), and those
/// `filter_command` gave no verdict on. `None` when nothing was withheld. Past
/// [`REPORTED_BY_NAME`] of a kind only a count follows, so a broken listing of a million
/// messages still gives one readable line.
pub(super) fn withheld_report(
    refused: &[String],
    unidentified: &[String],
    filter_failed: &[String],
) -> Option<String> {
    let list = |items: &[String]| named(items, String::clone);
    let mut parts = Vec::new();
    if !refused.is_empty() {
        parts.push(format!("the server refused to send {}", list(refused)));
    }
    if !unidentified.is_empty() {
        parts.push(format!("could not safely identify {}", list(unidentified)));
    }
    if !filter_failed.is_empty() {
        parts.push(format!("filter_command failed on {}", list(filter_failed)));
    }
    (!parts.is_empty()).then(|| format!("{}; they stay on the server", parts.join("; ")))
}

/// One line naming the messages the LMTP/SMTP server refused in this run, with its answers:
/// those refused for now stay on the server and are tried again next run; those refused for
/// good are not offered again (or were deleted, with `delete_rejected`). `None` when the server
/// refused nothing.
pub(super) fn refused_by_server(
    wanted: &[Candidate],
    deferred: &[(usize, String)],
    rejected: &[(usize, String)],
    delete_rejected: bool,
) -> Option<String> {
    let list = |items: &[(usize, String)]| {
        named(items, |(i, reply)| {
            let message = &wanted[*i];
            let reply = crate::message::display_safe(reply);
            format!("message {} ({}): {reply}", message.number, message.uid)
        })
    };
    let mut parts = Vec::new();
    if !deferred.is_empty() {
        parts.push(format!(
            "the delivery server refused {} for now, left on the server to try again next run: {}",
            count(deferred.len() as u64, "message"),
            list(deferred)
        ));
    }
    if !rejected.is_empty() {
        let fate = if delete_rejected {
            "deleted from the server (delete_rejected)"
        } else {
            "left on the server and not offered again (unless asked with --retry-rejected)"
        };
        parts.push(format!(
            "the delivery server rejected {}, {fate}: {}",
            count(rejected.len() as u64, "message"),
            list(rejected)
        ));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// The summary line: printed with -v, or on a terminal; cron (no terminal) gets silence, and a
/// dry run none (its plan on stdout says what it would do).
pub(crate) fn summary(context: &Context, summary: &Summary) {
    let wanted = match context.verbosity {
        Verbosity::Quiet => false,
        Verbosity::Verbose => true,
        Verbosity::Normal => crate::ui::stderr_is_terminal(),
    };
    // A dry run's plan is its summary: "fetched 0 messages" after "would fetch 6" read as
    // though the fetch had failed.
    if !wanted || summary.dry_run {
        return;
    }
    if summary.empty {
        eprintln!("{}: {EMPTY_MAILBOX}", context.account.name);
        return;
    }
    let mut line = format!(
        "{}: fetched {} ({})",
        context.account.name,
        count(summary.fetched as u64, "message"),
        human_size(summary.octets)
    );
    // `deleted` counts every confirmed deletion; those deleted unread are told apart below,
    // so each message is counted once.
    let deleted = summary
        .deleted
        .saturating_sub(summary.deleted_unread + summary.filter_deleted);
    let details = [
        (deleted, format!("deleted {deleted}")),
        (
            summary.recognised,
            format!(
                "{} found already delivered (now recorded)",
                summary.recognised
            ),
        ),
        (
            summary.too_big,
            format!("{} too big (left on the server)", summary.too_big),
        ),
        (
            summary.deleted_unread,
            format!(
                "{} deleted unread (larger than delete_larger_than)",
                summary.deleted_unread
            ),
        ),
        (
            summary.filter_deleted,
            format!(
                "{} deleted unread by filter_command",
                summary.filter_deleted
            ),
        ),
        (
            summary.filter_skipped,
            format!("{} left by filter_command", summary.filter_skipped),
        ),
        (
            summary.deferred,
            format!("{} left for the next run (max_messages)", summary.deferred),
        ),
        (
            usize::from(summary.interrupted),
            "stopped by a signal".to_owned(),
        ),
    ];
    for (how_many, text) in details {
        if how_many > 0 {
            line += ", ";
            line += &text;
        }
    }
    eprintln!("{line}");
}

/// The summary line of a run that then failed, before its error line: under the same rules as
/// after a success (`-v`, or a terminal), and only when the run delivered or deleted something,
/// which the error line alone would hide.
pub(crate) fn summary_after_error(context: &Context, summary: &Summary) {
    if summary.fetched + summary.deleted + summary.recognised > 0 {
        self::summary(context, summary);
    }
}

/// The line a `fetch-all` stopped by SIGTERM or SIGINT ends with: `fetched` counts every
/// account's messages delivered and recorded in this run; `asked_all` says that every download
/// had asked for all it wanted before the stop (pipelined), so nothing new was left behind.
pub(crate) fn interrupted(fetched: usize, asked_all: bool) {
    let fetched = count(fetched as u64, "message");
    if asked_all {
        eprintln!(
            "pop3: interrupted: fetched {fetched}; every new message had been asked for already, so none is left behind"
        );
    } else {
        eprintln!("pop3: interrupted: fetched {fetched}, the rest stay on the server");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_withheld_report_names_a_few_and_counts_the_rest() {
        assert_eq!(withheld_report(&[], &[], &[]), None);
        let many: Vec<String> = (1..=25).map(|i| format!("message {i} (x)")).collect();
        let report = withheld_report(&[], &many, &[]).unwrap();
        assert!(
            report.starts_with("could not safely identify message 1 (x)"),
            "{report}"
        );
        assert!(report.contains("message 10 (x); and 15 more;"), "{report}");
        assert!(!report.contains("refused"), "{report}");
    }
}
