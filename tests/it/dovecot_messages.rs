//! `headers`, `read`, `delete` and `browse` against the real Dovecot, on a mailbox of plain,
//! multipart, HTML-only, attachment, non-ASCII and broken messages.

use crate::support::cli::{Outcome, Pop3};
use crate::support::dovecot::{Dovecot, User, dovecot};
use crate::support::pty::Terminal;

const FIXTURES: [&str; 6] = [
    "01-plain.eml",
    "02-multipart-alternative.eml",
    "03-html-only.eml",
    "04-attachment.eml",
    "05-encoded-headers.eml",
    "06-malformed-headers.eml",
];

fn mailbox() -> (User, Vec<Vec<u8>>) {
    let messages: Vec<Vec<u8>> = FIXTURES.iter().map(|f| Dovecot::fixture(f)).collect();
    let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    (dovecot().add_user(&refs), messages)
}

fn pop3(user: &User) -> Pop3 {
    let d = dovecot();
    Pop3::new()
        .server("localhost", d.pop3s_port, Some(&d.ca_file))
        .login(&user.name, &user.password)
}

fn run(user: &User, args: &[&str]) -> Outcome {
    pop3(user).args(args).run()
}

/// The message as POP3 transmits it: every line ending CRLF, and a final line ending added
/// when the message lacks one (the terminating "." must start a line).
fn with_crlf(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 20);
    for (i, &b) in message.iter().enumerate() {
        if b == b'\n' && (i == 0 || message[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn subjects_on_server(user: &User) -> Vec<String> {
    let outcome = run(user, &["headers", "--json"]).expect_code(0);
    let rows: serde_json::Value = serde_json::from_str(&outcome.stdout).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row["headers"]
                .as_array()
                .unwrap()
                .iter()
                .find(|h| h["name"].as_str().unwrap().eq_ignore_ascii_case("subject"))
                .map(|h| h["value"].as_str().unwrap().to_owned())
                .unwrap_or_default()
        })
        .collect()
}

#[test]
fn headers_shows_every_message_decoded() {
    let (user, _) = mailbox();
    let outcome = run(&user, &["headers"]).expect_code(0);
    let lines: Vec<&str> = outcome.stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{}", outcome.stdout);
    assert!(
        lines[0].starts_with("1  738 bytes  Alice Example <alice@example.org>"),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("Lunch on Thursday?"));
    assert!(lines[0].ends_with("14 May 2024 09:12"), "{}", lines[0]);
    assert!(lines[3].contains("Invoice for May (attached)"));
    // RFC 2047 encoded words, UTF-8 and CJK.
    assert!(lines[4].contains("Jürgen Müller"), "{}", lines[4]);
    assert!(
        lines[4].contains("Grüße aus München – 你好，世界"),
        "{}",
        lines[4]
    );
    // The broken message still gets a row, and no control characters reach the terminal.
    assert!(lines[5].starts_with("6  "), "{}", lines[5]);
    assert!(!outcome.stdout.contains('\x1b'));
}

#[test]
fn headers_by_range_uid_and_json() {
    let (user, _) = mailbox();
    let outcome = run(&user, &["headers", "2-3"]).expect_code(0);
    assert_eq!(outcome.stdout.lines().count(), 2);
    assert!(outcome.stdout.starts_with("2 "), "{}", outcome.stdout);

    let list = run(&user, &["list", "--json"]).expect_code(0);
    let list: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    let uid_of_5 = list[4]["uid"].as_str().unwrap().to_owned();
    let outcome = run(&user, &["headers", "--uid", &uid_of_5, "--json"]).expect_code(0);
    let rows: serde_json::Value = serde_json::from_str(&outcome.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1);
    assert_eq!(rows[0]["number"], 5);
    assert_eq!(rows[0]["uid"], uid_of_5.as_str());
    let subject = rows[0]["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "Subject")
        .unwrap();
    assert_eq!(subject["value"], "Grüße aus München – 你好，世界");

    let outcome = run(&user, &["headers", "--uid", "no-such-uid"]).expect_code(65);
    assert!(outcome.stderr.contains("no-such-uid"), "{}", outcome.stderr);
}

#[test]
fn read_shows_text_html_and_attachments() {
    let (user, _) = mailbox();
    let plain = run(&user, &["read", "1"]).expect_code(0).stdout;
    assert!(
        plain.starts_with("From:    Alice Example <alice@example.org>\n"),
        "{plain}"
    );
    assert!(plain.contains("Subject: Lunch on Thursday?\n"));
    assert!(
        plain.contains("\n.\n..and this one starts with two dots.\n"),
        "{plain}"
    );

    let multipart = run(&user, &["read", "2"]).expect_code(0).stdout;
    assert!(
        multipart.contains("Tracking number: 1Z999AA10123456784"),
        "{multipart}"
    );
    assert!(
        !multipart.contains("<html"),
        "text/plain part preferred: {multipart}"
    );

    let html = run(&user, &["read", "3"]).expect_code(0).stdout;
    assert!(html.contains("only HTML"), "{html}");
    assert!(!html.contains("<h1>"), "{html}");
    assert!(html.contains("Scheduled maint"), "{html}");

    let attachment = run(&user, &["read", "4"]).expect_code(0).stdout;
    assert!(attachment.contains("Attachments:\n"), "{attachment}");
    assert!(
        attachment.contains("invoice-2024-05.pdf  (application/pdf,"),
        "{attachment}"
    );
    assert!(
        attachment.contains("expenses.csv  (text/csv,"),
        "{attachment}"
    );

    let encoded = run(&user, &["read", "5"]).expect_code(0).stdout;
    assert!(
        encoded.contains("Subject: Grüße aus München – 你好，世界"),
        "{encoded}"
    );
    assert!(encoded.contains("你好！希望你一切都好。"), "{encoded}");

    // A broken message is shown as well as it can be, without failing.
    run(&user, &["read", "6"]).expect_code(0);
}

#[test]
fn read_raw_and_output_are_the_exact_bytes() {
    let (user, messages) = mailbox();
    for (i, message) in messages.iter().enumerate() {
        let number = (i + 1).to_string();
        let outcome = pop3(&user).args(["read", "--raw", &number]).run();
        assert_eq!(outcome.code, 0, "{}", outcome.stderr);
        // stdout is captured as lossy UTF-8 by the harness; compare byte-exact via --output.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("message.eml");
        run(
            &user,
            &["read", &number, "--output", file.to_str().unwrap()],
        )
        .expect_code(0);
        assert_eq!(
            std::fs::read(&file).unwrap(),
            with_crlf(message),
            "message {number}"
        );
        if std::str::from_utf8(message).is_ok() {
            assert_eq!(
                outcome.stdout.as_bytes(),
                with_crlf(message),
                "message {number}"
            );
        }
    }
}

#[test]
fn read_rejects_bad_message_numbers() {
    let (user, _) = mailbox();
    for (arg, code, words) in [
        ("0", 64, "numbered from 1"),
        ("abc", 64, "invalid message number \"abc\""),
        ("999", 65, "no message 999: the mailbox has messages 1 to 6"),
        ("2-3", 64, "one message"),
    ] {
        let outcome = run(&user, &["read", arg]).expect_code(code);
        assert!(outcome.stderr.contains(words), "{arg}: {}", outcome.stderr);
        assert_eq!(outcome.stderr.lines().count(), 1, "{}", outcome.stderr);
    }
}

#[test]
fn delete_removes_exactly_the_chosen_messages() {
    let (user, _) = mailbox();
    let before = subjects_on_server(&user);
    let outcome = run(&user, &["delete", "--yes", "2", "4"]).expect_code(0);
    assert_eq!(outcome.stdout, "Deleted 2 messages.\n");
    assert!(
        outcome.stderr.contains("Your order #10442 has shipped"),
        "{}",
        outcome.stderr
    );
    assert_eq!(user.messages_on_server(), 4);
    let after = subjects_on_server(&user);
    let expected: Vec<String> = [0, 2, 4, 5].iter().map(|&i| before[i].clone()).collect();
    assert_eq!(after, expected);
}

/// Trial 2 asked for "the last N" without counting the mailbox first: `--last N` names the N
/// highest numbers, in order; more than the mailbox holds is all of it; it cannot be mixed with
/// named messages, and 0 is a usage error.
#[test]
fn last_names_the_newest_messages_for_headers_and_delete() {
    let (user, _) = mailbox();
    let outcome = run(&user, &["headers", "--last", "2"]).expect_code(0);
    let numbers: Vec<&str> = outcome
        .stdout
        .lines()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(numbers, ["5", "6"], "{}", outcome.stdout);
    let all = run(&user, &["headers", "--last", "99"]).expect_code(0);
    assert_eq!(all.stdout.lines().count(), 6, "{}", all.stdout);
    run(&user, &["headers", "--last", "0"]).expect_code(64);
    run(&user, &["headers", "--last", "2", "3"]).expect_code(64);

    let before = subjects_on_server(&user);
    let deleted = run(&user, &["delete", "--yes", "--last", "1"]).expect_code(0);
    assert_eq!(deleted.stdout, "Deleted 1 message.\n");
    assert_eq!(subjects_on_server(&user), before[..5]);
}

#[test]
fn delete_by_uid_resolves_in_the_same_session() {
    let (user, _) = mailbox();
    let list = run(&user, &["list", "--json"]).expect_code(0);
    let list: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    let uid_of_3 = list[2]["uid"].as_str().unwrap().to_owned();
    // Delete message 1 first: the maildrop is renumbered, the UID still names the same message.
    run(&user, &["delete", "--yes", "1"]).expect_code(0);
    run(&user, &["delete", "--yes", "--uid", &uid_of_3]).expect_code(0);
    let subjects = subjects_on_server(&user);
    assert_eq!(subjects.len(), 4);
    assert!(
        !subjects
            .iter()
            .any(|s| s == "Scheduled maintenance this weekend")
    );
    assert!(
        subjects
            .iter()
            .any(|s| s == "Your order #10442 has shipped")
    );
}

#[test]
fn delete_without_a_terminal_or_yes_refuses() {
    let (user, _) = mailbox();
    let outcome = run(&user, &["delete", "1"]).expect_code(64);
    assert!(outcome.stderr.contains("--yes"), "{}", outcome.stderr);
    run(&user, &["delete", "--yes", "7"]).expect_code(65);
    assert_eq!(user.messages_on_server(), 6);
}

#[test]
fn browse_with_piped_answers() {
    let (user, _) = mailbox();
    // 1: read it, keep it.  2: don't read, delete.  3: a bad answer, help, Enter (= no), then quit.
    let outcome = pop3(&user)
        .args(["browse"])
        .stdin(b"y\nn\nn\ny\nmaybe\n?\n\nq\n")
        .run()
        .expect_code(0);
    let out = &outcome.stdout;
    assert!(
        out.starts_with(
            "Message 1 (size is 738 bytes):\nFrom: Alice Example <alice@example.org>\n"
        ),
        "{out}"
    );
    assert!(out.contains("Subject: Lunch on Thursday?\nDate: "), "{out}");
    let rule = "-".repeat(72);
    assert!(out.contains(&format!("{rule}\nHi Bob,\n")), "{out}");
    assert!(out.contains("Message 2 (size is 1128 bytes):"), "{out}");
    assert!(out.contains("Marked for deletion.\n"), "{out}");
    assert!(!out.contains("Deleted.\n"), "{out}");
    assert!(out.contains("Message 3 "));
    assert!(!out.contains("Message 4 "), "q stops browsing: {out}");
    assert!(
        out.ends_with("Deleting 1 message: 2.\nDeleted 1 message.\n"),
        "{out}"
    );
    let prompts = &outcome.stderr;
    assert_eq!(
        prompts.matches("Read this message [ny]? ").count(),
        5,
        "{prompts}"
    );
    assert!(
        prompts.contains("Please answer y, n, q (quit) or ? (help)."),
        "{prompts}"
    );
    assert!(prompts.contains("q  quit"), "{prompts}");
    assert_eq!(user.messages_on_server(), 5);
    let subjects = subjects_on_server(&user);
    assert!(
        !subjects
            .iter()
            .any(|s| s == "Your order #10442 has shipped")
    );
}

#[test]
fn browse_in_a_terminal_and_ctrl_c_deletes_nothing() {
    let (user, _) = mailbox();
    let (command, _home) = pop3(&user).args(["browse"]).into_command();
    let mut terminal = Terminal::spawn(command);
    let first = terminal.expect("Read this message [ny]? ");
    assert!(first.contains("Message 1 (size is 738 bytes):"), "{first}");
    terminal.type_keys("n\r");
    terminal.expect("Delete this message [ny]? ");
    terminal.type_keys("y\r");
    // Nothing is deleted before QUIT: say so.
    let marked = terminal.expect("Message 2 (size is 1128 bytes):");
    assert!(marked.contains("Marked for deletion."), "{marked}");
    assert!(!marked.contains("Deleted."), "{marked}");
    terminal.expect("Read this message [ny]? ");
    terminal.type_keys("y\r");
    let shown = terminal.expect("Delete this message [ny]? ");
    assert!(shown.contains("Tracking number"), "{shown}");
    terminal.type_keys("\x03"); // Ctrl-C
    let (status, screen) = terminal.wait();
    assert_eq!(status.code(), Some(130), "{screen}");
    assert!(
        screen.contains("interrupted: nothing was deleted"),
        "{screen}"
    );
    assert_eq!(user.messages_on_server(), 6);
}

#[test]
fn browse_in_a_terminal_commits_on_quit() {
    let (user, _) = mailbox();
    let (command, _home) = pop3(&user).args(["browse"]).into_command();
    let mut terminal = Terminal::spawn(command);
    terminal.expect("Read this message [ny]? ");
    terminal.type_keys("\r");
    terminal.expect("Delete this message [ny]? ");
    terminal.type_keys("y\r");
    terminal.expect("Read this message [ny]? ");
    terminal.type_keys("q\r");
    let (status, screen) = terminal.wait();
    assert_eq!(status.code(), Some(0), "{screen}");
    assert!(screen.contains("Deleted 1 message."), "{screen}");
    assert_eq!(user.messages_on_server(), 5);
}

#[test]
fn browse_ctrl_d_at_the_read_prompt_ends_the_prompt_line_before_committing() {
    let (user, _) = mailbox();
    let (command, _home) = pop3(&user).args(["browse"]).into_command();
    let mut terminal = Terminal::spawn(command);
    terminal.expect("Read this message [ny]? ");
    terminal.type_keys("n\r");
    terminal.expect("Delete this message [ny]? ");
    terminal.type_keys("y\r");
    terminal.expect("Read this message [ny]? ");
    terminal.type_keys("\x04"); // Ctrl-D: end of input, which commits like q
    let (status, screen) = terminal.wait();
    assert_eq!(status.code(), Some(0), "{screen}");
    // What follows the prompt (read up to it above) starts on a line of its own.
    assert!(
        screen.starts_with("\r\nDeleting 1 message: 1.\r\nDeleted 1 message.\r\n"),
        "{screen:?}"
    );
    assert_eq!(user.messages_on_server(), 5);
}

#[test]
fn browse_says_when_a_message_has_only_html_as_read_does() {
    let (user, _) = mailbox();
    // Message 3 is HTML only.
    let outcome = pop3(&user)
        .args(["browse"])
        .stdin(b"n\nn\nn\nn\ny\nq\n")
        .run()
        .expect_code(0);
    let rule = "-".repeat(72);
    assert!(
        outcome.stdout.contains(&format!(
            "{rule}\n[this message has only HTML; shown as plain text]\n\nScheduled maintenance\n"
        )),
        "{}",
        outcome.stdout
    );
}

#[test]
fn headers_range_beyond_the_mailbox_shows_what_there_is() {
    let (user, _) = mailbox();
    let outcome = run(&user, &["headers", "5-99"]).expect_code(0);
    let numbers: Vec<&str> = outcome
        .stdout
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(numbers, ["5", "6"], "{}", outcome.stdout);
    // A single number beyond the mailbox, or a range starting beyond it, is still an error.
    let outcome = run(&user, &["headers", "7"]).expect_code(65);
    assert!(
        outcome
            .stderr
            .contains("no message 7: the mailbox has messages 1 to 6"),
        "{}",
        outcome.stderr
    );
    run(&user, &["headers", "7-9"]).expect_code(65);
}

#[test]
fn an_empty_mailbox_is_reported_the_same_way_by_every_command() {
    let user = dovecot().add_user(&[]);
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Maildir");
    let stat = run(&user, &["stat"]).expect_code(0);
    assert_eq!(stat.stdout, "the mailbox is empty\n");
    let list = run(&user, &["list"]).expect_code(0);
    assert_eq!(
        (list.stdout.as_str(), list.stderr.as_str()),
        ("", "the mailbox is empty\n")
    );
    let headers = run(&user, &["headers"]).expect_code(0);
    assert_eq!(
        (headers.stdout.as_str(), headers.stderr.as_str()),
        ("", "the mailbox is empty\n")
    );
    let browse = run(&user, &["browse"]).expect_code(0);
    assert_eq!(browse.stdout, "the mailbox is empty\n");
    let fetch = pop3(&user)
        .args(["-v", "fetch-all"])
        .args([std::path::Path::new("--maildir"), &maildir])
        .run()
        .expect_code(0);
    assert!(
        fetch.stderr.ends_with(": the mailbox is empty\n"),
        "{}",
        fetch.stderr
    );
    // -q: nothing at all.
    let quiet = run(&user, &["-q", "list"]).expect_code(0);
    assert_eq!(quiet.stderr, "");
}

#[test]
fn stat_counts_the_messages_fetch_all_has_not_downloaded() {
    let (user, _) = mailbox();
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Maildir");
    let state = dir.path().join("state");
    let with_state = |args: &[&str]| pop3(&user).env("XDG_STATE_HOME", &state).args(args).run();
    let before = with_state(&["stat"]).expect_code(0);
    assert!(
        before.stdout.starts_with("6 messages (6 new), "),
        "{}",
        before.stdout
    );
    let json = with_state(&["stat", "--json"]).expect_code(0);
    assert!(json.stdout.contains("\"new\":6"), "{}", json.stdout);
    pop3(&user)
        .env("XDG_STATE_HOME", &state)
        .args(["fetch-all"])
        .args([std::path::Path::new("--maildir"), &maildir])
        .run()
        .expect_code(0);
    let after = with_state(&["stat"]).expect_code(0);
    assert!(
        after.stdout.starts_with("6 messages (0 new), "),
        "{}",
        after.stdout
    );
    let json = with_state(&["stat", "--json"]).expect_code(0);
    assert!(json.stdout.contains("\"new\":0"), "{}", json.stdout);
}

#[test]
fn fetch_all_progress_bar_fits_an_80_column_terminal_and_stops_at_100_percent() {
    // Enough data for the bar to be drawn several times, and one message without a final
    // line ending (the server sends one more CRLF than it may count).
    let mut messages: Vec<Vec<u8>> = (0..40)
        .map(|i| {
            let mut m = format!("Subject: big {i}\n\n").into_bytes();
            m.extend(
                std::iter::repeat_n(b"0123456789abcdef0123456789abcdef\n".as_slice(), 6000)
                    .flatten(),
            );
            m
        })
        .collect();
    messages.push(b"Subject: no final newline\n\nlast line".to_vec());
    let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    let user = dovecot().add_user(&refs);
    let dir = tempfile::tempdir().unwrap();
    let (command, _home) = pop3(&user)
        .args(["fetch-all"])
        .args([
            std::path::Path::new("--maildir"),
            &dir.path().join("Maildir"),
        ])
        .into_command();
    let terminal = Terminal::spawn_with_width(command, 80);
    let (status, screen) = terminal.wait();
    assert_eq!(status.code(), Some(0), "{screen}");
    // Strip escape sequences, then look at every drawn line.
    let mut plain = String::new();
    let mut chars = screen.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        plain.push(c);
    }
    let bars: Vec<&str> = plain
        .split(['\r', '\n'])
        .filter(|l| l.contains("41 messages ["))
        .collect();
    assert!(!bars.is_empty(), "no progress bar drawn:\n{plain}");
    // "[====> ] 1.20 MiB/7.34 MiB 12.3 MiB/s 0s": what is shown as done never exceeds the total.
    let octets = |text: &str| -> f64 {
        let mut words = text.split_whitespace();
        let value: f64 = words.next().unwrap().parse().unwrap();
        let unit = match words.next().unwrap() {
            "B" => 1.0,
            "KiB" => 1024.0,
            "MiB" => 1024.0 * 1024.0,
            other => panic!("unit {other}"),
        };
        value * unit
    };
    for bar in &bars {
        assert!(
            unicode_width::UnicodeWidthStr::width(*bar) <= 80,
            "{} columns: {bar:?}",
            bar.chars().count()
        );
        let counts = bar.rsplit_once("] ").unwrap_or_else(|| panic!("{bar:?}")).1;
        let (done, rest) = counts.split_once('/').unwrap();
        let total: String = rest
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        assert!(octets(done) <= octets(&total), "past 100%: {bar:?}");
    }
}

/// A mailbox of the messages `read` takes apart: HTML blocks, an attached message, hostile
/// attachment names (fixtures in `read/`, outside the demo mailbox), the invoice, and a photo
/// sent inline as iPhone Mail sends it.
fn attachments_mailbox() -> User {
    let messages: Vec<Vec<u8>> = [
        "read/html-blocks.eml",
        "read/attached-message.eml",
        "read/hostile-attachment-names.eml",
        "04-attachment.eml",
        "read/inline-photo.eml",
    ]
    .iter()
    .map(|f| Dovecot::fixture(f))
    .collect();
    let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    dovecot().add_user(&refs)
}

/// Every file under `root`, as paths relative to it, sorted.
fn tree(root: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() && !path.is_symlink() {
                pending.push(path);
            } else {
                let relative = path.strip_prefix(root).unwrap();
                found.push(relative.to_str().unwrap().to_owned());
            }
        }
    }
    found.sort();
    found
}

