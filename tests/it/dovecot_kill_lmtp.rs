//! SIGKILL campaign for delivery through LMTP (Dovecot's LMTP service, Unix socket, CHUNKING
//! and PIPELINING, so messages go out in a window of `pop3::store::smtp::WINDOW`). Delete
//! mode, runs killed at random moments, then a clean run: 0 lost, and at most the window
//! duplicated per kill (messages the server took whose answer was not read and recorded yet:
//! LMTP offers no way to ask afterwards).
//!
//! The normal suite runs a few kills; `POP3_KILL_ROUNDS=100 cargo test --locked
//! sigkill_campaign_lmtp -- --nocapture` runs a full campaign and prints its figures
//! (docs/fetch-all.md and docs/delivery.md quote them).
//!
//! The kill loop and the counting are `support::kill_campaign`'s; this file says where the
//! runs deliver and what a round and the campaign may leave there.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use pop3::store::smtp::WINDOW;

use crate::dovecot_fetch::{files_in, pop3};
use crate::support::dovecot::{User, dovecot};
use crate::support::kill_campaign::{self, Round};

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

    fn files(&self) -> Vec<PathBuf> {
        ["new", "cur"]
            .iter()
            .flat_map(|sub| files_in(&self.target.maildir.join(sub)))
            .collect()
    }
}

impl kill_campaign::Target for Lmtp {
    const SPAN_BY_WHAT_IS_LEFT: bool = false;

    fn command(&self, user: &User, state_home: &Path) -> (Command, tempfile::TempDir) {
        pop3(user)
            .env("XDG_STATE_HOME", state_home)
            .args([Path::new("--config"), &self.config])
            .args(["fetch-all", "--delete", "-v"])
            .into_command()
    }

    fn copies(&self) -> Vec<Vec<u8>> {
        self.files().iter().map(|p| fs::read(p).unwrap()).collect()
    }

    fn progress(&self) -> u64 {
        self.files().len() as u64
    }

    /// Dovecot puts its own headers above the message.
    fn is_whole(copy: &[u8], form: &[u8]) -> bool {
        copy.ends_with(form)
    }

    fn check_round(&self, r: &Round<'_>) {
        assert_eq!(r.partial, 0, "[lmtp] round {}: partial copies", r.round);
        assert!(
            r.duplicates <= r.killed * WINDOW,
            "[lmtp] round {}: {} duplicates after {} kills",
            r.round,
            r.duplicates,
            r.killed
        );
    }
}

#[test]
fn sigkill_campaign_lmtp_loses_nothing_and_duplicates_at_most_the_window() {
    let c = kill_campaign::campaign("lmtp", 0x6c6d_7470, Lmtp::new);
    eprintln!(
        "[lmtp] {}; allowed {WINDOW} per kill), {} partial",
        c.figures(),
        c.partial
    );
    assert_eq!(c.lost, 0, "[lmtp] lost messages");
    assert_eq!(c.partial, 0, "[lmtp] partial copies");
    assert_eq!(c.left_on_server, 0, "[lmtp] delete mode");
    assert!(
        c.duplicates <= c.killed * WINDOW,
        "[lmtp] {} duplicates",
        c.duplicates
    );
}
