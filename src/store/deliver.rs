//! The one delivery interface of `fetch-all`. Whatever the target (a Maildir, an mbox, an MDA
//! command, an LMTP or SMTP server through `super::relay`), a run opens a `Delivery`, streams
//! each message into a `Message` (`start`, `write`, `finish`) and hands the finished ones over
//! as a `Batch`, which `Batch::commit` makes durable and records in the state journal. Only
//! then may the server delete them. `finish` says what became of the message: an LMTP/SMTP
//! server may refuse it for now (4xx) or for good (5xx) instead of taking it.
//!
//! The target sets the policy: how many messages may wait for their commit
//! (`Delivery::batch_limit`), whether the download waits for each commit
//! (`Delivery::waits_for_commit`), and what a run settles before it downloads anything
//! (`recover_interrupted` for an mbox append, `already_delivered` for a Maildir).
//!
//! Errors are this module's own (`DeliverError`); the command layer maps them to exit codes.

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use super::maildir::{self, Maildir, MaildirMessage, Precreator, Staged};
use super::mbox::{self, Mbox, MboxMessage, Recovered, Spooled};
use super::mda::{self, MdaMessage};
use super::relay::{Relay, RelayMessage};
use super::smtp::settings::DeliverySettings;
use super::smtp::{DeliveryError, Protocol, Verdict};
use super::state::{State, StateError};
use super::unix_now;
use crate::pop3::Uid;

/// Messages per durable batch for a target that recognises its own deliveries (a Maildir): one
/// flush, one state append and one DELE round per batch.
const BATCH_MESSAGES: usize = 200;

/// Where a run delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// A Maildir (created when missing).
    Maildir(PathBuf),
    /// An mbox file (mboxrd quoting).
    Mbox(PathBuf),
    /// A command that reads one message on stdin (never empty).
    Mda(Vec<String>),
    /// An LMTP or SMTP server.
    Server(DeliverySettings),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Maildir(dir) => write!(f, "Maildir {}", dir.display()),
            Target::Mbox(file) => write!(f, "mbox {}", file.display()),
            Target::Mda(argv) => write!(f, "mda `{}`", crate::ui::command_line(argv)),
            Target::Server(server) => {
                let protocol = match server.target.protocol {
                    Protocol::Lmtp => "lmtp",
                    Protocol::Smtp => "smtp",
                };
                write!(f, "{protocol} {}", server.target.endpoint)
            }
        }
    }
}

impl Target {
    /// Whether messages the server refuses for good are deleted from the POP3 server.
    pub(crate) fn delete_rejected(&self) -> bool {
        matches!(self, Target::Server(server) if server.delete_rejected)
    }
}

/// Why a delivery failed. The cause is part of the one-line message, so it is not chained.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DeliverError {
    /// The target could not be opened or searched before the download.
    #[error("cannot deliver to {target}: {cause}")]
    Open {
        /// The target.
        target: Target,
        /// What failed.
        cause: io::Error,
    },
    /// Spooling a message for an MDA or a server, or running the MDA, failed.
    #[error("delivery failed: {0}; undelivered messages stay on the server")]
    Write(io::Error),
    /// The MDA program could not be started at all (not found, not executable).
    #[error(
        "cannot run mda `{program}`: {cause}; check `mda` in the account (a program name on PATH or a path); undelivered messages stay on the server"
    )]
    MdaNotStarted {
        /// The command line.
        program: String,
        /// Why.
        cause: io::Error,
    },
    /// A file or directory of the Maildir or mbox (or the mbox spool) could not be written,
    /// or a batch could not be made durable there.
    #[error("cannot write {}: {cause}; undelivered messages stay on the server", path.display())]
    Local {
        /// The Maildir, the mbox or the spool file.
        path: PathBuf,
        /// What failed.
        cause: io::Error,
    },
    /// The state journal could not be written.
    #[error("{0}")]
    State(StateError),
    /// The LMTP/SMTP session failed (the server's verdicts on messages are [`Finished`]).
    #[error("{0}; undelivered messages stay on the server")]
    Server(DeliveryError),
    /// The LMTP/SMTP server refused the envelope (see [`Finished::Misaddressed`]): a matter
    /// of configuration, so the run stops and no message is recorded as rejected.
    #[error(
        "{server} refused {}: {reply}; {}; the messages stay on the server and are offered again next run",
        if *sender { "the sender of a message".to_owned() } else { format!("the recipient {recipient:?}") },
        if *sender { "check that server's settings for mail from pop3" } else { "set `recipient` in the account (default: the local user) to a mailbox that server knows" }
    )]
    Misaddressed {
        /// The server, as `lmtp HOST:PORT` or `smtp HOST:PORT`.
        server: String,
        /// The configured recipient.
        recipient: String,
        /// True when MAIL FROM was refused, false for RCPT TO.
        sender: bool,
        /// The server's answer, made safe to print.
        reply: String,
    },
}

