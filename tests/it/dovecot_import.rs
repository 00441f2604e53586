//! `pop3 import` with files written by the real mpop, fetchmail and getmail: each tool fetches
//! from the test Dovecot in keep mode (with its own temporary HOME), new mail arrives, `pop3
//! import TOOL --write` writes the config and the state, and `pop3 fetch-all` then downloads
//! exactly the messages that arrived after the switch.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::cli::{Outcome, Pop3};
use crate::support::dovecot::{User, dovecot};

fn message(subject: &str) -> Vec<u8> {
    format!(
        "From: sender@example.com\r\nTo: user@example.com\r\nSubject: {subject}\r\nMessage-ID: <{subject}@example.com>\r\n\r\nbody of {subject}\r\n"
    )
    .into_bytes()
}

/// Puts a message into the user's maildrop, as a delivery would (Dovecot sees it next login).
fn arrive(user: &User, subject: &str) {
    let path = user
        .maildir
        .join("new")
        .join(format!("{subject}.import-test"));
    fs::write(&path, message(subject)).unwrap();
    // The maildir belongs to the sandbox's mail owner (Debian's `mail` as root, else us).
    let d = dovecot();
    std::os::unix::fs::chown(&path, Some(d.mail_uid), Some(d.mail_gid)).unwrap();
}

/// Subjects of the messages in a Maildir, sorted.
fn subjects(maildir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        let Ok(entries) = fs::read_dir(maildir.join(sub)) else {
            continue;
        };
        for entry in entries.flatten() {
            let text = fs::read_to_string(entry.path()).unwrap();
            let subject = text
                .lines()
                .find_map(|l| l.strip_prefix("Subject: "))
                .unwrap_or("?")
                .trim()
                .to_owned();
            out.push(subject);
        }
    }
    out.sort();
    out
}

