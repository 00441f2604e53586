//! `pop3 fetch-all` deleting: DELE only after delivery, deletions real only after QUIT, batches,
//! `keep_days`, refused DELEs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use crate::support::fetch::*;
use crate::support::scripted::{ScriptedServer, login_script, text_of};

/// What was on disk when each DELE reached the server: the contents of new/ and the unique-ids
/// recorded in the state, keyed by message number. The client cannot have sent DELE n before
/// message n was durable and recorded, so what is on disk at that moment is what a crash then
/// would leave.
type AtDele = Arc<Mutex<BTreeMap<u32, (Vec<String>, BTreeSet<String>)>>>;

/// Watches the client's bytes for DELE commands and takes an [`AtDele`] snapshot for each.
fn watch_deles(fixture: &Fixture) -> AtDele {
    let at_dele: AtDele = Arc::default();
    let slots = Arc::clone(&at_dele);
    let new_dir = fixture.maildir().join("new");
    let state_dir = fixture.path("state");
    let mut seen = Vec::new();
    fixture.relay.set_tap(move |chunk| {
        seen.extend_from_slice(chunk);
        let text = text_of(&seen);
        // Complete lines only: "DELE 2" may be the start of "DELE 20".
        let complete = &text[..text.rfind("\r\n").unwrap_or(0)];
        let numbers: Vec<u32> = complete
            .split("\r\n")
            .filter_map(|l| l.strip_prefix("DELE "))
            .filter_map(|n| n.parse().ok())
            .collect();
        let mut slots = slots.lock().unwrap();
        if numbers.iter().all(|n| slots.contains_key(n)) {
            return;
        }
        let state: String = std::fs::read_dir(&state_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| !p.to_string_lossy().ends_with(".lock"))
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .collect();
        let uids: BTreeSet<String> = state
            .lines()
            .filter_map(|l| l.strip_prefix("+ "))
            .map(|r| r.split(' ').next().unwrap().to_owned())
            .collect();
        let new: Vec<String> = files_in(&new_dir).into_values().collect();
        for n in numbers {
            slots
                .entry(n)
                .or_insert_with(|| (new.clone(), uids.clone()));
        }
    });
    at_dele
}

/// Asserts that each message was in new/ and recorded when its DELE reached the server.
fn assert_durable_before_dele(at_dele: &AtDele, messages: &[&Msg]) {
    let at_dele = at_dele.lock().unwrap();
    for (i, m) in messages.iter().enumerate() {
        let n = i as u32 + 1;
        let (new, recorded) = at_dele
            .get(&n)
            .unwrap_or_else(|| panic!("no DELE {n} seen"));
        assert!(
            new.iter().any(|t| t == m.text),
            "message {n} not in new/ at DELE {n}"
        );
        assert!(
            recorded.contains(m.uid),
            "{} not recorded at DELE {n}",
            m.uid
        );
    }
}

#[test]
fn delete_mode_deletes_only_after_delivery_and_forgets_after_quit() {
    let fixture = Fixture::new();
    let at_dele = watch_deles(&fixture);
    let server = ScriptedServer::start(&format!(
        "{}{}{}
         C: DELE 1
         C: DELE 2
         C: DELE 3
         S: +OK
         S: +OK
         S: +OK
         {QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&A, &B, &C]),
        retr_pipelined(&[1, 2, 3], &[&A, &B, &C]),
    ));
    let outcome = fixture.fetch_maildir(&server, &["--delete"]).expect_code(0);
    assert_silent(&outcome);
    let lines = sent_lines(&server.finish());
    assert_eq!(
        lines[4..],
        [
            "LIST", "UIDL", "RETR 1", "RETR 2", "RETR 3", "DELE 1", "DELE 2", "DELE 3", "QUIT"
        ]
    );
    for n in 1..=3 {
        let retr = lines
            .iter()
            .position(|l| *l == format!("RETR {n}"))
            .unwrap();
        let dele = lines
            .iter()
            .position(|l| *l == format!("DELE {n}"))
            .unwrap();
        assert!(retr < dele, "DELE {n} after RETR {n}: {lines:?}");
    }
    assert_durable_before_dele(&at_dele, &[&A, &B, &C]);

    assert_happy_maildir(&fixture);
    // QUIT was confirmed: the deleted messages are forgotten, a `-` record each.
    assert_eq!(
        fixture.records(),
        BTreeMap::new(),
        "{}",
        fixture.state_text()
    );
    assert!(
        fixture
            .state_text()
            .ends_with("- uid-A\n- uid-B\n- uid-C\n"),
        "{}",
        fixture.state_text()
    );
}

