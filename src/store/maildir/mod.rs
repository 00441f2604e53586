//! Maildir delivery (<https://cr.yp.to/proto/maildir.html>), in groups for speed:
//! every message is written to `tmp/`, and a batch is committed once each of its files is on
//! disk ([`flush`] says how: one `syncfs` per batch on a quiet system, else a flush per file
//! beside the download): each file is renamed into `new/`, and `new/` itself is fsynced once.
//!
//! File names carry a tag derived from the account and the message's unique-id. A message
//! delivered just before a crash, but not yet in the state file, is recognised by that tag on the
//! next run instead of being delivered twice.

mod flush;

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use self::flush::{Durable, Flush};
use super::LfWriter;

const TAG_MARK: &str = "_pop3-";
const TAG_HEX_LEN: usize = 24;

/// A Maildir opened for delivery. A clone can commit batches from another thread.
#[derive(Debug, Clone)]
pub(crate) struct Maildir {
    root: PathBuf,
    hostname: String,
    pid: u32,
    sequence: u64,
    /// Makes finished messages durable beside the download; without it (see
    /// [`Maildir::flush_early`]) each file is synced at commit.
    flush: Option<Flush>,
}

/// A message being written into `tmp/`.
pub(crate) struct MaildirMessage {
    writer: LfWriter<BufWriter<File>>,
    tmp_path: PathBuf,
    new_path: PathBuf,
    flush: Option<Flush>,
    /// Bytes written so far.
    bytes: u64,
}

/// A complete message in `tmp/`, waiting for [`Maildir::commit`].
#[derive(Debug)]
pub(crate) struct Staged {
    tmp_path: PathBuf,
    new_path: PathBuf,
    durable: Durable,
}

impl Maildir {
    /// Opens the Maildir at `root`, creating it (mode 0700) when missing; the directory above it
    /// must exist.
    pub(crate) fn open(root: &Path) -> io::Result<Maildir> {
        super::check_parent(root)?;
        for sub in ["tmp", "new", "cur"] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(root.join(sub))?;
        }
        remove_abandoned_temporaries(&root.join("tmp"));
        Ok(Maildir {
            root: root.to_owned(),
            hostname: hostname(),
            pid: std::process::id(),
            sequence: 0,
            flush: None,
        })
    }

    /// The Maildir's directory, for error messages.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// Makes messages durable beside the download, the cheapest way the system's load allows
    /// (see [`flush`]), instead of one file after the other at each commit.
    pub(crate) fn flush_early(&mut self) {
        self.flush = Some(Flush::start(&self.root.join("tmp")));
    }

    /// [`Maildir::flush_early`], judging the system's load with `look` and syncing the file
    /// system with `sync_fs` (see [`flush`]).
    #[cfg(test)]
    fn flush_early_with(&mut self, look: fn(u64) -> bool, sync_fs: fn(&File) -> io::Result<()>) {
        self.flush = Some(Flush::with_stand_ins(&self.root.join("tmp"), look, sync_fs));
    }

    /// The tags of every message already in `new/` or `cur/` that this program delivered.
    pub(crate) fn delivered_tags(&self) -> io::Result<HashSet<String>> {
        let mut tags = HashSet::new();
        for sub in ["new", "cur"] {
            for entry in fs::read_dir(self.root.join(sub))? {
                let name = entry?.file_name();
                let name = name.to_string_lossy();
                if let Some(at) = name.find(TAG_MARK) {
                    let tag = &name[at + TAG_MARK.len()..];
                    if tag.len() >= TAG_HEX_LEN {
                        tags.insert(tag[..TAG_HEX_LEN].to_owned());
                    }
                }
            }
        }
        Ok(tags)
    }

    /// Makes the directory entries of `new/` and `cur/` durable. A message found there by its
    /// tag may have been renamed in by a run killed before its own fsync of `new/`; only after
    /// this may it count as delivered (and be deleted from the server).
    pub(crate) fn sync_dirs(&self) -> io::Result<()> {
        for sub in ["new", "cur"] {
            File::open(self.root.join(sub))?.sync_all()?;
        }
        Ok(())
    }

    /// Starts writing a message whose tag is `tag` (see [`tag_for`]).
    pub(crate) fn start(&mut self, tag: &str) -> io::Result<MaildirMessage> {
        self.sequence += 1;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let name = format!(
            "{}.M{}P{}Q{}{TAG_MARK}{tag}.{}",
            now.as_secs(),
            now.subsec_micros(),
            self.pid,
            self.sequence,
            self.hostname
        );
        let tmp_path = self.root.join("tmp").join(&name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp_path)?;
        Ok(MaildirMessage {
            writer: LfWriter::new(BufWriter::with_capacity(64 * 1024, file)),
            tmp_path,
            new_path: self.root.join("new").join(name),
            flush: self.flush.clone(),
            bytes: 0,
        })
    }

    /// Makes a batch durable and visible: waits until each file's data is on disk (see
    /// [`Maildir::flush_early`]), renames each into `new/`, fsyncs `new/`.
    /// Afterwards every message is in `new/` and on disk; before, none is visible to mail
    /// readers. A file that could not be synced fails the whole batch.
    pub(crate) fn commit(&self, staged: &[Staged]) -> io::Result<()> {
        if staged.is_empty() {
            return Ok(());
        }
        match &self.flush {
            Some(flush) => flush.settle(staged.iter().map(|message| &message.durable))?,
            None => {
                for message in staged {
                    message.durable.wait()?;
                }
            }
        }
        for message in staged {
            fs::rename(&message.tmp_path, &message.new_path)?;
        }
        File::open(self.root.join("new"))?.sync_all()
    }

    /// Removes staged files that will not be committed.
    pub(crate) fn discard(&self, staged: &[Staged]) {
        for message in staged {
            let _ = fs::remove_file(&message.tmp_path);
        }
    }
}

