//! `fetch-all`'s limits, filter and hook against the real Dovecot: `max_messages`,
//! `delete_larger_than`, `filter_command` (mpop's exit codes) and `on_new_mail`.

use std::fs;
use std::path::{Path, PathBuf};

use crate::support::cli::{Outcome, Pop3};
use crate::support::dovecot::{User, dovecot};
use crate::support::fetch::replay_state;

fn message(subject: &str, body: &str) -> Vec<u8> {
    format!("From: Bob <bob@example.org>\r\nSubject: {subject}\r\n\r\n{body}\r\n").into_bytes()
}

/// A temp dir holding the config of account `home` (the user's Dovecot mailbox, delivering into
/// `mail/`), with `extra` keys added to the account.
struct Setup {
    dir: tempfile::TempDir,
    user: User,
}

impl Setup {
    fn new(messages: &[Vec<u8>], extra: &str) -> Setup {
        let d = dovecot();
        let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        let user = d.add_user(&refs);
        let dir = tempfile::tempdir().unwrap();
        let setup = Setup { dir, user };
        setup.write_config(extra);
        setup
    }

    fn write_config(&self, extra: &str) {
        let d = dovecot();
        fs::write(
            self.path("config.toml"),
            format!(
                "[accounts.home]\nhost = \"localhost\"\nport = {}\nuser = \"{}\"\n\
                 password_env = \"POP3_TEST_PASSWORD\"\nca_file = \"{}\"\nmaildir = \"{}\"\n\
                 state_dir = \"{}\"\ntimeout = 5\n{extra}\n",
                d.pop3s_port,
                self.user.name,
                d.ca_file.display(),
                self.path("mail").display(),
                self.path("state").display(),
            ),
        )
        .unwrap();
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// An executable `sh` script at `name`.
    fn script(&self, name: &str, body: &str) -> PathBuf {
        let path = self.path(name);
        fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn fetch(&self, args: &[&str]) -> Outcome {
        Pop3::new()
            .args([Path::new("--config"), &self.path("config.toml")])
            .env("POP3_TEST_PASSWORD", &self.user.password)
            .args(["fetch-all"])
            .args(args)
            .run()
    }

    /// The subjects of the delivered messages, sorted.
    fn delivered(&self) -> Vec<String> {
        let mut subjects: Vec<String> = fs::read_dir(self.path("mail/new"))
            .map(|entries| {
                entries
                    .map(|e| {
                        let text = fs::read_to_string(e.unwrap().path()).unwrap();
                        let line = text.lines().find(|l| l.starts_with("Subject: ")).unwrap();
                        line["Subject: ".len()..].to_owned()
                    })
                    .collect()
            })
            .unwrap_or_default();
        subjects.sort();
        subjects
    }

    fn read(&self, name: &str) -> String {
        fs::read_to_string(self.path(name)).unwrap_or_default()
    }
}

fn subjects(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn max_messages_fetches_the_oldest_first_and_leaves_the_rest_for_the_next_run() {
    let messages: Vec<Vec<u8>> = (1..=5)
        .map(|i| message(&format!("m{i}"), "hello"))
        .collect();
    let setup = Setup::new(&messages, "max_messages = 2\ndelete = true");
    let outcome = setup.fetch(&["-v"]).expect_code(0);
    assert_eq!(setup.delivered(), subjects(&["m1", "m2"]));
    assert!(
        outcome.stderr.contains("home: fetched 2 messages (")
            && outcome
                .stderr
                .contains(", deleted 2, 3 left for the next run (max_messages)"),
        "{}",
        outcome.stderr
    );
    // Only what was fetched is deleted.
    assert_eq!(setup.user.messages_on_server(), 3);

    let outcome = setup.fetch(&["--max-messages", "0", "-v"]).expect_code(0);
    assert!(!outcome.stderr.contains("left for"), "{}", outcome.stderr);
    assert_eq!(setup.delivered(), subjects(&["m1", "m2", "m3", "m4", "m5"]));
    assert_eq!(setup.user.messages_on_server(), 0);
}

#[test]
fn delete_larger_than_deletes_unread_and_reports_each_message_once() {
    let big = "x".repeat(200);
    let big_body = vec![big.as_str(); 100].join("\r\n");
    let setup = Setup::new(
        &[
            message("small", "hi"),
            message("huge", &big_body),
            message("small too", "hi"),
        ],
        "delete_larger_than = \"10K\"\nmax_message_size = \"5K\"",
    );
    let dry = setup.fetch(&["--dry-run"]).expect_code(0);
    assert!(
        dry.stdout
            .contains("(larger than delete_larger_than; not downloaded)")
            && dry
                .stdout
                .contains("would delete 1 message from the server: 2"),
        "{}",
        dry.stdout
    );
    assert_eq!(setup.user.messages_on_server(), 3);

    let outcome = setup.fetch(&[]).expect_code(0);
    let lines: Vec<&str> = outcome.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", outcome.stderr);
    assert!(
        lines[0].starts_with("pop3: home: message 2 (19.8 KiB, uid ")
            && lines[0].contains(
                "is larger than delete_larger_than (10.0 KiB): deleting it from the server unread (From: Bob <bob@example.org>, Subject: huge)"
            ),
        "{}",
        lines[0]
    );
    assert_eq!(setup.delivered(), subjects(&["small", "small too"]));
    assert_eq!(setup.user.messages_on_server(), 2);
    // Once the server confirmed the deletion, the state forgets the message.
    let state = fs::read_dir(setup.path("state"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let name = p.to_string_lossy();
            !name.ends_with(".lock") && !name.ends_with(".capabilities")
        })
        .unwrap();
    let records = replay_state(&fs::read_to_string(state).unwrap());
    assert!(
        records.values().all(|kinds| !kinds.contains("k")),
        "{records:?}"
    );

    let again = setup.fetch(&[]).expect_code(0);
    assert_eq!(again.stderr, "");
}

/// Trial 2: with `--max-messages` and `delete_larger_than`, the one message deleted unread was
/// counted twice: `deleted 1, 1 deleted unread (larger than delete_larger_than)`.
#[test]
fn summary_counts_a_message_deleted_unread_once() {
    let big_body = vec!["x".repeat(200); 100].join("\r\n");
    let setup = Setup::new(
        &[
            message("m1", "hi"),
            message("huge", &big_body),
            message("m3", "hi"),
            message("m4", "hi"),
        ],
        "delete_larger_than = \"10K\"\ndelete = true",
    );
    let outcome = setup.fetch(&["-v", "--max-messages", "1"]).expect_code(0);
    let summary = outcome
        .stderr
        .lines()
        .find(|l| l.starts_with("home: fetched"))
        .unwrap_or_else(|| panic!("no summary: {}", outcome.stderr));
    assert!(
        summary.starts_with("home: fetched 1 message (")
            && summary.ends_with(
                "), deleted 1, 1 deleted unread (larger than delete_larger_than), 2 left for the next run (max_messages)"
            ),
        "{summary}"
    );
    // m1 fetched and deleted, huge deleted unread: two gone, as the summary says.
    assert_eq!(setup.user.messages_on_server(), 2);
}

/// The filter used below: logs each call, its environment and its input, then answers by
/// the subject.
const FILTER: &str = r#"log="$(dirname "$0")/filter.log"
headers=$(cat)
{
  echo "call $POP3_FILTER_NUMBER size=$POP3_FILTER_SIZE account=$POP3_FILTER_ACCOUNT host=$POP3_FILTER_HOST user=$POP3_FILTER_USER uid=$POP3_FILTER_UID"
  env | sed 's/^/env /'
  printf '%s\n' "$headers" | sed 's/^/in /'
} >> "$log"
case "$headers" in
  *"Subject: deliver"*) exit 0 ;;
  *"Subject: delete"*) exit 1 ;;
  *"Subject: skip"*) exit 2 ;;
  *"Subject: broken"*) exit 5 ;;
  *"Subject: slow"*) sleep 30 ;;
