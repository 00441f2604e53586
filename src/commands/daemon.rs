//! `fetch-all --every 5m`: fetch, sleep, repeat, for people who run pop3 as a user service
//! rather than from cron (fetchmail's `-d`).
//!
//! - Each account has its own schedule. A failed cycle backs off: the wait doubles, up to an
//!   hour (or the interval, when that is longer), and the first good cycle returns to the
//!   interval and says so.
//! - A failure is reported when it first happens and again only when its text changes: a
//!   server down for a night does not write a line every few minutes.
//! - SIGTERM and SIGINT stop it between messages: what was downloaded is committed, and the
//!   process exits 0. SIGHUP re-reads the configuration (a broken file keeps the old one).
//! - The account lock is taken per cycle, inside each fetch, so a manual `pop3 fetch-all` can
//!   run between two cycles.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::Context;
use crate::signals::Signals;

/// The longest a failing account waits, unless the interval itself is longer.
const BACKOFF_CAP: Duration = Duration::from_secs(3600);

/// Parses an interval: `300` (seconds), `30s`, `5m`, `2h`, `1d`.
pub(crate) fn parse_interval(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let scale = match unit {
        "s" | "sec" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "{text:?}: use seconds, or a number with s, m, h or d (e.g. 5m)"
            ));
        }
    };
    match number.parse::<u64>() {
        Ok(n) if n > 0 && n <= 7 * 86_400 / scale => Ok(Duration::from_secs(n * scale)),
        _ => Err(format!(
            "{text:?}: the interval must be between 1 second and 7 days (e.g. 5m)"
        )),
    }
}

/// How long to wait after `failures` failed cycles in a row (0: the run went well).
fn wait_after(every: Duration, failures: u32) -> Duration {
    let cap = BACKOFF_CAP.max(every);
    every
        .checked_mul(1u32 << failures.min(20))
        .map_or(cap, |wait| wait.min(cap))
}

/// One account's place in the schedule.
#[derive(Debug)]
struct Slot {
    due: Instant,
    failures: u32,
    /// The failure last reported, so that the same one is not repeated every cycle.
    reported: Option<String>,
}

impl Slot {
    fn new(now: Instant) -> Slot {
        Slot {
            due: now,
            failures: 0,
            reported: None,
        }
    }
}

/// What a cycle's outcome means for the account's schedule and what to print.
fn settle(
    slot: &mut Slot,
    every: Duration,
    now: Instant,
    failure: Option<String>,
) -> Option<String> {
    match failure {
        None => {
            slot.failures = 0;
            slot.due = now + every;
            slot.reported.take().map(|_| "working again".to_owned())
        }
        Some(text) => {
            slot.failures = slot.failures.saturating_add(1);
            let wait = wait_after(every, slot.failures);
            slot.due = now + wait;
            if slot.reported.as_deref() == Some(&text) {
                return None;
            }
            slot.reported = Some(text.clone());
            Some(format!(
                "{text} (retrying in {}; said once until it changes)",
                human_duration(wait)
            ))
        }
    }
}

fn human_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// The outcome of one account's cycle: the error line (already naming the account), if any.
pub(crate) type Outcome = Option<String>;

/// Runs cycles until SIGTERM or SIGINT. `load` resolves the accounts (again after SIGHUP);
/// `cycle` fetches the given accounts (in parallel) and returns their outcomes in order.
pub(crate) fn run(
    every: Duration,
    signals: &Signals,
    mut load: impl FnMut() -> anyhow::Result<Vec<Context>>,
    mut cycle: impl FnMut(&[&Context]) -> Vec<Outcome>,
) -> anyhow::Result<()> {
    let mut contexts = load()?;
    let mut slots: HashMap<String, Slot> = HashMap::new();
    loop {
        if signals.stop() {
            return Ok(());
        }
        if signals.take_reload() {
            match load() {
                Ok(fresh) => {
                    eprintln!("pop3: configuration re-read ({} accounts)", fresh.len());
                    contexts = fresh;
                    slots.retain(|name, _| contexts.iter().any(|c| &c.account.name == name));
                }
                Err(error) => eprintln!(
                    "pop3: cannot re-read the configuration, keeping the previous one: {}",
                    crate::exit::describe(&error)
                ),
            }
        }
        let now = Instant::now();
        let due: Vec<&Context> = contexts
            .iter()
            .filter(|c| {
                slots
                    .entry(c.account.name.clone())
                    .or_insert_with(|| Slot::new(now))
                    .due
                    <= now
            })
            .collect();
        if !due.is_empty() {
            let outcomes = cycle(&due);
            let now = Instant::now();
            for (context, outcome) in due.iter().zip(outcomes) {
                let slot = slots
                    .entry(context.account.name.clone())
                    .or_insert_with(|| Slot::new(now));
                let failed = outcome.is_some();
                if let Some(line) = settle(slot, every, now, outcome) {
                    if failed {
                        eprintln!("pop3: {line}");
                    } else {
                        eprintln!("pop3: {}: {line}", context.account.name);
                    }
                }
            }
        }
        let next = slots.values().map(|s| s.due).min();
        let wait = next.map_or(every, |due| due.saturating_duration_since(Instant::now()));
        signals.sleep(wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("300"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_interval("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_interval("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_interval("2h"), Ok(Duration::from_secs(7200)));
        for bad in ["0", "5x", "m", "", "-5m", "99999999999999999999", "8000h"] {
            assert!(parse_interval(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_takes_days_as_its_limit_is_said_in_days() {
        assert_eq!(parse_interval("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_interval("7d"), Ok(Duration::from_secs(7 * 86_400)));
        let err = parse_interval("8d").unwrap_err();
        assert!(err.contains("between 1 second and 7 days"), "{err}");
    }

    #[test]
    fn failures_back_off_doubling_up_to_the_cap_and_recover() {
        let every = Duration::from_secs(300);
        let waits: Vec<u64> = (0..8).map(|n| wait_after(every, n).as_secs()).collect();
        assert_eq!(waits, [300, 600, 1200, 2400, 3600, 3600, 3600, 3600]);
        // An interval above the cap is never shortened.
        assert_eq!(wait_after(Duration::from_secs(7200), 3).as_secs(), 7200);
        assert_eq!(wait_after(every, u32::MAX).as_secs(), 3600);
    }

    #[test]
    fn a_failure_is_said_once_per_change_and_recovery_is_said() {
        let every = Duration::from_secs(60);
        let now = Instant::now();
        let mut slot = Slot::new(now);
        let said = settle(&mut slot, every, now, Some("work: timed out".into()));
        assert_eq!(
            said.as_deref(),
            Some("work: timed out (retrying in 2m; said once until it changes)")
        );
        assert_eq!(slot.due, now + Duration::from_secs(120));
        assert_eq!(
            settle(&mut slot, every, now, Some("work: timed out".into())),
            None
        );
        assert_eq!(slot.due, now + Duration::from_secs(240));
        assert!(settle(&mut slot, every, now, Some("work: login failed".into())).is_some());
        assert_eq!(
            settle(&mut slot, every, now, None).as_deref(),
            Some("working again")
        );
        assert_eq!(slot.due, now + every);
        assert_eq!(settle(&mut slot, every, now, None), None);
    }
}
