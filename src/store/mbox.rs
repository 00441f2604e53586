//! mbox delivery in the mboxrd format: each message starts with a `From ` line, and any line
//! of the message that matches `>*From ` gets one more `>`, so readers can undo the quoting
//! exactly. The file is locked the way mutt and other readers expect: an fcntl write lock plus a
//! `FILE.lock` dot-lock.
//!
//! A message is first rendered into a local spool file while it downloads ([`spool`]); the mbox
//! is locked only to copy a complete spool onto its end ([`Mbox::append`]), so a slow server
//! never keeps the user's mailbox locked. An mbox cannot be searched for what was delivered, so
//! the caller records where each append starts before it starts (`pending` in the state
//! journal); after a kill, [`Mbox::recover`] compares the mbox with the spool at that offset and
//! tells a complete copy (to record) from a torn one (cut back off).

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::LfWriter;

/// How long to wait for another program's lock.
const LOCK_TIMEOUT: Duration = Duration::from_secs(60);
/// A dot-lock older than this is left over from a crash.
const STALE_DOT_LOCK: Duration = Duration::from_secs(600);

/// An mbox file, locked for appending; dropping it unlocks.
#[derive(Debug)]
pub(crate) struct Mbox {
    /// Never duplicated: POSIX drops a process's fcntl locks on a file as soon as *any*
    /// descriptor of it is closed, so there must be exactly one, closed last.
    file: File,
    dot_lock: PathBuf,
}

/// What [`Mbox::recover`] found where an interrupted append started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recovered {
    /// The whole message is there: it was delivered.
    Complete,
    /// Only the start of it was there, at the end of the file; it was cut off again.
    CutBack,
    /// Nothing of it was written.
    NotStarted,
    /// Something else is there (another program rewrote the mbox): left alone, and the
    /// message counts as not delivered.
    Unrecognised,
}

impl Mbox {
    /// Opens (creating, mode 0600) and locks the mbox at `path`; its directory must exist.
    pub(crate) fn open_locked(path: &Path) -> io::Result<Mbox> {
        super::check_parent(path)?;
        let mut dot_lock = path.as_os_str().to_owned();
        dot_lock.push(".lock");
        let dot_lock = PathBuf::from(dot_lock);
        take_dot_lock(&dot_lock)?;
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path);
        let locked = file.and_then(|file| {
            take_fcntl_lock(&file)?;
            Ok(file)
        });
        match locked {
            Ok(file) => Ok(Mbox { file, dot_lock }),
            Err(e) => {
                let _ = std::fs::remove_file(&dot_lock);
                Err(e)
            }
        }
    }

    /// Appends a spooled message and flushes it to disk. `pending` is called with the offset
    /// where the message will start, before its first byte is written (the caller records it
    /// durably, for [`Mbox::recover`]). If the file does not end with the blank line that closes
    /// a message (another writer was killed mid-message), the missing line endings come first,
    /// so this message never merges into the torn one. On failure the message is cut off again.
    pub(crate) fn append(
        &mut self,
        spooled: &Spooled,
        pending: impl FnOnce(u64) -> io::Result<()>,
    ) -> io::Result<()> {
        let len = self.file.metadata()?.len();
        let separator = separator_needed(&self.file, len)?;
        (&self.file).write_all(separator)?;
        let offset = len + separator.len() as u64;
        pending(offset)?;
        let copied = File::open(&spooled.path).and_then(|mut spool| {
            let mut out = BufWriter::with_capacity(256 * 1024, &self.file);
            io::copy(&mut spool, &mut out)?;
            out.flush()?;
            drop(out);
            self.file.sync_data()
        });
        if copied.is_err() {
            let _ = self.file.set_len(offset);
        }
        copied
    }

    /// Settles an append that a kill interrupted: it was to start at `offset` with the bytes
    /// of the spool file `spool`. A complete copy stays; a torn one (a prefix of the spool at
    /// the very end of the file) is cut off and flushed; anything else is left alone.
    pub(crate) fn recover(&mut self, offset: u64, spool: &Path) -> io::Result<Recovered> {
        let len = self.file.metadata()?.len();
        let mut spool = match File::open(spool) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(if len == offset {
                    Recovered::NotStarted
                } else {
                    Recovered::Unrecognised
                });
            }
            Err(e) => return Err(e),
        };
        if len == offset {
            return Ok(Recovered::NotStarted);
        }
        if len < offset {
            return Ok(Recovered::Unrecognised);
        }
        let spool_len = spool.metadata()?.len();
        let present = (len - offset).min(spool_len);
        let mut ours = vec![0u8; 64 * 1024];
        let mut theirs = vec![0u8; 64 * 1024];
        let mut done = 0u64;
        while done < present {
            let n = ours.len().min((present - done) as usize);
            spool.read_exact(&mut ours[..n])?;
            self.file.read_exact_at(&mut theirs[..n], offset + done)?;
            if ours[..n] != theirs[..n] {
                return Ok(Recovered::Unrecognised);
            }
            done += n as u64;
        }
        if present == spool_len {
            return Ok(Recovered::Complete);
        }
        self.file.set_len(offset)?;
        self.file.sync_data()?;
        Ok(Recovered::CutBack)
    }
}