impl MaildirMessage {
    /// The Maildir the message goes to (the parent of its `tmp/`), for error messages.
    pub(crate) fn maildir(&self) -> &Path {
        self.tmp_path
            .parent()
            .and_then(Path::parent)
            .unwrap_or(&self.tmp_path)
    }

    /// Appends message data (CRLF becomes LF). A big message's data starts going to disk
    /// every [`flush::WRITEBACK_STEP`] bytes, so little is left to write when it is complete.
    pub(crate) fn write(&mut self, data: &[u8]) -> io::Result<()> {
        let step = flush::WRITEBACK_STEP;
        let crossed = (self.bytes + data.len() as u64) / step > self.bytes / step;
        self.bytes += data.len() as u64;
        self.writer.write_all(data)?;
        if crossed && self.flush.is_some() {
            flush::start_writeback(self.writer.get_ref().get_ref());
        }
        Ok(())
    }

    /// Finishes writing and starts making the data durable; the message stays in `tmp/`
    /// until committed.
    pub(crate) fn finish(self) -> io::Result<Staged> {
        let buffered = self.writer.finish()?;
        let file = buffered.into_inner().map_err(|e| e.into_error())?;
        let durable = match &self.flush {
            Some(flush) => flush.finished(file, self.bytes),
            None => Durable::AtCommit(file),
        };
        Ok(Staged {
            tmp_path: self.tmp_path,
            new_path: self.new_path,
            durable,
        })
    }

    /// Gives up on this message and removes its temporary file.
    pub(crate) fn abort(self) {
        let _ = fs::remove_file(&self.tmp_path);
    }
}

