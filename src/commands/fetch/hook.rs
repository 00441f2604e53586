//! `on_new_mail`: a command run once after a run that delivered at least one message (`notmuch
//! new`, a desktop notification), with `POP3_NEW_MESSAGES` and `POP3_ACCOUNT` in its
//! environment. The mail is delivered by then: a hook that fails, cannot be started or runs
//! past [`HOOK_TIMEOUT`] gets a warning line, and changes neither the delivery nor the exit
//! status.

use std::time::Duration;

use super::filter::{ChildEnd, run_child};
use super::{Context, Verbosity};

/// How long the hook may run before it is stopped (with everything it started).
pub(super) const HOOK_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs the account's `on_new_mail` command, if any, for `delivered` new messages.
pub(super) fn on_new_mail(context: &Context, delivered: usize) {
    let account = &context.account;
    let Some(argv) = &account.on_new_mail else {
        return;
    };
    let env = [
        ("POP3_NEW_MESSAGES", delivered.to_string()),
        ("POP3_ACCOUNT", account.name.clone()),
    ];
    let problem = match run_child(account, argv, None, &env, HOOK_TIMEOUT) {
        Ok(ChildEnd::Exited(status)) if status.success() => return,
        Ok(ChildEnd::Exited(status)) => format!("failed ({status})"),
        Ok(ChildEnd::TimedOut) => format!(
            "did not finish within {}s and was stopped",
            HOOK_TIMEOUT.as_secs()
        ),
        Err(e) => format!("cannot be run: {e}"),
    };
    if context.verbosity != Verbosity::Quiet {
        eprintln!(
            "pop3: warning: {}: on_new_mail `{}` {problem}; the new mail is delivered all the same",
            account.name,
            crate::message::display_safe(&crate::ui::command_line(argv))
        );
    }
}
