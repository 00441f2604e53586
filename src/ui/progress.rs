//! The transfer progress bar (on stderr): octets of the messages being downloaded, out of the
//! sizes the server listed for them.
//!
//! A server may send more than it listed (RFC 1939 only asks for an exact size; some count a
//! missing final line ending or bare LFs differently) or less. Each message therefore counts
//! up to its listed size and no further, and its end brings it to that size: the bar reaches
//! 100% when the last message ends and never goes past it.

use indicatif::{ProgressBar, ProgressStyle};

/// Progress through a list of messages of known (listed) sizes.
pub(crate) struct TransferProgress {
    bar: ProgressBar,
    /// Octets of the current message's listed size not yet counted.
    left: u64,
}

impl TransferProgress {
    /// A bar that draws nothing (quiet, no terminal, nothing to do), but still counts.
    pub(crate) fn hidden() -> TransferProgress {
        TransferProgress {
            bar: ProgressBar::hidden(),
            left: 0,
        }
    }

    /// A bar for `total` octets, labelled `prefix`, that takes what the terminal has left
    /// beside the label and the counts (a fixed width overflowed 80 columns).
    pub(crate) fn new(prefix: String, total: u64) -> TransferProgress {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} [{wide_bar}] {bytes}/{total_bytes} {binary_bytes_per_sec} {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(prefix);
        TransferProgress { bar, left: 0 }
    }

    /// A message listed with `size` octets starts.
    pub(crate) fn start(&mut self, size: u64) {
        self.left = size;
    }

    /// `octets` of the current message arrived; past its listed size they are not counted.
    pub(crate) fn received(&mut self, octets: u64) {
        let counted = octets.min(self.left);
        self.left -= counted;
        self.bar.inc(counted);
    }

    /// The current message ended (or was refused): what is left of its listed size counts.
    pub(crate) fn end(&mut self) {
        self.bar.inc(std::mem::take(&mut self.left));
    }

    /// Removes the bar from the terminal.
    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_never_passes_the_listed_total_when_a_server_understates_sizes() {
        let mut progress = TransferProgress::hidden();
        let listed = [100u64, 50];
        let total: u64 = listed.iter().sum();
        // The first message is 30 octets longer than listed, the second 10 shorter.
        progress.start(listed[0]);
        for _ in 0..13 {
            progress.received(10);
            assert!(progress.bar.position() <= total);
        }
        assert_eq!(
            progress.bar.position(),
            100,
            "capped at the first message's size"
        );
        progress.end();
        progress.start(listed[1]);
        progress.received(40);
        assert_eq!(progress.bar.position(), 140);
        progress.end();
        assert_eq!(
            progress.bar.position(),
            total,
            "complete at the end, not short of it"
        );
    }
}
