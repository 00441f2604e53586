//! `pop3 fetch-all` against the scripted server: what lands in the Maildir, mbox or MDA, what a
//! run prints, and what `--dry-run` says and leaves alone.

use std::collections::BTreeSet;
use std::path::Path;

use crate::support::fetch::*;
use crate::support::scripted::{ScriptedServer, login_script};

#[test]
fn keep_mode_delivers_once_and_silently() {
    let fixture = Fixture::new();
    let server = ScriptedServer::start(&happy_script(&retr_pipelined(&[1, 2, 3], &[&A, &B, &C])));
    let outcome = fixture.fetch_maildir(&server, &[]).expect_code(0);
    assert_silent(&outcome);
    assert_sent(
        &server.finish(),
        &["LIST", "UIDL", "RETR 1", "RETR 2", "RETR 3", "QUIT"],
    );

    // LF line endings, dots unstuffed, nothing else in the Maildir.
    assert_happy_maildir(&fixture);
    let names: Vec<String> = fixture.maildir_files("new").into_keys().collect();
    for name in &names {
        assert!(name.contains("_pop3-"), "{name}");
        assert!(
            !name.contains("uid-"),
            "the unique-id is not in file names: {name}"
        );
    }
    use std::os::unix::fs::PermissionsExt;
    for name in &names {
        let mode = std::fs::metadata(fixture.maildir().join("new").join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "messages are private: {mode:o}");
    }
    assert_eq!(
        fixture.delivered(),
        BTreeSet::from(["uid-A".into(), "uid-B".into(), "uid-C".into()])
    );

    // A real reader sees the same three messages, unread, in new/.
    let read = python(PY_MAILDIR, &[&fixture.maildir()]);
    let expected = serde_json::json!([
        ["one", A.text, "new"],
        ["three", C.text, "new"],
        ["two", B.text, "new"],
    ]);
    assert_eq!(read, expected);

    // Second run, a new server with the same messages: nothing is downloaded again.
    let server = ScriptedServer::start(&format!(
        "{}{}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&A, &B, &C])
    ));
    let outcome = fixture.fetch_maildir(&server, &[]).expect_code(0);
    assert_silent(&outcome);
    assert_sent(&server.finish(), &["LIST", "UIDL", "QUIT"]);
    assert_eq!(
        fixture.maildir_files("new").into_keys().collect::<Vec<_>>(),
        names
    );
}

/// Keep mode overlaps local durability with the download as delete mode does (issue 11): a
/// message is made durable and recorded while the next one still downloads, not in one flush
/// at the end. The server holds message 2 back, so the first state that records anything can
/// only record message 1; one flush at the end would show both at once.
#[test]
fn keep_mode_records_a_message_while_the_next_one_downloads() {
    let fixture = Fixture::new();
    let server = ScriptedServer::start(&format!(
        "{}{}
         C: RETR 1
         C: RETR 2
         {}{}
         !sleep 1500
         {}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&A, &B]),
        send(&A.retr_reply()),
        send(&B.retr_reply()[..40]),
        send(&B.retr_reply()[40..]),
    ));
    let state_dir = fixture.path("state");
    let first_recorded = std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let recorded = recorded_in(&state_dir);
            if !recorded.is_empty() || std::time::Instant::now() > deadline {
                return recorded;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    });
    let outcome = fixture.fetch_maildir(&server, &["--keep"]).expect_code(0);
    assert_silent(&outcome);
    server.finish();
    assert_eq!(first_recorded.join().unwrap(), ["uid-A"]);
    assert_eq!(
        fixture.delivered(),
        BTreeSet::from(["uid-A".to_owned(), "uid-B".to_owned()])
    );
}

/// The unique-ids recorded as delivered in the state file in `dir` (complete lines only).
fn recorded_in(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let Some(file) = entries.map(|e| e.unwrap().path()).find(|p| {
        let name = p.file_name().unwrap().to_string_lossy();
        !name.starts_with('.') && !name.ends_with(".lock") && !name.ends_with(".capabilities")
    }) else {
        return Vec::new();
    };
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let complete = &text[..text.rfind('\n').map_or(0, |end| end + 1)];
    complete
        .lines()
        .filter_map(|line| line.strip_prefix("+ "))
        .map(|rest| rest.split(' ').next().unwrap().to_owned())
        .collect()
}