esac
exit 64"#;

#[test]
fn filter_command_decides_deliver_delete_skip_and_is_not_asked_twice() {
    let setup = Setup::new(
        &[
            message("deliver", "one"),
            message("delete", "two"),
            message("skip", "three"),
        ],
        "",
    );
    let filter = setup.script("filter.sh", FILTER);
    setup.write_config(&format!("filter_command = [\"{}\"]", filter.display()));
    let outcome = setup.fetch(&["-v"]).expect_code(0);
    assert!(
        outcome.stderr.contains(
            "home: fetched 1 message (54 bytes), 1 deleted unread by filter_command, 1 left by filter_command\n"
        ),
        "{}",
        outcome.stderr
    );
    assert_eq!(setup.delivered(), subjects(&["deliver"]));
    // "delete" is gone; "deliver" stays (no delete mode) and "skip" stays.
    assert_eq!(setup.user.messages_on_server(), 2);

    let log = setup.read("filter.log");
    let calls: Vec<&str> = log.lines().filter(|l| l.starts_with("call ")).collect();
    assert_eq!(calls.len(), 3, "{log}");
    assert!(
        calls[1].starts_with(&format!(
            "call 2 size={} account=home host=localhost user={} uid=",
            message("delete", "two").len(),
            setup.user.name
        )),
        "{log}"
    );
    assert!(log.contains("in Subject: delete\n"), "{log}");
    assert!(!log.contains('\r'), "LF line ends: {log:?}");
    // The secrets rule: the password never reaches the filter.
    assert!(!log.contains(&setup.user.password), "{log}");
    assert!(!log.contains("POP3_TEST_PASSWORD"), "{log}");

    // Next run: nothing new, the skipped one is not asked again.
    setup.fetch(&[]).expect_code(0);
    let log = setup.read("filter.log");
    assert_eq!(log.lines().filter(|l| l.starts_with("call ")).count(), 3);
    assert_eq!(setup.user.messages_on_server(), 2);
}

