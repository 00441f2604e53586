//! `pop3 list`: one row per message with its number, size and unique-id.

use std::collections::HashMap;
use std::io::Write;

use crate::cli::JsonArgs;
use crate::pop3::Command;

use super::Context;

/// Runs `list`.
pub fn run(context: &Context, args: &JsonArgs) -> anyhow::Result<()> {
    let mut connection =
        context.connect_prefetching(&[Command::List(None), Command::Uidl(None)])?;
    let session = &mut connection.session;
    let scan = session.list()?;
    let uids = if connection.capabilities.uidl() || !connection.capabilities.is_known() {
        match session.uidl() {
            Ok(uids) => uids,
            // A server without CAPA may still lack UIDL; the listing is useful without it.
            Err(crate::pop3::Error::Server { .. }) => Vec::new(),
            Err(e) => return Err(e.into()),
        }
    } else {
        Vec::new()
    };
    let _ = connection.session.quit();

    let uids: HashMap<_, _> = uids.iter().map(|u| (u.number, u.uid.as_str())).collect();
    let uid_of = |number| uids.get(&number).copied();
    let mut out = crate::ui::stdout();
    if args.json {
        let rows: Vec<_> = scan
            .iter()
            .map(|m| {
                serde_json::json!({
                    "number": m.number.get(),
                    "size": m.size,
                    "uid": uid_of(m.number),
                })
            })
            .collect();
        writeln!(out, "{}", serde_json::Value::Array(rows))?;
        return Ok(());
    }
    let number_width = scan.last().map_or(1, |m| m.number.to_string().len());
    let size_width = scan
        .iter()
        .map(|m| m.size.to_string().len())
        .max()
        .unwrap_or(1);
    for message in &scan {
        let line = format!(
            "{:>number_width$}  {:>size_width$}  {}",
            message.number,
            message.size,
            uid_of(message.number).unwrap_or("")
        );
        writeln!(out, "{}", line.trim_end())?;
    }
    if scan.is_empty() && context.verbosity != super::Verbosity::Quiet {
        eprintln!("{}", crate::ui::EMPTY_MAILBOX);
    }
    Ok(())
}