#[test]
fn verbose_run_prints_a_summary() {
    let fixture = Fixture::new();
    let server = ScriptedServer::start(&happy_script(&retr_pipelined(&[1, 2, 3], &[&A, &B, &C])));
    let outcome = fixture.fetch_maildir(&server, &["-v"]).expect_code(0);
    server.finish();
    assert_eq!(outcome.stdout, "", "stdout stays clean");
    let octets = A.octets() + B.octets() + C.octets();
    assert!(
        outcome.stderr.contains(&format!(
            "command-line: fetched 3 messages ({octets} bytes)"
        )),
        "{}",
        outcome.stderr
    );
}

#[test]
fn fragmented_and_coalesced_replies_give_the_same_maildir() {
    let mut all_retr = Vec::new();
    for m in [&A, &B, &C] {
        all_retr.extend(m.retr_reply());
    }
    let list_uidl_fragmented = format!(
        "C: LIST\n{}C: UIDL\n{}",
        send_fragmented(&list_reply(&[&A, &B, &C])),
        send_fragmented(&uidl_reply(&[&A, &B, &C])),
    );
    let retr_commands = "C: RETR 1\nC: RETR 2\nC: RETR 3\n";
    let scripts = [
        // All three replies in one write.
        format!(
            "{}{}{retr_commands}{}{QUIT}",
            login_script("USER UIDL PIPELINING"),
            list_and_uidl(&[&A, &B, &C]),
            send(&all_retr)
        ),
        // Every reply cut into pieces of 1 to 7 octets, across status lines, stuffed dots
        // and terminators.
        format!(
            "{}{list_uidl_fragmented}{retr_commands}{}{QUIT}",
            login_script("USER UIDL PIPELINING"),
            send_fragmented(&all_retr)
        ),
        // One octet per write, with pauses so that the reads really are that small.
        format!(
            "{}{list_uidl_fragmented}{retr_commands}{}{QUIT}",
            login_script("USER UIDL PIPELINING"),
            all_retr
                .iter()
                .enumerate()
                .map(|(i, &b)| {
                    let pause = if i % 40 == 0 { "!sleep 1\n" } else { "" };
                    format!("{pause}{}", send(&[b]))
                })
                .collect::<String>()
        ),
    ];
    for script in scripts {
        let fixture = Fixture::new();
        let server = ScriptedServer::start(&script);
        // Straight to the server, without the relay, so that the fragments arrive as sent.
        let maildir = fixture.maildir();
        let outcome = fixture
            .command(server.port, &["--maildir", maildir.to_str().unwrap()])
            .run()
            .expect_code(0);
        assert_silent(&outcome);
        assert_sent(
            &server.finish(),
            &["LIST", "UIDL", "RETR 1", "RETR 2", "RETR 3", "QUIT"],
        );
        assert_happy_maildir(&fixture);
    }
}

#[test]
fn too_big_messages_stay_and_are_reported_once() {
    let fixture = Fixture::with_config("max_message_size = \"1K\"");
    let big = Msg {
        uid: "uid-big",
        text: "Subject: big\n\nnot sent\n",
    };
    let list = "+OK\r\n1 100\r\n2 2048\r\n3 100\r\n.\r\n";
    let script = |retr: &str| {
        format!(
            "{}C: LIST\n{}C: UIDL\n{}{retr}{QUIT}",
            login_script("USER UIDL PIPELINING"),
            send(list.as_bytes()),
            send(&uidl_reply(&[&A, &big, &B])),
        )
    };
    let server = ScriptedServer::start(&script(&retr_pipelined(&[1, 3], &[&A, &B])));
    let outcome = fixture.fetch_maildir(&server, &[]).expect_code(0);
    assert_eq!(outcome.stdout, "");
    assert_eq!(outcome.stderr.lines().count(), 1, "{}", outcome.stderr);
    assert!(
        outcome
            .stderr
            .contains("message 2 (2.0 KiB) is larger than max_message_size (1.0 KiB)")
            && outcome.stderr.contains("stays on the server"),
        "{}",
        outcome.stderr
    );
    assert_sent(
        &server.finish(),
        &["LIST", "UIDL", "RETR 1", "RETR 3", "QUIT"],
    );
    assert_eq!(fixture.new_messages(), sorted(&[A.text, B.text]));

    // Second run: still too big, not fetched, and not reported again.
    let server = ScriptedServer::start(&script(""));
    let outcome = fixture.fetch_maildir(&server, &[]).expect_code(0);
    assert_silent(&outcome);
    assert_sent(&server.finish(), &["LIST", "UIDL", "QUIT"]);
    assert!(
        fixture.state_text().contains("s uid-big\n"),
        "{}",
        fixture.state_text()
    );
}