impl Drop for Mbox {
    fn drop(&mut self) {
        // Closing the file releases the fcntl lock; the dot-lock is ours to remove.
        let _ = std::fs::remove_file(&self.dot_lock);
    }
}

/// Takes the dot-lock `path` the way liblockfile does: a uniquely named file holding our PID is
/// created first and then linked to `path`, so the lock appears atomically with its PID in it
/// (a lock created empty and filled in a second step blocks every mail program for
/// [`STALE_DOT_LOCK`] when its writer is killed in between).
fn take_dot_lock(path: &Path) -> io::Result<()> {
    let unique = unique_lock_name(path);
    remove_dead_unique_locks(path);
    let _ = std::fs::remove_file(&unique);
    {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&unique)?;
        // The holder's PID inside lets the next taker see that a killed run left it.
        writeln!(file, "{}", std::process::id())?;
    }
    let taken = link_dot_lock(&unique, path);
    let _ = std::fs::remove_file(&unique);
    taken
}

fn link_dot_lock(unique: &Path, path: &Path) -> io::Result<()> {
    let deadline = Instant::now() + LOCK_TIMEOUT;
    loop {
        match std::fs::hard_link(unique, path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let stale = holder_is_gone(path)
                    || std::fs::metadata(path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > STALE_DOT_LOCK);
                if stale {
                    let _ = std::fs::remove_file(path);
                    continue;
                }
                if Instant::now() > deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::WouldBlock,
                        format!("{} is held by another program", path.display()),
                    ));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            // NFS may report a failure for a link that was made: the link count tells.
            Err(e) => {
                return match std::fs::metadata(unique) {
                    Ok(m) if m.nlink() == 2 => Ok(()),
                    _ => Err(e),
                };
            }
        }
    }
}

/// `.NAME.lock.pop3-PID.HOST` beside the lock `NAME.lock`.
fn unique_lock_name(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!(
        ".{name}.pop3-{}.{}",
        std::process::id(),
        super::maildir::hostname()
    ))
}

/// Removes the unique files of [`take_dot_lock`] that runs killed before they could unlink
/// them left behind: ours by name, of this host, and of a process that no longer exists.
fn remove_dead_unique_locks(path: &Path) {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let prefix = format!(".{name}.pop3-");
    let suffix = format!(".{}", super::maildir::hostname());
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let file_name = file_name.to_string_lossy();
        let pid = file_name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(&suffix))
            .and_then(|pid| pid.parse::<libc::pid_t>().ok());
        if pid.is_some_and(process_is_gone) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Whether the dot-lock names a process of this machine that no longer exists.
fn holder_is_gone(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| text.trim().parse::<libc::pid_t>().ok())
        .is_some_and(process_is_gone)
}

/// Whether no process `pid` exists on this machine.
pub(crate) fn process_is_gone(pid: libc::pid_t) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks whether the process exists.
    let alive = unsafe { libc::kill(pid, 0) } == 0
        || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    !alive
}

fn take_fcntl_lock(file: &File) -> io::Result<()> {
    let deadline = Instant::now() + LOCK_TIMEOUT;
    // SAFETY: a zeroed flock is a valid value; the fields that matter are set below.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    loop {
        // SAFETY: fcntl with F_SETLK and a valid flock structure.
        if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &lock) } == 0 {
            return Ok(());
        }
        let error = io::Error::last_os_error();
        let busy = matches!(error.raw_os_error(), Some(libc::EACCES | libc::EAGAIN));
        if !busy || Instant::now() > deadline {
            return Err(error);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The line endings to write before a new message so that it starts after an empty line.
fn separator_needed(file: &File, len: u64) -> io::Result<&'static [u8]> {
    if len == 0 {
        return Ok(b"");
    }
    let mut tail = [0u8; 2];
    let start = len.saturating_sub(2);
    let read = file.read_at(&mut tail[..(len - start) as usize], start)?;
    Ok(match &tail[..read] {
        [b'\n', b'\n'] => b"",
        [b'\n'] if len == 1 => b"",
        [_, b'\n'] | [b'\n'] => b"\n",
        _ => b"\n\n",
    })
}