#[test]
fn read_html_block_elements_become_line_breaks() {
    let user = attachments_mailbox();
    let out = run(&user, &["read", "1"]).expect_code(0).stdout;
    assert!(
        out.contains(
            "[this message has only HTML; shown as plain text]\n\nPlanning meeting\n\n\
             Tuesday, 10:00 in room 4.\nBring your laptop.\n\nAgenda\n\n1. Last quarter\n\
             2. Roadmap\n  - mobile\n  - web\n3. Questions\n\nDial-in: +1 555 0100\nPIN: 4242\n"
        ),
        "{out}"
    );
    assert!(
        out.ends_with("> Plans are nothing; planning is everything.\n\n— Dana\n"),
        "{out}"
    );
    assert!(!out.contains("color"), "style shown: {out}");
}

#[test]
fn read_lists_an_attached_message_by_its_subject() {
    let user = attachments_mailbox();
    let out = run(&user, &["read", "2"]).expect_code(0).stdout;
    assert!(out.contains("Bob, see Erin's answer below.\n"), "{out}");
    assert!(
        out.ends_with(
            "\nAttachments:\n  message: \"Re: hello\"  (message/rfc822, 534 bytes)\n  \
             menu.txt  (text/plain, 12 bytes)\n"
        ),
        "{out}"
    );
}

