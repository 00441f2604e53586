//! SIGKILL campaign for delivery through LMTP (Dovecot's LMTP service, Unix socket, CHUNKING
//! and PIPELINING, so messages go out in a window of `pop3::store::smtp::WINDOW`). Delete
//! mode, runs killed at random moments, then a clean run: 0 lost, and at most the window
//! duplicated per kill (messages the server took whose answer was not read and recorded yet:
//! LMTP offers no way to ask afterwards).
//!
//! The normal suite runs a few kills; `POP3_KILL_ROUNDS=100 cargo test --locked
//! sigkill_campaign_lmtp -- --nocapture` runs a full campaign and prints its figures
//! (docs/fetch-all.md and docs/delivery.md quote them).

use std::collections::HashMap;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pop3::store::smtp::WINDOW;

use crate::dovecot_fetch::{
    Rng, add_user, delivered_form, files_in, generate_messages, ids_on_server, message_id, pop3,
    seed,
};
use crate::support::dovecot::{User, dovecot};

/// Kills and messages per wave: `POP3_KILL_ROUNDS` kills of runs over 300 messages, else a
/// short variant for the normal suite.
fn campaign_size() -> (usize, usize) {
    match std::env::var("POP3_KILL_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(kills) => (kills, 300),
        None => (3, 60),
    }
}

/// Where the runs deliver: a Dovecot user's Maildir, through LMTP.
struct Lmtp {
    target: User,
    config: PathBuf,
}

impl Lmtp {
    fn new(dir: &Path) -> Lmtp {
        let target = dovecot().add_user(&[]);
        let config = dir.join("config.toml");
        fs::write(
            &config,
            format!(
                "[defaults]\nlmtp = \"unix:{}\"\nrecipient = \"{}\"\n",
                dovecot().lmtp().socket.display(),
                target.name
            ),
        )
        .unwrap();
        Lmtp { target, config }
    }

    fn command(&self, user: &User, state_home: &Path) -> (Command, tempfile::TempDir) {
        pop3(user)
            .env("XDG_STATE_HOME", state_home)
            .args([Path::new("--config"), &self.config])
            .args(["fetch-all", "--delete", "-v"])
            .into_command()
    }

    fn files(&self) -> Vec<PathBuf> {
        ["new", "cur"]
            .iter()
            .flat_map(|sub| files_in(&self.target.maildir.join(sub)))
            .collect()
    }

    fn copies(&self) -> Vec<Vec<u8>> {
        self.files().iter().map(|p| fs::read(p).unwrap()).collect()
    }
}

/// Whole copies per Message-ID (Dovecot puts its own headers above the message), and the
/// number of copies that are not a whole message.
fn tally(
    copies: &[Vec<u8>],
    expected: &HashMap<String, Vec<u8>>,
) -> (HashMap<String, usize>, usize) {
    let mut whole: HashMap<String, usize> = HashMap::new();
    let mut partial = 0;
    for copy in copies {
        match message_id(copy) {
            Some(id) if expected.get(&id).is_some_and(|form| copy.ends_with(form)) => {
                *whole.entry(id).or_insert(0) += 1
            }
            _ => partial += 1,
        }
    }
    (whole, partial)
}

fn run_to_completion(lmtp: &Lmtp, user: &User, state_home: &Path) -> (Duration, String) {
    let (mut command, _home) = lmtp.command(user, state_home);
    let started = Instant::now();
    let output = command.stdin(Stdio::null()).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "run failed: {stderr}");
    (started.elapsed(), stderr)
}