/// Starts spooling a message for an mbox into the file `path` (created or emptied, mode
/// 0600): its `From ` line, then the message quoted and with LF line endings. The `From `
/// line names the envelope sender, as mpop and fetchmail write it: the message's
/// `Return-Path`, so the header is held back (at most [`HEADER_HOLD`] octets) until it is in.
pub(crate) fn spool(path: &Path) -> io::Result<MboxMessage> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    let writer = BufWriter::with_capacity(64 * 1024, file);
    Ok(MboxMessage {
        stage: Stage::Header(writer, Vec::new()),
        path: path.to_owned(),
    })
}

/// The most octets of a message's header held back to find its `Return-Path`; a header longer
/// than that gets `MAILER-DAEMON` (a server may send anything).
const HEADER_HOLD: usize = 64 * 1024;

/// A message being spooled for an mbox.
pub(crate) struct MboxMessage {
    stage: Stage,
    path: PathBuf,
}

enum Stage {
    /// The header so far, before the `From ` line can be written.
    Header(BufWriter<File>, Vec<u8>),
    /// The `From ` line is written; the rest of the message goes through.
    Body(LfWriter<Quoter<BufWriter<File>>>),
    /// Writing the `From ` line and the header failed: the message cannot be completed.
    Broken,
}

/// The `From ` line's sender: the `Return-Path` address in `header`, or `MAILER-DAEMON` when
/// there is none, it is the null path, or it could break the line (a space, a control or
/// non-ASCII character: readers split the line at spaces).
fn envelope_sender(header: &[u8]) -> String {
    let address = super::smtp::codec::scan_message(header)
        .ok()
        .and_then(|scan| scan.return_path);
    match address {
        Some(a) if a.len() <= 254 && a.bytes().all(|b| b.is_ascii_graphic()) => a,
        _ => "MAILER-DAEMON".to_owned(),
    }
}

fn broken() -> io::Error {
    io::Error::other("an earlier write of this message failed")
}

/// Whether `data` holds the end of a header (an empty line), looking from `from` on.
fn header_ended(data: &[u8], from: usize) -> bool {
    let from = from.saturating_sub(3);
    let tail = &data[from..];
    tail.windows(2).any(|w| w == b"\n\n")
        || tail.windows(3).any(|w| w == b"\n\r\n")
        || data.starts_with(b"\r\n")
        || data.starts_with(b"\n")
}

/// A complete message in its spool file, ready for [`Mbox::append`].
#[derive(Debug)]
pub(crate) struct Spooled {
    path: PathBuf,
}

impl MboxMessage {
    /// The spool file, for error messages.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Spools message data.
    pub(crate) fn write(&mut self, data: &[u8]) -> io::Result<()> {
        match &mut self.stage {
            Stage::Body(writer) => writer.write_all(data),
            Stage::Broken => Err(broken()),
            Stage::Header(_, held) => {
                let from = held.len();
                held.extend_from_slice(data);
                if held.len() >= HEADER_HOLD || header_ended(held, from) {
                    self.release()?;
                }
                Ok(())
            }
        }
    }

    /// Writes the `From ` line, then the header held so far.
    fn release(&mut self) -> io::Result<()> {
        if !matches!(self.stage, Stage::Header(..)) {
            return Ok(());
        }
        let Stage::Header(mut file, held) = std::mem::replace(&mut self.stage, Stage::Broken)
        else {
            unreachable!("matched above");
        };
        writeln!(file, "From {} {}", envelope_sender(&held), asctime_now())?;
        let mut writer = LfWriter::new(Quoter::new(file));
        writer.write_all(&held)?;
        self.stage = Stage::Body(writer);
        Ok(())
    }