#[test]
fn read_save_attachments_writes_each_file_once_inside_the_directory() {
    let user = attachments_mailbox();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("a").join("b");
    std::fs::create_dir_all(&dir).unwrap();
    let dir_arg = dir.to_str().unwrap();
    let outcome = run(&user, &["read", "4", "--save-attachments", dir_arg]).expect_code(0);
    assert_eq!(
        outcome.stdout,
        format!("{dir_arg}/invoice-2024-05.pdf\n{dir_arg}/expenses.csv\n")
    );
    assert_eq!(outcome.stderr, "");
    let pdf = std::fs::read(dir.join("invoice-2024-05.pdf")).unwrap();
    assert!(pdf.starts_with(b"%PDF-1.4\n") && pdf.len() == 331);
    assert_eq!(
        std::fs::read(dir.join("expenses.csv")).unwrap(),
        b"date,amount,currency\n2024-05-01,12.50,EUR\n2024-05-02,7.99,EUR\n"
    );
    // Again: nothing is replaced, the second copies get numbered names.
    let again = run(&user, &["read", "4", "--save-attachments", dir_arg]).expect_code(0);
    assert_eq!(
        again.stdout,
        format!("{dir_arg}/invoice-2024-05-1.pdf\n{dir_arg}/expenses-1.csv\n")
    );
    assert_eq!(
        std::fs::read(dir.join("invoice-2024-05-1.pdf")).unwrap(),
        pdf
    );
    assert_eq!(tree(root.path()).len(), 4, "{:?}", tree(root.path()));
}

