//! Signals for the long-running `fetch-all --every`: SIGTERM and SIGINT ask it to stop, SIGHUP
//! to re-read the configuration. Handlers only set flags (signal-hook); the fetch checks
//! [`stop_requested`] between messages, so a stop never cuts a delivery or a commit short.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Flags set by the handlers.
#[derive(Clone)]
pub(crate) struct Signals {
    stop: Arc<AtomicBool>,
    reload: Arc<AtomicBool>,
}

/// The stop flag the fetch looks at; unset unless [`Signals::install`] ran.
static STOP: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();

/// Whether a stop was asked for: the fetch then downloads nothing more, commits what it has and
/// leaves.
pub(crate) fn stop_requested() -> bool {
    STOP.get().is_some_and(|stop| stop.load(Ordering::Relaxed))
}

impl Signals {
    /// Installs the handlers. A second SIGTERM or SIGINT while stopping ends the process at
    /// once (exit 130 / 143): a user who presses Ctrl-C twice means it, and a kill at any moment
    /// loses no mail.
    pub(crate) fn install() -> std::io::Result<Signals> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        use signal_hook::flag;
        let stop = Arc::clone(STOP.get_or_init(|| Arc::new(AtomicBool::new(false))));
        let reload = Arc::new(AtomicBool::new(false));
        for signal in [SIGTERM, SIGINT] {
            // Registered first, so it sees the flag before this signal sets it.
            flag::register_conditional_shutdown(signal, 128 + signal, Arc::clone(&stop))?;
            flag::register(signal, Arc::clone(&stop))?;
        }
        flag::register(SIGHUP, Arc::clone(&reload))?;
        Ok(Signals { stop, reload })
    }

    /// Whether SIGTERM or SIGINT arrived.
    pub(crate) fn stop(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Whether SIGHUP arrived since the last call (which clears it).
    pub(crate) fn take_reload(&self) -> bool {
        self.reload.swap(false, Ordering::Relaxed)
    }

    /// Sleeps up to `duration`, waking early when a signal asks for something.
    pub(crate) fn sleep(&self, duration: std::time::Duration) {
        let until = std::time::Instant::now() + duration;
        while !self.stop() && !self.reload.load(Ordering::Relaxed) {
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(std::time::Duration::from_millis(100)));
        }
    }
}
