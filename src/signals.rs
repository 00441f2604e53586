//! Signals for `fetch-all`: SIGTERM and SIGINT ask it to stop, SIGHUP (under `--every`) to
//! re-read the configuration. Handlers only set flags (signal-hook); the download checks
//! [`stop_requested`], asks for no more messages, and commits what it has, so a stop never
//! cuts a delivery or a commit short. `fetch-all --every` installs the handlers at its start,
//! a plain `fetch-all` when its download starts (after any password prompt, where Ctrl-C must
//! still end the program at once).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Flags set by the handlers.
#[derive(Clone)]
pub(crate) struct Signals {
    stop: Arc<AtomicBool>,
    reload: Arc<AtomicBool>,
}

/// The stop flag the fetch looks at; unset unless [`Signals::install`] ran.
static STOP: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();

/// The number of the first stop signal (0: none yet); set beside [`STOP`].
static STOPPED_BY: std::sync::OnceLock<Arc<AtomicUsize>> = std::sync::OnceLock::new();

/// The handlers once installed: installing twice would make the first signal look like the
/// second and end the process at once.
static INSTALLED: Mutex<Option<Signals>> = Mutex::new(None);

/// Whether a stop was asked for: the fetch then downloads nothing more, commits what it has and
/// leaves.
pub(crate) fn stop_requested() -> bool {
    STOP.get().is_some_and(|stop| stop.load(Ordering::Relaxed))
}

/// The signal (SIGINT or SIGTERM) that asked for a stop, if one did: the program then exits
/// with 128 plus its number, the shell's convention for a program ended by a signal.
pub(crate) fn stopped_by() -> Option<i32> {
    let first = STOPPED_BY.get()?.load(Ordering::Relaxed);
    (first != 0).then_some(first as i32)
}

impl Signals {
    /// Installs the handlers, once per process (later calls return the same flags). A second
    /// SIGTERM or SIGINT while stopping ends the process at once (exit 130 / 143): a user who
    /// presses Ctrl-C twice means it, and a kill at any moment loses no mail.
    pub(crate) fn install() -> std::io::Result<Signals> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        use signal_hook::flag;
        let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(signals) = &*installed {
            return Ok(signals.clone());
        }
        let stop = Arc::clone(STOP.get_or_init(|| Arc::new(AtomicBool::new(false))));
        let first = Arc::clone(STOPPED_BY.get_or_init(|| Arc::new(AtomicUsize::new(0))));
        let reload = Arc::new(AtomicBool::new(false));
        for signal in [SIGTERM, SIGINT] {
            // Registered first, so it sees the flag before this signal sets it.
            flag::register_conditional_shutdown(signal, 128 + signal, Arc::clone(&stop))?;
            // Before the stop flag: whoever sees the flag finds the signal's number. A second
            // signal never gets here (the shutdown above ends the process).
            flag::register_usize(signal, Arc::clone(&first), signal as usize)?;
            flag::register(signal, Arc::clone(&stop))?;
        }
        flag::register(SIGHUP, Arc::clone(&reload))?;
        let signals = Signals { stop, reload };
        *installed = Some(signals.clone());
        Ok(signals)
    }

    /// Installs the handlers for a plain `fetch-all` download; without them (they cannot be
    /// installed) SIGINT and SIGTERM simply end the process, which is safe too.
    pub(crate) fn install_for_download() {
        let _ = Signals::install();
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
