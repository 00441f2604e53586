//! `accounts`, `config check`, `completions`, `man`, and behaviour in a shell pipeline.

use std::path::Path;
use std::process::Command;

use crate::support::cli::Pop3;

const SUBCOMMANDS: [&str; 12] = [
    "login-check",
    "stat",
    "list",
    "headers",
    "read",
    "delete",
    "browse",
    "fetch-all",
    "accounts",
    "config",
    "completions",
    "man",
];

#[test]
fn completions_are_generated_for_every_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let outcome = Pop3::new()
            .args(["completions", shell])
            .run()
            .expect_code(0);
        for sub in ["fetch-all", "login-check", "headers"] {
            assert!(outcome.stdout.contains(sub), "{shell} lacks {sub}");
        }
    }
    let bash = Pop3::new().args(["completions", "bash"]).run().stdout;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pop3.bash");
    std::fs::write(&file, bash).unwrap();
    let status = Command::new("bash").arg("-n").arg(&file).status().unwrap();
    assert!(status.success(), "bash -n rejects the completion script");
}

#[test]
fn the_man_page_covers_every_subcommand() {
    let outcome = Pop3::new().args(["man"]).run().expect_code(0);
    assert!(outcome.stdout.starts_with(".ie") || outcome.stdout.contains(".TH pop3 1"));
    for sub in SUBCOMMANDS {
        let heading = format!(".SH \"POP3 {}\"", sub.to_uppercase());
        assert!(outcome.stdout.contains(&heading), "no section for {sub}");
    }
    assert!(outcome.stdout.contains("EXIT STATUS"));
    if Path::new("/usr/bin/man").exists() {
        let dir = tempfile::tempdir().unwrap();
        let page = dir.path().join("pop3.1");
        std::fs::write(&page, &outcome.stdout).unwrap();
        let rendered = Command::new("man")
            .arg("-l")
            .arg(&page)
            .env("MANWIDTH", "80")
            .output()
            .unwrap();
        assert!(rendered.status.success());
        assert!(String::from_utf8_lossy(&rendered.stdout).contains("POP3 FETCH-ALL"));
    }
}

#[test]
fn accounts_and_config_check_mask_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "default_account = \"b\"\n[accounts.a]\nhost = \"h1\"\nuser = \"u1\"\npassword = \"hunter2\"\n\
         [accounts.b]\nhost = \"h2\"\nuser = \"u2\"\ntls = \"starttls\"\npassword_command = [\"pass\", \"show\", \"x\"]\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    let run = |args: &[&str]| {
        Pop3::new()
            .args([Path::new("--config"), &config])
            .args(args)
            .run()
    };
    let accounts = run(&["accounts"]).expect_code(0);
    assert_eq!(
        accounts.stdout,
        "  a  u1@h1 port 995, tls implicit\n* b  u2@h2 port 110, tls starttls\n"
    );
    let check = run(&["-a", "a", "config", "check"]).expect_code(0);
    assert!(check.stdout.contains("ok, 2 accounts"), "{}", check.stdout);
    assert!(
        check.stdout.contains("password                 \"***\""),
        "{}",
        check.stdout
    );
    assert!(!check.stdout.contains("hunter2"));
    let check = run(&["config", "check"]).expect_code(0);
    assert!(
        check
            .stdout
            .contains("password_command         [\"pass\", \"show\", \"x\"]"),
        "{}",
        check.stdout
    );

    std::fs::write(
        &config,
        "[accounts.a]\nhost = \"h\"\nuser = \"u\"\ntimeout = 0\n[accounts.b]\nhost = \"h\"\n",
    )
    .unwrap();
    let check = run(&["config", "check"]).expect_code(78);
    assert!(
        check.stderr.contains("timeout must be at least 1 second"),
        "{}",
        check.stderr
    );
    assert!(
        check.stderr.contains("\"b\" has no user"),
        "{}",
        check.stderr
    );
    std::fs::write(&config, "[accounts.a]\nhost = \"h\"\nusr = \"u\"\n").unwrap();
    let check = run(&["config", "check"]).expect_code(78);
    assert!(
        check.stderr.contains("config.toml:3: unknown key `usr`"),
        "{}",
        check.stderr
    );
}

#[test]
fn a_closed_pipe_is_not_an_error() {
    use std::os::fd::FromRawFd;
    // A pipe whose reader is already gone: every write fails with EPIPE, as with `| head`.
    let mut fds = [0; 2];
    // SAFETY: pipe fills the two descriptors, which are owned below.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both descriptors were just created and are owned only here.
    let (reader, writer) = unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    };
    drop(reader);
    for args in [&["completions", "bash"][..], &["man"]] {
        let output = Command::new(env!("CARGO_BIN_EXE_pop3"))
            .args(args)
            .stdout(writer.try_clone().unwrap())
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