#[test]
fn read_save_attachments_with_hostile_names_stays_inside_the_directory() {
    let user = attachments_mailbox();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("a").join("b");
    std::fs::create_dir_all(&dir).unwrap();
    // A symbolic link where an attachment would go is never followed.
    let outside = root.path().join("outside");
    std::fs::write(&outside, "keep").unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("x")).unwrap();
    let outcome = pop3(&user)
        .args(["read", "3", "--save-attachments"])
        .args([dir.as_os_str()])
        .run()
        .expect_code(0);
    let saved: Vec<String> = outcome
        .stdout
        .lines()
        .map(|line| {
            let path = std::path::Path::new(line);
            assert_eq!(path.parent(), Some(dir.as_path()), "{line}");
            path.file_name().unwrap().to_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        saved,
        [
            "passwd",
            "x-1",
            "_CON",
            "line break .txt",
            "]0;owned[31mred.txt",
            "a.pdf",
            "a-1.pdf",
            "attachment",
            "bashrc",
        ]
    );
    assert!(!outcome.stdout.contains('\x1b'));
    for (name, content) in [
        ("passwd", "passwd content"),
        ("x-1", "absolute"),
        ("_CON", "device name"),
        ("line break .txt", "newline"),
        ("]0;owned[31mred.txt", "escape"),
        ("a.pdf", "first a"),
        ("a-1.pdf", "second a"),
        ("attachment", "dots"),
        ("bashrc", "hidden"),
    ] {
        assert_eq!(std::fs::read_to_string(dir.join(name)).unwrap(), content);
    }
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "keep");
    let mut expected: Vec<String> = saved.iter().map(|n| format!("a/b/{n}")).collect();
    expected.extend(["a/b/x".to_owned(), "outside".to_owned()]);
    expected.sort();
    assert_eq!(tree(root.path()), expected);
}

