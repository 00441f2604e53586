//! The pager (trial 2 item 4: `read` and `browse` ignored $PAGER): long text on a terminal goes
//! through `$POP3_PAGER`; short text, `--no-pager`, a pipe and `--raw` never do. The pager here
//! is a small shell command that records what it was given, so the tests see exactly that.

use std::path::{Path, PathBuf};

use crate::support::cli::Pop3;
use crate::support::dovecot::{User, dovecot};
use crate::support::pty::Terminal;

/// A message whose text (2000 lines, about 80 KiB: more than a pipe holds) fits on no terminal.
fn long_message() -> Vec<u8> {
    let mut message = b"From: Alice <alice@example.org>\r\nSubject: The long one\r\n\r\n".to_vec();
    for n in 1..=2000 {
        message.extend_from_slice(format!("line {n:04} of the long message\r\n").as_bytes());
    }
    message
}

const SHORT: &[u8] =
    b"From: Bob <bob@example.org>\r\nSubject: The short one\r\n\r\nJust a line.\r\n";

fn pop3(user: &User) -> Pop3 {
    let d = dovecot();
    Pop3::new()
        .server("localhost", d.pop3s_port, Some(&d.ca_file))
        .login(&user.name, &user.password)
}

/// A pager command that writes its input to `dir/paged` and `$LESS` to `dir/less`, then says
/// PAGER-DONE on the terminal.
fn recording_pager(dir: &Path) -> String {
    let dir = dir.display();
    format!("echo \"LESS=$LESS\" > {dir}/less; cat > {dir}/paged; echo PAGER-DONE")
}

/// Runs `pop3 ARGS` on a terminal with the recording pager; returns the exit code, the screen
/// and where the pager's records are.
fn on_terminal(user: &User, args: &[&str], dir: &Path) -> (Option<i32>, String, PathBuf) {
    let (mut command, _home) = pop3(user)
        .args(args)
        .env("POP3_PAGER", recording_pager(dir))
        .into_command();
    command.env_remove("LESS");
    let (status, screen) = Terminal::spawn(command).wait();
    (status.code(), screen, dir.join("paged"))
}

#[test]
fn read_pages_long_text_on_a_terminal_with_the_same_text_as_piped() {
    let user = dovecot().add_user(&[&long_message()]);
    let dir = tempfile::tempdir().unwrap();
    let (code, screen, paged) = on_terminal(&user, &["read", "1"], dir.path());
    assert_eq!(code, Some(0), "{screen}");
    assert!(screen.contains("PAGER-DONE"), "{screen}");
    assert!(!screen.contains("line 2000"), "{screen}");
    let piped = pop3(&user).args(["read", "1"]).run().expect_code(0).stdout;
    assert_eq!(std::fs::read_to_string(&paged).unwrap(), piped);
    // less gets the flags that keep short text and colours as printed, when LESS is unset.
    assert_eq!(
        std::fs::read_to_string(dir.path().join("less")).unwrap(),
        "LESS=FRX\n"
    );
}

#[test]
fn read_short_text_on_a_terminal_is_not_paged() {
    let user = dovecot().add_user(&[SHORT]);
    let dir = tempfile::tempdir().unwrap();
    let (code, screen, paged) = on_terminal(&user, &["read", "1"], dir.path());
    assert_eq!(code, Some(0), "{screen}");
    assert!(screen.contains("Just a line."), "{screen}");
    assert!(!screen.contains("PAGER-DONE"), "{screen}");
    assert!(!paged.exists());
}

#[test]
fn read_no_pager_flag_disables_the_pager() {
    let user = dovecot().add_user(&[&long_message()]);
    let dir = tempfile::tempdir().unwrap();
    let (code, screen, paged) = on_terminal(&user, &["--no-pager", "read", "1"], dir.path());
    assert_eq!(code, Some(0), "{screen}");
    assert!(screen.contains("line 2000 of the long message"), "{screen}");
    assert!(!screen.contains("PAGER-DONE"), "{screen}");
    assert!(!paged.exists());
}