/// Trial 2: every `From ` line said MAILER-DAEMON, even for a message with a Return-Path;
/// mpop and fetchmail name the envelope sender there.
#[test]
fn mbox_from_line_names_the_return_path_sender() {
    let fixture = Fixture::new();
    let bounced = Msg {
        uid: "uid-R",
        text: "Return-Path: <list-bounces@example.org>\nFrom: frank@example.org\nSubject: list\n\nhi\n",
    };
    let server = ScriptedServer::start(&format!(
        "{}{}{}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&bounced, &B]),
        retr_pipelined(&[1, 2], &[&bounced, &B]),
    ));
    let mbox = fixture.path("mail/inbox");
    fixture
        .fetch(&server, &["--mbox", mbox.to_str().unwrap()])
        .expect_code(0);
    server.finish();
    let text = std::fs::read_to_string(&mbox).unwrap();
    let separators: Vec<&str> = text.lines().filter(|l| l.starts_with("From ")).collect();
    assert_eq!(separators.len(), 2, "{text}");
    assert!(
        separators[0].starts_with("From list-bounces@example.org "),
        "{text}"
    );
    assert!(separators[1].starts_with("From MAILER-DAEMON "), "{text}");
}

#[test]
fn mbox_quotes_from_lines_the_mboxrd_way() {
    let fixture = Fixture::new();
    let quoting = Msg {
        uid: "uid-Q",
        text: "From: frank@example.org\nSubject: quoting\n\nFrom me\n>From you\nFromage\n",
    };
    let server = ScriptedServer::start(&format!(
        "{}{}{}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&B, &quoting]),
        retr_pipelined(&[1, 2], &[&B, &quoting]),
    ));
    let mbox = fixture.path("mail/inbox");
    let outcome = fixture
        .fetch(&server, &["--mbox", mbox.to_str().unwrap()])
        .expect_code(0);
    assert_silent(&outcome);
    server.finish();
    assert!(
        !fixture.path("mail/inbox.lock").exists(),
        "dot-lock released"
    );

    let text = std::fs::read_to_string(&mbox).unwrap();
    let separators: Vec<&str> = text.lines().filter(|l| l.starts_with("From ")).collect();
    assert_eq!(separators.len(), 2, "{text}");
    assert!(
        separators
            .iter()
            .all(|l| l.starts_with("From MAILER-DAEMON ")),
        "{text}"
    );
    assert!(text.contains("\n>From me\n>>From you\nFromage\n"), "{text}");
    // Each message is followed by an empty line.
    let first = format!("{}\n{}\n", separators[0], B.text);
    assert!(text.starts_with(&first), "{text}");
    assert!(text.ends_with("\nFromage\n\n"), "{text}");

    let read = python(PY_MBOX, &[&mbox]);
    let messages = read.as_array().unwrap();
    assert_eq!(messages.len(), 2, "{read}");
    assert_eq!(messages[0][0], "two");
    assert_eq!(messages[1][0], "quoting");
    // Python's mbox does not undo mboxrd quoting; the unquoted message is exact.
    assert_eq!(messages[0][1], B.text);
    assert_eq!(
        messages[1][1],
        quoting
            .text
            .replace(">From you", ">>From you")
            .replace("\nFrom me", "\n>From me")
    );

    // Nothing is appended twice.
    let server = ScriptedServer::start(&format!(
        "{}{}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&B, &quoting]),
    ));
    fixture
        .fetch(&server, &["--mbox", mbox.to_str().unwrap()])
        .expect_code(0);
    server.finish();
    assert_eq!(std::fs::read_to_string(&mbox).unwrap(), text);
}

