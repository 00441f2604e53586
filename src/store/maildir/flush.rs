//! How finished Maildir files reach the disk. Two ways, chosen by how much other data the
//! system has waiting to be written:
//!
//! - **One `syncfs(2)` per batch** while the system is otherwise quiet (the usual cron case):
//!   the files are left to the kernel during the download, and the commit writes the whole
//!   batch back at once, in large merged requests with one cache flush. A flush per file costs
//!   a small write, a metadata write and a cache flush per message; on the development VM a
//!   300-message fetch took 84 ms that way and 70 ms with syncfs (docs/performance.md).
//! - **One `fdatasync` per file, on flush threads beside the download**, once more than
//!   [`BUSY_DIRTY_BYTES`] of other data is dirty (a backup, a build, a big copy): syncfs writes
//!   back every dirty page of the file system, and would wait for all of that too. Beside a
//!   2 GB writer a 300-message fetch took 0.33 s with syncfs, 0.14 s this way.
//!
//! The choice is made again at every commit, so a writer that starts during a long fetch moves
//! the rest of it to per-file flushing. Either way a batch is committed only once every file of
//! it is on disk, and a writeback error fails it. `syncfs` is trusted only where it both makes
//! the data durable and reports writeback errors (through the `tmp/` descriptor opened before
//! the first file was written): Linux 5.8 or later, on a local file system known to do so (ext2/3/4,
//! XFS, btrfs, f2fs, tmpfs). FUSE file systems (sshfs, gocryptfs, ...), 9p, CIFS, NFS and
//! overlayfs get a flush per file, always. A failed `syncfs` may be another program's error
//! (the counter is the file system's): the batch's files are then flushed one by one, and only
//! their own errors fail it.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex, OnceLock};

/// Other processes' dirty data (`Dirty` plus `Writeback` in `/proc/meminfo`, beyond our own
/// batch) above which a commit flushes file by file instead of with `syncfs`. A syncfs then
/// writes at most this much more than the batch itself: about 30 ms on a 500 MB/s disk.
pub(super) const BUSY_DIRTY_BYTES: u64 = 16 << 20;

/// Flush threads. Concurrent fdatasyncs share a journal commit on a journalling file system,
/// so a few at once cost little more than one; one thread was 5-10x slower on a busy disk, 16
/// no better than 4 (docs/performance.md).
pub(super) const FLUSH_THREADS: usize = 4;

/// Finished files that may wait for a flush thread. Each holds a descriptor until it is
/// synced; past this many the download waits for the disk, so a slow disk cannot exhaust the
/// descriptor limit (1024 by default).
pub(super) const FLUSH_BACKLOG: usize = 256;

/// How one finished file becomes durable.
#[derive(Debug)]
pub(super) enum Durable {
    /// A flush thread syncs it and sends the outcome.
    Flushing(Receiver<io::Result<()>>),
    /// Left to the kernel until its batch's commit (a `syncfs`, or a flush per file if the
    /// system got busy meanwhile); `bytes` counts towards the batch's own dirty data.
    WithBatch { file: File, bytes: u64, _held: Held },
    /// Synced by the commit itself, one file after the other (no flush beside the download).
    AtCommit(File),
}

/// The flushing of one delivery: shared by the delivering thread (which hands finished files
/// over) and the committer (which makes batches durable).
#[derive(Debug, Clone)]
pub(super) struct Flush {
    shared: Arc<Shared>,
}

/// Counts a [`Durable::WithBatch`] descriptor while it lives.
#[derive(Debug)]
pub(super) struct Held(Arc<AtomicUsize>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Debug)]
struct Shared {
    /// `tmp/`, opened before the first file was written: `syncfs` on it covers the Maildir's
    /// file system and reports writeback errors since that opening. `None` where syncfs is not
    /// trusted ([`syncfs_is_trusted`]).
    tmp: Option<File>,
    /// Whether the system is quiet enough for a syncfs, given our batch's bytes:
    /// [`others_are_quiet`], or a stand-in in tests.
    look: fn(u64) -> bool,
    /// [`syncfs`], or a stand-in in tests.
    sync_fs: fn(&File) -> io::Result<()>,
    /// [`Durable::WithBatch`] descriptors alive: past [`FLUSH_BACKLOG`], finished files go to
    /// the threads, so that batches queued behind a slow commit cannot exhaust descriptors.
    held: Arc<AtomicUsize>,
    /// The last look found the system quiet: finished files wait for their batch's syncfs.
    quiet: AtomicBool,
    /// Started on first need: a quiet run never starts them.
    threads: OnceLock<Option<Flusher>>,
}

impl Flush {
    /// Starts the flushing of a delivery into the Maildir whose `tmp/` is `tmp`.
    pub(super) fn start(tmp: &Path) -> Flush {
        Flush::with_stand_ins(tmp, others_are_quiet, syncfs)
    }