/// Runs a tool with `home` as its HOME and nothing of the real user's environment.
fn run_tool(home: &Path, program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .env_remove("FETCHMAILHOME")
        .output()
        .unwrap_or_else(|e| panic!("running {program} (scripts/test installs it): {e}"));
    assert!(
        output.status.success(),
        "{program} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `pop3` with the tool's HOME (so it finds the tool's files), its config file in that home.
fn pop3(home: &Path) -> Pop3 {
    Pop3::new()
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_STATE_HOME", home.join(".local/state"))
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .args([Path::new("--config"), &home.join("pop3.toml")])
}

fn maildir(path: &Path) -> PathBuf {
    for sub in ["new", "cur", "tmp"] {
        fs::create_dir_all(path.join(sub)).unwrap();
    }
    path.to_owned()
}

/// The scenario shared by the three tools: `setup` writes the tool's config into the home
/// and returns the command (program, arguments) that fetches in keep mode.
fn switch_from(tool: &str, setup: impl FnOnce(&Path, &User) -> (&'static str, Vec<String>)) {
    let user = dovecot().add_user(&[&message("old-1"), &message("old-2")]);
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let (program, args) = setup(home, &user);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_tool(home, program, &args);
    assert_eq!(
        subjects(&home.join("old-mail")),
        ["old-1", "old-2"],
        "{tool} fetched"
    );

    arrive(&user, "new-1");
    arrive(&user, "new-2");

    let shown = pop3(home).args(["import", tool]).run().expect_code(0);
    assert!(
        shown.stdout.contains(&format!("user = \"{}\"", user.name)),
        "{}",
        shown.stdout
    );
    assert!(
        shown.stderr.contains("2 messages already fetched"),
        "{}",
        shown.stderr
    );
    assert!(
        !home.join("pop3.toml").exists(),
        "without --write nothing is written"
    );

    let written = pop3(home)
        .args(["import", tool, "--write"])
        .run()
        .expect_code(0);
    assert!(
        written.stderr.contains("recorded 2 of 2 messages"),
        "{}",
        written.stderr
    );
    // Importing twice is harmless: the account is left alone and nothing new is recorded.
    let again = pop3(home)
        .args(["import", tool, "--write"])
        .run()
        .expect_code(0);
    assert!(again.stderr.contains("left as it is"), "{}", again.stderr);
    assert!(
        again.stderr.contains("recorded 0 of 2 messages"),
        "{}",
        again.stderr
    );

    let target = maildir(&home.join("pop3-mail"));
    let fetched: Outcome = pop3(home)
        .args(["fetch-all", "--keep", "--maildir"])
        .args([&target])
        .run()
        .expect_code(0);
    assert_eq!(
        subjects(&target),
        ["new-1", "new-2"],
        "fetch-all after importing from {tool}\n{}",
        fetched.stderr
    );
    // And a second run finds nothing new.
    pop3(home)
        .args(["fetch-all", "--keep", "--maildir"])
        .args([&target])
        .run()
        .expect_code(0);
    assert_eq!(subjects(&target), ["new-1", "new-2"]);
}

#[test]
fn switching_from_mpop_fetches_only_what_arrived_since() {
    switch_from("mpop", |home, user| {
        let d = dovecot();
        let rc = home.join(".mpoprc");
        fs::write(
            &rc,
            format!(
                "defaults\ntls on\ntls_starttls off\ntls_trust_file {}\nkeep on\n\naccount dove\nhost localhost\nport {}\nuser {}\npasswordeval \"echo {}\"\ndelivery maildir {}\n",
                d.ca_file.display(),
                d.pop3s_port,
                user.name,
                user.password,
                maildir(&home.join("old-mail")).display()
            ),
        )
        .unwrap();
        // mpop refuses a config file others can read.
        fs::set_permissions(&rc, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        ("mpop", vec!["--all-accounts".into()])
    });
}

#[test]
fn switching_from_fetchmail_fetches_only_what_arrived_since() {
    switch_from("fetchmail", |home, user| {
        let d = dovecot();
        let old = maildir(&home.join("old-mail"));
        let rc = home.join(".fetchmailrc");
        fs::write(
            &rc,
            format!(
                "set no bouncemail\npoll localhost with protocol pop3 and port {}:\n    user \"{}\" there with password \"{}\" is root here\n    ssl sslcertfile {} sslcertck\n    keep\n    mda \"/bin/sh -c 'cat > {}/new/$$$$'\"\n",
                d.pop3s_port,
                user.name,
                user.password,
                d.ca_file.display(),
                old.display()
            ),
        )
        .unwrap();
        // fetchmail refuses an rc file others can read.
        fs::set_permissions(&rc, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        ("fetchmail", vec!["--nosyslog".into()])
    });
}

#[test]
fn switching_from_getmail_fetches_only_what_arrived_since() {
    switch_from("getmail", |home, user| {
        let d = dovecot();
        let old = maildir(&home.join("old-mail"));
        let dir = home.join(".getmail");
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("getmailrc"),
            format!(
                "[retriever]\ntype = SimplePOP3SSLRetriever\nserver = localhost\nport = {}\nusername = {}\npassword_command = (\"/bin/echo\", \"{}\")\nca_certs = {}\n\n[destination]\ntype = MDA_external\npath = /bin/sh\narguments = (\"-c\", \"cat > {}/new/$$\")\n# getmail refuses to run commands as root unless told; the tests run as root.\nallow_root_commands = true\n\n[options]\nread_all = false\ndelete = false\n",
                d.pop3s_port,
                user.name,
                user.password,
                d.ca_file.display(),
                old.display()
            ),
        )
        .unwrap();
        ("getmail", vec!["--quiet".into()])
    });
}

/// How often `Subject: NAME` starts a line of `text` (an mbox), for each name.
fn subject_counts(text: &str, names: &[&str]) -> Vec<usize> {
    names
        .iter()
        .map(|name| {
            text.lines()
                .filter(|l| *l == format!("Subject: {name}"))
                .count()
        })
        .collect()
}

/// The trial's mpoprc: `delivery mda "..."` (imported with mpop's quotes inside the `sh -c`
/// string, so every fetch-all failed) and `account default : NAME` (imported as a second
/// account on the same mailbox, so `fetch-all --all-accounts` hit its own lock). Real mpop
/// fetches with that file first; after the import, pop3 delivers through the same MDA.
#[test]
fn mpop_delivery_mda_and_account_default_import_and_fetch() {
    let d = dovecot();
    let user = dovecot().add_user(&[&message("old-1")]);
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let mbox = home.join("dave.mbox");
    let rc = home.join(".mpoprc");
    fs::write(
        &rc,
        format!(
            "defaults\ntls on\ntls_starttls off\ntls_trust_file {}\nkeep on\n\naccount dave\nhost localhost\nport {}\nuser {}\npasswordeval \"echo {}\"\ndelivery mda \"/usr/bin/tee -a {} >/dev/null\"\n\naccount default : dave\n",
            d.ca_file.display(),
            d.pop3s_port,
            user.name,
            user.password,
            mbox.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&rc, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    // mpop with no account named fetches `default`.
    run_tool(home, "mpop", &[]);
    let text = fs::read_to_string(&mbox).unwrap();
    assert_eq!(
        subject_counts(&text, &["old-1"]),
        [1],
        "mpop delivered\n{text}"
    );

    arrive(&user, "new-1");
    let written = pop3(home)
        .args(["import", "mpop", "--write"])
        .run()
        .expect_code(0);
    let config = fs::read_to_string(home.join("pop3.toml")).unwrap();
    assert!(
        config.contains(&format!(
            "mda = [\"sh\", \"-c\", \"/usr/bin/tee -a {} >/dev/null\"]",
            mbox.display()
        )),
        "{config}"
    );
    assert!(
        config.starts_with("default_account = \"dave\"\n"),
        "{config}"
    );
    assert_eq!(config.matches("[accounts.").count(), 1, "{config}");
    assert!(
        written
            .stderr
            .contains("account default is the same mailbox as dave"),
        "{}",
        written.stderr
    );

    // No account named: default_account; and --all-accounts meets no second lock holder.
    pop3(home).args(["fetch-all"]).run().expect_code(0);
    arrive(&user, "new-2");
    pop3(home)
        .args(["fetch-all", "--all-accounts"])
        .run()
        .expect_code(0);
    let text = fs::read_to_string(&mbox).unwrap();
    assert_eq!(
        subject_counts(&text, &["old-1", "new-1", "new-2"]),
        [1, 1, 1],
        "{text}"
    );
}

/// The trial's `import mpop --write` with nothing new printed `# Imported from ...` on stdout.
#[test]
fn import_with_nothing_new_prints_nothing_on_stdout() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let rc = home.join(".mpoprc");
    fs::write(
        &rc,
        "account a\nhost pop.example.com\nuser a\npasswordeval \"echo x\"\n",
    )
    .unwrap();
    let first = pop3(home)
        .args(["import", "mpop", "--write"])
        .run()
        .expect_code(0);
    assert!(first.stdout.contains("[accounts.a]"), "{}", first.stdout);
    for write in [true, false] {
        let again = pop3(home)
            .args(["import", "mpop"])
            .args(write.then_some("--write"))
            .run()
            .expect_code(0);
        assert_eq!(again.stdout, "", "--write {write}");
        assert!(
            again
                .stderr
                .contains(&format!("nothing new to import from {}", rc.display())),
            "{}",
            again.stderr
        );
    }
}

/// The trial's `pop3 import mpop --host evil.example --write` was accepted and the flag
/// ignored: import uses no connection flag, so each is refused (usage, 64) and nothing written.
#[test]
fn import_refuses_connection_flags() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    fs::write(
        home.join(".mpoprc"),
        "account a\nhost pop.example.com\nuser a\npasswordeval \"echo x\"\n",
    )
    .unwrap();
    for flags in [
        &["--host", "evil.example"][..],
        &["--port", "995"],
        &["--user", "x"],
        &["--tls", "none"],
        &["--account", "a"],
        &["--debug"],
    ] {
        let refused = pop3(home)
            .args(["import", "mpop", "--write"])
            .args(flags)
            .run()
            .expect_code(64);
        assert!(refused.stderr.contains(flags[0]), "{}", refused.stderr);
        assert_eq!(refused.stdout, "");
        assert!(!home.join("pop3.toml").exists(), "{flags:?}");
    }
    // Nor does its help list them.
    let help = pop3(home)
        .args(["import", "-h"])
        .run()
        .expect_code(0)
        .stdout;
    assert!(!help.contains("--host"), "{help}");
    assert!(!help.contains("Connection options"), "{help}");
    // --config is what import writes to; -q is fine too.
    pop3(home)
        .args(["import", "mpop", "-q", "--write"])
        .run()
        .expect_code(0);
    assert!(home.join("pop3.toml").exists());
}

/// The trial's fetchmailrc: `is 'root' here` with an mda using `%T` was imported with `%T` left
/// in the command. Real fetchmail delivers with the file first (it puts `'root'` for `%T`);
/// after the import pop3 delivers through the same command, to the same mbox.
#[test]
fn fetchmail_mda_percent_t_imports_the_local_user_and_fetches() {
    let d = dovecot();
    let user = dovecot().add_user(&[&message("old-1")]);
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let rc = home.join(".fetchmailrc");
    fs::write(
        &rc,
        format!(
            "set no bouncemail\npoll localhost with protocol pop3 and port {}:\n    user '{}' there with password '{}' is 'root' here\n    ssl sslcertfile {} sslcertck\n    keep\n    mda \"/usr/bin/tee -a {}/%T.mbox >/dev/null\"\n",
            d.pop3s_port,
            user.name,
            user.password,
            d.ca_file.display(),
            home.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&rc, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    run_tool(home, "fetchmail", &["--nosyslog"]);
    let mbox = home.join("root.mbox");
    let text = fs::read_to_string(&mbox).unwrap();
    assert_eq!(
        subject_counts(&text, &["old-1"]),
        [1],
        "fetchmail delivered\n{text}"
    );

    arrive(&user, "new-1");
    let written = pop3(home)
        .args(["import", "fetchmail", "--write"])
        .run()
        .expect_code(0);
    assert!(
        written.stdout.contains(&format!(
            "mda = [\"sh\", \"-c\", \"/usr/bin/tee -a {}/'root'.mbox >/dev/null\"]",
            home.display()
        )),
        "{}",
        written.stdout
    );
    assert!(!written.stderr.contains("%T"), "{}", written.stderr);
    pop3(home).args(["fetch-all"]).run().expect_code(0);
    let text = fs::read_to_string(&mbox).unwrap();
    assert_eq!(subject_counts(&text, &["old-1", "new-1"]), [1, 1], "{text}");
}
