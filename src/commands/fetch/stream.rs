//! The pipelined exchange of a run: RETR every wanted message, stream each into the
//! [`Delivery`], hand the finished ones to the committer thread whenever it is idle (and at
//! the latest every batch: the target's [`Delivery::batch_limit`] messages, or
//! [`BATCH_OCTETS`] octets), and queue their DELE once it reports them durable and recorded.
//! A Maildir download never waits for the disk, and its last flush covers only what arrived
//! during the one before; an mbox or MDA one waits for each message to be recorded
//! ([`Delivery::waits_for_commit`]). When a DELE was sent, QUIT leaves in the same write as
//! the last DELEs, so deleting costs one round trip more than keeping, not two.
//!
//! A stop (SIGTERM or SIGINT, see [`crate::signals`]) sends no more RETR. POP3 cannot call
//! back a RETR already sent, so the messages asked for ahead of the one arriving are bounded
//! by about [`RETR_AHEAD_TIME`] of the link's measured rate (at least [`RETR_AHEAD_OCTETS`]):
//! what is in flight when the stop comes is received and delivered within [`STOP_GRACE`],
//! and then, as at the end of any run, what is delivered becomes
//! durable and recorded, its DELEs and QUIT go out. A server too slow for that deadline gets
//! its connection shut down instead: the message in flight is abandoned, what arrived
//! complete is still committed, and nothing is deleted (the next run deletes what is recorded).

use std::collections::{HashSet, VecDeque};
use std::sync::mpsc::{Receiver, Sender};

use crate::connect::Connection;
use crate::pop3::client::PipelineDriver;
use crate::pop3::{Command, MessageNumber, Reply, StatusLine, Uid};
use crate::store::deliver::{Batch, DeliverError, Delivery, Finished, Message};
use crate::store::state::State;
use crate::store::{UtcTime, unix_now};
use crate::ui::progress::TransferProgress;

use super::plan::Candidate;
use super::{Context, FetchError, Summary};

/// A batch also ends after this many octets, so a crash never costs much re-downloading.
const BATCH_OCTETS: u64 = 64 << 20;

/// The least that may be asked for (octets of messages, by their LIST size) beyond the first
/// message not yet complete, before the link's rate is known. Small messages are still limited
/// by the command window only.
const RETR_AHEAD_OCTETS: u64 = 2 << 20;

/// How much of the link's measured rate may be asked for ahead: enough that the server always
/// has the next messages queued on a fast link with a long round trip (a fixed 2 MiB cost a
/// 25 ms link about 0.12 s on 9 MB), small enough that what was asked for before a stop
/// arrives well within [`STOP_GRACE`] on a slow one.
const RETR_AHEAD_TIME: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a stop waits for the messages already asked for before it shuts the connection.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// What the exchange did besides delivering (delivered messages are counted in the summary).
pub(super) struct Outcome {
    /// Messages the server refused to send, with its answer (indexes into the wanted list).
    pub(super) refused: Vec<(usize, StatusLine)>,
    /// Messages whose DELE the server accepted (deleted once QUIT is confirmed).
    pub(super) marked: HashSet<MessageNumber>,
    /// Messages an LMTP/SMTP server refused for now (4xx), with its answer: left, unrecorded.
    pub(super) deferred: Vec<(usize, String)>,
    /// Messages an LMTP/SMTP server refused for good (5xx), with its answer: recorded as
    /// rejected (and deleted with `delete_rejected`).
    pub(super) rejected: Vec<(usize, String)>,
    /// A stop (SIGTERM or SIGINT) came before every wanted message was asked for.
    pub(super) stopped: bool,
    /// The stop shut the connection down (or it broke during the stop): the session cannot
    /// end with QUIT, and nothing is deleted.
    pub(super) dropped: bool,
}