    /// [`Flush::start`], judging the system's load with `look` and syncing the file system with
    /// `sync_fs`.
    pub(super) fn with_stand_ins(
        tmp: &Path,
        look: fn(u64) -> bool,
        sync_fs: fn(&File) -> io::Result<()>,
    ) -> Flush {
        let tmp = File::open(tmp).ok().filter(syncfs_is_trusted);
        let quiet = tmp.is_some() && look(0);
        Flush {
            shared: Arc::new(Shared {
                tmp,
                look,
                sync_fs,
                held: Arc::new(AtomicUsize::new(0)),
                quiet: AtomicBool::new(quiet),
                threads: OnceLock::new(),
            }),
        }
    }

    /// Takes a complete file of `bytes` bytes: it waits for its batch's `syncfs` while the
    /// system is quiet, else it goes to a flush thread at once.
    pub(super) fn finished(&self, file: File, bytes: u64) -> Durable {
        let held = &self.shared.held;
        if self.shared.quiet.load(Ordering::Relaxed) && held.load(Ordering::Relaxed) < FLUSH_BACKLOG
        {
            held.fetch_add(1, Ordering::Relaxed);
            return Durable::WithBatch {
                file,
                bytes,
                _held: Held(Arc::clone(held)),
            };
        }
        start_writeback(&file);
        self.to_threads(file)
    }

    /// Makes every file of a batch durable; the first error fails the whole batch.
    pub(super) fn settle<'a>(&self, batch: impl Iterator<Item = &'a Durable>) -> io::Result<()> {
        let batch: Vec<&Durable> = batch.collect();
        let own_bytes: u64 = batch
            .iter()
            .map(|durable| match durable {
                Durable::WithBatch { bytes, .. } => *bytes,
                _ => 0,
            })
            .sum();
        let waiting = batch
            .iter()
            .any(|durable| matches!(durable, Durable::WithBatch { .. }));
        let quiet = self.shared.tmp.is_some() && (self.shared.look)(own_bytes);
        self.shared.quiet.store(quiet, Ordering::Relaxed);
        let mut handed = Vec::new();
        if waiting {
            let synced = match &self.shared.tmp {
                Some(tmp) if quiet => (self.shared.sync_fs)(tmp).is_ok(),
                _ => false,
            };
            if !synced {
                // The system got busy since these files were finished, or the syncfs failed
                // (perhaps for another program's file): flush ours one by one after all, on
                // the threads at once. The duplicate descriptor shares the open file, so a
                // writeback error of that file is still reported to it.
                for durable in &batch {
                    if let Durable::WithBatch { file, .. } = durable {
                        handed.push(self.to_threads(file.try_clone()?));
                    }
                }
            }
        }
        for durable in &batch {
            if !matches!(durable, Durable::WithBatch { .. }) {
                durable.wait()?;
            }
        }
        for durable in &handed {
            durable.wait()?;
        }
        Ok(())
    }

    /// Whether the flush threads were started.
    #[cfg(test)]
    pub(super) fn used_threads(&self) -> bool {
        matches!(self.shared.threads.get(), Some(Some(_)))
    }

    /// Whether batches may be made durable with one syncfs here.
    #[cfg(test)]
    pub(super) fn may_syncfs(&self) -> bool {
        self.shared.tmp.is_some()
    }

    fn to_threads(&self, file: File) -> Durable {
        match self.shared.threads.get_or_init(|| Flusher::start().ok()) {
            Some(flusher) => flusher.flush(file),
            None => Durable::AtCommit(file),
        }
    }
}

impl Durable {
    /// Waits until the data is on disk. Each file is synced once, through the descriptor that
    /// wrote it, so a writeback error (EIO, ENOSPC) is reported here and never retried into a
    /// false success (after a failed fsync the kernel may mark the pages clean).
    /// [`Flush::settle`] does not call it for the files its syncfs covered.
    pub(super) fn wait(&self) -> io::Result<()> {
        match self {
            Durable::Flushing(outcome) => outcome
                .recv()
                .unwrap_or_else(|_| Err(io::Error::other("a Maildir flush thread ended"))),
            Durable::AtCommit(file) | Durable::WithBatch { file, .. } => file.sync_data(),
        }
    }
}

/// A file to sync, and where its outcome goes.
type FlushJob = (File, Sender<io::Result<()>>);

/// Threads that `fdatasync` finished messages as they come. They end when the last clone of
/// their [`Flush`] is dropped.
#[derive(Debug, Clone)]
struct Flusher {
    jobs: SyncSender<FlushJob>,
}

impl Flusher {
    fn start() -> io::Result<Flusher> {
        let (jobs, queue) = std::sync::mpsc::sync_channel::<FlushJob>(FLUSH_BACKLOG);
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..FLUSH_THREADS {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name("maildir-flush".to_owned())
                .spawn(move || {
                    loop {
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        let Ok((file, outcome)) = job else { return };
                        // The committer may have given up on this batch already.
                        let _ = outcome.send(file.sync_data());
                    }
                })?;
        }
        Ok(Flusher { jobs })
    }