/// `DeliverError::Local` for `path`, as a `map_err` argument.
fn local(path: &Path) -> impl FnOnce(io::Error) -> DeliverError + '_ {
    move |cause| DeliverError::Local {
        path: path.to_owned(),
        cause,
    }
}

/// A delivery in progress for one run.
pub(crate) enum Delivery {
    /// Messages go to `tmp/`, a batch at a time into `new/`.
    Maildir {
        maildir: Maildir,
        account_key: String,
        staged: Vec<Staged>,
        upcoming: Option<Precreator>,
    },
    /// Each message is spooled, then appended under the lock by [`Batch::commit`].
    Mbox {
        path: PathBuf,
        spool_path: PathBuf,
        spooled: Option<Spooled>,
    },
    /// Each message is spooled, then piped to the command.
    Mda(Vec<String>),
    /// Each message is spooled, then sent to the server over one connection for the run.
    Server(Box<Relay>),
}

/// A message being delivered.
pub(crate) enum Message {
    Maildir(MaildirMessage),
    Mbox(MboxMessage),
    Mda(MdaMessage),
    Server(RelayMessage),
}

/// What became of a finished message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Finished {
    /// The target has it (or will have it once its batch is committed).
    Delivered,
    /// The server refused it for now (4xx), with its answer: it stays on the POP3 server
    /// unrecorded and is tried again next run.
    Deferred(String),
    /// The server refused it for good (5xx), with its answer: it is recorded as rejected and
    /// not offered again.
    Rejected(String),
    /// The server refused its envelope (5xx to MAIL FROM or RCPT TO: an unknown recipient,
    /// say), which every message would get: it stays on the server unrecorded, and the run
    /// stops with a configuration error rather than mark each message rejected.
    Misaddressed {
        /// The server, as `lmtp HOST:PORT` or `smtp HOST:PORT`.
        server: String,
        /// The configured recipient.
        recipient: String,
        /// True when MAIL FROM was refused, false for RCPT TO.
        sender: bool,
        /// The server's answer.
        reply: String,
    },
}

impl Delivery {
    /// Opens `target` for a run of the account `account_key`; `mbox_spool` is where an mbox
    /// message waits for its append ([`State::mbox_spool_path`]).
    /// `timeout` is for an LMTP/SMTP server's connect, reads and writes.
    pub(crate) fn open(
        target: &Target,
        account_key: &str,
        mbox_spool: PathBuf,
        timeout: std::time::Duration,
    ) -> Result<Delivery, DeliverError> {
        Ok(match target {
            Target::Maildir(root) => Delivery::Maildir {
                maildir: {
                    // Its flushing starts with the first expected message (`expect`).
                    Maildir::open(root).map_err(|cause| DeliverError::Open {
                        target: target.clone(),
                        cause,
                    })?
                },
                account_key: account_key.to_owned(),
                staged: Vec::new(),
                upcoming: None,
            },
            Target::Mbox(path) => {
                // Before any download: a mistyped directory fails the run at once.
                super::check_parent(path).map_err(|cause| DeliverError::Open {
                    target: target.clone(),
                    cause,
                })?;
                Delivery::Mbox {
                    path: path.clone(),
                    spool_path: mbox_spool,
                    spooled: None,
                }
            }
            Target::Mda(argv) => Delivery::Mda(argv.clone()),
            Target::Server(settings) => Delivery::Server(Box::new(Relay::new(settings, timeout))),
        })
    }

