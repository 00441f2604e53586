//! `pop3 login-check`: connects and logs in exactly as other commands do, saying what happened
//! at each step. The exit status is the verdict.

use crate::connect::{ConnectError, Progress};
use crate::message::display_safe;
use crate::transport::{TransportError, pin_advice, summarize_certificate};
use crate::ui::{count, human_size};

use super::Context;

/// Writes a line to stdout; a closed stdout must not abort the check (its exit status is the answer).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(crate::ui::stdout(), $($arg)*);
    }};
}

/// Runs `login-check`.
pub fn run(context: &Context) -> anyhow::Result<()> {
    let account = &context.account;
    say!(
        "Account:      {} ({}@{} port {}, tls {})",
        account.name,
        account.user,
        account.host,
        account.port,
        account.tls
    );
    let connected =
        context.connect_with(crate::connect::Options::default(), &mut |step| match step {
            // Through a proxy, the peer is the proxy: say so, and where it connected us.
            Progress::Connected(peer) => match &account.proxy {
                Some(proxy) => say!(
                    "Connected:    {}:{} via proxy {proxy} ({peer})",
                    account.host,
                    account.port
                ),
                None => say!("Connected:    {peer}"),
            },
            Progress::Tls(info) => {
                say!("TLS:          {} {}", info.version, info.cipher_suite);
                if let Some(summary) = info.certificate.as_ref().and_then(summarize_certificate) {
                    say!(
                        "Certificate:  {} (issued by {})",
                        summary.subject,
                        summary.issuer
                    );
                    say!("Valid until:  {}", summary.not_after);
                    say!("SHA-256:      {}", summary.sha256);
                }
            }
            Progress::Greeting(status) => {
                say!("Greeting:     {}", display_safe(&status.to_string()))
            }
            Progress::Authenticated(mechanism) => say!("Login:        ok, with {mechanism}"),
            Progress::Capabilities(capabilities) => {
                let list = if capabilities.is_known() {
                    capabilities.lines().join(", ")
                } else {
                    "none announced (no CAPA)".into()
                };
                say!("Capabilities: {}", display_safe(&list));
            }
        });
    let mut connection = connected
        .inspect_err(show_refused_certificate)
        .map_err(without_presented_certificate)?;
    let stat = connection.session.stat()?;
    say!(
        "Mailbox:      {}, {}",
        count(stat.messages.into(), "message"),
        human_size(stat.octets)
    );
    connection.session.quit()?;
    let state_path = super::fetch::state_path(account);
    match super::fetch::read_state(account) {
        // Without the file, old files that the next fetch-all adopts may still hold records.
        Ok(state) if !state_path.exists() && state.delivered_count() == 0 => say!(
            "fetch-all:    state {} (nothing downloaded yet)",
            state_path.display()
        ),
        Ok(state) => say!(
            // The state forgets what left the server, so this is not a count of all downloads.
            "fetch-all:    state {} ({} downloaded and still on the server)",
            state_path.display(),
            count(state.delivered_count() as u64, "message")
        ),
        Err(e) => say!("fetch-all:    {e}"),
    }
    say!("Login check passed.");
    Ok(())
}

/// The certificate TLS verification refused, shown like an accepted one plus how to pin it, so
/// that `tls_fingerprint` can be copied from here (the error line says why it was refused).
fn show_refused_certificate(error: &anyhow::Error) {
    // `ConnectError::Transport` is transparent: the chain shows the connect error only.
    let presented = error.chain().find_map(|cause| {
        let transport = cause.downcast_ref::<TransportError>().or_else(|| {
            match cause.downcast_ref::<ConnectError>() {
                Some(ConnectError::Transport(transport)) => Some(transport),
                _ => None,
            }
        });
        match transport {
            Some(TransportError::Tls {
                presented: Some(presented),
                ..
            }) => Some(presented),
            _ => None,
        }
    });
    if let Some(summary) = presented {
        say!(
            "Certificate:  {} (issued by {}): NOT TRUSTED",
            display_safe(&summary.subject),
            display_safe(&summary.issuer)
        );
        say!("Valid from:   {}", summary.not_before);
        say!("Valid until:  {}", summary.not_after);
        say!("SHA-256:      {}", summary.sha256);
        say!("To pin it:    {}", pin_advice(&summary.sha256));
    }
}

/// The error without the refused certificate's description: [`show_refused_certificate`] has
/// printed it field by field, and the error line would say it all again in ~600 characters.
/// The error keeps its type, so its exit code stays the same.
fn without_presented_certificate(mut error: anyhow::Error) -> anyhow::Error {
    let transport = match error.downcast_mut::<ConnectError>() {
        Some(ConnectError::Transport(transport)) => Some(transport),
        Some(_) => None,
        None => error.downcast_mut::<TransportError>(),
    };
    if let Some(TransportError::Tls { presented, .. }) = transport {
        *presented = None;
    }
    error
}