#[test]
fn read_save_attachments_saves_an_attached_message_as_eml() {
    let user = attachments_mailbox();
    let dir = tempfile::tempdir().unwrap();
    let outcome = pop3(&user)
        .args(["read", "2", "--save-attachments"])
        .args([dir.path().as_os_str()])
        .run()
        .expect_code(0);
    assert_eq!(outcome.stdout.lines().count(), 2, "{}", outcome.stdout);
    let eml = std::fs::read_to_string(dir.path().join("Re: hello.eml")).unwrap();
    assert!(
        eml.starts_with("From: Erin Example <erin@example.com>\r\n"),
        "{eml}"
    );
    assert!(eml.ends_with("--inner-boundary--\r\n"), "{eml:?}");
    // Saved in its own charset (ISO-8859-1), not converted.
    assert_eq!(
        std::fs::read(dir.path().join("menu.txt")).unwrap(),
        b"Caf\xe9 cr\xe8me"
    );
}

#[test]
fn inline_attachments_are_listed_by_read_and_browse_and_saved() {
    let user = attachments_mailbox();
    let out = run(&user, &["read", "5"]).expect_code(0).stdout;
    assert!(
        out.ends_with(
            "the photo from the trip, my notes and the report.\n\nAttachments:\n  \
             pixel.png  (image/png, 70 bytes)\n  notes.txt  (text/plain, 29 bytes)\n  \
             report.pdf  (application/pdf, 25 bytes)\n"
        ),
        "{out}"
    );
    let dir = tempfile::tempdir().unwrap();
    let dir_arg = dir.path().to_str().unwrap();
    let saved = run(&user, &["read", "5", "--save-attachments", dir_arg]).expect_code(0);
    assert_eq!(
        saved.stdout,
        format!("{dir_arg}/pixel.png\n{dir_arg}/notes.txt\n{dir_arg}/report.pdf\n")
    );
    let png = std::fs::read(dir.path().join("pixel.png")).unwrap();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() == 70,
        "{png:?}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("notes.txt")).unwrap(),
        b"Day 1: lake.\r\nDay 2: hills.\r\n"
    );
    // browse: n for messages 1-4, then read 5.
    let browse = pop3(&user)
        .args(["browse"])
        .stdin(b"n\nn\nn\nn\nn\nn\nn\nn\ny\nq\n")
        .run()
        .expect_code(0);
    assert!(
        browse.stdout.contains(
            "[attachment: pixel.png (image/png)]\n[attachment: notes.txt (text/plain)]\n\
             [attachment: report.pdf (application/pdf)]\n"
        ),
        "{}",
        browse.stdout
    );
}