#[test]
fn read_never_pages_piped_stdout_nor_raw_bytes() {
    let user = dovecot().add_user(&[&long_message()]);
    let dir = tempfile::tempdir().unwrap();
    let piped = pop3(&user)
        .args(["read", "1"])
        .env("POP3_PAGER", recording_pager(dir.path()))
        .run()
        .expect_code(0);
    assert!(piped.stdout.contains("line 2000 of the long message"));
    assert!(!dir.path().join("paged").exists());
    let (code, screen, paged) = on_terminal(&user, &["read", "1", "--raw"], dir.path());
    assert_eq!(code, Some(0), "{screen}");
    assert!(screen.contains("line 2000 of the long message"), "{screen}");
    assert!(!paged.exists());
}

#[test]
fn read_pager_that_quits_early_or_cannot_start_is_not_an_error() {
    let user = dovecot().add_user(&[&long_message()]);
    // `true` reads nothing: the rest of the text meets a closed pipe (EPIPE), like `q` in less.
    let (mut command, _home) = pop3(&user)
        .args(["read", "1"])
        .env("POP3_PAGER", "true")
        .into_command();
    command.env_remove("LESS");
    let (status, screen) = Terminal::spawn(command).wait();
    assert_eq!(status.code(), Some(0), "{screen}");
    assert!(!screen.contains("pop3:"), "{screen}");
    // A pager that does not exist: the text is printed directly.
    let (command, _home) = pop3(&user)
        .args(["read", "1"])
        .env("POP3_PAGER", "/nonexistent/pager")
        .into_command();
    let (status, screen) = Terminal::spawn(command).wait();
    assert_eq!(status.code(), Some(0), "{screen}");
    assert!(screen.contains("line 2000 of the long message"), "{screen}");
}

#[test]
fn browse_pages_the_message_text_then_returns_to_its_prompt() {
    let user = dovecot().add_user(&[&long_message(), SHORT]);
    let dir = tempfile::tempdir().unwrap();
    let (mut command, _home) = pop3(&user)
        .args(["browse"])
        .env("POP3_PAGER", recording_pager(dir.path()))
        .into_command();
    command.env_remove("LESS");
    let mut terminal = Terminal::spawn(command);
    terminal.expect("Read this message [ny]? ");
    terminal.type_keys("y\r");
    let shown = terminal.expect("Delete this message [ny]? ");
    assert!(shown.contains("PAGER-DONE"), "{shown}");
    assert!(!shown.contains("line 2000"), "{shown}");
    let paged = std::fs::read_to_string(dir.path().join("paged")).unwrap();
    // The text only: the headers were shown before the question.
    let rule = "-".repeat(72);
    assert!(paged.starts_with(&format!("{rule}\nline 0001 ")), "{paged}");
    assert!(
        paged.ends_with(&format!("line 2000 of the long message\n{rule}\n")),
        "{paged}"
    );
    terminal.type_keys("n\r");
    // The short message is shown directly.
    terminal.expect("Read this message [ny]? ");
    terminal.type_keys("y\r");
    let shown = terminal.expect("Delete this message [ny]? ");
    assert!(shown.contains("Just a line."), "{shown}");
    assert!(!shown.contains("PAGER-DONE"), "{shown}");
    terminal.type_keys("n\r");
    let (status, screen) = terminal.wait();
    assert_eq!(status.code(), Some(0), "{screen}");
    assert_eq!(user.messages_on_server(), 2);
}

/// Ctrl-C while the pager runs is the pager's (less uses it to stop a search): `browse` must not
/// take it as "leave now" and carries on once the pager ends.
#[test]
fn browse_ctrl_c_while_the_pager_runs_belongs_to_the_pager() {
    let user = dovecot().add_user(&[&long_message()]);
    let (command, _home) = pop3(&user)
        .args(["browse"])
        .env(
            "POP3_PAGER",
            "trap '' INT; cat > /dev/null; echo PAGER-WAITING; sleep 1; echo PAGER-DONE",
        )
        .into_command();
    let mut terminal = Terminal::spawn(command);
    terminal.expect("Read this message [ny]? ");
    terminal.type_keys("y\r");
    terminal.expect("PAGER-WAITING");
    terminal.type_keys("\x03");
    terminal.expect("PAGER-DONE");
    terminal.expect("Delete this message [ny]? ");
    // Once the pager has ended, Ctrl-C leaves browse as before, deleting nothing.
    terminal.type_keys("\x03");
    let (status, screen) = terminal.wait();
    assert_eq!(status.code(), Some(130), "{screen}");
    assert!(screen.contains("nothing was deleted"), "{screen}");
}
