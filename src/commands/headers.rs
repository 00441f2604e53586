//! `pop3 headers [MSG...]`: one row per message (number, size, From, Subject, Date), read with
//! `TOP n 0` so that message bodies are not downloaded.

use std::io::Write;

use clap::Args;

use crate::message;
use crate::ui::{compact_date, display_width, fit, human_size, terminal_width};

use super::Context;
use super::shared::select::{self, MessageArgs};
use super::shared::top::{HeaderReply, fetch_headers};

/// Arguments of `headers`.
#[derive(Debug, Args)]
pub struct HeadersArgs {
    /// Which messages (all when none is named)
    #[command(flatten)]
    pub select: MessageArgs,
    /// Print every header of every message as JSON
    #[arg(long)]
    pub json: bool,
}

/// Runs `headers`.
pub fn run(context: &Context, args: &HeadersArgs) -> anyhow::Result<()> {
    let specs = select::parse_specs(&args.select)?;
    let mut connection = context.connect_prefetching(&select::prefetch(&specs, args.json))?;
    let selected = select::resolve(&mut connection, &specs, args.json)?;
    let numbers: Vec<_> = selected.iter().map(|s| s.number).collect();
    let quiet = context.verbosity == super::Verbosity::Quiet;
    let replies = fetch_headers(&mut connection, &numbers, &mut |note| {
        if !quiet {
            eprintln!("pop3: note: {note}");
        }
    })?;
    let _ = connection.session.quit();

    let mut out = crate::ui::stdout();
    if selected.is_empty() && !args.json && !quiet {
        eprintln!("{}", crate::ui::EMPTY_MAILBOX);
    }
    if args.json {
        let rows: Vec<_> = selected
            .iter()
            .zip(&replies)
            .map(|(message, reply)| {
                let mut row = serde_json::json!({
                    "number": message.number.get(),
                    "size": message.size,
                    "uid": message.uid.as_ref().map(|u| u.as_str()),
                });
                match reply {
                    HeaderReply::Headers(raw) => {
                        let headers: Vec<_> = message::all_headers(raw)
                            .into_iter()
                            .map(|(name, value)| serde_json::json!({"name": name, "value": value}))
                            .collect();
                        row["headers"] = headers.into();
                    }
                    HeaderReply::Refused(status) => row["error"] = status.to_string().into(),
                }
                row
            })
            .collect();
        writeln!(out, "{}", serde_json::Value::Array(rows))?;
        return Ok(());
    }

    let number_width = numbers
        .iter()
        .map(|n| n.to_string().len())
        .max()
        .unwrap_or(1);
    const SIZE_WIDTH: usize = 9;
    const DATE_WIDTH: usize = 17;
    // Number, size and date are fixed; From and Subject share what is left (2:3).
    let fixed = number_width + SIZE_WIDTH + DATE_WIDTH + 8;
    let flexible = terminal_width().map(|w| w.saturating_sub(fixed).max(20));
    let summaries: Vec<Result<message::Summary, _>> = replies
        .iter()
        .map(|reply| match reply {
            HeaderReply::Headers(raw) => {
                let mut summary = message::summarize(raw);
                // `(none)` as `read` and `delete` show it: an empty cell reads as a fault.
                summary.from = crate::ui::header_value(&summary.from, None);
                Ok(summary)
            }
            HeaderReply::Refused(status) => Err(status),
        })
        .collect();
    let column = |field: fn(&message::Summary) -> &str| {
        summaries
            .iter()
            .flatten()
            .map(|s| display_width(field(s)))
            .max()
            .unwrap_or(0)
    };
    let (from_column, subject_column) = (column(|s| &s.from), column(|s| &s.subject));
    for (message, summary) in selected.iter().zip(summaries) {
        let summary = match summary {
            Ok(summary) => summary,
            Err(status) => {
                eprintln!(
                    "pop3: message {}: the server refused: {}",
                    message.number,
                    message::display_safe(&status.to_string())
                );
                continue;
            }
        };
        let date = compact_date(&summary.date);
        let line = match flexible {
            Some(width) => {
                let from_width = width * 2 / 5;
                format!(
                    "{:>number_width$}  {:>SIZE_WIDTH$}  {}  {}  {}",
                    message.number,
                    human_size(message.size),
                    fit(&summary.from, from_width),
                    fit(&summary.subject, width - from_width),
                    fit(&date, DATE_WIDTH),
                )
            }
            // Not a terminal: cut nothing, but keep the columns aligned.
            None => format!(
                "{:>number_width$}  {:>SIZE_WIDTH$}  {}  {}  {}",
                message.number,
                human_size(message.size),
                fit(&summary.from, from_column),
                fit(&summary.subject, subject_column),
                date
            ),
        };
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}
