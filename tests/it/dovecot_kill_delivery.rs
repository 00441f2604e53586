//! SIGKILL campaigns for the targets that cannot be searched for what they hold: an mbox and
//! an MDA. Delete mode, 300 messages, runs killed at random moments, then a clean run.
//!
//! mbox: 0 lost, 0 duplicated, 0 partial copies left, no stuck lock. MDA: 0 lost, at most one
//! duplicate per kill (the message whose MDA had exited when the run was killed, before it was
//! recorded: an MDA cannot tell us later that it delivered).
//!
//! The normal suite runs a few kills; `POP3_KILL_ROUNDS=100 cargo test --locked sigkill_campaign
//! -- --nocapture` runs a full campaign and prints its figures (docs/fetch-all.md quotes them).

use std::collections::{HashMap, HashSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::dovecot_fetch::{
    Rng, TestMessage, add_user, delivered_form, files_in, generate_messages, ids_on_server,
    message_id, pop3, seed,
};
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

#[derive(Clone, Copy, PartialEq)]
enum Target {
    Mbox,
    Mda,
}

/// Where the messages go, and the command that fetches them there.
struct Delivery {
    target: Target,
    /// The mbox file, or the MDA's directory of delivered messages.
    place: std::path::PathBuf,
    /// The MDA script.
    script: std::path::PathBuf,
}

impl Delivery {
    fn new(target: Target, dir: &Path) -> Delivery {
        let place = dir.join(match target {
            Target::Mbox => "inbox",
            Target::Mda => "delivered",
        });
        let script = dir.join("mda.sh");
        if target == Target::Mda {
            fs::create_dir_all(place.join("tmp")).unwrap();
            fs::create_dir_all(place.join("msgs")).unwrap();
            // Each message into its own file, made visible by a rename once complete.
            fs::write(
                &script,
                format!(
                    "#!/bin/sh\nf=$(mktemp {0}/tmp/m.XXXXXXXX) && cat > \"$f\" && mv \"$f\" {0}/msgs/\n",
                    place.display()
                ),
            )
            .unwrap();
            fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        }
        Delivery {
            target,
            place,
            script,
        }
    }

    fn command(&self, user: &User, state_home: &Path) -> (Command, tempfile::TempDir) {
        let pop3 =
            pop3(user)
                .env("XDG_STATE_HOME", state_home)
                .args(["fetch-all", "--delete", "-v"]);
        match self.target {
            Target::Mbox => pop3.args(["--mbox"]).args([&self.place]),
            Target::Mda => pop3.args(["--mda"]).args([&self.script]),
        }
        .into_command()
    }

    /// The bytes of every delivered copy, in order (the mbox cut at its `From ` lines).
    fn copies(&self) -> Vec<Vec<u8>> {
        match self.target {
            Target::Mbox => split_mbox(&fs::read(&self.place).unwrap_or_default()),
            Target::Mda => files_in(&self.place.join("msgs"))
                .iter()
                .map(|p| fs::read(p).unwrap())
                .collect(),
        }
    }

    /// How much has been delivered, to notice an append starting.
    fn progress(&self) -> u64 {
        match self.target {
            Target::Mbox => fs::metadata(&self.place).map(|m| m.len()).unwrap_or(0),
            Target::Mda => files_in(&self.place.join("msgs")).len() as u64,
        }
    }

    /// Waits for MDA processes that outlived a killed run to finish their delivery.
    fn settle(&self) {
        if self.target == Target::Mda {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !files_in(&self.place.join("tmp")).is_empty() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// The messages of an mboxrd file, each as it was before quoting (From line and the blank
/// separator line removed). A torn last message comes back torn.
fn split_mbox(text: &[u8]) -> Vec<Vec<u8>> {
    let mut starts = Vec::new();
    let mut at = 0;
    while at < text.len() {
        if text[at..].starts_with(b"From ") {
            starts.push(at);
        }
        at = match memchr(b'\n', &text[at..]) {
            Some(end) => at + end + 1,
            None => text.len(),
        };
    }
    let mut out = Vec::new();
    for (i, &start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(text.len());
        let chunk = &text[start..end];
        let body = match memchr(b'\n', chunk) {
            Some(line) => &chunk[line + 1..],
            None => &[][..],
        };
        let body = body.strip_suffix(b"\n").unwrap_or(body);
        let mut unquoted = Vec::with_capacity(body.len());
        for line in body.split_inclusive(|&b| b == b'\n') {
            let quotes = line.iter().take_while(|&&b| b == b'>').count();
            if quotes > 0 && line[quotes..].starts_with(b"From ") {
                unquoted.extend_from_slice(&line[1..]);
            } else {
                unquoted.extend_from_slice(line);
            }
        }
        out.push(unquoted);
    }
    out
}

fn memchr(byte: u8, data: &[u8]) -> Option<usize> {
    data.iter().position(|&b| b == byte)
}

/// Whole copies per Message-ID, and the number of copies that are not a whole message.
fn tally(
    copies: &[Vec<u8>],
    expected: &HashMap<String, Vec<u8>>,
) -> (HashMap<String, usize>, usize) {
    let mut whole: HashMap<String, usize> = HashMap::new();
    let mut partial = 0;
    for copy in copies {
        match message_id(copy) {
            Some(id) if expected.get(&id) == Some(copy) => *whole.entry(id).or_insert(0) += 1,
            _ => partial += 1,
        }
    }
    (whole, partial)
}

fn run_to_completion(delivery: &Delivery, user: &User, state_home: &Path) -> (Duration, String) {
    let (mut command, _home) = delivery.command(user, state_home);
    let started = Instant::now();
    let output = command.stdin(Stdio::null()).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "run failed: {stderr}");
    delivery.settle();
    (started.elapsed(), stderr)
}

fn campaign(target: Target) {
    let label = match target {
        Target::Mbox => "mbox",
        Target::Mda => "mda",
    };
    let seed = seed() ^ 0x6b69_6c6c ^ u64::from(target == Target::Mda);
    let mut rng = Rng(seed);
    let (kills, messages_per_wave) = campaign_size();
    let work = tempfile::tempdir().unwrap();
    eprintln!("[{label}] seed {seed}, {kills} kills (POP3_TEST_SEED, POP3_KILL_ROUNDS)");

    // Calibration: an uninterrupted run of the same size on another user.
    let calibration = generate_messages(&mut rng, &format!("{label}-calibrate"), messages_per_wave);
    let calibration_user = add_user(&calibration);
    let calibration_dir = work.path().join("calibrate");
    fs::create_dir_all(&calibration_dir).unwrap();
    let calibration_delivery = Delivery::new(target, &calibration_dir);
    let (full_run, _) = run_to_completion(
        &calibration_delivery,
        &calibration_user,
        &calibration_dir.join("state"),
    );
    assert_eq!(calibration_delivery.copies().len(), messages_per_wave);
    eprintln!("[{label}] an uninterrupted run of {messages_per_wave} messages: {full_run:?}");

    let dir = work.path().join("run");
    fs::create_dir_all(&dir).unwrap();
    let delivery = Delivery::new(target, &dir);
    let state_home = dir.join("state");
    let lock = dir.join("inbox.lock");
    // Every message of every wave, as it must arrive.
    let mut expected: HashMap<String, Vec<u8>> = HashMap::new();
    let mut all: Vec<String> = Vec::new();
    // A wave is a fresh user with its own messages; once a run finishes it (delete mode
    // empties the maildrop), the next wave starts, so every kill has work to interrupt.
    let mut wave: Option<(User, Vec<TestMessage>)> = None;
    let mut waves = 0;

    let started = Instant::now();
    let mut killed = 0;
    let mut finished_early = 0;
    let mut torn_after_kill = 0;
    let mut round = 0;
    while killed < kills {
        assert!(
            round < kills * 4,
            "[{label}] too many runs finished before their kill"
        );
        round += 1;
        let (user, messages) = wave.get_or_insert_with(|| {
            waves += 1;
            let messages =
                generate_messages(&mut rng, &format!("{label}-{waves}"), messages_per_wave);
            for m in &messages {
                expected.insert(m.id.clone(), delivered_form(&m.raw));
                all.push(m.id.clone());
            }
            (add_user(&messages), messages)
        });
        // What is left of the wave bounds a run's length: kill within it.
        let left = {
            let (whole, _) = tally(&delivery.copies(), &expected);
            messages
                .iter()
                .filter(|m| !whole.contains_key(&m.id))
                .count()
        };
        let span = full_run.as_micros() as u64 * (left as u64 + 10) / messages_per_wave as u64;
        let before = delivery.progress();
        let (mut command, _home) = delivery.command(user, &state_home);
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if round % 2 == 0 {
            std::thread::sleep(Duration::from_micros(rng.below(span + 1)));
        } else {
            // Just after delivery starts growing: inside an append, or between the append and
            // its record, the windows a uniform delay rarely hits.
            let delay = Duration::from_micros(rng.below(3_000));
            let deadline = Instant::now() + full_run * 2;
            while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
                if delivery.progress() > before {
                    std::thread::sleep(delay);
                    break;
                }
                std::thread::sleep(Duration::from_micros(100));
            }
        }
        let _ = child.kill();
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let finished = if output.status.signal() == Some(libc::SIGKILL) {
            killed += 1;
            false
        } else {
            assert!(
                output.status.success(),
                "[{label}] round {round}: pop3 failed ({}): {stderr}",
                output.status
            );
            finished_early += 1;
            true
        };
        delivery.settle();

        // Never lost: on the server (looked at first), or whole in the target.
        let on_server = ids_on_server(user);
        let (whole, partial) = tally(&delivery.copies(), &expected);
        for message in messages.iter() {
            assert!(
                on_server.contains(&message.id) || whole.contains_key(&message.id),
                "[{label}] round {round}: {} is lost",
                message.id
            );
        }
        let duplicates: usize = whole.values().map(|n| n - 1).sum();
        if target == Target::Mbox {
            assert_eq!(duplicates, 0, "[{label}] round {round}: duplicated");
            // Only the append a kill interrupted may be torn, until the next run cuts it.
            assert!(
                partial <= 1,
                "[{label}] round {round}: {partial} partial copies"
            );
            torn_after_kill += partial;
            // A dot-lock left by a killed run names it, so the next run can take it over.
            if let Ok(text) = fs::read_to_string(&lock) {
                assert!(
                    text.trim().parse::<u32>().is_ok(),
                    "[{label}] round {round}: a dot-lock without a PID: {text:?}"
                );
            }
        } else {
            assert_eq!(partial, 0, "[{label}] round {round}: partial copies");
            assert!(
                duplicates <= killed,
                "[{label}] round {round}: {duplicates} duplicates after {killed} kills"
            );
        }
        if finished {
            wave = None;
        }
    }

    let user = match &wave {
        Some((user, _)) => user,
        None => &add_user(&[]),
    };
    let (final_run, summary) = run_to_completion(&delivery, user, &state_home);
    assert!(
        final_run < full_run * 3 + Duration::from_secs(5),
        "[{label}] the clean run took {final_run:?} (a stuck lock?)"
    );
    let copies = delivery.copies();
    let (whole, partial) = tally(&copies, &expected);
    let lost = all.iter().filter(|id| !whole.contains_key(*id)).count();
    let duplicates: usize = whole.values().map(|n| n - 1).sum();
    let max_copies = whole.values().copied().max().unwrap_or(0);
    let stuck_lock = lock.exists();
    let lock_leftovers: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".lock"))
        .collect();
    eprintln!(
        "[{label}] {killed} kills ({finished_early} runs finished first) in {:?}; clean run: {}; \
         {} messages in {waves} wave(s): {lost} lost, {duplicates} duplicated (at most {max_copies} copies \
         of one), {partial} partial left ({torn_after_kill} torn copies seen after kills, cut \
         back by the next run), stuck lock: {stuck_lock}",
        started.elapsed(),
        summary.lines().last().unwrap_or_default(),
        all.len()
    );
    assert_eq!(lost, 0, "[{label}] lost messages");
    assert_eq!(partial, 0, "[{label}] partial copies left");
    assert_eq!(user.messages_on_server(), 0, "[{label}] delete mode");
    assert!(!stuck_lock, "[{label}] a dot-lock stayed");
    assert!(lock_leftovers.is_empty(), "[{label}] {lock_leftovers:?}");
    match target {
        Target::Mbox => assert_eq!(duplicates, 0, "[{label}] duplicated"),
        Target::Mda => assert!(
            duplicates <= killed,
            "[{label}] {duplicates} > {killed} kills"
        ),
    }
    // Nothing of ours stays beside the state file (the mbox spool included).
    let state_files: HashSet<String> = fs::read_dir(state_home.join("pop3"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(
        state_files.is_empty(),
        "[{label}] leftovers: {state_files:?}"
    );
}

#[test]
fn sigkill_campaign_mbox_delivers_exactly_once() {
    campaign(Target::Mbox);
}

#[test]
fn sigkill_campaign_mda_duplicates_at_most_one_per_kill() {
    campaign(Target::Mda);
}