fn quit_not_confirmed(quit_reply: &str) {
    let fixture = Fixture::new();
    let server = ScriptedServer::start(&format!(
        "{}{}{}
         C: DELE 1
         C: DELE 2
         S: +OK
         S: +OK
         C: QUIT
         {quit_reply}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&A, &B]),
        retr_pipelined(&[1, 2], &[&A, &B]),
    ));
    let outcome = fixture
        .fetch_maildir(&server, &["--delete"])
        .expect_code(75);
    assert!(
        outcome
            .stderr
            .contains("the 2 messages marked for deletion stay on the server"),
        "{}",
        outcome.stderr
    );
    assert_eq!(outcome.stderr.lines().count(), 1, "{}", outcome.stderr);
    server.finish();
    assert_eq!(fixture.new_messages(), sorted(&[A.text, B.text]));
    // Not forgotten: the server may still have them.
    assert_eq!(
        fixture.delivered(),
        BTreeSet::from(["uid-A".into(), "uid-B".into()])
    );

    // The next run finds them still there: no download, but DELE again.
    let server = ScriptedServer::start(&format!(
        "{}{}
         C: DELE 1
         C: DELE 2
         S: +OK
         S: +OK
         {QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&A, &B]),
    ));
    let outcome = fixture.fetch_maildir(&server, &["--delete"]).expect_code(0);
    assert_silent(&outcome);
    assert_sent(
        &server.finish(),
        &["LIST", "UIDL", "DELE 1", "DELE 2", "QUIT"],
    );
    assert_eq!(
        fixture.new_messages(),
        sorted(&[A.text, B.text]),
        "no duplicates"
    );
    assert_eq!(fixture.delivered(), BTreeSet::new());
}

#[test]
fn quit_refused_after_deletions_leaves_them_for_next_time() {
    quit_not_confirmed("S: -ERR [SYS/TEMP] could not update the maildrop");
}

#[test]
fn quit_lost_after_deletions_leaves_them_for_next_time() {
    quit_not_confirmed("!abort");
}

#[test]
fn each_dele_follows_its_message_on_disk_and_in_the_state() {
    // 201 messages, more than one batch (200). Batches are handed to the committer whenever it
    // is idle, so DELEs may go out while RETRs still stream in; each DELE must still follow
    // its own message's durability and record.
    let fixture = Fixture::new();
    let messages: Vec<Msg> = (1..=201)
        .map(|n| Msg {
            uid: Box::leak(format!("u{n}").into_boxed_str()),
            text: Box::leak(format!("Subject: m{n}\n\nbody {n}\n").into_boxed_str()),
        })
        .collect();
    let refs: Vec<&Msg> = messages.iter().collect();
    let at_dele = watch_deles(&fixture);
    // RETRs are all sent at once (window 500) before the first DELE can be; the DELE replies
    // are read by the server after every RETR reply is sent, whenever the client sends them.
    let mut script = format!(
        "{}{}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&refs)
    );
    for (i, m) in refs.iter().enumerate() {
        script += &format!("C: RETR {}\n{}", i + 1, send(&m.retr_reply()));
    }
    for n in 1..=201 {
        script += &format!("C: DELE {n}\nS: +OK\n");
    }
    script += QUIT;
    let server = ScriptedServer::start(&script);
    let outcome = fixture.fetch_maildir(&server, &["--delete"]).expect_code(0);
    assert_silent(&outcome);
    server.finish();
    assert_durable_before_dele(&at_dele, &refs);
    assert_eq!(fixture.maildir_files("new").len(), 201);
    assert_eq!(fixture.delivered(), BTreeSet::new());
}

#[test]
fn keep_days_deletes_only_messages_old_enough() {
    let fixture = Fixture::with_config("keep_days = 1");
    let server = ScriptedServer::start(&format!(
        "{}{}{}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&A]),
        retr_pipelined(&[1], &[&A]),
    ));
    fixture.fetch_maildir(&server, &[]).expect_code(0);
    assert_sent(&server.finish(), &["LIST", "UIDL", "RETR 1", "QUIT"]);

    // A was first seen two days ago (as far as the state knows); B arrives now.
    let state = fixture.state_file().unwrap();
    let two_days_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 2 * 86_400;
    std::fs::write(&state, format!("pop3-state 1\n+ uid-A {two_days_ago}\n")).unwrap();
    let server = ScriptedServer::start(&format!(
        "{}{}
         C: DELE 1
         C: RETR 2
         S: +OK
         {}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&A, &B]),
        send(&B.retr_reply()),
    ));
    let outcome = fixture.fetch_maildir(&server, &[]).expect_code(0);
    assert_silent(&outcome);
    assert_sent(
        &server.finish(),
        &["LIST", "UIDL", "DELE 1", "RETR 2", "QUIT"],
    );
    assert_eq!(fixture.delivered(), BTreeSet::from(["uid-B".into()]));

    // --keep overrides keep_days (and delete): B stays even when it is old.
    std::fs::write(&state, format!("pop3-state 1\n+ uid-B {two_days_ago}\n")).unwrap();
    let server = ScriptedServer::start(&format!(
        "{}{}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&B]),
    ));
    fixture.fetch_maildir(&server, &["--keep"]).expect_code(0);
    assert_sent(&server.finish(), &["LIST", "UIDL", "QUIT"]);
    assert_eq!(fixture.new_messages(), sorted(&[A.text, B.text]));
}

