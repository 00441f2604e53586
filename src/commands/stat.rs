//! `pop3 stat`: the number of messages and their total size.

use std::io::Write;

use crate::cli::JsonArgs;
use crate::pop3::Command;
use crate::ui::{count, human_size};

use super::Context;

/// Runs `stat`.
pub fn run(context: &Context, args: &JsonArgs) -> anyhow::Result<()> {
    let mut connection = context.connect_prefetching(&[Command::Stat])?;
    let stat = connection.session.stat()?;
    // Nothing was changed, so a failing QUIT loses nothing; the answer still stands.
    let _ = connection.session.quit();
    if args.json {
        let json = serde_json::json!({ "messages": stat.messages, "octets": stat.octets });
        writeln!(std::io::stdout(), "{json}")?;
    } else {
        writeln!(
            std::io::stdout(),
            "{}, {}",
            count(stat.messages.into(), "message"),
            human_size(stat.octets)
        )?;
    }
    Ok(())
}
