//! `pop3 read MSG`: shows one message as a person reads it (headers, text, attachments), or its
//! exact bytes with `--raw` / `--output FILE`, or saves its attachments with
//! `--save-attachments DIR`.

use std::io::Write;
use std::path::{Path, PathBuf};

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
    /// Save the attachments into DIR, an existing directory, each under a new file name
    /// (never replacing a file); prints the path of each file saved
    #[arg(long, value_name = "DIR", conflicts_with_all = ["raw", "output"])]
    pub save_attachments: Option<PathBuf>,
}

/// Runs `read`.
pub fn run(context: &Context, args: &ReadArgs, paging: crate::ui::Paging) -> anyhow::Result<()> {
    let specs = select::parse_specs(&MessageArgs {
        messages: vec![args.message.clone()],
        uid: args.uid,
        last: None,
    })?;
    if let [MessageSpec::Range(..)] = specs.as_slice() {
        return Err(CommandError::ReadRange.into());
    }
    // Before connecting: a typo in DIR must not cost a RETR (which may mark the message seen).
    if let Some(dir) = &args.save_attachments {
        check_directory(dir)?;
    }
    let mut connection = context.connect_prefetching(&select::prefetch(&specs, false))?;
    let selected = select::resolve(&mut connection, &specs, false)?;
    let number = selected[0].number;
    let session = &mut connection.session;

    if args.raw {
        let mut out = std::io::BufWriter::new(crate::ui::stdout());
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
    } else if let Some(dir) = &args.save_attachments {
        let raw = retr_for_display(session, number, selected[0].size)?;
        let saved = save_attachments(&raw, dir)?;
        if saved == 0 && context.verbosity != super::Verbosity::Quiet {
            eprintln!("message {number} has no attachments");
        }
    } else {
        let raw = retr_for_display(session, number, selected[0].size)?;
        print_readable(&raw, paging)?;
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
    let file = tempfile::NamedTempFile::new_in(dir).map_err(|e| io_failure(path, e))?;
    let mut writer = std::io::BufWriter::new(file);
    let size = session.retr(number, &mut |data| writer.write_all(data))?;
    // A failed flush or fsync is a local write error (74) like the others, not a bug.
    let file = writer
        .into_inner()
        .map_err(|e| io_failure(path, e.into_error()))?;
    file.as_file().sync_all().map_err(|e| io_failure(path, e))?;
    file.persist(path).map_err(|e| io_failure(path, e.error))?;
    Ok(size)
}

/// Shows the message as a person reads it, through the pager when it is long (see
/// [`crate::ui::Paging`]).
fn print_readable(raw: &[u8], paging: crate::ui::Paging) -> anyhow::Result<()> {
    let readable = message::readable(raw);
    let summary = &readable.summary;
    // Composed in full first: the pager is chosen by the height of the whole text.
    let mut out = Vec::new();
    for (name, value) in [
        ("From", &summary.from),
        ("To", &summary.to),
        ("Cc", &summary.cc),
        ("Subject", &summary.subject),
        ("Date", &summary.date),
    ] {
        if !value.is_empty() || matches!(name, "From" | "Subject") {
            let value = crate::ui::header_value(value, None);
            writeln!(out, "{:<9}{value}", format!("{name}:"))?;
        }
    }
    writeln!(out)?;
    write_text(&mut out, &readable)?;
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
    crate::ui::page(&out, paging)?;
    Ok(())
}

/// Writes the text of a message as `read` and `browse` show it: a note when it was rendered
/// from HTML, then the text, or a note that there is none.
pub(super) fn write_text(
    out: &mut impl Write,
    readable: &message::Readable,
) -> std::io::Result<()> {
    if readable.from_html {
        writeln!(out, "[this message has only HTML; shown as plain text]\n")?;
    }
    if readable.text.is_empty() {
        writeln!(out, "[this message has no text]")
    } else {
        writeln!(out, "{}", readable.text)
    }
}

/// The most attempts at a free name for one attachment (`a.pdf`, `a-1.pdf`, ...).
const MAX_NAME_ATTEMPTS: u32 = 1000;

/// The longest file name `--save-attachments` makes, in bytes: below Linux's `NAME_MAX` (255)
/// with room for a `-NNN` suffix.
const MAX_NAME_LEN: usize = 200;

/// Refuses a `--save-attachments` directory that does not exist or is not a directory. It is
/// not created: a mistyped path would otherwise silently collect attachments somewhere else.
fn check_directory(dir: &Path) -> anyhow::Result<()> {
    let problem = match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => return Ok(()),
        Ok(_) => "not a directory".to_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            "no such directory (create it first)".to_owned()
        }
        Err(e) => e.to_string(),
    };
    Err(CommandError::CannotSaveIn {
        dir: dir.to_owned(),
        problem,
    }
    .into())
}

