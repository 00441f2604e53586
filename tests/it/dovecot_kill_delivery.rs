//! SIGKILL campaigns for the targets that cannot be searched for what they hold: an mbox and
//! an MDA. Delete mode, 300 messages, runs killed at random moments, then a clean run.
//!
//! mbox: 0 lost, 0 duplicated, 0 partial copies left, no stuck lock. MDA: 0 lost, at most one
//! duplicate per kill (the message whose MDA had exited when the run was killed, before it was
//! recorded: an MDA cannot tell us later that it delivered).
//!
//! The normal suite runs a few kills; `POP3_KILL_ROUNDS=100 cargo test --locked sigkill_campaign
//! -- --nocapture` runs a full campaign and prints its figures (docs/fetch-all.md quotes them).
//!
//! The kill loop and the counting are `support::kill_campaign`'s; this file says where the
//! runs deliver and what a round and the campaign may leave there.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::dovecot_fetch::{files_in, pop3};
use crate::support::dovecot::User;
use crate::support::kill_campaign::{self, Round};

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
    /// The mbox's dot-lock.
    lock: std::path::PathBuf,
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
            lock: dir.join("inbox.lock"),
        }
    }
}

impl kill_campaign::Target for Delivery {
    const SPAN_BY_WHAT_IS_LEFT: bool = true;

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

    fn is_whole(copy: &[u8], form: &[u8]) -> bool {
        copy == form
    }

    fn check_round(&self, r: &Round<'_>) {
        let (label, round) = (r.label, r.round);
        if self.target == Target::Mbox {
            assert_eq!(r.duplicates, 0, "[{label}] round {round}: duplicated");
            // Only the append a kill interrupted may be torn, until the next run cuts it.
            assert!(
                r.partial <= 1,
                "[{label}] round {round}: {} partial copies",
                r.partial
            );
            // A dot-lock left by a killed run names it, so the next run can take it over.
            if let Ok(text) = fs::read_to_string(&self.lock) {
                assert!(
                    text.trim().parse::<u32>().is_ok(),
                    "[{label}] round {round}: a dot-lock without a PID: {text:?}"
                );
            }
        } else {
            assert_eq!(r.partial, 0, "[{label}] round {round}: partial copies");
            assert!(
                r.duplicates <= r.killed,
                "[{label}] round {round}: {} duplicates after {} kills",
                r.duplicates,
                r.killed
            );
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

fn campaign(target: Target) {
    let label = match target {
        Target::Mbox => "mbox",
        Target::Mda => "mda",
    };
    let salt = 0x6b69_6c6c ^ u64::from(target == Target::Mda);
    let c = kill_campaign::campaign(label, salt, |dir| Delivery::new(target, dir));
    assert!(
        c.final_run < c.full_run * 3 + Duration::from_secs(5),
        "[{label}] the clean run took {:?} (a stuck lock?)",
        c.final_run
    );
    let stuck_lock = c.target.lock.exists();
    let lock_leftovers: Vec<String> = fs::read_dir(&c.dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".lock"))
        .collect();
    let (killed, duplicates) = (c.killed, c.duplicates);
    eprintln!(
        "[{label}] {}), {} partial left ({} torn copies seen after kills, cut back by the next \
         run), stuck lock: {stuck_lock}",
        c.figures(),
        c.partial,
        c.torn_after_kill,
    );
    assert_eq!(c.lost, 0, "[{label}] lost messages");
    assert_eq!(c.partial, 0, "[{label}] partial copies left");
    assert_eq!(c.left_on_server, 0, "[{label}] delete mode");
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
    let state_files: HashSet<String> = fs::read_dir(c.state_home.join("pop3"))
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