#[test]
fn sigkill_campaign_lmtp_loses_nothing_and_duplicates_at_most_the_window() {
    let seed = seed() ^ 0x6c6d_7470;
    let mut rng = Rng(seed);
    let (kills, per_wave) = campaign_size();
    let work = tempfile::tempdir().unwrap();
    eprintln!("[lmtp] seed {seed}, {kills} kills (POP3_TEST_SEED, POP3_KILL_ROUNDS)");

    let calibration_dir = work.path().join("calibrate");
    fs::create_dir_all(&calibration_dir).unwrap();
    let calibration = Lmtp::new(&calibration_dir);
    let calibration_user = add_user(&generate_messages(&mut rng, "lmtp-calibrate", per_wave));
    let (full_run, _) = run_to_completion(
        &calibration,
        &calibration_user,
        &calibration_dir.join("state"),
    );
    assert_eq!(calibration.files().len(), per_wave);
    eprintln!("[lmtp] an uninterrupted run of {per_wave} messages: {full_run:?}");

    let dir = work.path().join("run");
    fs::create_dir_all(&dir).unwrap();
    let lmtp = Lmtp::new(&dir);
    let state_home = dir.join("state");
    let mut expected: HashMap<String, Vec<u8>> = HashMap::new();
    let mut all: Vec<String> = Vec::new();
    let mut wave: Option<(User, Vec<String>)> = None;
    let mut waves = 0;
    let started = Instant::now();
    let (mut killed, mut finished_early, mut round) = (0, 0, 0);
    while killed < kills {
        assert!(round < kills * 4, "[lmtp] too many runs finished first");
        round += 1;
        let (user, ids) = wave.get_or_insert_with(|| {
            waves += 1;
            let messages = generate_messages(&mut rng, &format!("lmtp-{waves}"), per_wave);
            for m in &messages {
                expected.insert(m.id.clone(), delivered_form(&m.raw));
                all.push(m.id.clone());
            }
            let ids = messages.iter().map(|m| m.id.clone()).collect();
            (add_user(&messages), ids)
        });
        let before = lmtp.files().len();
        let (mut command, _home) = lmtp.command(user, &state_home);
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if round % 2 == 0 {
            let span = full_run.as_micros() as u64;
            std::thread::sleep(Duration::from_micros(rng.below(span + 1)));
        } else {
            // Just after deliveries start: messages in flight, answers unread.
            let delay = Duration::from_micros(rng.below(3_000));
            let deadline = Instant::now() + full_run * 2;
            while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
                if lmtp.files().len() > before {
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
                "[lmtp] round {round}: pop3 failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            finished_early += 1;
            true
        };
        // Never lost: on the server (looked at first), or whole in the Maildir.
        let on_server = ids_on_server(user);
        let (whole, partial) = tally(&lmtp.copies(), &expected);
        for id in ids.iter() {
            assert!(
                on_server.contains(id) || whole.contains_key(id),
                "[lmtp] round {round}: {id} is lost"
            );
        }
        assert_eq!(partial, 0, "[lmtp] round {round}: partial copies");
        let duplicates: usize = whole.values().map(|n| n - 1).sum();
        assert!(
            duplicates <= killed * WINDOW,
            "[lmtp] round {round}: {duplicates} duplicates after {killed} kills"
        );
        if finished {
            wave = None;
        }
    }

    let user = match &wave {
        Some((user, _)) => user,
        None => &add_user(&[]),
    };
    let (_, summary) = run_to_completion(&lmtp, user, &state_home);
    let (whole, partial) = tally(&lmtp.copies(), &expected);
    let lost = all.iter().filter(|id| !whole.contains_key(*id)).count();
    let duplicates: usize = whole.values().map(|n| n - 1).sum();
    let max_copies = whole.values().copied().max().unwrap_or(0);
    eprintln!(
        "[lmtp] {killed} kills ({finished_early} runs finished first) in {:?}; clean run: {}; \
         {} messages in {waves} wave(s): {lost} lost, {duplicates} duplicated (at most \
         {max_copies} copies of one; allowed {WINDOW} per kill), {partial} partial",
        started.elapsed(),
        summary.lines().last().unwrap_or_default(),
        all.len()
    );
    assert_eq!(lost, 0, "[lmtp] lost messages");
    assert_eq!(partial, 0, "[lmtp] partial copies");
    assert_eq!(user.messages_on_server(), 0, "[lmtp] delete mode");
    assert!(
        duplicates <= killed * WINDOW,
        "[lmtp] {duplicates} duplicates"
    );
}