/// Saves every attachment of `raw` into `dir`, printing each path on stdout as soon as the
/// file is complete. Returns how many were saved.
fn save_attachments(raw: &[u8], dir: &Path) -> anyhow::Result<usize> {
    let files = message::attachment_files(raw);
    let mut out = crate::ui::stdout();
    for file in &files {
        let fallback = if file.attachment.content_type == "message/rfc822" {
            "message.eml"
        } else {
            "attachment"
        };
        let name = safe_file_name(&file.suggested_name, fallback);
        let path = save_new_file(dir, &name, &file.content)?;
        writeln!(out, "{}", path.display())?;
        out.flush()?;
    }
    if !files.is_empty() {
        // The new names are durable once the directory is.
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_failure(dir, e))?;
    }
    Ok(files.len())
}

fn io_failure(path: &Path, error: std::io::Error) -> CommandError {
    CommandError::CannotWrite {
        path: path.to_owned(),
        error: without_temporary_path(error),
    }
}

/// `error` without the ` at path "/dir/.tmpXXXXXX"` that the tempfile crate appends: that
/// random name means nothing to the user, who asked for another file (named in the message).
fn without_temporary_path(error: std::io::Error) -> std::io::Error {
    let text = error.to_string();
    match text.rfind(" at path \"") {
        Some(at) if error.get_ref().is_some() => std::io::Error::new(error.kind(), &text[..at]),
        _ => error,
    }
}

/// Writes `content` to a new file in `dir` called `name`, or `name` numbered (`a-1.pdf`, ...)
/// when that exists; returns its path. The file is written under a temporary name (created
/// with `O_EXCL`), synced, then given its name with `renameat2(RENAME_NOREPLACE)` (or a hard
/// link): so a file appears complete or not at all, an existing file is never replaced, and a
/// symbolic link at the name is never followed (it counts as an existing file).
fn save_new_file(dir: &Path, name: &str, content: &[u8]) -> Result<PathBuf, CommandError> {
    let mut temp = tempfile::Builder::new()
        .prefix(".pop3-attachment-")
        .tempfile_in(dir)
        .map_err(|e| io_failure(dir, e))?;
    temp.write_all(content)
        .and_then(|()| temp.as_file().sync_all())
        .map_err(|e| io_failure(temp.path(), e))?;
    for attempt in 0..MAX_NAME_ATTEMPTS {
        let path = dir.join(numbered(name, attempt));
        match temp.persist_noclobber(&path) {
            Ok(_) => return Ok(path),
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => temp = e.file,
            Err(e) => return Err(io_failure(&path, e.error)),
        }
    }
    Err(CommandError::NoFreeName {
        name: name.to_owned(),
        dir: dir.to_owned(),
        attempts: MAX_NAME_ATTEMPTS,
    })
}

/// `name` for attempt 0, else with `-N` before its extension: `a.pdf`, `a-1.pdf`, `a-2.pdf`.
fn numbered(name: &str, attempt: u32) -> String {
    if attempt == 0 {
        return name.to_owned();
    }
    match name.rfind('.') {
        Some(dot) if dot > 0 => format!("{}-{attempt}{}", &name[..dot], &name[dot..]),
        _ => format!("{name}-{attempt}"),
    }
}

/// A file name that stays inside the directory it is created in, whatever the message says:
/// only the last path component (`/` and `\\` separate), no control or bidirectional
/// characters, no leading dots (`..`, hidden files) or dashes (a name read as an option), no
/// trailing dots or spaces, a Windows device name (`CON`, `nul.txt`) prefixed with `_` (the
/// directory may be a shared or mounted Windows file system), at most [`MAX_NAME_LEN`] bytes
/// (keeping a short extension). `fallback` when nothing is left.
fn safe_file_name(suggested: &str, fallback: &str) -> String {
    let last = suggested.rsplit(['/', '\\']).next().unwrap_or_default();
    let visible = message::display_safe(last).replace(['\n', '\t'], " ");
    let mut name = visible
        .trim_start_matches(|c: char| c == '.' || c == '-' || c.is_whitespace())
        .trim_end_matches(|c: char| c == '.' || c.is_whitespace())
        .to_owned();
    if name.is_empty() {
        return fallback.to_owned();
    }
    let stem = name.split('.').next().unwrap_or_default().trim_end();
    if is_windows_device(stem) {
        name.insert(0, '_');
    }
    if name.len() > MAX_NAME_LEN {
        let extension = match name.rfind('.') {
            Some(dot) if name.len() - dot <= 16 => name[dot..].to_owned(),
            _ => String::new(),
        };
        let mut end = MAX_NAME_LEN - extension.len();
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        name = format!("{}{extension}", name[..end].trim_end());
    }
    name
}

