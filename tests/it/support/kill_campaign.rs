//! The SIGKILL campaign shared by `dovecot_kill_delivery` (mbox, MDA) and `dovecot_kill_lmtp`:
//! `fetch-all --delete` over waves of Dovecot users, each run killed with SIGKILL at a random
//! moment, then one clean run, counting what arrived where. A [`Target`] says where the runs
//! deliver and what a round there may leave; the campaign asserts that no message is ever lost
//! and hands the counts back for each test's own assertions and printed figures.
//!
//! The normal suite runs a few kills over waves of 60 messages; `POP3_KILL_ROUNDS=N` runs `N`
//! kills over waves of 300.

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::dovecot_fetch::{Rng, add_user, delivered_form, generate_messages, ids_on_server, seed};
use crate::support::dovecot::User;

/// Kills per campaign and messages per wave: `POP3_KILL_ROUNDS` kills of runs over 300
/// messages, else a short variant for the normal suite.
fn campaign_size() -> (usize, usize) {
    match std::env::var("POP3_KILL_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(kills) => (kills, 300),
        None => (3, 60),
    }
}

/// Where a campaign's runs deliver.
pub trait Target {
    /// Whether a kill lands within the time the run needs for what is left of its wave (scaled
    /// from the uninterrupted run), rather than within a whole uninterrupted run.
    const SPAN_BY_WHAT_IS_LEFT: bool;
    /// The `pop3 ... fetch-all --delete -v` command that fetches `user`'s mail here, and the
    /// home directory it runs with (kept alive with the command).
    fn command(&self, user: &User, state_home: &Path) -> (Command, tempfile::TempDir);
    /// The bytes of every delivered copy.
    fn copies(&self) -> Vec<Vec<u8>>;
    /// Whether `copy` is a whole copy of the message whose delivered form is `form`.
    fn is_whole(copy: &[u8], form: &[u8]) -> bool;
    /// How much has been delivered, to notice delivery starting.
    fn progress(&self) -> u64;
    /// Waits for what a killed run left running (an MDA) to finish.
    fn settle(&self) {}
    /// The target's own checks after each round (the campaign has checked nothing was lost).
    fn check_round(&self, round: &Round<'_>);
}

/// The counts after one killed (or finished) run.
pub struct Round<'a> {
    pub label: &'a str,
    /// 1-based.
    pub round: usize,
    /// Runs killed so far, this one included.
    pub killed: usize,
    /// Copies that are not a whole message.
    pub partial: usize,
    /// Whole copies beyond the first, over all messages.
    pub duplicates: usize,
}

/// What a campaign ends with, after the clean run.
pub struct Campaign<T> {
    pub target: T,
    /// The directory the target was made in.
    pub dir: PathBuf,
    /// `XDG_STATE_HOME` of the runs.
    pub state_home: PathBuf,
    pub killed: usize,
    /// Runs that finished before their kill.
    pub finished_early: usize,
    /// From the first kill to the end of the clean run.
    pub elapsed: Duration,
    /// An uninterrupted run of one wave, on another user.
    pub full_run: Duration,
    /// The clean run at the end.
    pub final_run: Duration,
    /// The last line the clean run printed (its `-v` summary).
    pub summary: String,
    pub messages: usize,
    pub waves: usize,
    pub lost: usize,
    pub duplicates: usize,
    /// The most copies of one message.
    pub max_copies: usize,
    /// Copies that are not a whole message, after the clean run.
    pub partial: usize,
    /// Partial copies seen after the kills, summed over rounds.
    pub torn_after_kill: usize,
    /// Messages left on the server of the last wave.
    pub left_on_server: usize,
    _work: tempfile::TempDir,
}

impl<T> Campaign<T> {
    /// The figures every campaign prints: kills, time, the clean run's summary, messages lost
    /// and duplicated; it ends inside a parenthesis for the target's own figures to follow.
    pub fn figures(&self) -> String {
        format!(
            "{} kills ({} runs finished first) in {:?}; clean run: {}; {} messages in {} \
             wave(s): {} lost, {} duplicated (at most {} copies of one",
            self.killed,
            self.finished_early,
            self.elapsed,
            self.summary,
            self.messages,
            self.waves,
            self.lost,
            self.duplicates,
            self.max_copies,
        )
    }
}

/// Whole copies per Message-ID, and the number of copies that are not a whole message.
fn tally<T: Target>(
    copies: &[Vec<u8>],
    expected: &HashMap<String, Vec<u8>>,
) -> (HashMap<String, usize>, usize) {
    let mut whole: HashMap<String, usize> = HashMap::new();
    let mut partial = 0;
    for copy in copies {
        match crate::dovecot_fetch::message_id(copy) {
            Some(id)
                if expected
                    .get(&id)
                    .is_some_and(|form| T::is_whole(copy, form)) =>
            {
                *whole.entry(id).or_insert(0) += 1
            }
            _ => partial += 1,
        }
    }
    (whole, partial)
}

fn duplicates(whole: &HashMap<String, usize>) -> usize {
    whole.values().map(|n| n - 1).sum()
}

fn run_to_completion<T: Target>(target: &T, user: &User, state_home: &Path) -> (Duration, String) {
    let (mut command, _home) = target.command(user, state_home);
    let started = Instant::now();
    let output = command.stdin(Stdio::null()).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "run failed: {stderr}");
    target.settle();
    (started.elapsed(), stderr)
}

