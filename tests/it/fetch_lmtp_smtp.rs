//! `pop3 fetch-all` delivering through LMTP (Dovecot's LMTP service) and SMTP (a real Postfix):
//! the real binary fetches from the test Dovecot's POP3 and hands each message to the server;
//! the tests read the delivered mail back from the receiving Maildir.

use std::path::{Path, PathBuf};

use crate::dovecot_fetch::{delivered_form, files_in, message_id, pop3};
use crate::support::cli::Outcome;
use crate::support::dovecot::{User, dovecot};
use crate::support::postfix::{DOMAIN, REJECTED_SUBJECT, postfix};

/// A message with a `Return-Path` (the envelope sender pop3 must use), dot lines, and a
/// unique Message-ID.
fn message(label: &str, n: usize) -> Vec<u8> {
    format!(
        "Return-Path: <bounce-{label}@example.org>\nFrom: a@example.org\nTo: b@example.net\n\
         Subject: {label} {n}\nDate: Tue, 14 May 2024 09:12:00 +0000\n\
         Message-ID: <{label}-{n}-{}@pop3.test>\n\n.\n..two\nline {n}\n",
        std::process::id()
    )
    .into_bytes()
}

/// A config file with `keys` under `[defaults]` (the command line names the host, so the
/// defaults apply), in a temp dir kept alive by the caller.
fn config_file(keys: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, format!("[defaults]\n{keys}\n")).unwrap();
    (dir, path)
}

/// `pop3 fetch-all ARGS` for `user`, with its state under `state` and `config`.
fn fetch(user: &User, state: &Path, config: &Path, args: &[&str]) -> Outcome {
    pop3(user)
        .env("XDG_STATE_HOME", state)
        .args([Path::new("--config"), config])
        .args(["fetch-all"])
        .args(args)
        .run()
}

/// The message files in a Maildir (new/ and cur/).
fn delivered(maildir: &Path) -> Vec<Vec<u8>> {
    ["new", "cur"]
        .iter()
        .flat_map(|sub| files_in(&maildir.join(sub)))
        .map(|f| std::fs::read(f).unwrap())
        .collect()
}

fn lmtp_socket() -> String {
    format!("unix:{}", dovecot().lmtp().socket.display())
}

/// The delivered copy holds the original after the headers the server prepends, and its
/// first header is the server's Return-Path naming the sender from the original's. Postfix
/// drops a Return-Path header from the message (cleanup's `message_drop_headers`), so with
/// `strip_return_path` the original is compared without it.
fn assert_delivered_exactly(copy: &[u8], original: &[u8], sender: &str, strip_return_path: bool) {
    let mut original = delivered_form(original);
    if strip_return_path {
        let end = original.iter().position(|&b| b == b'\n').unwrap() + 1;
        assert!(original.starts_with(b"Return-Path:"));
        original.drain(..end);
    }
    assert!(
        copy.ends_with(&original),
        "delivered copy does not end with the original\n--- copy\n{}\n--- original\n{}",
        String::from_utf8_lossy(copy),
        String::from_utf8_lossy(&original)
    );
    let first = copy.split(|&b| b == b'\n').next().unwrap();
    assert_eq!(
        String::from_utf8_lossy(first),
        format!("Return-Path: <{sender}>"),
        "the envelope sender comes from the message's Return-Path"
    );
}

#[test]
fn fetch_all_lmtp_delivers_byte_exact_with_the_return_path_sender_and_records_each_message() {
    let originals = [message("lmtp", 1), message("lmtp", 2), message("lmtp", 3)];
    let refs: Vec<&[u8]> = originals.iter().map(Vec::as_slice).collect();
    let source = dovecot().add_user(&refs);
    let target = dovecot().add_user(&[]);
    let state = tempfile::tempdir().unwrap();
    let (_dir, config) = config_file(&format!(
        "lmtp = \"{}\"\nrecipient = \"{}\"",
        lmtp_socket(),
        target.name
    ));
    fetch(&source, state.path(), &config, &["--keep"]).expect_code(0);
    let copies = delivered(&target.maildir);
    assert_eq!(copies.len(), 3);
    for original in &originals {
        let id = message_id(original).unwrap();
        let copy = copies
            .iter()
            .find(|c| message_id_anywhere(c, &id))
            .unwrap_or_else(|| panic!("{id} not delivered"));
        assert_delivered_exactly(copy, original, "bounce-lmtp@example.org", false);
    }
    // Recorded: a second run delivers nothing again.
    fetch(&source, state.path(), &config, &["--keep"]).expect_code(0);
    assert_eq!(delivered(&target.maildir).len(), 3);
    assert_eq!(source.messages_on_server(), 3, "--keep");
}