#[test]
fn a_refused_dele_is_retried_not_downloaded_again() {
    let fixture = Fixture::new();
    let mbox = fixture.path("inbox");
    let args = ["--delete", "--mbox", mbox.to_str().unwrap()];
    let server = ScriptedServer::start(&format!(
        "{}{}{}
         C: DELE 1
         C: DELE 2
         S: +OK
         S: -ERR [SYS/TEMP] cannot delete now
         {QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&A, &B]),
        retr_pipelined(&[1, 2], &[&A, &B]),
    ));
    let outcome = fixture.fetch(&server, &args);
    assert!(outcome.stderr.contains("DELE 2"), "{}", outcome.stderr);
    server.finish();
    // B is still on the server and was delivered: the state must keep it.
    assert_eq!(fixture.delivered(), BTreeSet::from(["uid-B".into()]));

    let server = ScriptedServer::start(&format!(
        "{}{}C: DELE 1\nS: +OK\n{QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&B]),
    ));
    fixture.fetch(&server, &args).expect_code(0);
    assert_sent(&server.finish(), &["LIST", "UIDL", "DELE 1", "QUIT"]);
    let text = std::fs::read_to_string(&mbox).unwrap();
    assert_eq!(
        text.matches("Subject: two").count(),
        1,
        "delivered twice:\n{text}"
    );
}

// delete_larger_than and filter_command (issue 13).

#[test]
fn a_lost_quit_after_delete_larger_than_retries_the_dele_without_reporting_again() {
    let fixture = Fixture::with_config("delete_larger_than = \"1K\"");
    let big = Msg {
        uid: "uid-big",
        text: "Subject: big\n\nnot sent\n",
    };
    let list = "+OK\r\n1 100\r\n2 2048\r\n3 100\r\n.\r\n";
    let opening = format!(
        "{}C: LIST\n{}C: UIDL\n{}",
        login_script("USER UIDL PIPELINING"),
        send(list.as_bytes()),
        send(&uidl_reply(&[&A, &big, &B])),
    );
    let server = ScriptedServer::start(&format!(
        "{opening}C: DELE 2\nC: RETR 1\nC: RETR 3\nS: +OK\n{}C: QUIT\n!abort",
        retr_pipelined(&[], &[&A, &B]),
    ));
    let outcome = fixture.fetch_maildir(&server, &[]).expect_code(75);
    let lines: Vec<&str> = outcome.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{}", outcome.stderr);
    assert!(
        lines[0].contains(
            "message 2 (2.0 KiB, uid uid-big) is larger than delete_larger_than (1.0 KiB): deleting it from the server unread"
        ),
        "{}",
        outcome.stderr
    );
    assert!(
        lines[1].contains("the 1 message marked for deletion stay"),
        "{}",
        outcome.stderr
    );
    server.finish();
    assert_eq!(fixture.new_messages(), sorted(&[A.text, B.text]));
    assert!(fixture.state_text().contains("k uid-big\n"));

    // The next run deletes it again, silently; once QUIT is confirmed the state forgets it.
    let server = ScriptedServer::start(&format!("{opening}C: DELE 2\nS: +OK\n{QUIT}"));
    let outcome = fixture.fetch_maildir(&server, &[]).expect_code(0);
    assert_silent(&outcome);
    assert_sent(&server.finish(), &["LIST", "UIDL", "DELE 2", "QUIT"]);
    assert!(!fixture.records().contains_key("uid-big"));
}

#[test]
fn filter_command_without_top_is_a_config_error_before_anything_happens() {
    let fixture = Fixture::with_config("filter_command = [\"true\"]");
    let server = ScriptedServer::start(&format!(
        "{}{}{QUIT}",
        login_script("USER UIDL PIPELINING"),
        list_and_uidl(&[&A]),
    ));
    let outcome = fixture.fetch_maildir(&server, &[]).expect_code(78);
    assert_eq!(
        outcome.stderr,
        "pop3: filter_command needs the server's TOP command, which this server does not offer; remove filter_command for this account\n"
    );
    server.finish();
    assert!(!fixture.maildir().exists());
    let records = fixture.state_text();
    assert_eq!(
        records.lines().skip(1).count(),
        0,
        "nothing recorded: {records}"
    );
}
