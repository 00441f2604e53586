//! The `pop3` binary: parse the command line, run, map the outcome to an exit code.

use std::process::ExitCode;
use std::sync::Mutex;

use pop3::cli::Cli;
use pop3::exit;

/// Where the last panic happened, for the one-line report.
static PANIC_LOCATION: Mutex<Option<String>> = Mutex::new(None);

fn main() -> ExitCode {
    disable_core_dumps();
    // A bug must still end in one readable line and a distinct exit code, not a debug dump:
    // the hook only remembers where it happened, and main reports it below. Panics caught on
    // purpose (the mail parser is guarded that way) stay silent.
    std::panic::set_hook(Box::new(|info| {
        if let Some(location) = info.location() {
            *PANIC_LOCATION.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(format!("{}:{}", location.file(), location.line()));
        }
    }));
    let cli = match Cli::parse_args() {
        Ok(cli) => cli,
        Err(error) => {
            // `pop3` alone: what it is and its commands, and where the rest is.
            if error.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                eprint!("{}", pop3::cli::short_help());
                eprintln!("\nrun `pop3 --help` for all options");
                return ExitCode::from(exit::ExitCode::Usage as u8);
            }
            if error.use_stderr() {
                let _ = error.print();
                return ExitCode::from(exit::ExitCode::Usage as u8);
            }
            // --help, --version: their output is data, and failing to write it (a full disk,
            // /dev/full) is the same error as for any other command's; `| head` is not.
            use std::io::Write;
            return match error.print().and_then(|()| std::io::stdout().flush()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    eprintln!("pop3: cannot write to standard output: {e}");
                    ExitCode::from(exit::ExitCode::IoError as u8)
                }
                _ => ExitCode::SUCCESS,
            };
        }
    };
    let outcome = std::panic::catch_unwind(|| pop3::commands::run(cli));
    let Ok(outcome) = outcome else {
        let location = PANIC_LOCATION
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_default();
        eprintln!("pop3: internal error at {location}; please report it");
        return ExitCode::from(exit::ExitCode::Software as u8);
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            // Error lines quote the server (greetings, -ERR text): filter them at this edge.
            eprintln!("pop3: {}", exit::describe(&error));
            ExitCode::from(exit::classify(&error) as u8)
        }
    }
}

/// A core dump would hold the password (a hostile server may be able to provoke an abort), so
/// none is written; on Linux the process is also made non-dumpable, which keeps other
/// processes of the same user from reading its memory through ptrace or /proc.
fn disable_core_dumps() {
    let none = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls with valid arguments; failure leaves the defaults in place.
    unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &none);
        #[cfg(target_os = "linux")]
        libc::prctl(libc::PR_SET_DUMPABLE, 0);
    }
}

/// `pop3 list | head` closes the pipe early: that is the reader's choice, not a failure.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
