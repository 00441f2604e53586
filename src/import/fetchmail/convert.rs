//! One fetchmail entry as a pop3 account: each setting becomes a key, or a comment saying why not.

use super::Entry;
use crate::import::{ImportedAccount, Tool};

/// fetchmail's delivery through SMTP (its default: `localhost:25`) or LMTP (`lmtp` with an
/// `smtphost` of `host/port` or a socket path) as pop3's `smtp`/`lmtp` keys, with the local
/// user (`is NAME here`) as the recipient.
fn server_delivery(
    account: &mut ImportedAccount,
    smtphost: Option<&str>,
    lmtp: bool,
    local_user: Option<String>,
) {
    // fetchmail writes `host/port`; an absolute path is a Unix socket (LMTP only).
    let endpoint = |host: &str| match host.split_once('/') {
        _ if host.starts_with('/') => format!("unix:{host}"),
        Some((host, port)) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    match (lmtp, smtphost) {
        (true, Some(host)) if host.starts_with('/') || host.contains('/') => {
            account.set("lmtp", endpoint(host))
        }
        (true, _) => {
            account.note(format!(
                "fetchmail: lmtp with smtphost {}: LMTP has no standard port; set lmtp = \"host:port\" or \"unix:/path\"",
                smtphost.unwrap_or("(none)")
            ));
            return;
        }
        (false, Some(host)) => account.set("smtp", endpoint(host)),
        (false, None) => {
            account.set("smtp", true);
            account.note("fetchmail delivered through SMTP to localhost:25 by default; so does this account (smtp = true); set maildir for a Maildir instead");
        }
    }
    if let Some(user) = local_user {
        account.set("recipient", user);
    }
    account.note("fetchmail deleted (or bounced) a message the server refused for good (5xx); pop3 leaves it on the server unless delete_rejected = true");
}

/// fetchmail's `mda` command as pop3's `mda`: fetchmail replaced `%T` (and `%s`) with the local
/// user, quoted, and `%F` with the message's envelope sender. The local user is known here when
/// the entry names exactly one (`is alice here`); the sender never is. A placeholder that cannot
/// be filled in leaves the `mda` commented out with a note and a warning: an MDA called with
/// `%T` as the user name would deliver somewhere else or fail on every message.
fn mda_delivery(account: &mut ImportedAccount, command: &str, local_users: Option<&str>) {
    let users: Vec<&str> = local_users.unwrap_or_default().split_whitespace().collect();
    let single = match users.as_slice() {
        [user] if !user.contains(['*', '=']) => Some(*user),
        _ => None,
    };
    let mut filled = command.to_owned();
    if let Some(user) = single {
        let quoted = crate::ui::sh_quote(user);
        filled = filled.replace("%T", &quoted).replace("%s", &quoted);
    }
    let mut missing = Vec::new();
    if filled.contains("%T") || filled.contains("%s") {
        missing.push(match users.len() {
            0 => {
                "%T (the local user: this entry names none, so fetchmail used the user running it)"
            }
            _ => "%T (the local user: this entry names several, so fetchmail chose per message)",
        });
    }
    if filled.contains("%F") {
        missing.push("%F (the message's envelope sender: pop3 passes none to an MDA)");
    }
    if missing.is_empty() {
        account.set("mda", crate::import::shell(&filled));
        return;
    }
    account.note(format!(
        "fetchmail filled in the mda command; pop3 cannot fill in {}. Not imported: fix the command and remove the '# ' before mda (until then fetch-all delivers to ~/Maildir):",
        missing.join(", nor ")
    ));
    account.note(format!("mda = {}", crate::import::shell(&filled)));
    let short: Vec<&str> = missing.iter().map(|m| &m[..2]).collect();
    account.warn(format!(
        "the mda command uses {}, which pop3 cannot fill in: imported commented out, see the comment under the account",
        short.join(" and ")
    ));
}

/// Turns one entry into an account named `name`.
pub fn convert(name: &str, entry: &Entry) -> Result<ImportedAccount, String> {
    let protocol = entry
        .get("protocol")
        .or(entry.get("proto"))
        .unwrap_or("auto")
        .to_lowercase();
    if !matches!(
        protocol.as_str(),
        "auto" | "pop3" | "apop" | "rpop" | "sdps"
    ) {
        return Err(format!(
            "fetchmail entry {} uses {protocol}, not POP3: not imported",
            entry.poll
        ));
    }
    let host = entry.get("via").unwrap_or(&entry.poll).to_owned();
    let user = entry
        .get("user")
        .or(entry.get("username"))
        .unwrap_or_default()
        .to_owned();
    let mut account = ImportedAccount::new(name, &host, &user);
    let ssl = entry.has("ssl") && !entry.has("no ssl");
    let port = entry.get("port").or(entry.get("service"));
    match port.and_then(|p| p.parse::<u16>().ok()) {
        Some(port) => account.set("port", i64::from(port)),
        None => account.set("port", if ssl { 995 } else { 110 }),
    }
    if ssl {
        account.set("tls", "implicit");
    } else if entry.get("sslproto") == Some("") {
        account.set("tls", "starttls");
        account.note("fetchmail had TLS switched off (sslproto ''); pop3 asks for STLS: if the server cannot, set tls = \"none\" and allow_plaintext_password = true");
    } else {
        account.set("tls", "starttls");
        account.note("fetchmail used STLS only when the server offered it; pop3 requires it (tls = \"starttls\")");
    }
    if protocol == "apop" {
        account.set("auth", "apop");
    }
    let mut has_password = false;
    let mut keep = false;
    let mut delivery = false;
    // fetchmail's SMTP/LMTP delivery: the first `smtphost`, the `lmtp` flag, and the local
    // user (`is NAME here`), resolved after every option is seen.
    let mut smtphost: Option<String> = None;
    let mut lmtp = false;
    let mut local_user: Option<String> = None;
    let mut local_users: Option<String> = None;
    let (mut mda, mut mda_at): (Option<String>, usize) = (None, 0);
    // `limit N` leaves bigger messages on the server; with `limitflush` it deletes them unread.
    let mut limit: Option<i64> = None;
    let mut limitflush = false;
    for (key, value) in &entry.options {
        let value_text = value.as_deref().unwrap_or("");
        match key.as_str() {
            "via" | "user" | "username" | "port" | "service" | "ssl" | "protocol" | "proto" | "uidl" | "sslcertck" => {}
            "sslcertfile" => account.set("ca_file", value_text),
            "sslcert" => account.set("tls_client_cert", value_text),
            "sslkey" => account.set("tls_client_key", value_text),
            "sslcommonname" => account.set("tls_server_name", value_text),
            "timeout" if value_text.parse::<i64>().is_ok() => {
                account.set("timeout", value_text.parse::<i64>().unwrap_or(60))
            }
            "limit" if value_text.parse::<u32>().is_ok() => {
                limit = value_text.parse::<u32>().ok().map(i64::from)
            }
            "limitflush" => limitflush = true,
            "no limitflush" => limitflush = false,
            "fetchlimit" if value_text.parse::<u32>().is_ok() => {
                account.set("max_messages", value_text.parse::<u32>().map_or(0, i64::from))
            }
            "postconnect" => account.note(format!(
                "fetchmail: postconnect {value_text}: ran after every poll; pop3's on_new_mail runs only after a run that delivered mail, not imported"
            )),
            "pass" | "password" => {
                has_password = true;
                crate::import::plaintext(&mut account, Tool::Fetchmail, value_text);
            }
            "keep" => keep = true,
            "no keep" | "flush" => keep = false,
            "mda" => {
                delivery = true;
                // Set once every option is seen: `%T` needs the local user (`is NAME here`).
                mda = Some(value_text.to_owned());
                mda_at = account.lines.len();
            }
            "auth" | "authenticate" if matches!(value_text, "password" | "any") => {}
            "is" | "to" => {
                local_user = value_text.split_whitespace().next().map(str::to_owned);
                local_users = Some(value_text.to_owned());
                account.note(format!(
                    "fetchmail: local user {value_text}: the recipient with lmtp/smtp; with maildir, mbox or mda pop3 delivers as the user running it"
                ));
            }
            "no sslcertck" => account.note(
                "fetchmail: no sslcertck: pop3 always verifies the certificate (use ca_file or tls_fingerprint for a self-signed one)",
            ),
            "smtphost" => {
                smtphost = value_text.split_whitespace().next().map(str::to_owned);
                if value_text.split_whitespace().nth(1).is_some() {
                    account.note(format!(
                        "fetchmail: smtphost {value_text}: pop3 uses the first server only"
                    ));
                }
            }
            "lmtp" => lmtp = true,
            "bsmtp" => {
                delivery = true;
                account.note(format!(
                    "fetchmail: bsmtp {value_text}: no equivalent in pop3; set maildir, mbox, mda, lmtp or smtp"
                ));
            }
            "fetchall" => account.note("fetchmail: fetchall: use pop3 fetch-all --all for that"),
            other => account.note(format!(
                "fetchmail: {other}{}{value_text}: no equivalent in pop3, not imported",
                if value.is_some() { " " } else { "" }
            )),
        }
    }
    if let Some(command) = mda {
        // In the place of the `mda` option, so the output keeps fetchmail's order.
        let rest = account.lines.split_off(mda_at);
        mda_delivery(&mut account, &command, local_users.as_deref());
        account.lines.extend(rest);
    }
    match limit {
        Some(n) if n > 0 && limitflush => account.set("delete_larger_than", n),
        Some(n) => account.set("max_message_size", n),
        None => {}
    }
    if !delivery {
        server_delivery(&mut account, smtphost.as_deref(), lmtp, local_user);
    }
    if !has_password {
        if crate::import::netrc_has(&entry.poll) {
            crate::import::netrc_password(&mut account, Tool::Fetchmail, &entry.poll);
        } else {
            account.note("fetchmail asked for the password (no password and no ~/.netrc entry); so will pop3, or set password_command");
        }
    }
    account.set("delete", !keep);
    Ok(account)
}

#[cfg(test)]
mod tests {
    use super::super::parse_config;
    use super::*;
    use std::path::Path;

    const RC: &str = r#"
set daemon 300
set no bouncemail
defaults proto pop3
poll pop.example.com with protocol pop3 and port 995:
    user "alice" there with password "se cret" is alice here
    ssl sslcertfile /etc/ca.pem keep
    mda "/usr/bin/procmail -d %T";
poll imap.example.com protocol imap user bob password x
skip pop.two.example username carol pass 'p' no keep fetchall
    user dave password d smtphost localhost
"#;

    #[test]
    fn rc_files_parse_into_pop3_accounts() {
        let (entries, sets) = parse_config(RC, Path::new("rc")).unwrap();
        assert_eq!(sets, ["daemon 300", "no bouncemail"]);
        assert_eq!(entries.len(), 4);
        let alice = convert("pop.example.com", &entries[0]).unwrap();
        assert_eq!(alice.user, "alice");
        assert_eq!(alice.get("password"), Some(&"se cret".into()));
        assert_eq!(alice.get("tls"), Some(&"implicit".into()));
        assert_eq!(alice.get("port"), Some(&995.into()));
        assert_eq!(alice.get("ca_file"), Some(&"/etc/ca.pem".into()));
        assert_eq!(alice.get("delete"), Some(&false.into()));
        assert_eq!(
            alice.get("mda"),
            Some(&crate::import::shell("/usr/bin/procmail -d 'alice'"))
        );
        assert!(alice.to_toml().contains("# fetchmail: local user alice"));
        assert!(convert("imap", &entries[1]).is_err());
        let carol = convert("c", &entries[2]).unwrap();
        assert!(entries[2].skipped);
        assert_eq!(carol.get("delete"), Some(&true.into()));
        assert!(carol.to_toml().contains("fetchall"));
        let dave = convert("d", &entries[3]).unwrap();
        assert_eq!(dave.user, "dave");
        assert_eq!(dave.get("smtp"), Some(&"localhost".into()));
        assert_eq!(carol.get("smtp"), Some(&true.into()), "fetchmail's default");
        assert_eq!(alice.get("smtp"), None, "mda");
        let text = format!(
            "{}\n{}\n{}",
            alice.to_toml(),
            carol.to_toml(),
            dave.to_toml()
        );
        crate::config::parse(&text, Path::new("x")).unwrap();
    }

    #[test]
    fn fetchlimit_limit_and_limitflush_become_pop3_keys() {
        let rc = "poll a.example user x password p fetchlimit 50 limit 1000 mda cat\n\
                  poll b.example user y password p limit 2000 limitflush mda cat\n\
                  poll c.example user z password p limit 0 limitflush postconnect 'notmuch new' mda cat\n";
        let (entries, _) = parse_config(rc, Path::new("rc")).unwrap();
        let a = convert("a", &entries[0]).unwrap();
        assert_eq!(a.get("max_messages"), Some(&50.into()));
        assert_eq!(a.get("max_message_size"), Some(&1000.into()));
        assert_eq!(a.get("delete_larger_than"), None);
        let b = convert("b", &entries[1]).unwrap();
        assert_eq!(b.get("delete_larger_than"), Some(&2000.into()));
        assert_eq!(b.get("max_message_size"), None);
        let c = convert("c", &entries[2]).unwrap();
        assert_eq!(c.get("delete_larger_than"), None, "limit 0 is no limit");
        assert_eq!(c.get("max_message_size"), Some(&0.into()));
        assert!(c.to_toml().contains("# fetchmail: postconnect notmuch new"));
        let text = format!("{}\n{}\n{}", a.to_toml(), b.to_toml(), c.to_toml());
        crate::config::parse(&text, Path::new("x")).unwrap();
    }

    #[test]
    fn smtp_and_lmtp_delivery_become_pop3_keys_with_the_local_user_as_recipient() {
        let rc = "poll a.example user x password p is alice here lmtp smtphost /run/dovecot/lmtp\n\
                  poll b.example user y password p is bob here lmtp smtphost localhost/24\n\
                  poll c.example user z password p is carol here smtphost mx.local/2525\n";
        let (entries, _) = parse_config(rc, Path::new("rc")).unwrap();
        let a = convert("a", &entries[0]).unwrap();
        assert_eq!(a.get("lmtp"), Some(&"unix:/run/dovecot/lmtp".into()));
        assert_eq!(a.get("recipient"), Some(&"alice".into()));
        let b = convert("b", &entries[1]).unwrap();
        assert_eq!(b.get("lmtp"), Some(&"localhost:24".into()));
        let c = convert("c", &entries[2]).unwrap();
        assert_eq!(c.get("smtp"), Some(&"mx.local:2525".into()));
        assert_eq!(c.get("recipient"), Some(&"carol".into()));
        let text = format!("{}\n{}\n{}", a.to_toml(), b.to_toml(), c.to_toml());
        crate::config::parse(&text, Path::new("x")).unwrap();
    }

    /// The trial's rc: `is 'root' here` with procmail's `-d %T` ran `procmail -d %T` literally.
    #[test]
    fn fetchmail_mda_percent_t_becomes_the_one_local_user() {
        let rc = "poll pop.example.com proto pop3 user 'bob' there with password 'x' is 'root' here\n    mda \"/usr/bin/procmail -d %T\"\n\
                  poll b.example user y password p mda \"/usr/sbin/sendmail -i -- %s\" is \"o'neil\" here\n";
        let (entries, _) = parse_config(rc, Path::new("rc")).unwrap();
        let bob = convert("pop.example.com", &entries[0]).unwrap();
        assert_eq!(
            bob.get("mda"),
            Some(&crate::import::shell("/usr/bin/procmail -d 'root'"))
        );
        assert!(bob.warnings.is_empty(), "{:?}", bob.warnings);
        assert!(!bob.to_toml().contains("%T"), "{}", bob.to_toml());
        // Quoted for sh -c, and the `is` after the mda counts too.
        let b = convert("b", &entries[1]).unwrap();
        let quoted = "/usr/sbin/sendmail -i -- 'o'\\''neil'";
        assert_eq!(b.get("mda"), Some(&crate::import::shell(quoted)));
        let out = std::process::Command::new("sh")
            .args([
                "-c",
                &quoted.replace("/usr/sbin/sendmail -i --", "printf %s"),
            ])
            .output()
            .unwrap();
        assert_eq!(out.stdout, b"o'neil");
    }

    /// fetchmail's %F (the envelope sender) and a %T without one local user cannot be filled in:
    /// the mda is written commented out, with a note and a warning, never as a working line.
    #[test]
    fn fetchmail_mda_placeholders_that_cannot_be_filled_are_commented_out() {
        let rc = "poll a.example user x password p is alice here mda \"/usr/sbin/sendmail -i -f %F -- %T\"\n\
                  poll b.example user y password p mda \"/usr/bin/maildrop -d %T\"\n\
                  poll c.example user z password p is bob carol here mda \"/usr/bin/procmail -d %T\"\n";
        let (entries, _) = parse_config(rc, Path::new("rc")).unwrap();
        for (entry, shown) in entries.iter().zip([
            "# mda = [\"sh\", \"-c\", \"/usr/sbin/sendmail -i -f %F -- 'alice'\"]",
            "# mda = [\"sh\", \"-c\", \"/usr/bin/maildrop -d %T\"]",
            "# mda = [\"sh\", \"-c\", \"/usr/bin/procmail -d %T\"]",
        ]) {
            let account = convert("a", entry).unwrap();
            let text = account.to_toml();
            assert_eq!(account.get("mda"), None, "{text}");
            assert_eq!(account.get("smtp"), None, "{text}");
            assert!(text.contains(shown), "{text}");
            assert!(text.contains("remove the '# ' before mda"), "{text}");
            assert_eq!(account.warnings.len(), 1, "{:?}", account.warnings);
            crate::config::parse(&text, Path::new("x")).unwrap();
        }
        let a = convert("a", &entries[0]).unwrap();
        assert!(a.warnings[0].contains("%F"), "{:?}", a.warnings);
    }
}
