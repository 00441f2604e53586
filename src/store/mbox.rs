//! mbox delivery in the mboxrd format: each message starts with a `From ` line, and any line
//! of the message that matches `>*From ` gets one more `>`, so readers can undo the quoting
//! exactly. The file is locked the way mutt and other readers expect: an fcntl write lock plus a
//! `FILE.lock` dot-lock, held for one batch.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::LfWriter;

/// How long to wait for another program's lock.
const LOCK_TIMEOUT: Duration = Duration::from_secs(60);
/// A dot-lock older than this is left over from a crash.
const STALE_DOT_LOCK: Duration = Duration::from_secs(600);

/// An mbox file, locked for appending.
#[derive(Debug)]
pub struct Mbox {
    /// Shared, never duplicated: POSIX drops a process's fcntl locks on a file as soon as *any*
    /// descriptor of it is closed, so there must be exactly one, closed last.
    file: Arc<File>,
    dot_lock: PathBuf,
}

/// Writes through the shared descriptor.
struct SharedFile(Arc<File>);

impl Write for SharedFile {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        (&*self.0).write(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Mbox {
    /// Opens (creating, mode 0600) and locks the mbox at `path`.
    pub fn open_locked(path: &Path) -> io::Result<Mbox> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)?;
        }
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
            Ok(file) => Ok(Mbox {
                file: Arc::new(file),
                dot_lock,
            }),
            Err(e) => {
                let _ = std::fs::remove_file(&dot_lock);
                Err(e)
            }
        }
    }

    /// Starts appending a message. If the file does not end with the blank line that closes a
    /// message (a writer was killed mid-message), the missing line endings come first, so this
    /// message never merges into the torn one.
    pub fn start(&mut self) -> io::Result<MboxMessage> {
        let start = self.file.metadata()?.len();
        let mut writer = BufWriter::with_capacity(64 * 1024, SharedFile(self.file.clone()));
        writer.write_all(separator_needed(&self.file, start)?)?;
        writeln!(writer, "From MAILER-DAEMON {}", asctime_now())?;
        Ok(MboxMessage {
            writer: LfWriter::new(Quoter::new(writer)),
            start,
            file: self.file.clone(),
        })
    }

    /// Flushes everything appended so far to disk.
    pub fn commit(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
}

impl Drop for Mbox {
    fn drop(&mut self) {
        // Closing the file releases the fcntl lock; the dot-lock is ours to remove.
        let _ = std::fs::remove_file(&self.dot_lock);
    }
}

fn take_dot_lock(path: &Path) -> io::Result<()> {
    let deadline = Instant::now() + LOCK_TIMEOUT;
    loop {
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            // The holder's PID inside lets the next taker see that a killed run left it.
            Ok(mut file) => return writeln!(file, "{}", std::process::id()),
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
            Err(e) => return Err(e),
        }
    }
}

/// Whether the dot-lock names a process of this machine that no longer exists.
fn holder_is_gone(path: &Path) -> bool {
    let Some(pid) = std::fs::read_to_string(path)
        .ok()
        .and_then(|text| text.trim().parse::<libc::pid_t>().ok())
        .filter(|pid| *pid > 0)
    else {
        return false;
    };
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
    use std::os::unix::fs::FileExt;
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

/// A message being appended.
pub struct MboxMessage {
    writer: LfWriter<Quoter<BufWriter<SharedFile>>>,
    start: u64,
    file: Arc<File>,
}

impl MboxMessage {
    /// Appends message data.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.writer.write_all(data)
    }

    /// Ends the message: a final newline if it lacked one, then the blank separator line. On
    /// failure whatever of the message was written is cut off again.
    pub fn finish(self) -> io::Result<()> {
        let MboxMessage {
            writer,
            start,
            file,
        } = self;
        let finished = writer.finish().and_then(|mut quoter| {
            quoter.end_message()?;
            quoter
                .inner
                .into_inner()
                .map_err(|e| e.into_error())
                .map(drop)
        });
        if finished.is_err() {
            let _ = file.set_len(start);
        }
        finished
    }

    /// Removes whatever of this message was appended.
    pub fn abort(self) {
        let MboxMessage {
            writer,
            start,
            file,
        } = self;
        // Flush what the buffer holds first (the lock stays: the descriptor is shared), then
        // cut everything off.
        drop(writer);
        let _ = file.set_len(start);
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
        let mut mbox = Mbox::open_locked(&path).unwrap();
        let mut message = mbox.start().unwrap();
        message.write(b"Subject: whole\r\n\r\nbody\r\n").unwrap();
        message.finish().unwrap();
        drop(mbox);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("half a li\n\nFrom MAILER-DAEMON "), "{text}");
        assert!(text.ends_with("Subject: whole\n\nbody\n\n"), "{text}");
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
        let mut mbox = Mbox::open_locked(&path).unwrap();
        assert!(dir.path().join("inbox.lock").exists());
        let mut message = mbox.start().unwrap();
        message.write(b"Subject: a\r\n\r\nFrom me\r\n").unwrap();
        message.finish().unwrap();
        let mut broken = mbox.start().unwrap();
        broken.write(b"Subject: half").unwrap();
        broken.abort();
        mbox.commit().unwrap();
        drop(mbox);
        assert!(!dir.path().join("inbox.lock").exists());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("From MAILER-DAEMON "), "{text}");
        assert!(text.ends_with("\nSubject: a\n\n>From me\n\n"), "{text}");
        assert_eq!(text.matches("From MAILER-DAEMON").count(), 1);
    }
}