    /// Announces the messages to come, in order, so the target can prepare for them (a
    /// Maildir creates their files ahead, beside the download).
    pub(crate) fn expect<'u>(&mut self, keys: impl Iterator<Item = &'u Uid>) {
        if let Delivery::Maildir {
            maildir,
            account_key,
            upcoming,
            ..
        } = self
        {
            let tags: Vec<_> = keys
                .map(|key| maildir::tag_for(account_key, key.as_str()))
                .collect();
            // A run with nothing new starts no threads (the cron case costs little CPU).
            if tags.is_empty() {
                return;
            }
            maildir.flush_early();
            *upcoming = Some(maildir.precreate(tags));
        }
    }

    /// Starts delivering the message known by `key` (see the identity rule in `fetch-all`).
    pub(crate) fn start(&mut self, key: &Uid) -> Result<Message, DeliverError> {
        let started = match self {
            Delivery::Maildir {
                maildir,
                account_key,
                upcoming,
                ..
            } => {
                let tag = maildir::tag_for(account_key, key.as_str());
                let file = match upcoming.as_mut().and_then(|files| files.next(&tag)) {
                    Some(file) => file,
                    None => maildir.start(&tag),
                };
                return file.map(Message::Maildir).map_err(local(maildir.root()));
            }
            Delivery::Mbox { spool_path, .. } => {
                return mbox::spool(spool_path)
                    .map(Message::Mbox)
                    .map_err(local(spool_path));
            }
            Delivery::Mda(argv) => mda::start(argv).map(Message::Mda),
            Delivery::Server(_) => Relay::start().map(Message::Server),
        };
        started.map_err(DeliverError::Write)
    }

    /// Completes a message: it waits (Maildir `tmp/`, mbox spool) for the next [`Batch`], or
    /// the MDA has taken it, or it went to the LMTP/SMTP server. Returns what became of the
    /// oldest finished messages whose fate was still open, in the order they were finished:
    /// this one for every target but a server, which may answer later (then
    /// [`Delivery::settle`] collects the rest).
    pub(crate) fn finish(&mut self, message: Message) -> Result<Vec<Finished>, DeliverError> {
        let message = match (&mut *self, message) {
            (Delivery::Server(relay), Message::Server(m)) => {
                let verdicts = relay.deliver(m).map_err(DeliverError::Server)?;
                return Ok(verdicts
                    .into_iter()
                    .map(|v| finished_of(v, relay))
                    .collect());
            }
            (_, message) => message,
        };
        let finished = match (self, message) {
            (
                Delivery::Maildir {
                    maildir, staged, ..
                },
                Message::Maildir(m),
            ) => {
                return m
                    .finish()
                    .map(|file| staged.push(file))
                    .map(|()| vec![Finished::Delivered])
                    .map_err(local(maildir.root()));
            }
            (
                Delivery::Mbox {
                    spooled,
                    spool_path,
                    ..
                },
                Message::Mbox(m),
            ) => {
                return m
                    .finish()
                    .map(|file| *spooled = Some(file))
                    .map(|()| vec![Finished::Delivered])
                    .map_err(local(spool_path));
            }
            (_, Message::Mda(m)) => m.finish().map_err(|e| match e {
                mda::MdaError::NotStarted { program, cause } => {
                    DeliverError::MdaNotStarted { program, cause }
                }
                mda::MdaError::Failed(cause) => DeliverError::Write(cause),
            }),
            (_, Message::Mbox(_)) => unreachable!("an mbox message belongs to an mbox"),
            (_, Message::Maildir(_)) => unreachable!("a Maildir message belongs to a Maildir"),
            (_, Message::Server(_)) => unreachable!("a relayed message belongs to a server"),
        };
        finished.map(|()| vec![Finished::Delivered])
    }

    /// What became of finished messages still waiting for a server's answer, oldest first;
    /// empty once there are none (call again until then: an error that came after some
    /// answers is returned by the next call).
    pub(crate) fn settle(&mut self) -> Result<Vec<Finished>, DeliverError> {
        match self {
            Delivery::Server(relay) => Ok(relay
                .settle()
                .map_err(DeliverError::Server)?
                .into_iter()
                .map(|v| finished_of(v, relay))
                .collect()),
            _ => Ok(Vec::new()),
        }
    }

    /// Whether messages an LMTP/SMTP server refuses for good are deleted from the POP3 server.
    pub(crate) fn delete_rejected(&self) -> bool {
        matches!(self, Delivery::Server(relay) if relay.delete_rejected())
    }

    /// Ends the run's session with the target (QUIT to an LMTP/SMTP server).
    pub(crate) fn close(&mut self) {
        if let Delivery::Server(relay) = self {
            relay.quit();
        }
    }

    /// Hands over what the finished messages still need to become durable.
    pub(crate) fn take_batch(&mut self) -> Batch {
        match self {
            Delivery::Maildir {
                maildir, staged, ..
            } => Batch::Maildir {
                maildir: maildir.clone(),
                staged: std::mem::take(staged),
            },
            Delivery::Mbox { path, spooled, .. } => match spooled.take() {
                Some(spooled) => Batch::Mbox {
                    path: path.clone(),
                    spooled,
                },
                None => Batch::Recorded,
            },
            Delivery::Mda(_) | Delivery::Server(_) => Batch::Recorded,
        }
    }

    /// How many finished messages may wait for their commit. A Maildir recognises what an
    /// interrupted run delivered, so it commits in large batches; an mbox, an MDA or a server
    /// cannot, so each message is recorded right after delivery (for a server: right after its
    /// final 2xx, before the next message is sent).
    pub(crate) fn batch_limit(&self) -> usize {
        match self {
            Delivery::Maildir { .. } => BATCH_MESSAGES,
            Delivery::Mbox { .. } | Delivery::Mda(_) | Delivery::Server(_) => 1,
        }
    }

    /// Whether the download waits for each commit before the next message is delivered: an
    /// mbox or an MDA cannot tell later what it already has, so no unrecorded backlog may build
    /// up behind the download.
    pub(crate) fn waits_for_commit(&self) -> bool {
        !matches!(self, Delivery::Maildir { .. })
    }
}

