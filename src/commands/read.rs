//! `pop3 read MSG`: shows one message as a person reads it (headers, text, attachments), or its
//! exact bytes with `--raw` / `--output FILE`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use crate::message;
use crate::ui::human_size;

use super::shared::select::{self, MessageArgs, MessageSpec};
use super::{CommandError, Context};

/// Arguments of `read`.
#[derive(Debug, Args)]
#[command(
    after_help = "Reading uses RETR: some servers mark a message as seen (or even \
    as read by this client only once) when it is retrieved."
)]
pub struct ReadArgs {
    /// The message: a number, or a unique id with --uid
    #[arg(value_name = "MSG")]
    pub message: String,
    /// MSG is a unique id (UIDL)
    #[arg(long)]
    pub uid: bool,
    /// Write the exact message bytes as received to stdout
    #[arg(long, conflicts_with = "output")]
    pub raw: bool,
    /// Save the exact message bytes to FILE (replaced atomically)
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Runs `read`.
pub fn run(context: &Context, args: &ReadArgs) -> anyhow::Result<()> {
    let specs = select::parse_specs(&MessageArgs {
        messages: vec![args.message.clone()],
        uid: args.uid,
    })?;
    if let [MessageSpec::Range(..)] = specs.as_slice() {
        return Err(CommandError::ReadRange.into());
    }
    let mut connection = context.connect_prefetching(&select::prefetch(&specs, false))?;
    let selected = select::resolve(&mut connection, &specs, false)?;
    let number = selected[0].number;
    let session = &mut connection.session;

    if args.raw {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        session.retr(number, &mut |data| out.write_all(data))?;
        out.flush()?;
    } else if let Some(path) = &args.output {
        let size = save(session, number, path)?;
        if context.verbosity != super::Verbosity::Quiet {
            eprintln!(
                "saved message {number} ({}) to {}",
                human_size(size),
                path.display()
            );
        }
    } else {
        let raw = retr_for_display(session, number, selected[0].size)?;
        print_readable(&raw)?;
    }
    let _ = connection.session.quit();
    Ok(())
}

/// The largest message `read` holds in memory to show it. Everything the server announces is
/// distrusted: the LIST size only refuses early, and the download itself is cut at this size,
/// so neither a claimed size of 10^15 octets nor an endless RETR can exhaust memory.
/// `--raw` and `--output` stream instead and have no limit.
pub const MAX_READABLE_SIZE: u64 = 64 * 1024 * 1024;

/// Downloads a message to show it, within [`MAX_READABLE_SIZE`].
fn retr_for_display(
    session: &mut crate::pop3::Session<crate::transport::Stream>,
    number: crate::pop3::MessageNumber,
    listed_size: u64,
) -> anyhow::Result<Vec<u8>> {
    let too_big = || CommandError::TooBigToShow {
        number,
        limit: MAX_READABLE_SIZE,
    };
    if listed_size > MAX_READABLE_SIZE {
        return Err(too_big().into());
    }
    // No pre-allocation from the listed size: the server chooses that number.
    let mut raw = Vec::new();
    let mut overflow = false;
    let result = session.retr(number, &mut |data| {
        if raw.len() as u64 + data.len() as u64 > MAX_READABLE_SIZE {
            overflow = true;
            return Err(std::io::Error::other("message too big to show"));
        }
        raw.extend_from_slice(data);
        Ok(())
    });
    match result {
        Err(_) if overflow => Err(too_big().into()),
        Err(e) => Err(e.into()),
        Ok(_) => Ok(raw),
    }
}

/// Streams the message into a temporary file beside `path` and renames it into place, so an
/// interrupted download never leaves a truncated file under the requested name.
fn save(
    session: &mut crate::pop3::Session<crate::transport::Stream>,
    number: crate::pop3::MessageNumber,
    path: &std::path::Path,
) -> anyhow::Result<u64> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => std::path::Path::new("."),
    };
    let cannot_write = || format!("cannot write {}", path.display());
    let file = tempfile::NamedTempFile::new_in(dir).map_err(|error| CommandError::CannotWrite {
        path: path.to_owned(),
        error,
    })?;
    let mut writer = std::io::BufWriter::new(file);
    let size = session.retr(number, &mut |data| writer.write_all(data))?;
    let file = writer
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(cannot_write)?;
    file.as_file().sync_all().with_context(cannot_write)?;
    file.persist(path).map_err(|e| CommandError::CannotWrite {
        path: path.to_owned(),
        error: e.error,
    })?;
    Ok(size)
}

fn print_readable(raw: &[u8]) -> anyhow::Result<()> {
    let readable = message::readable(raw);
    let summary = &readable.summary;
    let mut out = std::io::stdout().lock();
    for (name, value) in [
        ("From", &summary.from),
        ("To", &summary.to),
        ("Cc", &summary.cc),
        ("Subject", &summary.subject),
        ("Date", &summary.date),
    ] {
        if !value.is_empty() || matches!(name, "From" | "Subject") {
            writeln!(out, "{:<9}{value}", format!("{name}:"))?;
        }
    }
    writeln!(out)?;
    if readable.from_html {
        writeln!(out, "[this message has only HTML; shown as plain text]\n")?;
    }
    if readable.text.is_empty() {
        writeln!(out, "[this message has no text]")?;
    } else {
        writeln!(out, "{}", readable.text)?;
    }
    if !readable.attachments.is_empty() {
        writeln!(out, "\nAttachments:")?;
        for attachment in &readable.attachments {
            writeln!(
                out,
                "  {}  ({}, {})",
                attachment.name,
                attachment.content_type,
                human_size(attachment.size as u64)
            )?;
        }
    }
    Ok(())
}