/// A slow server used to keep the mbox locked for as long as a message took to arrive (each
/// read may take up to `timeout`). Now a message is spooled first and the mbox is locked only
/// for the local append, so mutt or procmail can use it meanwhile.
#[test]
fn mbox_is_not_locked_while_a_message_downloads() {
    let fixture = Fixture::new();
    let mbox = fixture.path("inbox");
    let server = ScriptedServer::start(&format!(
        "{}{}
         C: RETR 1
         C: RETR 2
         {}{}
         !flush
         !sleep 1500
         {}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&A, &B]),
        send(&A.retr_reply()),
        send(&B.retr_reply()[..40]),
        send(&B.retr_reply()[40..]),
    ));
    let lock = fixture.path("inbox.lock");
    let watcher = {
        let lock = lock.clone();
        let mbox = mbox.clone();
        std::thread::spawn(move || {
            // Wait until message 1 is in the mbox: message 2 is then mid-download.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while std::fs::metadata(&mbox).map_or(0, |m| m.len()) == 0 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "message 1 never arrived"
                );
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
            lock.exists()
        })
    };
    fixture
        .fetch(&server, &["--mbox", mbox.to_str().unwrap()])
        .expect_code(0);
    server.finish();
    assert!(
        !watcher.join().unwrap(),
        "the mbox was locked during the download"
    );
    let text = std::fs::read_to_string(&mbox).unwrap();
    assert_eq!(text.matches("From MAILER-DAEMON ").count(), 2, "{text}");
    assert_eq!(
        fixture.delivered(),
        BTreeSet::from(["uid-A".into(), "uid-B".into()])
    );
}

#[test]
fn a_failing_mda_leaves_the_message_for_the_next_run() {
    let fixture = Fixture::new();
    let out = fixture.path("delivered");
    std::fs::create_dir(&out).unwrap();
    let out = out.display().to_string();
    // Refuses the message with Subject "two" (exit 1), delivers the others.
    let picky = fixture.path("picky.sh");
    std::fs::write(
        &picky,
        format!(
            "f=$(mktemp \"{out}/.part.XXXXXX\") || exit 75\n\
             cat > \"$f\"\n\
             if grep -q '^Subject: two$' \"$f\"; then rm -f \"$f\"; exit 1; fi\n\
             mv \"$f\" \"{out}/msg.${{f##*.part.}}\"\n"
        ),
    )
    .unwrap();
    let deliver = fixture.path("deliver.sh");
    std::fs::write(
        &deliver,
        format!("f=$(mktemp \"{out}/msg.XXXXXX\") || exit 75\nexec cat > \"$f\"\n"),
    )
    .unwrap();
    // "sh FILE": --mda is split at spaces, and running sh avoids exec'ing a freshly written file.
    let mda = |script: &Path| format!("sh {}", script.display());

    let server = ScriptedServer::start(&format!(
        "{}{}{}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&A, &B]),
        retr_pipelined(&[1, 2], &[&A, &B]),
    ));
    let outcome = fixture.fetch(&server, &["--mda", &mda(&picky)]);
    assert_ne!(outcome.code, 0, "{}", outcome.stderr);
    assert_eq!(outcome.code, 75, "{}", outcome.stderr);
    assert!(
        outcome.stderr.contains("failed") && outcome.stderr.contains("stay"),
        "{}",
        outcome.stderr
    );
    server.finish();
    let delivered = |dir: &str| -> Vec<String> {
        let mut v: Vec<String> = files_in(Path::new(dir)).into_values().collect();
        v.sort();
        v
    };
    assert_eq!(delivered(&out), [A.text]);
    assert_eq!(fixture.delivered(), BTreeSet::from(["uid-A".into()]));

    // With a working MDA the refused message arrives, and only it is downloaded.
    let server = ScriptedServer::start(&format!(
        "{}{}{}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&A, &B]),
        retr_pipelined(&[2], &[&B]),
    ));
    let outcome = fixture
        .fetch(&server, &["--mda", &mda(&deliver)])
        .expect_code(0);
    assert_silent(&outcome);
    assert_sent(&server.finish(), &["LIST", "UIDL", "RETR 2", "QUIT"]);
    assert_eq!(delivered(&out), sorted(&[A.text, B.text]));
    assert_eq!(
        fixture.delivered(),
        BTreeSet::from(["uid-A".into(), "uid-B".into()])
    );
}