impl Message {
    /// Message data as received (CRLF line endings; each target converts).
    pub(crate) fn write(&mut self, data: &[u8]) -> Result<(), DeliverError> {
        match self {
            Message::Maildir(m) => m.write(data).map_err(local(m.maildir())),
            Message::Mbox(m) => m.write(data).map_err(local(m.path())),
            Message::Mda(m) => m.write(data).map_err(DeliverError::Write),
            Message::Server(m) => m.write(data).map_err(DeliverError::Write),
        }
    }

    /// Gives up on this message: the target never shows it.
    pub(crate) fn abort(self) {
        match self {
            Message::Maildir(m) => m.abort(),
            Message::Mbox(m) => m.abort(),
            Message::Mda(m) => m.abort(),
            Message::Server(m) => m.abort(),
        }
    }
}

fn finished_of(verdict: Verdict, relay: &Relay) -> Finished {
    match verdict {
        // The relay names one recipient, so "partly" cannot happen; delivered either way.
        Verdict::Delivered | Verdict::PartlyDelivered { .. } => Finished::Delivered,
        Verdict::Temporary(reply) => Finished::Deferred(reply.to_string()),
        Verdict::Permanent(reply) => Finished::Rejected(reply.to_string()),
        Verdict::EnvelopeRefused { sender, reply } => Finished::Misaddressed {
            server: Target::Server(relay.settings().clone()).to_string(),
            recipient: relay.settings().recipient.clone(),
            sender,
            reply: reply.to_string(),
        },
    }
}

/// Finished messages on their way to becoming durable and recorded; safe to send to another
/// thread.
pub(crate) enum Batch {
    /// Files in `tmp/`, to be flushed and renamed into `new/`.
    Maildir {
        maildir: Maildir,
        staged: Vec<Staged>,
    },
    /// One spooled message to append (a batch of one: [`Delivery::batch_limit`]).
    Mbox { path: PathBuf, spooled: Spooled },
    /// The target already holds them (an MDA or a server took each one): only the record is
    /// left.
    Recorded,
    /// Messages an LMTP/SMTP server refused for good: recorded as rejected, not delivered.
    Rejected,
}