#[test]
fn stat_does_not_count_a_message_filter_command_left_for_good_as_new() {
    let setup = Setup::new(&[message("deliver", "one"), message("skip", "two")], "");
    let filter = setup.script("filter.sh", FILTER);
    setup.write_config(&format!("filter_command = [\"{}\"]", filter.display()));
    setup.fetch(&[]).expect_code(0);
    let stat = Pop3::new()
        .args([Path::new("--config"), &setup.path("config.toml")])
        .env("POP3_TEST_PASSWORD", &setup.user.password)
        .args(["stat"])
        .run()
        .expect_code(0);
    assert!(
        stat.stdout.starts_with("2 messages (0 new)"),
        "{}",
        stat.stdout
    );
}

#[test]
fn a_failing_or_hanging_filter_never_loses_mail() {
    let setup = Setup::new(
        &[
            message("broken", "one"),
            message("deliver", "two"),
            message("slow", "three"),
            message("deliver later", "four"),
        ],
        "",
    );
    let filter = setup.script("filter.sh", FILTER);
    setup.write_config(&format!(
        "filter_command = [\"{}\"]\nfilter_timeout = 1\ndelete = true",
        filter.display()
    ));
    let started = std::time::Instant::now();
    let outcome = setup.fetch(&[]).expect_code(75);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "the hanging filter was stopped"
    );
    let uid_of = |n: usize| {
        let log = setup.read("filter.log");
        let line = log
            .lines()
            .find(|l| l.starts_with(&format!("call {n} ")))
            .unwrap()
            .to_owned();
        line.rsplit_once("uid=").unwrap().1.to_owned()
    };
    assert_eq!(
        outcome.stderr.trim_end(),
        format!(
            "pop3: home: filter_command failed on message 1 ({}): exited with 5; message 3 ({}): no answer within 1s (filter_timeout), stopped; message 4 ({}): not asked; they stay on the server",
            uid_of(1),
            uid_of(3),
            uid_of(3).replace("00000003", "00000004")
        )
    );
    assert_eq!(setup.delivered(), subjects(&["deliver"]));
    // Only the delivered message was deleted.
    assert_eq!(setup.user.messages_on_server(), 3);

    // Nothing of theirs was recorded: a fixed filter is asked again about each.
    setup.script("filter.sh", "exit 0");
    setup.fetch(&[]).expect_code(0);
    assert_eq!(
        setup.delivered(),
        subjects(&["broken", "deliver", "deliver later", "slow"])
    );
    assert_eq!(setup.user.messages_on_server(), 0);
}