    /// Hands `file` to a flush thread, waiting while [`FLUSH_BACKLOG`] files wait already;
    /// when no thread is left, the commit syncs it.
    fn flush(&self, file: File) -> Durable {
        let (outcome, receiver) = std::sync::mpsc::channel();
        match self.jobs.send((file, outcome)) {
            Ok(()) => Durable::Flushing(receiver),
            Err(std::sync::mpsc::SendError((file, _))) => Durable::AtCommit(file),
        }
    }
}

/// How often a message being written starts the writeback of what it has so far: a big
/// message then does not leave hundreds of megabytes to its commit. Small ones are left to the
/// batch's flush (a hint per small file cost a 300-message fetch 10 ms on the development VM).
pub(super) const WRITEBACK_STEP: u64 = 8 << 20;

/// Starts writing `file`'s dirty pages back, without waiting for it, so that a later sync finds
/// little left to write. A hint only: its result is ignored, and a writeback error still
/// reaches the sync (sync_file_range does not consume the error).
pub(super) fn start_writeback(file: &File) {
    // SAFETY: sync_file_range on an open descriptor; no memory is passed.
    unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
}

pub(super) fn syncfs(dir: &File) -> io::Result<()> {
    // SAFETY: syncfs on a descriptor we own; no memory is passed.
    if unsafe { libc::syncfs(dir.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether other processes leave little dirty data: at most [`BUSY_DIRTY_BYTES`] beyond
/// `own_bytes` (what our batch may still have dirty). Unknown counts as busy.
fn others_are_quiet(own_bytes: u64) -> bool {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|meminfo| dirty_bytes(&meminfo))
        .is_some_and(|dirty| dirty.saturating_sub(own_bytes) <= BUSY_DIRTY_BYTES)
}

/// Data waiting to be written, system-wide: `Dirty` plus `Writeback` of `/proc/meminfo`.
fn dirty_bytes(meminfo: &str) -> Option<u64> {
    let field = |name: &str| -> Option<u64> {
        let line = meminfo.lines().find(|line| line.starts_with(name))?;
        let kib = line[name.len()..].trim().strip_suffix("kB")?.trim();
        kib.parse::<u64>().ok()?.checked_mul(1024)
    };
    field("Dirty:")?.checked_add(field("Writeback:")?)
}

/// Whether a `syncfs` of the file system holding `dir` makes our files durable and reports
/// their writeback errors: Linux 5.8 or later, and a local file system whose sync writes its
/// files' data (not FUSE, whose sync asks the file system program for nothing; not 9p, CIFS or
/// NFS; not overlayfs, whose errors are the upper file system's).
fn syncfs_is_trusted(dir: &File) -> bool {
    const TRUSTED: [i64; 5] = [
        0xEF53,      // ext2, ext3, ext4
        0x5846_5342, // XFS
        0x9123_683E, // btrfs
        0xF2F5_2010, // f2fs
        0x0102_1994, // tmpfs
    ];
    // SAFETY: fstatfs fills the zeroed struct it is given, from a descriptor we own.
    let mut stats: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatfs(dir.as_raw_fd(), &mut stats) } != 0 {
        return false;
    }
    #[allow(clippy::unnecessary_cast)] // f_type's width differs between C libraries
    let kind = stats.f_type as i64;
    TRUSTED.contains(&kind) && syncfs_reports_errors()
}

/// Whether `syncfs` reports writeback errors: from Linux 5.8 on.
fn syncfs_reports_errors() -> bool {
    // SAFETY: uname fills the zeroed struct it is given.
    let mut name: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut name) } != 0 {
        return false;
    }
    // SAFETY: uname NUL-terminates release.
    let release = unsafe { std::ffi::CStr::from_ptr(name.release.as_ptr()) };
    release
        .to_str()
        .ok()
        .and_then(kernel_version)
        .is_some_and(|version| version >= (5, 8))
}

/// `(major, minor)` of a kernel release such as `6.1.0-18-amd64`.
fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirty_bytes_adds_dirty_and_writeback() {
        let meminfo = "MemTotal:       24000000 kB\nDirty:              4660 kB\n\
                       Writeback:           12 kB\nWritebackTmp:       999 kB\n";
        assert_eq!(dirty_bytes(meminfo), Some((4660 + 12) * 1024));
        assert_eq!(dirty_bytes("Dirty: 1 kB\n"), None, "no Writeback line");
        assert_eq!(dirty_bytes("Dirty: x kB\nWriteback: 0 kB\n"), None);
        assert_eq!(
            dirty_bytes("Dirty: 99999999999999999999 kB\nWriteback: 0 kB\n"),
            None
        );
    }

    #[test]
    fn kernel_versions_are_read_from_releases() {
        assert_eq!(kernel_version("6.18.44-fc-v669"), Some((6, 18)));
        assert_eq!(kernel_version("5.8.0"), Some((5, 8)));
        assert_eq!(kernel_version("4.18.0-553.el8_10.x86_64"), Some((4, 18)));
        assert_eq!(kernel_version("6"), None);
        assert!(kernel_version("5.7.19").unwrap() < (5, 8));
    }
}