impl Batch {
    /// Makes the batch durable, then records `keys` (its messages, in order) as delivered.
    /// Maildir: waits until each file is on disk (one `syncfs` for the batch on a quiet
    /// system, else each file `fdatasync`ed once complete, beside the download), renames, one
    /// fsync of `new/` (the files are removed on failure).
    /// mbox: see [`append_to_mbox`].
    pub(crate) fn commit(self, keys: &[Uid], state: &mut State) -> Result<(), DeliverError> {
        match self {
            Batch::Maildir { maildir, staged } => {
                let result = maildir.commit(&staged);
                if result.is_err() {
                    maildir.discard(&staged);
                }
                result.map_err(local(maildir.root()))?;
            }
            Batch::Mbox { path, spooled } => {
                return append_to_mbox(&path, &spooled, &keys[0], state);
            }
            Batch::Recorded => {}
            Batch::Rejected => {
                for key in keys {
                    state.record_rejected(key).map_err(DeliverError::State)?;
                }
                return Ok(());
            }
        }
        state
            .record_delivered(keys, unix_now())
            .map_err(DeliverError::State)
    }
}

/// Appends one spooled message to the mbox, locked only for the copy: announced in the state
/// journal before its first byte, settled (recorded as delivered) after the mbox is flushed
/// and before the lock is released.
fn append_to_mbox(
    path: &std::path::Path,
    spooled: &Spooled,
    key: &Uid,
    state: &mut State,
) -> Result<(), DeliverError> {
    let mut mbox = Mbox::open_locked(path).map_err(local(path))?;
    let appended = mbox.append(spooled, |offset| {
        state
            .record_append_pending(key, offset)
            .map_err(|e| io::Error::other(e.to_string()))
    });
    let settled = state.record_append_settled(appended.is_ok(), unix_now());
    appended.map_err(local(path))?;
    settled.map_err(DeliverError::State)
}

/// An mbox append that a killed run announced and [`recover_interrupted`] settled.
#[derive(Debug)]
pub(crate) struct Interrupted {
    /// The message it was appending.
    pub(crate) key: Uid,
    /// What was found where the append started.
    pub(crate) found: Recovered,
}

/// Settles what a killed run left half done, before anything is downloaded (under the account
/// lock). mbox: a complete copy of the announced append is recorded as delivered, a torn one
/// is cut off the end of the mbox. Other targets leave nothing to settle.
pub(crate) fn recover_interrupted(
    target: &Target,
    state: &mut State,
) -> Result<Option<Interrupted>, DeliverError> {
    let Target::Mbox(path) = target else {
        return Ok(None);
    };
    let Some((key, offset)) = state.pending_append() else {
        return Ok(None);
    };
    let open_error = |cause| DeliverError::Open {
        target: target.clone(),
        cause,
    };
    let mut mbox = Mbox::open_locked(path).map_err(open_error)?;
    let found = mbox
        .recover(offset, &state.mbox_spool_path())
        .map_err(open_error)?;
    state
        .record_append_settled(found == Recovered::Complete, unix_now())
        .map_err(DeliverError::State)?;
    drop(mbox);
    let _ = std::fs::remove_file(state.mbox_spool_path());
    Ok(Some(Interrupted { key, found }))
}

/// Removes the mbox spool of this run, unless an interrupted append may still need it for
/// [`recover_interrupted`].
pub(crate) fn clean_up(state: &State) {
    if state.pending_append().is_none() {
        let _ = std::fs::remove_file(state.mbox_spool_path());
    }
}

/// Which of `keys` the target already holds although the state does not know them: a Maildir
/// recognises what a run killed before recording it delivered by the tag in its file names
/// (and makes those entries durable before they may count). Empty for targets that cannot tell.
pub(crate) fn already_delivered(
    target: &Target,
    account_keys: &[String],
    keys: &[&Uid],
) -> Result<HashSet<Uid>, DeliverError> {
    let Target::Maildir(root) = target else {
        return Ok(HashSet::new());
    };
    let open_error = |cause| DeliverError::Open {
        target: target.clone(),
        cause,
    };
    let maildir = Maildir::open(root).map_err(open_error)?;
    let tags = maildir.delivered_tags().map_err(open_error)?;
    let known: HashSet<Uid> = keys
        .iter()
        .filter(|key| {
            account_keys
                .iter()
                .any(|account_key| tags.contains(&maildir::tag_for(account_key, key.as_str())))
        })
        .map(|&key| key.clone())
        .collect();
    if !known.is_empty() {
        maildir.sync_dirs().map_err(open_error)?;
    }
    Ok(known)
}