#[test]
fn a_received_header_is_added_only_when_configured() {
    let fixture = Fixture::with_config("add_received_header = true");
    let server = ScriptedServer::start(&happy_script(&retr_pipelined(&[1, 2, 3], &[&A, &B, &C])));
    fixture.fetch_maildir(&server, &[]).expect_code(0);
    server.finish();
    let files = fixture.maildir_files("new");
    assert_eq!(files.len(), 3);
    for content in files.values() {
        let text = content.as_str();
        assert!(
            text.starts_with(
                "Received: from 127.0.0.1 by pop3 (fetch-all) with POP3 for <alice>;\n\t"
            ),
            "{text}"
        );
        // Then the message itself, byte for byte.
        let rest = &text[text.find("+0000\n").expect("a date") + 6..];
        assert!([A.text, B.text, C.text].contains(&rest), "{rest}");
    }
}

#[test]
fn dry_run_changes_nothing_and_says_what_it_would_do() {
    let fixture = Fixture::new();
    // A is already delivered.
    let server = ScriptedServer::start(&format!(
        "{}{}{}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&A]),
        retr_pipelined(&[1], &[&A]),
    ));
    fixture.fetch_maildir(&server, &[]).expect_code(0);
    server.finish();
    let state_before = fixture.state_text();
    let tree_before = tree(fixture.root.path());

    for (args, deleting) in [
        (vec!["--dry-run"], "0 messages from the server"),
        (
            vec!["--dry-run", "--delete"],
            "3 messages from the server: 1 2 3",
        ),
    ] {
        let server = ScriptedServer::start(&format!(
            "{}{}{QUIT}",
            login_script("USER UIDL PIPELINING"),
            list_and_uidl(&[&A, &B, &C]),
        ));
        let outcome = fixture.fetch_maildir(&server, &args).expect_code(0);
        assert_sent(&server.finish(), &["LIST", "UIDL", "QUIT"]);
        let lines: Vec<&str> = outcome.stdout.lines().collect();
        let octets = B.octets() + C.octets();
        assert_eq!(
            lines[0],
            format!(
                "command-line: would fetch 2 messages ({octets} bytes) into Maildir {}",
                fixture.maildir().display()
            )
        );
        assert_eq!(lines.len(), 4, "{}", outcome.stdout);
        assert!(
            lines[1].contains(" 2 ") && lines[1].ends_with("uid-B"),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].contains(" 3 ") && lines[2].ends_with("uid-C"),
            "{}",
            lines[2]
        );
        assert_eq!(lines[3], format!("command-line: would delete {deleting}"));
        assert_eq!(outcome.stderr, "");
        assert_eq!(fixture.state_text(), state_before);
        assert_eq!(tree(fixture.root.path()), tree_before);
    }
}

/// `fetch-all --dry-run -v` used to print the plan ("would fetch 2 messages") and then the
/// summary line "fetched 0 messages", which read as though the fetch had failed. A dry run's
/// plan is its summary.
#[test]
fn dry_run_verbose_does_not_say_it_fetched_0_messages() {
    let fixture = Fixture::new();
    let server = ScriptedServer::start(&format!(
        "{}{}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&A, &B]),
    ));
    let outcome = fixture
        .fetch_maildir(&server, &["--dry-run", "-v"])
        .expect_code(0);
    assert_sent(&server.finish(), &["LIST", "UIDL", "QUIT"]);
    assert!(
        outcome
            .stdout
            .starts_with("command-line: would fetch 2 messages "),
        "{}",
        outcome.stdout
    );
    assert!(!outcome.stderr.contains("fetched"), "{}", outcome.stderr);
    let stderr: Vec<&str> = outcome.stderr.lines().collect();
    assert_eq!(stderr.len(), 1, "{}", outcome.stderr);
    assert!(
        stderr[0].starts_with("logged in with "),
        "{}",
        outcome.stderr
    );
}

#[test]
fn dry_run_on_a_new_account_creates_no_maildir_and_no_state_file() {
    let fixture = Fixture::new();
    let server = ScriptedServer::start(&format!(
        "{}{}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&A]),
    ));
    let outcome = fixture
        .fetch_maildir(&server, &["--dry-run"])
        .expect_code(0);
    assert_sent(&server.finish(), &["LIST", "UIDL", "QUIT"]);
    assert!(
        outcome
            .stdout
            .starts_with("command-line: would fetch 1 message "),
        "{}",
        outcome.stdout
    );
    assert!(!fixture.maildir().exists());
    assert_eq!(fixture.state_file(), None, "--dry-run changes nothing");
}