/// Downloads and delivers `wanted`, deleting `old_deletions` (and, with `delete`, each message
/// once recorded) in the same stream. Whatever arrived complete is kept, even when the
/// exchange broke off; the first delivery failure, else the network's, is the error.
#[allow(clippy::too_many_arguments)]
pub(super) fn download(
    connection: &mut Connection,
    context: &Context,
    wanted: &[Candidate],
    old_deletions: Vec<MessageNumber>,
    delete: bool,
    mut delivery: Delivery,
    state: &mut State,
    summary: &mut Summary,
) -> Result<Outcome, FetchError> {
    let account = &context.account;
    let window = connection.pipeline_window();
    crate::signals::Signals::install_for_download();
    // A second handle on the socket, for the stop's deadline to shut it down.
    let cutter = connection.session.stream().tcp().try_clone().ok();
    // Dropping `exchange_over` tells the watchdog the exchange is over, and wakes it at once.
    let (exchange_over, over_signal) = std::sync::mpsc::channel::<()>();
    let mut progress = super::report::progress(context, wanted);
    delivery.expect(wanted.iter().map(|c| &c.key));
    let (jobs, job_queue) = std::sync::mpsc::channel();
    let (result_sender, results) = std::sync::mpsc::channel();
    let (result, mut fetcher) = std::thread::scope(|scope| {
        let state = &mut *state;
        scope.spawn(move || run_committer(job_queue, result_sender, state));
        let cut = scope.spawn(move || cut_off_after_stop(&over_signal, cutter));
        let mut fetcher = Fetcher {
            wanted,
            next_retr: 0,
            deletions: old_deletions.into(),
            delete_after_delivery: delete,
            delivery,
            received_header: account.add_received_header.then(|| {
                format!(
                    "Received: from {host} by pop3 (fetch-all) with POP3 for <{user}>;\n\t{date}\n",
                    host = account.host,
                    user = account.user,
                    date = UtcTime::from_unix(unix_now()).rfc5322()
                )
            }),
            progress: &mut progress,
            in_flight: None,
            awaiting: VecDeque::new(),
            uncommitted: Vec::new(),
            uncommitted_octets: 0,
            jobs: Some(jobs),
            results,
            pending_commits: 0,
            retrs_answered: 0,
            retr_octets_ahead: 0,
            data_since: None,
            dele_sent: false,
            refused: Vec::new(),
            marked: HashSet::new(),
            deferred: Vec::new(),
            rejected: Vec::new(),
            failure: None,
            summary,
        };
        let result = connection.session.pipeline_with(window, &mut fetcher);
        drop(exchange_over);
        let cut = cut.join().unwrap_or(false);
        if let Some(message) = fetcher.in_flight.take() {
            message.abort();
        }
        // Whatever arrived complete is kept, even when the exchange broke off.
        fetcher.finish();
        fetcher.delivery.close();
        (result.map_err(|e| (e, cut)), fetcher)
    });
    let stopped = crate::signals::stop_requested() && fetcher.next_retr < wanted.len();
    let failure = fetcher.failure.take();
    let outcome = Outcome {
        refused: std::mem::take(&mut fetcher.refused),
        marked: std::mem::take(&mut fetcher.marked),
        deferred: std::mem::take(&mut fetcher.deferred),
        rejected: std::mem::take(&mut fetcher.rejected),
        stopped,
        dropped: false,
    };
    drop(fetcher);
    crate::store::deliver::clean_up(state);
    progress.finish();
    if let Some(failure) = failure {
        return Err(FetchError::Deliver(failure));
    }
    match result {
        Ok(()) => Ok(outcome),
        // Cut off by the stop's deadline, or broken while stopping: what arrived complete
        // is committed, the rest stays on the server, as the stop promises.
        Err((_, cut)) if cut || crate::signals::stop_requested() => Ok(Outcome {
            dropped: true,
            ..outcome
        }),
        Err((error, _)) => Err(FetchError::Interrupted(error)),
    }
}