    /// Ends the message: a final newline if it lacked one, then the blank separator line.
    pub(crate) fn finish(mut self) -> io::Result<Spooled> {
        self.release()?;
        let MboxMessage { stage, path } = self;
        let Stage::Body(writer) = stage else {
            return Err(broken());
        };
        let mut quoter = writer.finish()?;
        quoter.end_message()?;
        quoter.inner.into_inner().map_err(|e| e.into_error())?;
        Ok(Spooled { path })
    }

    /// Gives up on this message: the mbox never sees it.
    pub(crate) fn abort(self) {
        let MboxMessage { stage, path } = self;
        drop(stage);
        let _ = std::fs::remove_file(path);
    }
}

/// mboxrd quoting: `>*From ` at the start of a line gets another `>`.
struct Quoter<W: Write> {
    inner: W,
    state: LineState,
}

#[derive(Clone, Copy)]
enum LineState {
    /// At the start of a line: how many `>` and how much of `From ` were seen so far.
    Start { quotes: usize, matched: usize },
    /// Past the point where quoting is decided.
    Body,
}

const FROM: &[u8] = b"From ";

impl<W: Write> Quoter<W> {
    fn new(inner: W) -> Quoter<W> {
        Quoter {
            inner,
            state: LineState::Start {
                quotes: 0,
                matched: 0,
            },
        }
    }

    /// Writes out a held-back line start as it was.
    fn release(&mut self, quotes: usize, matched: usize) -> io::Result<()> {
        for _ in 0..quotes {
            self.inner.write_all(b">")?;
        }
        self.inner.write_all(&FROM[..matched])
    }

    fn end_message(&mut self) -> io::Result<()> {
        match self.state {
            LineState::Start {
                quotes: 0,
                matched: 0,
            } => {}
            LineState::Start { quotes, matched } => {
                self.release(quotes, matched)?;
                self.inner.write_all(b"\n")?;
            }
            LineState::Body => self.inner.write_all(b"\n")?,
        }
        self.inner.write_all(b"\n")?;
        self.state = LineState::Start {
            quotes: 0,
            matched: 0,
        };
        Ok(())
    }
}