/// Creates the `tmp/` files of upcoming deliveries ahead of time, on its own thread and in the
/// order the messages will arrive. Creating a file costs far more than writing a small message
/// on some file systems (half a millisecond on a virtual disk); done beside the download, it no
/// longer holds the download up. Files not used are removed when this is dropped.
pub(crate) struct Precreator {
    files: Option<std::sync::mpsc::Receiver<io::Result<(String, MaildirMessage)>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Maildir {
    /// Starts creating, in order, the files for messages with these `tags`, keeping a few ready.
    pub(crate) fn precreate(&self, tags: Vec<String>) -> Precreator {
        const READY: usize = 32;
        let (sender, files) = std::sync::mpsc::sync_channel(READY);
        let mut maildir = self.clone();
        // Distinct sequence numbers from the files the delivering thread might still create.
        maildir.sequence = 1 << 32;
        let thread = std::thread::spawn(move || {
            for tag in tags {
                let file = maildir.start(&tag).map(|m| (tag, m));
                if let Err(std::sync::mpsc::SendError(unused)) = sender.send(file) {
                    if let Ok((_, message)) = unused {
                        message.abort();
                    }
                    return;
                }
            }
        });
        Precreator {
            files: Some(files),
            thread: Some(thread),
        }
    }
}

impl Precreator {
    /// The file made for `tag`. Files made for earlier tags that were skipped (the server
    /// refused those messages) are removed on the way. `None` when there is none: the caller
    /// then creates one itself.
    pub(crate) fn next(&mut self, tag: &str) -> Option<io::Result<MaildirMessage>> {
        loop {
            match self.files.as_ref()?.recv().ok()? {
                Ok((made_for, message)) if made_for == tag => return Some(Ok(message)),
                Ok((_, skipped)) => skipped.abort(),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

impl Drop for Precreator {
    fn drop(&mut self) {
        if let Some(files) = self.files.take() {
            // Remove what was made and not used; dropping the receiver stops the thread.
            while let Ok(file) = files.try_recv() {
                if let Ok((_, message)) = file {
                    message.abort();
                }
            }
            drop(files);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Removes this program's files in `tmp/` that a killed run abandoned: those whose name says
/// a process of this host that no longer exists created them (a killed run leaves up to a batch
/// of them, complete copies included), and any of ours 36 hours old, the Maildir
/// specification's limit. A file of a live process is left alone: another delivery (even by
/// another account of ours) may still be writing it.
fn remove_abandoned_temporaries(tmp: &Path) {
    const ABANDONED: std::time::Duration = std::time::Duration::from_secs(36 * 3600);
    let Ok(entries) = fs::read_dir(tmp) else {
        return;
    };
    let host = format!(".{}", hostname());
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !name.contains(TAG_MARK) {
            continue;
        }
        let writer_gone =
            name.ends_with(&host) && creator_pid(&name).is_some_and(super::mbox::process_is_gone);
        if writer_gone {
            let _ = fs::remove_file(entry.path());
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > ABANDONED);
        if old {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// The PID in a file name made by [`Maildir::start`]: `<secs>.M<usec>P<pid>Q<seq>_pop3-…`.
fn creator_pid(name: &str) -> Option<libc::pid_t> {
    let (_, rest) = name.split_once(".M")?;
    let (_, rest) = rest.split_once('P')?;
    let (pid, _) = rest.split_once('Q')?;
    pid.parse().ok()
}

/// The delivery tag of a message: derived from the account and the unique-id, and made of hex
/// digits only, so a hostile unique-id such as `../../x` can never reach a file name.
pub(crate) fn tag_for(account_key: &str, uid: &str) -> String {
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("{account_key}\0{uid}").as_bytes(),
    );
    digest.as_ref()[..TAG_HEX_LEN / 2]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The host name, with `/` and `:` encoded as the Maildir specification asks.
pub(crate) fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = if ok && end > 0 {
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "localhost".to_owned()
    };
    name.replace('/', "\\057").replace(':', "\\072")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precreated_files_follow_the_order_and_unused_ones_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut maildir = Maildir::open(dir.path()).unwrap();
        maildir.flush_early();
        let tags: Vec<String> = ["a", "b", "c", "d"]
            .iter()
            .map(|t| tag_for("k", t))
            .collect();
        let mut upcoming = maildir.precreate(tags.clone());
        let first = upcoming.next(&tags[0]).unwrap().unwrap();
        // "b" was refused by the server: asking for "c" skips (and removes) b's file.
        let third = upcoming.next(&tags[2]).unwrap().unwrap();
        drop(upcoming); // d's file is removed
        let staged = [first.finish().unwrap(), third.finish().unwrap()];
        maildir.commit(&staged).unwrap();
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        let delivered = maildir.delivered_tags().unwrap();
        assert_eq!(delivered.len(), 2);
        assert!(delivered.contains(&tags[0]) && delivered.contains(&tags[2]));
    }

    /// Judges whether the system is quiet, given our batch's bytes.
    type Look = fn(u64) -> bool;
    /// Syncs a file system.
    type SyncFs = fn(&File) -> io::Result<()>;

    fn failing_syncfs(_: &File) -> io::Result<()> {
        Err(io::Error::from_raw_os_error(libc::EIO))
    }

    /// How a test's Maildir flushes: as a busy system (a flush per file), as a quiet one (one
    /// syncfs per batch), quiet while the files are written and busy at their commit (then
    /// flushed one by one after all), quiet with a syncfs that fails (perhaps for another
    /// program's file: then flushed one by one too), or at commit without flush threads.
    const FLUSH_WAYS: [(&str, Option<(Look, SyncFs)>); 5] = [
        ("busy", Some((|_| false, flush::syncfs))),
        ("quiet", Some((|_| true, flush::syncfs))),
        (
            "quiet, then busy",
            Some((|own_bytes| own_bytes == 0, flush::syncfs)),
        ),
        ("quiet, syncfs fails", Some((|_| true, failing_syncfs))),
        ("at commit", None),
    ];

    fn open_flushing(root: &Path, way: Option<(Look, SyncFs)>) -> Maildir {
        let mut maildir = Maildir::open(root).unwrap();
        if let Some((look, sync_fs)) = way {
            maildir.flush_early_with(look, sync_fs);
        }
        maildir
    }

    /// Every way of flushing commits a batch whole: all its messages in `new/`, none left in
    /// `tmp/`.
    #[test]
    fn every_way_of_flushing_commits_the_whole_batch() {
        for (way, look) in FLUSH_WAYS {
            let dir = tempfile::tempdir().unwrap();
            let maildir = open_flushing(dir.path(), look);
            let staged: Vec<Staged> = (0..20)
                .map(|i| {
                    let mut message = maildir
                        .clone()
                        .start(&tag_for("k", &i.to_string()))
                        .unwrap();
                    message
                        .write(format!("Subject: {i}\r\n\r\nbody\r\n").as_bytes())
                        .unwrap();
                    message.finish().unwrap()
                })
                .collect();
            maildir.commit(&staged).unwrap();
            assert_eq!(maildir.delivered_tags().unwrap().len(), 20, "{way}");
            // Where syncfs may be used (Linux 5.8+, a local file system), a quiet system
            // never starts the flush threads; a failed syncfs falls back to them.
            if let Some(flush) = maildir.flush.as_ref().filter(|f| f.may_syncfs()) {
                let expected = way != "quiet";
                assert_eq!(flush.used_threads(), expected, "{way}");
            }
            assert_eq!(
                fs::read_dir(dir.path().join("tmp")).unwrap().count(),
                0,
                "{way}"
            );
        }
    }

    /// A failed fdatasync (a disk's EIO) must fail the batch: nothing of it reaches `new/`, and
    /// its files can be removed; the caller then records nothing. A pipe stands in for the
    /// failing disk: fdatasync refuses it with EINVAL. (A quiet system's successful syncfs
    /// does not sync descriptors one by one, so a pipe cannot fail it; syncfs is used only
    /// where it reports writeback errors, and when it fails, each file is flushed on its own.)
    #[test]
    fn a_file_that_cannot_be_synced_fails_its_batch_and_nothing_reaches_new() {
        for (way, look) in FLUSH_WAYS {
            if way == "quiet" {
                continue;
            }
            let dir = tempfile::tempdir().unwrap();
            let mut maildir = open_flushing(dir.path(), look);
            let mut good = maildir.start(&tag_for("k", "good")).unwrap();
            good.write(b"Subject: good\r\n\r\nbody\r\n").unwrap();
            let mut bad = maildir.start(&tag_for("k", "bad")).unwrap();
            let (_reader, writer) = std::io::pipe().unwrap();
            bad.writer = LfWriter::new(BufWriter::new(File::from(std::os::fd::OwnedFd::from(
                writer,
            ))));
            bad.write(b"Subject: bad\r\n\r\nbody\r\n").unwrap();
            let staged = [good.finish().unwrap(), bad.finish().unwrap()];

            let error = maildir.commit(&staged).unwrap_err();
            assert_eq!(error.raw_os_error(), Some(libc::EINVAL), "{way}");
            assert_eq!(fs::read_dir(dir.path().join("new")).unwrap().count(), 0);
            assert!(maildir.delivered_tags().unwrap().is_empty());
            maildir.discard(&staged);
            assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        }
    }

    /// More finished messages than the flush backlog holds: on a busy system finishing waits
    /// for the flush threads instead of piling up descriptors; on a quiet one at most that
    /// many wait for their batch's syncfs, the rest go to the threads. Every message arrives.
    #[test]
    fn more_messages_than_the_flush_backlog_are_all_delivered() {
        for (way, look) in [("busy", (|_| false) as Look), ("quiet", |_| true)] {
            let dir = tempfile::tempdir().unwrap();
            let mut maildir = Maildir::open(dir.path()).unwrap();
            maildir.flush_early_with(look, flush::syncfs);
            let count = flush::FLUSH_BACKLOG + flush::FLUSH_THREADS + 20;
            let staged: Vec<Staged> = (0..count)
                .map(|i| {
                    let mut message = maildir.start(&tag_for("k", &i.to_string())).unwrap();
                    message
                        .write(format!("Subject: {i}\r\n\r\n").as_bytes())
                        .unwrap();
                    message.finish().unwrap()
                })
                .collect();
            let held = staged
                .iter()
                .filter(|s| matches!(s.durable, Durable::WithBatch { .. }))
                .count();
            assert!(
                held <= flush::FLUSH_BACKLOG,
                "{way}: {held} descriptors held"
            );
            maildir.commit(&staged).unwrap();
            assert_eq!(maildir.delivered_tags().unwrap().len(), count, "{way}");
            assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        }
    }

    #[test]
    fn tmp_files_of_killed_runs_are_removed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("tmp");
        fs::create_dir_all(&tmp).unwrap();
        let host = hostname();
        let tag = tag_for("k", "u");
        // Left by a run that no longer exists; being written by a live process (us); another
        // host's (its PID means nothing here); not ours at all.
        let dead = format!("1700000000.M5P99999999Q3{TAG_MARK}{tag}.{host}");
        let live = format!(
            "1700000000.M5P{}Q4{TAG_MARK}{tag}.{host}",
            std::process::id()
        );
        let elsewhere = format!("1700000000.M5P99999999Q3{TAG_MARK}{tag}.otherhost");
        let foreign = "1700000000.M5P99999999Q3.somemda".to_owned();
        for name in [&dead, &live, &elsewhere, &foreign] {
            fs::write(tmp.join(name), "x").unwrap();
        }
        Maildir::open(dir.path()).unwrap();
        assert!(!tmp.join(&dead).exists(), "a killed run's file stayed");
        for name in [&live, &elsewhere, &foreign] {
            assert!(tmp.join(name).exists(), "{name} was removed");
        }
    }

    #[test]
    fn delivers_with_lf_line_endings_and_recognises_its_tags() {
        let dir = tempfile::tempdir().unwrap();
        let mut maildir = Maildir::open(&dir.path().join("Mail")).unwrap();
        let tag = tag_for("acct", "../../x");
        assert!(tag.chars().all(|c| c.is_ascii_hexdigit()));
        let mut message = maildir.start(&tag).unwrap();
        message.write(b"Subject: hi\r\n\r\nbody\r").unwrap();
        message.write(b"\nend\r\n").unwrap();
        let staged = message.finish().unwrap();
        assert!(
            maildir.delivered_tags().unwrap().is_empty(),
            "not visible before commit"
        );
        maildir.commit(&[staged]).unwrap();
        let new: Vec<_> = fs::read_dir(dir.path().join("Mail/new"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(new.len(), 1);
        assert_eq!(fs::read(&new[0]).unwrap(), b"Subject: hi\n\nbody\nend\n");
        assert!(maildir.delivered_tags().unwrap().contains(&tag));
        // A mail reader moving it to cur/ with flags keeps it recognisable.
        let name = new[0].file_name().unwrap().to_string_lossy().into_owned();
        fs::rename(
            &new[0],
            dir.path().join("Mail/cur").join(format!("{name}:2,S")),
        )
        .unwrap();
        assert!(maildir.delivered_tags().unwrap().contains(&tag));
    }
}