/// Watches for a stop during the exchange; when the exchange is not over [`STOP_GRACE`] after
/// it, shuts the connection down, which ends any read from a slow or stalled server at once.
/// Returns whether it did. The exchange's end (its sender dropped) wakes it at once: a sleep
/// here would hold up the end of every run (it cost each run up to 50 ms before the last
/// commit).
fn cut_off_after_stop(
    exchange_over: &std::sync::mpsc::Receiver<()>,
    socket: Option<std::net::TcpStream>,
) -> bool {
    use std::sync::mpsc::RecvTimeoutError;
    let tick = std::time::Duration::from_millis(50);
    // Waits up to `tick` for the exchange to end; true when it has.
    let over_within = |wait: std::time::Duration| {
        !matches!(
            exchange_over.recv_timeout(wait),
            Err(RecvTimeoutError::Timeout)
        )
    };
    // The stop flag is set by a signal handler, which cannot wake this thread: look each tick.
    while !crate::signals::stop_requested() {
        if over_within(tick) {
            return false;
        }
    }
    let deadline = std::time::Instant::now() + STOP_GRACE;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            break;
        }
        if over_within(left.min(tick)) {
            return false;
        }
    }
    match socket {
        Some(socket) if !over_within(std::time::Duration::ZERO) => {
            socket.shutdown(std::net::Shutdown::Both).is_ok()
        }
        _ => false,
    }
}

/// Drives the exchange (see the module documentation).
struct Fetcher<'a> {
    wanted: &'a [Candidate],
    next_retr: usize,
    /// DELE commands ready to go: for messages already durable and recorded.
    deletions: VecDeque<MessageNumber>,
    delete_after_delivery: bool,
    delivery: Delivery,
    /// `Received:` header text to put above each message, when configured.
    received_header: Option<String>,
    progress: &'a mut TransferProgress,
    in_flight: Option<Message>,
    /// Indexes (into `wanted`) finished but still waiting for the target's verdict (an
    /// LMTP/SMTP server answers in order, maybe a few messages later).
    awaiting: VecDeque<usize>,
    /// Indexes (into `wanted`) delivered but not yet handed to the committer.
    uncommitted: Vec<usize>,
    uncommitted_octets: u64,
    /// To the committer thread, and its answers.
    jobs: Option<Sender<CommitJob>>,
    results: Receiver<CommitResult>,
    /// Batches handed over and not yet answered.
    pending_commits: usize,
    /// RETRs whose reply is complete (or refused): the download is over when all are.
    retrs_answered: usize,
    /// Octets (by LIST size) of the RETRs sent and not yet answered: see [`Fetcher::may_ask_ahead`].
    retr_octets_ahead: u64,
    /// When the first message data arrived, and the octets of message data since: the link's
    /// rate, which sets how much may be asked for ahead.
    data_since: Option<(std::time::Instant, u64)>,
    /// Whether this exchange sent a DELE: only then is QUIT's reply worth waiting for, and
    /// QUIT is sent with the last DELEs (see [`Session::quit`](crate::pop3::client::Session::quit)).
    dele_sent: bool,
    /// Messages the server refused to send.
    refused: Vec<(usize, StatusLine)>,
    /// Messages whose DELE the server accepted (deleted once QUIT is confirmed).
    marked: HashSet<MessageNumber>,
    /// Messages the LMTP/SMTP server refused for now, and for good (see [`Outcome`]).
    deferred: Vec<(usize, String)>,
    rejected: Vec<(usize, String)>,
    /// The first delivery failure. It is kept here because [`PipelineDriver::next_command`],
    /// which learns of the committer's failures, can only stop the exchange, not return one;
    /// `on_reply` stores its own here too, so the first failure wins whoever saw it.
    failure: Option<DeliverError>,
    summary: &'a mut Summary,
}

/// What a pipelined command was for.
enum Job {
    Retr(usize),
    Dele(MessageNumber),
    /// The session's end; the pipeline keeps its reply for `Session::quit`.
    Quit,
}