impl<W: Write> Write for Quoter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut pos = 0;
        while pos < data.len() {
            match self.state {
                LineState::Body => match memchr::memchr(b'\n', &data[pos..]) {
                    Some(end) => {
                        self.inner.write_all(&data[pos..=pos + end])?;
                        pos += end + 1;
                        self.state = LineState::Start {
                            quotes: 0,
                            matched: 0,
                        };
                    }
                    None => {
                        self.inner.write_all(&data[pos..])?;
                        pos = data.len();
                    }
                },
                LineState::Start { quotes, matched } => {
                    let byte = data[pos];
                    if matched == 0 && byte == b'>' {
                        self.state = LineState::Start {
                            quotes: quotes + 1,
                            matched,
                        };
                        pos += 1;
                    } else if byte == FROM[matched] {
                        pos += 1;
                        if matched + 1 == FROM.len() {
                            self.inner.write_all(b">")?;
                            self.release(quotes, FROM.len())?;
                            self.state = LineState::Body;
                        } else {
                            self.state = LineState::Start {
                                quotes,
                                matched: matched + 1,
                            };
                        }
                    } else {
                        // Not a From line: give back what was held, then carry on in the body.
                        self.release(quotes, matched)?;
                        self.state = LineState::Body;
                    }
                }
            }
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The current UTC time as `asctime` writes it: `Sat Nov 21 22:00:00 2026`.
fn asctime_now() -> String {
    asctime(super::unix_now())
}

fn asctime(secs: u64) -> String {
    let t = super::UtcTime::from_unix(secs);
    format!(
        "{} {} {:2} {:02}:{:02}:{:02} {}",
        t.weekday, t.month, t.day, t.hour, t.minute, t.second, t.year
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quote(input: &[u8], chunk: usize) -> Vec<u8> {
        let mut quoter = Quoter::new(Vec::new());
        for piece in input.chunks(chunk.max(1)) {
            quoter.write_all(piece).unwrap();
        }
        quoter.end_message().unwrap();
        quoter.inner
    }

    #[test]
    fn mboxrd_quoting_in_any_chunking() {
        let input =
            b"Subject: x\n\nFrom here\n>From there\n>>From afar\nFrom\nFro\n> From no\nFromage\n";
        let expected = b"Subject: x\n\n>From here\n>>From there\n>>>From afar\nFrom\nFro\n> From no\nFromage\n\n";
        for chunk in 1..=input.len() {
            assert_eq!(quote(input, chunk), expected, "chunk {chunk}");
        }
    }

    #[test]
    fn a_missing_final_newline_is_added() {
        assert_eq!(quote(b"body", 2), b"body\n\n");
        assert_eq!(quote(b"x\n>Fr", 1), b"x\n>Fr\n\n");
    }

    #[test]
    fn a_dot_lock_left_by_a_dead_process_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("inbox.lock");
        // A PID that cannot exist (above the kernel's limit).
        std::fs::write(&lock, "99999999\n").unwrap();
        take_dot_lock(&lock).unwrap();
        assert_eq!(
            std::fs::read_to_string(&lock).unwrap().trim(),
            std::process::id().to_string()
        );
    }

    /// Spools `body` at `spool_path` and appends it to the mbox at `path`.
    fn deliver(path: &Path, spool_path: &Path, body: &[u8]) -> u64 {
        let mut message = spool(spool_path).unwrap();
        message.write(body).unwrap();
        let spooled = message.finish().unwrap();
        let mut mbox = Mbox::open_locked(path).unwrap();
        let mut at = None;
        mbox.append(&spooled, |offset| {
            at = Some(offset);
            Ok(())
        })
        .unwrap();
        at.unwrap()
    }

    #[test]
    fn a_message_never_merges_into_a_torn_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inbox");
        // What a writer killed mid-message leaves: no final newline, no blank line.
        std::fs::write(
            &path,
            "From x Thu Jan  1 00:00:00 1970\nSubject: torn\n\nhalf a li",
        )
        .unwrap();
        deliver(
            &path,
            &dir.path().join("spool"),
            b"Subject: whole\r\n\r\nbody\r\n",
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("half a li\n\nFrom MAILER-DAEMON "), "{text}");
        assert!(text.ends_with("Subject: whole\n\nbody\n\n"), "{text}");
    }

    #[test]
    fn the_dot_lock_appears_with_its_pid_and_dead_unique_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("inbox.lock");
        // A unique file left by a run killed between creating and unlinking it, and one of a
        // live process (ours, as a stand-in) that must stay.
        let host = super::super::maildir::hostname();
        let dead = dir.path().join(format!(".inbox.lock.pop3-99999999.{host}"));
        let live = dir.path().join(format!(".inbox.lock.pop3-1.{host}"));
        std::fs::write(&dead, "99999999\n").unwrap();
        std::fs::write(&live, "1\n").unwrap();
        take_dot_lock(&lock).unwrap();
        assert_eq!(
            std::fs::read_to_string(&lock).unwrap().trim(),
            std::process::id().to_string()
        );
        assert!(!dead.exists(), "a dead run's unique file stayed");
        assert!(live.exists(), "a live process's unique file was removed");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn recovery_keeps_a_complete_copy_and_cuts_a_torn_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inbox");
        let spool_path = dir.path().join("spool");
        deliver(&path, &spool_path, b"Subject: first\r\n\r\none\r\n");
        let before = std::fs::metadata(&path).unwrap().len();
        let offset = deliver(&path, &spool_path, b"Subject: second\r\n\r\ntwo\r\n");
        assert_eq!(offset, before);
        let whole = std::fs::read(&path).unwrap();
        let mut mbox = Mbox::open_locked(&path).unwrap();
        assert_eq!(
            mbox.recover(offset, &spool_path).unwrap(),
            Recovered::Complete
        );
        drop(mbox);
        assert_eq!(std::fs::read(&path).unwrap(), whole);

        // Every torn length is cut back to exactly the first message.
        for cut in offset + 1..whole.len() as u64 {
            std::fs::write(&path, &whole[..cut as usize]).unwrap();
            let mut mbox = Mbox::open_locked(&path).unwrap();
            assert_eq!(
                mbox.recover(offset, &spool_path).unwrap(),
                Recovered::CutBack,
                "cut {cut}"
            );
            drop(mbox);
            assert_eq!(std::fs::read(&path).unwrap(), &whole[..offset as usize]);
        }
        let mut mbox = Mbox::open_locked(&path).unwrap();
        assert_eq!(
            mbox.recover(offset, &spool_path).unwrap(),
            Recovered::NotStarted
        );
        drop(mbox);

        // Another program's message where ours should be is never touched.
        let mut foreign = whole[..offset as usize].to_vec();
        foreign.extend_from_slice(b"From someone\nSubject: theirs\n\n");
        std::fs::write(&path, &foreign).unwrap();
        let mut mbox = Mbox::open_locked(&path).unwrap();
        assert_eq!(
            mbox.recover(offset, &spool_path).unwrap(),
            Recovered::Unrecognised
        );
        drop(mbox);
        assert_eq!(std::fs::read(&path).unwrap(), foreign);
    }

    #[test]
    fn asctime_format() {
        assert_eq!(asctime(0), "Thu Jan  1 00:00:00 1970");
        assert_eq!(asctime(1_795_298_400), "Sat Nov 21 22:00:00 2026");
    }

    #[test]
    fn appends_locks_and_aborts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inbox");
        let spool_path = dir.path().join("spool");
        let mut message = spool(&spool_path).unwrap();
        message.write(b"Subject: a\r\n\r\nFrom me\r\n").unwrap();
        let spooled = message.finish().unwrap();
        let mut mbox = Mbox::open_locked(&path).unwrap();
        assert!(dir.path().join("inbox.lock").exists());
        mbox.append(&spooled, |_| Ok(())).unwrap();
        drop(mbox);
        assert!(!dir.path().join("inbox.lock").exists());
        let mut broken = spool(&spool_path).unwrap();
        broken.write(b"Subject: half").unwrap();
        broken.abort();
        assert!(!spool_path.exists());
        // A failed pending record stops the append before the message's first byte.
        let mut message = spool(&spool_path).unwrap();
        message.write(b"Subject: b\r\n\r\nb\r\n").unwrap();
        let spooled = message.finish().unwrap();
        let mut mbox = Mbox::open_locked(&path).unwrap();
        let err = mbox
            .append(&spooled, |_| Err(io::Error::other("no state")))
            .unwrap_err();
        assert_eq!(err.to_string(), "no state");
        drop(mbox);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("From MAILER-DAEMON "), "{text}");
        assert!(text.ends_with("\nSubject: a\n\n>From me\n\n"), "{text}");
        assert_eq!(text.matches("From MAILER-DAEMON").count(), 1);
    }

    fn from_line_of(chunks: &[&[u8]]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let spool_path = dir.path().join("spool");
        let mut message = spool(&spool_path).unwrap();
        for chunk in chunks {
            message.write(chunk).unwrap();
        }
        message.finish().unwrap();
        let text = std::fs::read_to_string(&spool_path).unwrap();
        let line = text.lines().next().unwrap();
        // The sender, without the date.
        line.split(' ').take(2).collect::<Vec<_>>().join(" ")
    }

    /// Trial 2: the `From ` line said MAILER-DAEMON even with a Return-Path; mpop and
    /// fetchmail name the envelope sender.
    #[test]
    fn mbox_from_line_names_the_return_path_sender() {
        assert_eq!(
            from_line_of(&[
                b"Received: by x\r\n",
                b"Return-Path: <list-bounces@example.org>\r\n",
                b"Subject: s\r\n",
                b"\r\n",
                b"Return-Path: <body@example.org>\r\n"
            ]),
            "From list-bounces@example.org"
        );
        // The header split anywhere, even inside the empty line.
        assert_eq!(
            from_line_of(&[b"Return-Path: <a@b.example>\r", b"\n\r", b"\nbody\r\n"]),
            "From a@b.example"
        );
        // None, the null path, one that would break the line, or one past the header: the
        // daemon.
        for message in [
            &b"Subject: s\r\n\r\nbody\r\n"[..],
            b"Return-Path: <>\r\n\r\n",
            b"Return-Path: <\"a b\"@example.org>\r\n\r\n",
            b"Subject: s\r\n\r\nReturn-Path: <late@example.org>\r\n",
            b"\r\nReturn-Path: <late@example.org>\r\n",
        ] {
            assert_eq!(
                from_line_of(&[message]),
                "From MAILER-DAEMON",
                "{message:?}"
            );
        }
        // A header without end, or longer than the hold, is not held forever.
        assert_eq!(
            from_line_of(&[b"Return-Path: <a@b.example>\r\nSubject: no body"]),
            "From a@b.example"
        );
        let mut long = b"Return-Path: <a@b.example>\r\n".to_vec();
        long.extend(std::iter::repeat_n(b"X-Pad: 0123456789\r\n".as_slice(), 5000).flatten());
        assert_eq!(from_line_of(&[&long, b"\r\nbody\r\n"]), "From a@b.example");
    }
}
