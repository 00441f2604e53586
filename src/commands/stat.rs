//! `pop3 stat`: the number of messages, how many of them `fetch-all` has not downloaded yet
//! (as `mpop -s` says), and their total size.

use std::io::Write;

use crate::cli::JsonArgs;
use crate::connect::Connection;
use crate::pop3::Command;
use crate::ui::{EMPTY_MAILBOX, count, human_size};

use super::Context;

/// Runs `stat`.
pub fn run(context: &Context, args: &JsonArgs) -> anyhow::Result<()> {
    let mut connection = context.connect_prefetching(&[Command::Stat, Command::Uidl(None)])?;
    let stat = connection.session.stat()?;
    let new = if stat.messages > 0 {
        new_messages(context, &mut connection)?
    } else {
        Some(0)
    };
    // Nothing was changed, so a failing QUIT loses nothing; the answer still stands.
    let _ = connection.session.quit();
    let mut out = crate::ui::stdout();
    if args.json {
        let mut json = serde_json::json!({ "messages": stat.messages, "octets": stat.octets });
        if let Some(new) = new {
            json["new"] = new.into();
        }
        writeln!(out, "{json}")?;
    } else if stat.messages == 0 {
        writeln!(out, "{EMPTY_MAILBOX}")?;
    } else {
        let new = new.map_or(String::new(), |n| format!(" ({n} new)"));
        writeln!(
            out,
            "{}{new}, {}",
            count(stat.messages.into(), "message"),
            human_size(stat.octets)
        )?;
    }
    Ok(())
}

/// How many messages the account's `fetch-all` state has no decision about, by unique id; `None`
/// when that cannot be told (no UIDL, or an unreadable state file, which only gets a note:
/// `stat` still answers).
fn new_messages(context: &Context, connection: &mut Connection) -> anyhow::Result<Option<u64>> {
    // Only when announced: stat stays one STAT for a server without CAPA.
    if !connection.capabilities.uidl() {
        return Ok(None);
    }
    let uids = match connection.session.uidl() {
        Ok(uids) => uids,
        Err(crate::pop3::Error::Server { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let state = match super::fetch::read_state(&context.account) {
        Ok(state) => state,
        Err(e) => {
            // Not silent: a damaged state would make fetch-all fail, and "(N new)" is missing.
            if context.verbosity != super::Verbosity::Quiet {
                eprintln!("pop3: warning: cannot tell which messages are new: {e}");
            }
            return Ok(None);
        }
    };
    // New is what `fetch-all` would still decide about: not delivered, and not settled for
    // good otherwise (left by filter_command, refused by the delivery server, deleted unread).
    let settled = |uid| {
        state.entry(uid).is_some_and(|e| {
            e.first_seen.is_some() || e.filter_skipped || e.rejected || e.delete_unfetched
        })
    };
    // Numbers, not lines: a server listing a message twice does not count it twice.
    let new: std::collections::HashSet<_> = uids
        .iter()
        .filter(|u| !settled(&u.uid))
        .map(|u| u.number)
        .collect();
    Ok(Some(new.len() as u64))
}