/// Runs a campaign for the target `make` builds in a directory: `label` names it in messages,
/// `salt` makes its seed differ from other campaigns'.
pub fn campaign<T: Target>(label: &str, salt: u64, make: impl Fn(&Path) -> T) -> Campaign<T> {
    let seed = seed() ^ salt;
    let mut rng = Rng(seed);
    let (kills, per_wave) = campaign_size();
    let work = tempfile::tempdir().unwrap();
    eprintln!("[{label}] seed {seed}, {kills} kills (POP3_TEST_SEED, POP3_KILL_ROUNDS)");

    // Calibration: an uninterrupted run of the same size on another user.
    let calibration_dir = work.path().join("calibrate");
    std::fs::create_dir_all(&calibration_dir).unwrap();
    let calibration = make(&calibration_dir);
    let calibration_user = add_user(&generate_messages(
        &mut rng,
        &format!("{label}-calibrate"),
        per_wave,
    ));
    let (full_run, _) = run_to_completion(
        &calibration,
        &calibration_user,
        &calibration_dir.join("state"),
    );
    assert_eq!(calibration.copies().len(), per_wave);
    eprintln!("[{label}] an uninterrupted run of {per_wave} messages: {full_run:?}");

    let dir = work.path().join("run");
    std::fs::create_dir_all(&dir).unwrap();
    let target = make(&dir);
    let state_home = dir.join("state");
    // Every message of every wave, as it must arrive.
    let mut expected: HashMap<String, Vec<u8>> = HashMap::new();
    let mut all: Vec<String> = Vec::new();
    // A wave is a fresh user with its own messages; once a run finishes it (delete mode
    // empties the maildrop), the next wave starts, so every kill has work to interrupt.
    let mut wave: Option<(User, Vec<String>)> = None;
    let mut waves = 0;

    let started = Instant::now();
    let (mut killed, mut finished_early, mut torn_after_kill, mut round) = (0, 0, 0, 0);
    while killed < kills {
        assert!(
            round < kills * 4,
            "[{label}] too many runs finished before their kill"
        );
        round += 1;
        let (user, ids) = wave.get_or_insert_with(|| {
            waves += 1;
            let messages = generate_messages(&mut rng, &format!("{label}-{waves}"), per_wave);
            for m in &messages {
                expected.insert(m.id.clone(), delivered_form(&m.raw));
                all.push(m.id.clone());
            }
            let ids = messages.iter().map(|m| m.id.clone()).collect();
            (add_user(&messages), ids)
        });
        let span = if T::SPAN_BY_WHAT_IS_LEFT {
            // What is left of the wave bounds a run's length: kill within it.
            let (whole, _) = tally::<T>(&target.copies(), &expected);
            let left = ids.iter().filter(|id| !whole.contains_key(*id)).count();
            full_run.as_micros() as u64 * (left as u64 + 10) / per_wave as u64
        } else {
            full_run.as_micros() as u64
        };
        let before = target.progress();
        let (mut command, _home) = target.command(user, &state_home);
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if round % 2 == 0 {
            std::thread::sleep(Duration::from_micros(rng.below(span + 1)));
        } else {
            // Just after delivery starts: inside an append, or between a delivery and its
            // record, with answers unread: the windows a uniform delay rarely hits.
            let delay = Duration::from_micros(rng.below(3_000));
            let deadline = Instant::now() + full_run * 2;
            while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
                if target.progress() > before {
                    std::thread::sleep(delay);
                    break;
                }
                std::thread::sleep(Duration::from_micros(100));
            }
        }
        let _ = child.kill();
        let output = child.wait_with_output().unwrap();
        let finished = if output.status.signal() == Some(libc::SIGKILL) {
            killed += 1;
            false
        } else {
            assert!(
                output.status.success(),
                "[{label}] round {round}: pop3 failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
            finished_early += 1;
            true
        };
        target.settle();

        // Never lost: on the server (looked at first), or whole in the target.
        let on_server = ids_on_server(user);
        let (whole, partial) = tally::<T>(&target.copies(), &expected);
        for id in ids.iter() {
            assert!(
                on_server.contains(id) || whole.contains_key(id),
                "[{label}] round {round}: {id} is lost"
            );
        }
        torn_after_kill += partial;
        target.check_round(&Round {
            label,
            round,
            killed,
            partial,
            duplicates: duplicates(&whole),
        });
        if finished {
            wave = None;
        }
    }

    let user = match &wave {
        Some((user, _)) => user,
        None => &add_user(&[]),
    };
    let (final_run, summary) = run_to_completion(&target, user, &state_home);
    let (whole, partial) = tally::<T>(&target.copies(), &expected);
    Campaign {
        dir,
        state_home,
        killed,
        finished_early,
        elapsed: started.elapsed(),
        full_run,
        final_run,
        summary: summary.lines().last().unwrap_or_default().to_owned(),
        messages: all.len(),
        waves,
        lost: all.iter().filter(|id| !whole.contains_key(*id)).count(),
        duplicates: duplicates(&whole),
        max_copies: whole.values().copied().max().unwrap_or(0),
        partial,
        torn_after_kill,
        left_on_server: user.messages_on_server(),
        target,
        _work: work,
    }
}