/// Whether `copy` has the Message-ID header `id` (Dovecot's own headers come first).
fn message_id_anywhere(copy: &[u8], id: &str) -> bool {
    let needle = format!("\nMessage-ID: {id}\n");
    copy.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn fetch_all_lmtp_over_tcp_without_pipelining_and_delete() {
    let originals = [message("tcp", 1), message("tcp", 2)];
    let refs: Vec<&[u8]> = originals.iter().map(Vec::as_slice).collect();
    let source = dovecot().add_user(&refs);
    let target = dovecot().add_user(&[]);
    let state = tempfile::tempdir().unwrap();
    let (_dir, config) = config_file(&format!("recipient = \"{}\"\nmaildir = \"x\"", target.name));
    // recipient needs lmtp or smtp: the config alone is refused.
    let refused = fetch(&source, state.path(), &config, &[]).expect_code(78);
    assert!(
        refused.stderr.contains("need lmtp or smtp"),
        "{}",
        refused.stderr
    );
    let (_dir, config) = config_lmtp_tcp(&target);
    pop3(&source)
        .env("XDG_STATE_HOME", state.path())
        .env("POP3_SMTP_NO_PIPELINING", "1")
        .args([Path::new("--config"), &config])
        .args(["fetch-all", "--delete"])
        .run()
        .expect_code(0);
    assert_eq!(delivered(&target.maildir).len(), 2);
    assert_eq!(source.messages_on_server(), 0, "deleted once delivered");
}

fn config_lmtp_tcp(target: &User) -> (tempfile::TempDir, PathBuf) {
    config_file(&format!(
        "lmtp = \"127.0.0.1:{}\"\nrecipient = \"{}\"",
        dovecot().lmtp().port,
        target.name
    ))
}

#[test]
fn fetch_all_lmtp_full_quota_leaves_messages_exits_75_then_delivers_once_raised() {
    // Each bigger than the quota below.
    let big = |n| {
        let mut m = message("quota", n);
        m.extend(std::iter::repeat_n(b"0123456789abcdef\n".as_slice(), 200).flatten());
        m
    };
    let originals = [big(1), big(2)];
    let refs: Vec<&[u8]> = originals.iter().map(Vec::as_slice).collect();
    let source = dovecot().add_user(&refs);
    let target = dovecot().add_user(&[]);
    dovecot().set_quota(&target, "1K");
    let state = tempfile::tempdir().unwrap();
    let (_dir, config) = config_lmtp_tcp(&target);
    let full = fetch(&source, state.path(), &config, &["--delete"]).expect_code(75);
    assert!(
        full.stderr.contains("refused 2 messages for now") && full.stderr.contains("452"),
        "{}",
        full.stderr
    );
    assert_eq!(delivered(&target.maildir).len(), 0);
    assert_eq!(source.messages_on_server(), 2, "4xx: left on the server");
    dovecot().set_quota(&target, "100M");
    // Dovecot notices a changed passwd file by its modification time, in whole seconds.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    fetch(&source, state.path(), &config, &["--delete"]).expect_code(0);
    assert_eq!(delivered(&target.maildir).len(), 2);
    assert_eq!(source.messages_on_server(), 0);
}

/// Trial 2: without `recipient` (the local user, unknown to Dovecot) every message was
/// recorded as rejected after one exit 65, and later runs said "fetched 0 messages" even once
/// `recipient` was fixed. A refused recipient is a configuration error: nothing is recorded.
#[test]
fn fetch_all_lmtp_unknown_recipient_is_a_config_error_and_mail_flows_once_fixed() {
    let source = dovecot().add_user(&[&message("rcpt", 1), &message("rcpt", 2)]);
    let target = dovecot().add_user(&[]);
    let state = tempfile::tempdir().unwrap();
    // No recipient: the local user, whom Dovecot does not know (550 5.1.1).
    let (_dir, config) = config_file(&format!("lmtp = \"{}\"", lmtp_socket()));
    let local_user = pop3::store::smtp::local_user().unwrap();
    for _ in 0..2 {
        let run = fetch(&source, state.path(), &config, &["--delete"]).expect_code(78);
        assert!(
            run.stderr
                .contains(&format!("refused the recipient \"{local_user}\""))
                && run.stderr.contains("550 5.1.1")
                && run.stderr.contains("set `recipient`")
                && !run.stderr.contains("rejected"),
            "{}",
            run.stderr
        );
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
        assert_eq!(source.messages_on_server(), 2, "left on the server");
    }
    let (_dir, fixed) = config_file(&format!(
        "lmtp = \"{}\"\nrecipient = \"{}\"",
        lmtp_socket(),
        target.name
    ));
    fetch(&source, state.path(), &fixed, &["--delete"]).expect_code(0);
    assert_eq!(delivered(&target.maildir).len(), 2);
    assert_eq!(source.messages_on_server(), 0);
}

#[test]
fn fetch_all_smtp_rejected_message_is_reported_once_with_exit_65_and_not_retried() {
    let pf = postfix();
    let mut refused = message("refused", 1);
    let at = refused.windows(8).position(|w| w == b"Subject:").unwrap() + 8;
    refused.splice(at..at, format!(" {REJECTED_SUBJECT}").into_bytes());
    let source = dovecot().add_user(&[&refused, &message("accepted", 2)]);
    let state = tempfile::tempdir().unwrap();
    let (_dir, config) = config_file(&format!(
        "smtp = \"127.0.0.1:{}\"\nrecipient = \"dave@{DOMAIN}\"",
        pf.port
    ));
    let before = files_in(&pf.maildir("dave").join("new")).len();
    let first = fetch(&source, state.path(), &config, &[]).expect_code(65);
    assert!(
        first.stderr.contains("rejected 1 message")
            && first.stderr.contains("550 5.7.1")
            && first.stderr.contains("message 1 "),
        "{}",
        first.stderr
    );
    pf.wait_for_messages("dave", before + 1);
    assert_eq!(source.messages_on_server(), 2, "5xx: left on the server");
    let second = fetch(&source, state.path(), &config, &[]).expect_code(0);
    assert!(!second.stderr.contains("rejected"), "{}", second.stderr);
    assert_eq!(source.messages_on_server(), 2);
    // Asked to, a run offers it again (and the server refuses it again).
    let retried = fetch(&source, state.path(), &config, &["--retry-rejected"]).expect_code(65);
    assert!(
        retried.stderr.contains("rejected 1 message") && retried.stderr.contains("550 5.7.1"),
        "{}",
        retried.stderr
    );
    assert_eq!(source.messages_on_server(), 2);
}

#[test]
fn fetch_all_smtp_delete_rejected_deletes_refused_messages_but_never_for_a_refused_recipient() {
    let pf = postfix();
    let mut refused = message("dr", 1);
    let at = refused.windows(8).position(|w| w == b"Subject:").unwrap() + 8;
    refused.splice(at..at, format!(" {REJECTED_SUBJECT}").into_bytes());
    let refs: [&[u8]; 2] = [&refused, &refused];
    let state = tempfile::tempdir().unwrap();
    // An unknown recipient (RCPT 550 5.1.1): nothing is deleted, whatever delete_rejected says.
    let (_dir, wrong) = config_file(&format!(
        "smtp = \"127.0.0.1:{}\"\nrecipient = \"nosuchuser@{DOMAIN}\"\ndelete_rejected = true",
        pf.port
    ));
    let source = dovecot().add_user(&refs);
    let outcome = fetch(&source, state.path(), &wrong, &[]).expect_code(78);
    assert!(
        outcome
            .stderr
            .contains("refused the recipient \"nosuchuser@")
            && outcome.stderr.contains("550 5.1.1"),
        "{}",
        outcome.stderr
    );
    assert_eq!(source.messages_on_server(), 2);
    // The messages themselves refused (after DATA): deleted.
    let (_dir, config) = config_file(&format!(
        "smtp = \"127.0.0.1:{}\"\nrecipient = \"dave@{DOMAIN}\"\ndelete_rejected = true",
        pf.port
    ));
    let outcome = fetch(&source, state.path(), &config, &[]).expect_code(65);
    assert!(
        outcome
            .stderr
            .contains("deleted from the server (delete_rejected)"),
        "{}",
        outcome.stderr
    );
    assert_eq!(source.messages_on_server(), 0);
}

#[test]
fn fetch_all_dry_run_names_the_delivery_server() {
    let source = dovecot().add_user(&[&message("dry", 1)]);
    let state = tempfile::tempdir().unwrap();
    let (_dir, config) = config_file(&format!("lmtp = \"{}\"", lmtp_socket()));
    let outcome = fetch(&source, state.path(), &config, &["--dry-run"]).expect_code(0);
    assert!(
        outcome
            .stdout
            .contains(&format!("and deliver to lmtp {}", lmtp_socket())),
        "{}",
        outcome.stdout
    );
}

#[test]
fn fetch_all_smtp_into_postfix_with_and_without_pipelining_and_a_4xx() {
    let pf = postfix();
    let originals = [message("smtp", 1), message("smtp", 2)];
    let refs: Vec<&[u8]> = originals.iter().map(Vec::as_slice).collect();
    let state = tempfile::tempdir().unwrap();
    let (_dir, config) = config_file(&format!(
        "smtp = \"127.0.0.1:{}\"\nrecipient = \"carol@{DOMAIN}\"",
        pf.port
    ));
    let before = files_in(&pf.maildir("carol").join("new")).len();
    // Pipelined (the config's port), then one command at a time (--smtp overrides the port).
    let source = dovecot().add_user(&refs);
    fetch(&source, state.path(), &config, &["--delete"]).expect_code(0);
    let source2 = dovecot().add_user(&refs);
    let no_pipelining = format!("127.0.0.1:{}", pf.port_no_pipelining);
    fetch(
        &source2,
        state.path(),
        &config,
        &["--delete", "--smtp", &no_pipelining],
    )
    .expect_code(0);
    assert_eq!(
        source.messages_on_server() + source2.messages_on_server(),
        0
    );
    let copies = pf.wait_for_messages("carol", before + 4);
    for original in &originals {
        let id = message_id(original).unwrap();
        let matching: Vec<&Vec<u8>> = copies
            .iter()
            .filter(|c| message_id_anywhere(c, &id))
            .collect();
        assert_eq!(matching.len(), 2, "{id}: once per run");
        for copy in matching {
            assert_delivered_exactly(copy, original, "bounce-smtp@example.org", true);
        }
    }
    // 450 from Postfix: left, exit 75.
    let (_dir, tempfail) = config_file(&format!(
        "smtp = \"127.0.0.1:{}\"\nrecipient = \"tempfail@{DOMAIN}\"",
        pf.port
    ));
    let source3 = dovecot().add_user(&refs);
    let outcome = fetch(&source3, state.path(), &tempfail, &["--delete"]).expect_code(75);
    assert!(outcome.stderr.contains("450"), "{}", outcome.stderr);
    assert_eq!(source3.messages_on_server(), 2);
}

/// Messages for the throughput test: `POP3_DELIVERY_MESSAGES` (300 for the figures in
/// docs/delivery.md), else a few for the normal suite.
fn throughput_messages() -> usize {
    std::env::var("POP3_DELIVERY_MESSAGES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30)
}

/// Deliveries per second of one `fetch-all` run into `config`'s server; every message must
/// arrive (checked by the caller).
fn timed_fetch(source: &User, config: &Path, extra: &[&str]) -> f64 {
    let state = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let mut args = vec!["--keep"];
    args.extend_from_slice(extra);
    fetch(source, state.path(), config, &args).expect_code(0);
    started.elapsed().as_secs_f64()
}

#[test]
fn fetch_all_delivery_throughput_lmtp_and_smtp() {
    let n = throughput_messages();
    let originals: Vec<Vec<u8>> = (0..n).map(|i| message("rate", i)).collect();
    let refs: Vec<&[u8]> = originals.iter().map(Vec::as_slice).collect();
    let source = dovecot().add_user(&refs);
    let lmtp_target = dovecot().add_user(&[]);
    let (_dir, lmtp) = config_file(&format!(
        "lmtp = \"{}\"\nrecipient = \"{}\"",
        lmtp_socket(),
        lmtp_target.name
    ));
    let lmtp_secs = timed_fetch(&source, &lmtp, &[]);
    assert_eq!(delivered(&lmtp_target.maildir).len(), n);

    let pf = postfix();
    let before = files_in(&pf.maildir("dave").join("new")).len();
    let (_dir, smtp) = config_file(&format!(
        "smtp = \"127.0.0.1:{}\"\nrecipient = \"dave@{DOMAIN}\"",
        pf.port
    ));
    let smtp_secs = timed_fetch(&source, &smtp, &[]);
    pf.wait_for_messages("dave", before + n);
    eprintln!(
        "{n} messages: LMTP (unix socket) {lmtp_secs:.2} s = {:.0}/s; SMTP (Postfix, TCP) {smtp_secs:.2} s = {:.0}/s",
        n as f64 / lmtp_secs,
        n as f64 / smtp_secs
    );
}

/// A fetchmail user's "fetch into my local MTA" setup, end to end: the fetchmailrc is
/// imported, and `fetch-all` hands the mail to the local Postfix. With `--nocapture` it prints
/// the transcript that docs/delivery.md shows.
#[test]
fn fetchmail_user_switches_and_pop3_delivers_into_the_local_mta() {
    let pf = postfix();
    let d = dovecot();
    let originals = [message("switch", 1), message("switch", 2)];
    let refs: Vec<&[u8]> = originals.iter().map(Vec::as_slice).collect();
    let source = d.add_user(&refs);
    let home = tempfile::tempdir().unwrap();
    let rc = home.path().join(".fetchmailrc");
    std::fs::write(
        &rc,
        format!(
            "poll localhost protocol pop3 port {port}:\n    user \"{user}\" password \"{password}\" is carol@{DOMAIN} here\n    ssl sslcertfile {ca}\n    smtphost 127.0.0.1/{smtp}\n    fetchall no keep\n",
            port = d.pop3s_port,
            user = source.name,
            password = source.password,
            ca = d.ca_file.display(),
            smtp = pf.port,
        ),
    )
    .unwrap();
    let config = home.path().join("config.toml");
    let state = home.path().join("state");
    let before = files_in(&pf.maildir("carol").join("new")).len();
    let run = |args: &[&str]| {
        let mut pop3 = crate::support::cli::Pop3::new()
            .env("XDG_STATE_HOME", &state)
            .args([Path::new("--config"), &config]);
        pop3 = pop3.args(args);
        let outcome = pop3.run();
        println!(
            "$ pop3 {}\n{}{}",
            args.join(" "),
            outcome.stdout,
            outcome.stderr
        );
        outcome
    };
    let imported = run(&["import", "fetchmail", rc.to_str().unwrap(), "--write"]);
    assert_eq!(imported.code, 0, "{}", imported.stderr);
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.contains(&format!("smtp = \"127.0.0.1:{}\"", pf.port)),
        "{text}"
    );
    assert!(
        text.contains(&format!("recipient = \"carol@{DOMAIN}\"")),
        "{text}"
    );
    assert!(text.contains("delete = true"), "{text}");
    let fetched = run(&["fetch-all", "-v"]);
    assert_eq!(fetched.code, 0, "{}", fetched.stderr);
    assert!(
        fetched.stderr.contains("fetched 2 messages"),
        "{}",
        fetched.stderr
    );
    assert_eq!(source.messages_on_server(), 0, "fetchall no keep: deleted");
    let copies = pf.wait_for_messages("carol", before + 2);
    for original in &originals {
        let id = message_id(original).unwrap();
        let copy = copies
            .iter()
            .find(|c| message_id_anywhere(c, &id))
            .unwrap_or_else(|| panic!("{id} not delivered"));
        assert_delivered_exactly(copy, original, "bounce-switch@example.org", true);
    }
    let again = run(&["fetch-all", "-v"]);
    assert!(
        again.stderr.contains("mailbox is empty"),
        "{}",
        again.stderr
    );
}