#[test]
fn read_save_attachments_refuses_a_missing_directory_and_reports_io_errors() {
    let user = attachments_mailbox();
    let root = tempfile::tempdir().unwrap();
    let missing = root.path().join("missing");
    let outcome = pop3(&user)
        .args(["read", "4", "--save-attachments"])
        .args([missing.as_os_str()])
        .run()
        .expect_code(74);
    assert_eq!(
        outcome.stderr,
        format!(
            "pop3: cannot save attachments in {}: no such directory (create it first)\n",
            missing.display()
        )
    );
    assert!(!missing.exists());
    let file = root.path().join("file");
    std::fs::write(&file, "").unwrap();
    let outcome = pop3(&user)
        .args(["read", "4", "--save-attachments"])
        .args([file.as_os_str()])
        .run()
        .expect_code(74);
    assert!(
        outcome.stderr.contains("not a directory"),
        "{}",
        outcome.stderr
    );
    // A directory in which nothing can be created (even by root).
    let outcome = run(&user, &["read", "4", "--save-attachments", "/proc/self"]).expect_code(74);
    assert!(
        outcome
            .stderr
            .starts_with("pop3: cannot write /proc/self: "),
        "{}",
        outcome.stderr
    );
    assert_eq!(outcome.stderr.lines().count(), 1, "{}", outcome.stderr);
    // --save-attachments is a mode of its own.
    run(&user, &["read", "4", "--raw", "--save-attachments", "/tmp"]).expect_code(64);
    // A message without attachments: said on stderr, nothing on stdout.
    let dir = tempfile::tempdir().unwrap();
    let outcome = pop3(&user)
        .args(["read", "1", "--save-attachments"])
        .args([dir.path().as_os_str()])
        .run()
        .expect_code(0);
    assert_eq!(
        (outcome.stdout.as_str(), outcome.stderr.as_str()),
        ("", "message 1 has no attachments\n")
    );
}

