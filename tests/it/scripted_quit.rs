//! QUIT costs a round trip only when its reply matters: after a DELE. A session that marked
//! nothing sends QUIT and leaves (the UPDATE state has nothing to remove, RFC 1939 §5-6).

use std::time::{Duration, Instant};

use crate::support::cli::Pop3;
use crate::support::scripted::{ScriptedServer, login_script};

/// Longer than any of these runs should take, shorter than the client's timeout.
const SLOW_REPLY_MS: u64 = 3000;

#[test]
fn quit_without_deletions_does_not_wait_for_the_reply() {
    // The server takes 3 s to confirm QUIT: a client that waits for it takes that long.
    let server = ScriptedServer::start(&format!(
        "{}C: STAT
         S: +OK 2 320
         C: QUIT
         !sleep {SLOW_REPLY_MS}
         S: +OK bye",
        login_script("USER")
    ));
    let started = Instant::now();
    let outcome = Pop3::scripted_plain(server.port)
        .args(["--timeout", "30", "stat"])
        .run()
        .expect_code(0);
    let took = started.elapsed();
    assert!(
        outcome.stdout.starts_with("2 messages"),
        "{}",
        outcome.stdout
    );
    assert!(
        took < Duration::from_millis(SLOW_REPLY_MS / 2),
        "stat waited {took:?} for a QUIT reply that carries nothing"
    );
    server.finish_lenient();
}

// That QUIT after a DELE still waits for its reply is proven by
// scripted_messages::delete_says_the_outcome_is_unknown_when_quit_is_lost.