/// A batch on its way to the committer thread.
struct CommitJob {
    batch: Batch,
    /// Indexes into the wanted messages.
    indexes: Vec<usize>,
    keys: Vec<Uid>,
}

/// A batch made durable and recorded: the indexes of its messages, and whether they were
/// recorded as rejected rather than delivered ([`Batch::Rejected`]).
struct Committed {
    indexes: Vec<usize>,
    rejected: bool,
}

/// The committer's answer for one batch, in order.
type CommitResult = Result<Committed, DeliverError>;

/// The committer thread: makes each batch durable, then records it in the state, then reports
/// it (after which its DELEs may be sent). It runs beside the download so the network never
/// waits for the disk.
fn run_committer(jobs: Receiver<CommitJob>, results: Sender<CommitResult>, state: &mut State) {
    for job in jobs {
        let rejected = matches!(job.batch, Batch::Rejected);
        let result = job.batch.commit(&job.keys, state).map(|()| Committed {
            indexes: job.indexes,
            rejected,
        });
        let failed = result.is_err();
        if results.send(result).is_err() || failed {
            // After a failure nothing more is made durable: those messages are not recorded.
            return;
        }
    }
}

impl Fetcher<'_> {
    /// Whether another RETR may be asked for while earlier ones are unanswered: while what is
    /// asked for ahead is under [`RETR_AHEAD_TIME`] at the rate measured so far (and never
    /// under [`RETR_AHEAD_OCTETS`]).
    fn may_ask_ahead(&self) -> bool {
        let by_rate = match self.data_since {
            // The rate once a quarter MiB has come: a few small replies say little about it.
            Some((since, octets)) if octets >= 256 << 10 => {
                let elapsed = since.elapsed().max(std::time::Duration::from_millis(1));
                let rate = octets as f64 / elapsed.as_secs_f64();
                (rate * RETR_AHEAD_TIME.as_secs_f64()) as u64
            }
            _ => 0,
        };
        self.retr_octets_ahead < RETR_AHEAD_OCTETS.max(by_rate)
    }

    /// Hands the delivered messages to the committer thread.
    fn commit(&mut self) {
        if self.uncommitted.is_empty() {
            return;
        }
        let indexes = std::mem::take(&mut self.uncommitted);
        self.uncommitted_octets = 0;
        let batch = self.delivery.take_batch();
        self.send_job(batch, indexes);
    }

    /// Hands a message the server refused for good to the committer, to be recorded as such.
    fn commit_rejected(&mut self, index: usize) {
        self.send_job(Batch::Rejected, vec![index]);
    }

    fn send_job(&mut self, batch: Batch, indexes: Vec<usize>) {
        let job = CommitJob {
            batch,
            keys: indexes
                .iter()
                .map(|&i| self.wanted[i].key.clone())
                .collect(),
            indexes,
        };
        let sent = self
            .jobs
            .as_ref()
            .is_some_and(|jobs| jobs.send(job).is_ok());
        if sent {
            self.pending_commits += 1;
        }
    }

    /// Takes in the committer's answers; with `wait`, until every batch is answered.
    fn collect_results(&mut self, wait: bool) {
        while self.pending_commits > 0 {
            let result = if wait {
                self.results.recv().ok()
            } else {
                self.results.try_recv().ok()
            };
            let Some(result) = result else {
                if wait {
                    // The committer stopped (after a failure it already reported).
                    self.pending_commits = 0;
                }
                return;
            };
            self.pending_commits -= 1;
            match result {
                Ok(Committed {
                    indexes,
                    rejected: true,
                }) => {
                    if self.delivery.delete_rejected() {
                        self.deletions
                            .extend(indexes.iter().map(|&i| self.wanted[i].number));
                    }
                }
                Ok(Committed { indexes, .. }) => {
                    let delivered: Vec<&Candidate> =
                        indexes.iter().map(|&i| &self.wanted[i]).collect();
                    self.summary.fetched += delivered.len();
                    self.summary.octets += delivered.iter().map(|c| c.size).sum::<u64>();
                    if self.delete_after_delivery {
                        self.deletions.extend(delivered.iter().map(|c| c.number));
                    }
                }
                Err(failure) => {
                    self.failure.get_or_insert(failure);
                }
            }
        }
    }

    /// Finishes: hands over what is complete and waits until everything handed over is
    /// durable and recorded (or has failed).
    fn finish(&mut self) {
        if let Err(e) = self.settle() {
            self.failure.get_or_insert(e);
        }
        self.commit();
        self.jobs = None;
        self.collect_results(true);
    }

    /// Keeps the failure and stops the exchange.
    fn fail(&mut self, failure: DeliverError) -> std::io::Error {
        self.failure.get_or_insert(failure);
        stopped()
    }

    /// Starts delivering the message at `index`, with the `Received:` header when configured.
    fn start(&mut self, index: usize) -> Result<Message, DeliverError> {
        let mut message = self.delivery.start(&self.wanted[index].key)?;
        if let Some(header) = &self.received_header {
            message.write(header.as_bytes())?;
        }
        Ok(message)
    }

    /// The message at `index` ended: it is handed over with whatever else waits as soon as the
    /// committer is idle, or at once when the batch is full or the download over.
    fn end(&mut self, index: usize) -> Result<(), DeliverError> {
        if let Some(message) = self.in_flight.take() {
            self.awaiting.push_back(index);
            let finished = self.delivery.finish(message)?;
            self.absorb(finished);
        }
        let last = self.is_last(index);
        if last {
            self.settle()?;
        }
        // An idle committer takes what is there: the flushes overlap the download, and the
        // last one covers only what arrived during the one before (group commit).
        self.collect_results(false);
        if last
            || self.pending_commits == 0
            || self.uncommitted.len() >= self.delivery.batch_limit()
            || self.uncommitted_octets >= BATCH_OCTETS
        {
            self.commit();
            if self.delivery.waits_for_commit() {
                self.collect_results(true);
            }
        }
        Ok(())
    }

    /// Whether the message at `index` (just answered) is the last of the download: the last
    /// wanted, or after a stop the last asked for.
    fn is_last(&self, index: usize) -> bool {
        index + 1 == self.wanted.len()
            || (self.retrs_answered == self.next_retr && crate::signals::stop_requested())
    }

    /// Collects every verdict still outstanding.
    fn settle(&mut self) -> Result<(), DeliverError> {
        loop {
            let finished = self.delivery.settle()?;
            if finished.is_empty() {
                return Ok(());
            }
            self.absorb(finished);
        }
    }

    /// Takes in what became of the oldest finished messages, in order.
    fn absorb(&mut self, finished: Vec<Finished>) {
        for finished in finished {
            let Some(index) = self.awaiting.pop_front() else {
                return;
            };
            match finished {
                Finished::Delivered => {
                    self.uncommitted.push(index);
                    self.uncommitted_octets += self.wanted[index].size;
                }
                // Not recorded: it stays on the server and is tried again next run.
                Finished::Deferred(reply) => self.deferred.push((index, reply)),
                Finished::Rejected(reply) => {
                    self.commit();
                    self.commit_rejected(index);
                    self.rejected.push((index, reply));
                }
                // Not recorded, like a 4xx: the envelope is wrong, not the message. The run
                // stops (later verdicts still count, `finish` settles them).
                Finished::Misaddressed {
                    server,
                    recipient,
                    sender,
                    reply,
                } => {
                    self.failure.get_or_insert(DeliverError::Misaddressed {
                        server,
                        recipient,
                        sender,
                        reply: crate::message::display_safe(&reply),
                    });
                }
            }
        }
    }
}