#[test]
fn on_new_mail_runs_once_after_a_run_that_delivered_and_its_failure_only_warns() {
    let setup = Setup::new(&[message("a", "1"), message("b", "2")], "");
    let hook = setup.script(
        "hook.sh",
        r#"echo "new=$POP3_NEW_MESSAGES account=$POP3_ACCOUNT" >> "$(dirname "$0")/hook.log"
env >> "$(dirname "$0")/hook.env"
echo "hook says hi""#,
    );
    setup.write_config(&format!("on_new_mail = [\"{}\"]", hook.display()));
    setup.fetch(&["--dry-run"]).expect_code(0);
    assert_eq!(setup.read("hook.log"), "", "not run in a dry run");

    let outcome = setup.fetch(&[]).expect_code(0);
    // Trial 2: the hook's output must not mix with pop3's data on stdout; stderr shows it.
    assert_eq!(outcome.stdout, "");
    assert_eq!(outcome.stderr, "hook says hi\n");
    assert_eq!(setup.read("hook.log"), "new=2 account=home\n");
    assert!(!setup.read("hook.env").contains(&setup.user.password));

    // Nothing new: not run.
    setup.fetch(&[]).expect_code(0);
    assert_eq!(setup.read("hook.log"), "new=2 account=home\n");

    // A failing hook: a warning, and the fetch stands.
    let more = Setup::new(
        &[message("c", "3")],
        "on_new_mail = [\"sh\", \"-c\", \"exit 3\"]",
    );
    let outcome = more.fetch(&[]).expect_code(0);
    assert_eq!(
        outcome.stderr,
        "pop3: warning: home: on_new_mail `sh -c 'exit 3'` failed (exit status: 3); the new mail is delivered all the same\n"
    );
    assert_eq!(more.delivered(), subjects(&["c"]));
    let missing = Setup::new(
        &[message("d", "4")],
        "on_new_mail = [\"/nonexistent/hook\"]",
    );
    let outcome = missing.fetch(&[]).expect_code(0);
    assert!(
        outcome
            .stderr
            .contains("on_new_mail `/nonexistent/hook` cannot be run:"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn maildir_file_names_have_the_sequence_number_docs_fetch_all_shows() {
    let setup = Setup::new(&[message("one", "1")], "");
    setup.fetch(&[]).expect_code(0);
    let sequence = |name: &str| -> String {
        let after = name.split_once('Q').map_or("", |(_, rest)| rest);
        after.chars().take_while(char::is_ascii_digit).collect()
    };
    let names: Vec<String> = fs::read_dir(setup.path("mail/new"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    let docs = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/fetch-all.md"))
        .unwrap();
    let example = docs
        .lines()
        .find(|l| l.contains("_pop3-") && l.contains(".M"))
        .expect("a Maildir file name in docs/fetch-all.md");
    assert_eq!(
        sequence(&names[0]),
        sequence(example),
        "{names:?} vs {example}"
    );
}

/// Trial 2: `fetch-all -v` delivered 2 messages, then the filter failed on another: only the
/// error line was printed (exit 75), no summary saying what was delivered.
#[test]
fn verbose_summary_is_printed_before_the_error_line_when_a_run_also_fails() {
    let setup = Setup::new(
        &[
            message("deliver", "one"),
            message("broken", "two"),
            message("deliver too", "three"),
        ],
        "",
    );
    let filter = setup.script("filter.sh", FILTER);
    setup.write_config(&format!("filter_command = [\"{}\"]", filter.display()));
    let outcome = setup.fetch(&["-v"]).expect_code(75);
    let lines: Vec<&str> = outcome.stderr.lines().collect();
    let summary = lines
        .iter()
        .position(|l| l.starts_with("home: fetched 2 messages ("))
        .unwrap_or_else(|| panic!("no summary: {}", outcome.stderr));
    let error = lines
        .iter()
        .position(|l| l.starts_with("pop3: home: filter_command failed on message 2 "))
        .unwrap_or_else(|| panic!("no error line: {}", outcome.stderr));
    assert!(summary < error, "{}", outcome.stderr);
    assert_eq!(error, lines.len() - 1, "{}", outcome.stderr);
    assert_eq!(setup.delivered(), subjects(&["deliver", "deliver too"]));

    // Without -v (cron), the error line alone, as before.
    let setup = Setup::new(&[message("deliver", "one"), message("broken", "two")], "");
    let filter = setup.script("filter.sh", FILTER);
    setup.write_config(&format!("filter_command = [\"{}\"]", filter.display()));
    let outcome = setup.fetch(&[]).expect_code(75);
    assert_eq!(outcome.stderr.lines().count(), 1, "{}", outcome.stderr);
}