/// Every line of a terminal screen fits `columns` (the screen's escape sequences aside).
fn assert_fits(screen: &str, columns: usize) {
    for line in screen.split(['\r', '\n']) {
        assert!(
            line.chars().count() <= columns,
            "a line of {} columns:\n{line}",
            line.chars().count()
        );
    }
}

#[test]
fn long_subjects_fit_the_terminal_in_delete_and_browse_and_a_missing_from_reads_none() {
    let message = Dovecot::fixture("read/no-from-long-subject.eml");
    let user = dovecot().add_user(&[&message]);

    let read = run(&user, &["read", "1"]).expect_code(0);
    assert!(
        read.stdout.starts_with("From:    (none)\n"),
        "{}",
        read.stdout
    );

    let (command, _home) = pop3(&user).args(["delete", "1"]).into_command();
    let mut terminal = Terminal::spawn_with_width(command, 80);
    let list = terminal.expect("Delete 1 message? [y/N] ");
    assert!(list.contains("(none)  A very long subject"), "{list}");
    assert!(list.contains('…'), "{list}");
    assert_fits(&list, 80);
    terminal.type_keys("n\r");
    let (status, _) = terminal.wait();
    assert_eq!(status.code(), Some(0));
    assert_eq!(user.messages_on_server(), 1);

    let (command, _home) = pop3(&user).args(["browse"]).into_command();
    let mut terminal = Terminal::spawn_with_width(command, 80);
    let shown = terminal.expect("Read this message [ny]? ");
    assert!(shown.contains("From: (none)\r\n"), "{shown}");
    assert!(shown.contains("Subject: A very long subject"), "{shown}");
    assert!(shown.contains("To: alice@example.org\r\n"), "{shown}");
    assert_fits(&shown, 80);
    terminal.type_keys("q\r");
    let (status, _) = terminal.wait();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn headers_shows_none_for_a_missing_from_as_read_and_delete_do() {
    let message = Dovecot::fixture("read/no-from-long-subject.eml");
    let user = dovecot().add_user(&[&message, &Dovecot::fixture("01-plain.eml")]);
    let outcome = run(&user, &["headers"]).expect_code(0);
    let lines: Vec<&str> = outcome.stdout.lines().collect();
    // Padded to the widest From, as any other value.
    let padding = " ".repeat("Alice Example <alice@example.org>".len() - "(none)".len());
    assert!(
        lines[0].contains(&format!("  (none){padding}  A very long subject")),
        "{}",
        outcome.stdout
    );
    let (command, _home) = pop3(&user).args(["headers"]).into_command();
    let (status, screen) = Terminal::spawn_with_width(command, 80).wait();
    assert_eq!(status.code(), Some(0), "{screen}");
    assert!(screen.contains("  (none)  "), "{screen}");
}

#[test]
fn headers_json_keeps_control_characters_and_decodes_raw_latin1() {
    let message = Dovecot::fixture("read/latin1-raw-headers.eml");
    let user = dovecot().add_user(&[&message]);
    let json = run(&user, &["headers", "--json", "1"]).expect_code(0);
    let rows: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let headers = rows[0]["headers"].as_array().unwrap();
    let value = |name: &str| {
        headers
            .iter()
            .find(|h| h["name"] == name)
            .and_then(|h| h["value"].as_str())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(value("Subject"), "Grüße aus Köln");
    assert_eq!(value("X-Mailer"), "Old\x1b[31mMailer");
    assert!(
        json.stdout.contains("Old\\u001b[31mMailer"),
        "{}",
        json.stdout
    );
    let read = run(&user, &["read", "1"]).expect_code(0);
    assert!(
        read.stdout
            .starts_with("From:    Jürgen Müller <juergen@example.de>\n"),
        "{}",
        read.stdout
    );
}