/// `CON`, `PRN`, `AUX`, `NUL`, `COM1`..`COM9`, `LPT1`..`LPT9`, in any case.
fn is_windows_device(stem: &str) -> bool {
    let upper = stem.to_ascii_uppercase();
    matches!(upper.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || (upper.len() == 4
            && (upper.starts_with("COM") || upper.starts_with("LPT"))
            && matches!(upper.as_bytes()[3], b'1'..=b'9'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_file_names() {
        for (suggested, safe) in [
            ("invoice.pdf", "invoice.pdf"),
            ("../../etc/passwd", "passwd"),
            ("/abs/x", "x"),
            ("C:\\Windows\\evil.bat", "evil.bat"),
            ("dir/", "attachment"),
            ("..", "attachment"),
            ("...", "attachment"),
            ("", "attachment"),
            (".bashrc", "bashrc"),
            ("-rf", "rf"),
            ("  spaced name.txt  ", "spaced name.txt"),
            ("trailing dots...", "trailing dots"),
            ("line\nbreak\r.txt", "line break.txt"),
            (
                "\u{1b}]0;owned\u{7}\u{1b}[31mred.txt",
                "]0;owned[31mred.txt",
            ),
            ("\u{202e}fdp.exe", "fdp.exe"),
            ("CON", "_CON"),
            ("nul.txt", "_nul.txt"),
            ("com1", "_com1"),
            ("LPT9.tar.gz", "_LPT9.tar.gz"),
            ("COM10", "COM10"),
            ("CONSOLE.txt", "CONSOLE.txt"),
            ("Re: hello.eml", "Re: hello.eml"),
        ] {
            assert_eq!(
                safe_file_name(suggested, "attachment"),
                safe,
                "{suggested:?}"
            );
        }
    }

    #[test]
    fn long_names_are_cut_keeping_the_extension() {
        let long = format!("{}.pdf", "\u{e9}".repeat(300));
        let safe = safe_file_name(&long, "attachment");
        assert!(safe.len() <= MAX_NAME_LEN, "{}", safe.len());
        assert!(safe.ends_with("\u{e9}.pdf"), "{safe}");
        let safe = safe_file_name(&"x".repeat(1000), "attachment");
        assert_eq!(safe, "x".repeat(MAX_NAME_LEN));
    }

    #[test]
    fn numbered_names() {
        assert_eq!(numbered("a.pdf", 0), "a.pdf");
        assert_eq!(numbered("a.pdf", 1), "a-1.pdf");
        assert_eq!(numbered("archive.tar.gz", 2), "archive.tar-2.gz");
        assert_eq!(numbered("README", 3), "README-3");
    }

    #[test]
    fn save_new_file_never_replaces_nor_follows_a_symlink() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("in");
        std::fs::create_dir(&dir).unwrap();
        let outside = root.path().join("outside");
        std::fs::write(&outside, "keep").unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("a.pdf")).unwrap();
        std::fs::write(dir.join("a-1.pdf"), "old").unwrap();
        let path = save_new_file(&dir, "a.pdf", b"new").unwrap();
        assert_eq!(path, dir.join("a-2.pdf"));
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::read(&outside).unwrap(), b"keep");
        assert_eq!(std::fs::read(dir.join("a-1.pdf")).unwrap(), b"old");
        // No temporary file is left behind.
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["a-1.pdf", "a-2.pdf", "a.pdf"]);
    }

    #[test]
    fn save_new_file_reports_an_io_error() {
        let e = save_new_file(Path::new("/proc/self"), "x", b"x").unwrap_err();
        let message = e.to_string();
        assert_eq!(
            crate::exit::classify(&e.into()),
            crate::exit::ExitCode::IoError
        );
        assert!(
            message.starts_with("cannot write /proc/self: "),
            "{message}"
        );
    }
}