/// What `on_reply` returns to stop the exchange; the failure itself is in `Fetcher::failure`.
fn stopped() -> std::io::Error {
    std::io::Error::other("delivery stopped")
}

impl<'c> PipelineDriver<'c> for Fetcher<'_> {
    type Tag = Job;

    fn next_command(&mut self, idle: bool) -> Option<(Command<'c>, Job)> {
        // Nothing left to download but batches still being committed: their DELEs are all
        // that remains, so wait for them.
        let stopping = crate::signals::stop_requested();
        let downloads_done =
            (stopping || self.next_retr == self.wanted.len()) && self.in_flight.is_none();
        if stopping && idle && !self.uncommitted.is_empty() {
            // The stop came after the last message asked for was handled as not the last:
            // hand it over now, so that its DELE can still go out.
            self.commit();
        }
        self.collect_results(idle && downloads_done);
        if self.failure.is_some() {
            return None;
        }
        if let Some(number) = self.deletions.pop_front() {
            self.dele_sent = true;
            return Some((Command::Dele(number), Job::Dele(number)));
        }
        // Everything is downloaded, durable, recorded and its DELE sent: QUIT joins the last
        // DELEs in their write. Its reply still decides whether the deletions happened.
        if self.dele_sent
            && self.retrs_answered == self.next_retr
            && (stopping || self.next_retr == self.wanted.len())
            && self.pending_commits == 0
            && self.uncommitted.is_empty()
            && self.awaiting.is_empty()
        {
            return Some((Command::Quit, Job::Quit));
        }
        // A stop (SIGTERM or SIGINT) takes effect between messages: nothing more is asked
        // for, and what arrives is delivered and committed as usual.
        if stopping {
            return None;
        }
        let index = self.next_retr;
        let message = self.wanted.get(index)?;
        // Ask ahead only so much that a stop need not wait long for what was asked for.
        if self.retrs_answered < self.next_retr && !self.may_ask_ahead() {
            return None;
        }
        self.next_retr += 1;
        self.retr_octets_ahead = self.retr_octets_ahead.saturating_add(message.size);
        Some((Command::Retr(message.number), Job::Retr(index)))
    }

    fn on_reply(&mut self, job: &Job, reply: Reply<'_>) -> std::io::Result<()> {
        if self.failure.is_some() {
            return Err(stopped());
        }
        let index = match job {
            Job::Dele(number) => {
                match reply {
                    Reply::Accepted(_) => {
                        self.marked.insert(*number);
                    }
                    // Not fatal: the message stays known and is deleted on a later run.
                    Reply::Refused(status) => super::report::dele_refused(*number, status),
                    _ => {}
                }
                return Ok(());
            }
            Job::Quit => return Ok(()),
            Job::Retr(index) => *index,
        };
        match reply {
            Reply::Accepted(_) => {
                self.progress.start(self.wanted[index].size);
                match self.start(index) {
                    Ok(message) => self.in_flight = Some(message),
                    Err(e) => return Err(self.fail(e)),
                }
            }
            Reply::Data(data) => {
                self.progress.received(data.len() as u64);
                let (_, octets) = self
                    .data_since
                    .get_or_insert_with(|| (std::time::Instant::now(), 0));
                *octets = octets.saturating_add(data.len() as u64);
                if let Some(message) = self.in_flight.as_mut()
                    && let Err(e) = message.write(data)
                {
                    return Err(self.fail(e));
                }
            }
            Reply::End => {
                self.progress.end();
                self.retrs_answered += 1;
                self.retr_octets_ahead = self
                    .retr_octets_ahead
                    .saturating_sub(self.wanted[index].size);
                if let Err(e) = self.end(index) {
                    return Err(self.fail(e));
                }
            }
            Reply::Refused(status) => {
                self.progress.start(self.wanted[index].size);
                self.progress.end();
                self.refused.push((index, status.clone()));
                self.retrs_answered += 1;
                self.retr_octets_ahead = self
                    .retr_octets_ahead
                    .saturating_sub(self.wanted[index].size);
                if self.is_last(index) {
                    if let Err(e) = self.settle() {
                        return Err(self.fail(e));
                    }
                    self.commit();
                }
            }
        }
        Ok(())
    }
}
