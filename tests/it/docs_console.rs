//! The console examples in README.md and docs/*.md are run against the test Dovecot, so a change
//! in pop3's output fails a test until the documentation shows it.
//!
//! **What is checked.** A ```` ```console ```` block whose fence line directly follows a marker
//! comment (invisible on GitHub):
//!
//! * `<!-- check -->`: the block runs in a fresh session;
//! * `<!-- check: NAME -->`: every block of the file with the same NAME shares one session, in
//!   the order of the file (so a second `fetch-all` can show that it fetched nothing).
//!
//! In a block, a line `$ COMMAND` is run by `bash -c` (pipes, `2>&1`, `VAR=value` prefixes and
//! `~` work as in a shell); the lines up to the next `$` are its expected output: stdout and
//! stderr together, in the order the user sees them on a terminal (both go to one pipe), then
//! `[exit N]` when the status is not 0. Trailing blanks are ignored. Wildcards, as in trycmd:
//! `[..]` in a line matches any text within that line, and a line that is only `...` (or `…`)
//! matches any number of lines.
//!
//! **A session** is what the guide's "About the examples" describes: a fresh Dovecot user holding
//! the six demo messages (`tests/fixtures/messages/`, as `scripts/dovecot-sandbox demo` serves
//! them), a temporary HOME (the commands' working directory) with XDG variables under it, and
//! `~/.config/pop3/config.toml` with the one account `demo` (host `localhost`, the pop3s port,
//! the sandbox CA, `password_env = "POP3_DEMO_PASSWORD"`, which is set). `pop3` is the binary
//! under test, first on PATH; the environment is otherwise empty (no user config leaks in).
//!
//! docs/fetch-all.md was written with its own config file (the one it shows: accounts `work`,
//! the session's user, and `lists`, never contacted by a checked example), by a user whose HOME
//! is `/home/bob`; the same session otherwise.
//!
//! **Normalisation.** What differs from run to run is shown in the docs as it was when the docs
//! were written, and translated both ways: in commands the doc values become the real ones, in
//! the output the real values become the doc values:
//!
//! | in the docs | real |
//! |---|---|
//! | `57019` | the sandbox's pop3s (implicit TLS) port |
//! | `46089` | the sandbox's plain pop3 port (STLS) |
//! | `/tmp/pop3-demo.ubrrXo/sandbox` | the sandbox directory (holding `ca.pem`) |
//! | `/home/alice` (fetch-all.md: `/home/bob`) | the session's HOME |
//! | `demo` (fetch-all.md: `work`) as a user name: `--user demo` and `demo@localhost` in commands | the session's Dovecot user |
//! | `6b022ed6` | the mailbox's UIDVALIDITY, the second half of every unique id |
//!
//! Anything else that varies (certificate dates and fingerprint, state file hashes, Maildir file
//! names, timestamps) is written `[..]` in the docs.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::dovecot::{Dovecot, User, dovecot};

/// Doc values of the things that vary (see the module documentation).
const DOC_POP3S_PORT: &str = "57019";
const DOC_POP3_PORT: &str = "46089";
const DOC_SANDBOX: &str = "/tmp/pop3-demo.ubrrXo/sandbox";
const DOC_UIDVALIDITY: &str = "6b022ed6";

/// A command that runs longer than this is killed and reported.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The demo messages, in the order the demo serves them.
const DEMO_MESSAGES: [&str; 6] = [
    "01-plain.eml",
    "02-multipart-alternative.eml",
    "03-html-only.eml",
    "04-attachment.eml",
    "05-encoded-headers.eml",
    "06-malformed-headers.eml",
];

// ------------------------------------------------------------------------------------------------
// Parsing

/// One command of a checked block and the output the docs promise.
#[derive(Debug, Clone)]
struct Step {
    /// 1-based line of the `$` line in the file.
    line: usize,
    command: String,
    expected: Vec<String>,
}

/// A checked console block.
#[derive(Debug, Clone)]
struct Block {
    /// The session name (`None`: a fresh session of its own).
    session: Option<String>,
    steps: Vec<Step>,
}

/// Parses the marker `<!-- check -->` or `<!-- check: NAME -->`; `Some(None)` is the former.
fn marker(line: &str) -> Option<Option<String>> {
    let inner = line
        .trim()
        .strip_prefix("<!--")?
        .strip_suffix("-->")?
        .trim();
    let rest = inner.strip_prefix("check")?;
    if rest.is_empty() {
        return Some(None);
    }
    let name = rest.strip_prefix(':')?.trim();
    Some((!name.is_empty()).then(|| name.to_owned()))
}

/// The checked blocks of a Markdown text. A marker not directly followed by a console fence, or a
/// checked block that does not start with a command, is an error (a marker must never be ignored).
fn checked_blocks(text: &str) -> Result<Vec<Block>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(session) = marker(lines[i]) else {
            i += 1;
            continue;
        };
        let fence_line = i + 1;
        let fence = lines.get(fence_line).copied().unwrap_or_default();
        let indent = fence.len() - fence.trim_start().len();
        if fence.trim() != "```console" {
            return Err(format!(
                "line {}: a check marker must be directly followed by a ```console fence",
                i + 1
            ));
        }
        let mut steps: Vec<Step> = Vec::new();
        let mut j = fence_line + 1;
        loop {
            let Some(raw) = lines.get(j) else {
                return Err(format!(
                    "line {}: console block is not closed",
                    fence_line + 1
                ));
            };
            if raw.trim() == "```" {
                break;
            }
            // Lines of an indented block (in a list item) lose the fence's indentation.
            let cut = raw.len() - raw.trim_start().len();
            let line = &raw[cut.min(indent)..];
            if let Some(command) = line.strip_prefix("$ ") {
                steps.push(Step {
                    line: j + 1,
                    command: command.to_owned(),
                    expected: Vec::new(),
                });
            } else if let Some(step) = steps.last_mut() {
                step.expected.push(line.to_owned());
            } else {
                return Err(format!(
                    "line {}: a checked block must start with a `$ ` command line",
                    j + 1
                ));
            }
            j += 1;
        }
        blocks.push(Block { session, steps });
        i = j + 1;
    }
    Ok(blocks)
}

// ------------------------------------------------------------------------------------------------
// Matching

/// Is `line` the whole-line wildcard?
fn is_any_lines(line: &str) -> bool {
    matches!(line.trim(), "..." | "…")
}

/// Does `actual` match `expected`, where `[..]` in `expected` matches any text?
fn line_matches(expected: &str, actual: &str) -> bool {
    let expected = expected.trim_end();
    let actual = actual.trim_end();
    let pieces: Vec<&str> = expected.split("[..]").collect();
    if pieces.len() == 1 {
        return expected == actual;
    }
    let (first, last) = (pieces[0], pieces[pieces.len() - 1]);
    let Some(mut rest) = actual.strip_prefix(first) else {
        return false;
    };
    for middle in &pieces[1..pieces.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// Does the whole `actual` output match `expected` (with `...` lines)?
fn lines_match(expected: &[String], actual: &[String]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((first, rest)) if is_any_lines(first) => {
            (0..=actual.len()).any(|skip| lines_match(rest, &actual[skip..]))
        }
        Some((first, rest)) => actual
            .split_first()
            .is_some_and(|(line, more)| line_matches(first, line) && lines_match(rest, more)),
    }
}

// ------------------------------------------------------------------------------------------------
// Sessions

/// The setup a file's examples were written with: its config file and the names it shows.
struct Profile {
    /// HOME as the examples show it.
    doc_home: &'static str,
    /// The Dovecot user name as the examples show it.
    doc_user: &'static str,
    /// `~/.config/pop3/config.toml`, from the real port, user name and CA file.
    config: fn(u16, &str, &Path) -> String,
}

/// README, guide, troubleshooting: the demo's config file, as the guide shows it.
const DEMO: Profile = Profile {
    doc_home: "/home/alice",
    doc_user: "demo",
    config: |port, user, ca| {
        format!(
            "default_account = \"demo\"\n\n[accounts.demo]\nhost = \"localhost\"\nport = {port}\n\
             user = \"{user}\"\ntls = \"implicit\"\nca_file = \"{}\"\n\
             password_env = \"POP3_DEMO_PASSWORD\"\n",
            ca.display()
        )
    },
};

/// docs/fetch-all.md: its two accounts `work` (the session's user) and `lists`, as it shows them.
const WORK_AND_LISTS: Profile = Profile {
    doc_home: "/home/bob",
    doc_user: "work",
    config: |port, user, ca| {
        format!(
            "default_account = \"work\"\n\n[defaults]\nhost = \"localhost\"\nport = {port}\n\
             ca_file = \"{}\"\npassword_env = \"POP3_DEMO_PASSWORD\"\n\n\
             [accounts.work]\nuser = \"{user}\"\n\n\
             [accounts.lists]\nuser = \"lists\"\nmbox = \"~/mail/lists\"\nmax_message_size = \"1K\"\n",
            ca.display()
        )
    },
};

/// The profile of a documentation file.
fn profile(file: &str) -> &'static Profile {
    match file {
        "docs/fetch-all.md" => &WORK_AND_LISTS,
        _ => &DEMO,
    }
}

/// A fresh demo user, a temporary HOME with the config file, and `pop3` on PATH.
struct Session {
    profile: &'static Profile,
    _root: tempfile::TempDir,
    home: PathBuf,
    bin: PathBuf,
    user: User,
    uidvalidity: String,
}

impl Session {
    fn new(profile: &'static Profile) -> Session {
        let d = dovecot();
        let messages: Vec<Vec<u8>> = DEMO_MESSAGES.iter().map(|m| Dovecot::fixture(m)).collect();
        let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        let user = d.add_user(&refs);

        let root = tempfile::tempdir().expect("temp dir for a docs session");
        let home = root.path().join("home");
        let bin = root.path().join("bin");
        std::fs::create_dir_all(home.join(".config/pop3")).unwrap();
        std::fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_pop3"), bin.join("pop3")).unwrap();
        let config = (profile.config)(d.pop3s_port, &user.name, &d.ca_file);
        std::fs::write(home.join(".config/pop3/config.toml"), config).unwrap();
        write_scenario_files(&home, &user);

        let mut session = Session {
            profile,
            _root: root,
            home,
            bin,
            user,
            uidvalidity: String::new(),
        };
        // The UIDVALIDITY half of the unique ids (pop3_uidl_format = %08Xu%08Xv).
        let (code, out) = session.run("pop3 list --json");
        let listing: serde_json::Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("pop3 list --json ({code}): {e}\n{out}"));
        let uid = listing[0]["uid"].as_str().unwrap_or_default();
        assert_eq!(uid.len(), 16, "unexpected unique id {uid:?}");
        session.uidvalidity = uid[8..].to_owned();
        session
    }

    /// The command with the doc values replaced by the real ones.
    fn real_command(&self, command: &str) -> String {
        let d = dovecot();
        let command = replace_number(command, DOC_POP3S_PORT, &d.pop3s_port.to_string());
        let command = replace_number(&command, DOC_POP3_PORT, &d.pop3_port.to_string());
        command
            .replace(DOC_SANDBOX, &d.dir.to_string_lossy())
            .replace(DOC_UIDVALIDITY, &self.uidvalidity)
            .replace(
                &format!("--user {}", self.profile.doc_user),
                &format!("--user {}", self.user.name),
            )
            // State file names start with user@host.
            .replace(
                &format!("{}@localhost", self.profile.doc_user),
                &format!("{}@localhost", self.user.name),
            )
    }

    /// The output with the real values replaced by the doc values.
    fn doc_output(&self, output: &str) -> String {
        let d = dovecot();
        let output = output
            .replace(&*self.home.to_string_lossy(), self.profile.doc_home)
            .replace(&*d.dir.to_string_lossy(), DOC_SANDBOX)
            .replace(&self.user.name, self.profile.doc_user);
        let output = if self.uidvalidity.is_empty() {
            output
        } else {
            output.replace(&self.uidvalidity, DOC_UIDVALIDITY)
        };
        let output = replace_number(&output, &d.pop3s_port.to_string(), DOC_POP3S_PORT);
        replace_number(&output, &d.pop3_port.to_string(), DOC_POP3_PORT)
    }

    /// Runs `command` (already real) with bash in HOME; returns the status and stdout+stderr.
    fn run(&self, command: &str) -> (i32, String) {
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into())
        );
        let (reader, writer) = std::io::pipe().expect("pipe");
        let mut child = Command::new("bash")
            .arg("-c")
            .arg(command)
            .current_dir(&self.home)
            .env_clear()
            .env("PATH", path)
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("XDG_STATE_HOME", self.home.join(".local/state"))
            .env("XDG_DATA_HOME", self.home.join(".local/share"))
            .env("NO_COLOR", "1")
            .env("LC_ALL", "C.UTF-8")
            .env("POP3_DEMO_PASSWORD", &self.user.password)
            .stdin(Stdio::null())
            .stdout(writer.try_clone().expect("pipe"))
            .stderr(writer)
            // Its own process group, so a timeout kills the whole pipeline.
            .process_group(0)
            .spawn()
            .expect("spawn bash");
        let collector = std::thread::spawn(move || {
            let mut reader = reader;
            let mut bytes = Vec::new();
            let _ = reader.read_to_end(&mut bytes);
            bytes
        });
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for bash") {
                break status;
            }
            if started.elapsed() > COMMAND_TIMEOUT {
                // SAFETY: plain syscall on the process group we created.
                unsafe {
                    libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL);
                }
                let _ = child.wait();
                panic!("`{command}` did not finish within {COMMAND_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let bytes = collector.join().expect("output collector");
        (
            status.code().unwrap_or(-1),
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    /// Runs a step; `Err` holds a report of the difference.
    fn check(&self, file: &str, step: &Step) -> Result<(), String> {
        let (code, output) = self.run(&self.real_command(&step.command));
        let mut actual: Vec<String> = self
            .doc_output(&output)
            .lines()
            .map(|l| l.trim_end().to_owned())
            .collect();
        if code != 0 {
            actual.push(format!("[exit {code}]"));
        }
        if lines_match(&step.expected, &actual) {
            return Ok(());
        }
        Err(format!(
            "{file}:{line}: `$ {command}` printed something else than the docs say.\n\
             --- expected (docs)\n{expected}\n--- actual (normalised)\n{actual}\n",
            line = step.line,
            command = step.command,
            expected = step.expected.join("\n"),
            actual = actual.join("\n"),
        ))
    }
}

/// The config files that troubleshooting examples name with `--config`, written into HOME.
fn write_scenario_files(home: &Path, user: &User) {
    let d = dovecot();
    let account = |name: &str, extra: &str| {
        format!(
            "[accounts.{name}]\nhost = \"localhost\"\nport = {}\nuser = \"{}\"\n{extra}",
            d.pop3s_port, user.name
        )
    };
    let ca = format!("ca_file = \"{}\"\n", d.ca_file.display());
    let env = "password_env = \"POP3_DEMO_PASSWORD\"\n";
    let files = [
        (
            "pwfalse.toml",
            account("demo", &format!("{ca}password_command = [\"false\"]\n")),
        ),
        (
            "pwpass.toml",
            account(
                "demo",
                &format!("{ca}password_command = [\"pass\", \"show\", \"mail/work\"]\n"),
            ),
        ),
        (
            "typo.toml",
            account(
                "demo",
                &format!("{ca}{env}passwd_env = \"POP3_DEMO_PASSWORD\"\n"),
            ),
        ),
        (
            "tls.toml",
            [
                account(
                    "pinned",
                    &format!("tls_fingerprint = \"{}\"\n{env}", fingerprint()),
                ),
                account(
                    "wrong-pin",
                    &format!("tls_fingerprint = \"{}\"\n{env}", "AB".repeat(32)),
                ),
                account(
                    "by-address",
                    &format!("{ca}tls_server_name = \"localhost\"\n{env}"),
                )
                .replace("host = \"localhost\"", "host = \"127.0.0.2\""),
            ]
            .join("\n"),
        ),
    ];
    for (name, text) in files {
        std::fs::write(home.join(name), text).unwrap();
    }
}

/// The SHA-256 fingerprint of the sandbox's server certificate, as `login-check` prints it.
fn fingerprint() -> &'static str {
    static FINGERPRINT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    FINGERPRINT.get_or_init(|| {
        let d = dovecot();
        let user = d.add_user(&[]);
        let out = crate::support::cli::Pop3::new()
            .server("localhost", d.pop3s_port, Some(&d.ca_file))
            .login(&user.name, &user.password)
            .args(["login-check"])
            .run()
            .expect_code(0);
        out.stdout
            .lines()
            .find_map(|l| l.strip_prefix("SHA-256:"))
            .unwrap_or_else(|| panic!("no SHA-256 line in\n{}", out.stdout))
            .trim()
            .to_owned()
    })
}

/// Replaces `from` by `to` where `from` is a whole number (not part of a longer run of digits).
fn replace_number(text: &str, from: &str, to: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(from) {
        let before = rest[..at].chars().next_back();
        let after = rest[at + from.len()..].chars().next();
        out.push_str(&rest[..at]);
        if before.is_some_and(|c| c.is_ascii_digit()) || after.is_some_and(|c| c.is_ascii_digit()) {
            out.push_str(from);
        } else {
            out.push_str(to);
        }
        rest = &rest[at + from.len()..];
    }
    out.push_str(rest);
    out
}

// ------------------------------------------------------------------------------------------------
// Running the docs

/// The files whose console examples are checked, relative to the repository.
const CHECKED_FILES: [&str; 6] = [
    "README.md",
    "docs/guide.md",
    "docs/troubleshooting.md",
    "docs/cron-and-systemd.md",
    "docs/fetch-all.md",
    "docs/switching.md",
];

fn read_doc(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Runs the blocks of `file` in order; returns the reports of the steps that differ.
fn run_blocks(file: &str, blocks: &[Block]) -> Vec<String> {
    let mut named: HashMap<String, Session> = HashMap::new();
    let mut failures = Vec::new();
    for block in blocks {
        let mut fresh = None;
        let session = match &block.session {
            Some(name) => named
                .entry(name.clone())
                .or_insert_with(|| Session::new(profile(file))),
            None => fresh.insert(Session::new(profile(file))),
        };
        for step in &block.steps {
            if let Err(report) = session.check(file, step) {
                failures.push(report);
            }
        }
    }
    failures
}

/// Checks every marked example of `file` against the test Dovecot.
fn check_file(file: &str) {
    let blocks = checked_blocks(&read_doc(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    let failures = run_blocks(file, &blocks);
    assert!(
        failures.is_empty(),
        "{} console example(s) in {file} differ from pop3's real output; update the docs \
         (or fix pop3 if the output is a bug):\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn console_examples_in_readme() {
    check_file("README.md");
}

#[test]
fn console_examples_in_guide() {
    check_file("docs/guide.md");
}

#[test]
fn console_examples_in_troubleshooting() {
    check_file("docs/troubleshooting.md");
}

#[test]
fn console_examples_in_cron_and_systemd() {
    check_file("docs/cron-and-systemd.md");
}

#[test]
fn console_examples_in_fetch_all() {
    check_file("docs/fetch-all.md");
}

#[test]
fn console_examples_in_switching() {
    check_file("docs/switching.md");
}

/// Markers only in files that a test above runs, and enough of them that the docs stay covered.
#[test]
fn docs_have_enough_checked_console_examples() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap().flatten() {
        files.push(entry.path());
    }
    let mut commands = 0;
    for path in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
    {
        let relative = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(path).unwrap();
        let blocks = checked_blocks(&text).unwrap_or_else(|e| panic!("{relative}: {e}"));
        if !blocks.is_empty() {
            assert!(
                CHECKED_FILES.contains(&relative.as_str()),
                "{relative} has checked console examples but no test runs them: add it to CHECKED_FILES and a test"
            );
        }
        commands += blocks.iter().map(|b| b.steps.len()).sum::<usize>();
    }
    assert!(
        commands >= 25,
        "only {commands} checked console commands in the docs"
    );
}

/// The proof that the docs cannot drift: a checked example passes as written, and the same
/// example with one expected line changed fails, reported with its place, the expected and the
/// actual output.
#[test]
fn a_drifted_console_example_fails() {
    let file = "docs/example.md";
    let doc = "<!-- check: drift -->\n```console\n$ pop3 stat\n6 messages (6 new), 4.9 KiB\n\
               $ pop3 read 9\npop3: no message 9: the mailbox has messages 1 to 6\n[exit 65]\n```\n";
    let blocks = checked_blocks(doc).unwrap();
    let failures = run_blocks(file, &blocks);
    assert!(failures.is_empty(), "{failures:?}");

    // As the docs read before stat counted new messages.
    let drifted = doc.replace("6 messages (6 new), 4.9 KiB", "6 messages, 4.9 KiB");
    let failures = run_blocks(file, &checked_blocks(&drifted).unwrap());
    assert_eq!(failures.len(), 1, "{failures:?}");
    let report = &failures[0];
    for needle in [
        "docs/example.md:3: `$ pop3 stat`",
        "--- expected (docs)\n6 messages, 4.9 KiB\n",
        "--- actual (normalised)\n6 messages (6 new), 4.9 KiB\n",
    ] {
        assert!(report.contains(needle), "{needle:?} not in\n{report}");
    }
}

#[test]
fn console_matching_wildcards() {
    let lines = |text: &str| -> Vec<String> { text.lines().map(str::to_owned).collect() };
    assert!(line_matches("SHA-256:      [..]", "SHA-256:      E8:3E"));
    assert!(line_matches("a [..] c [..] e", "a b c d e"));
    assert!(line_matches("[..]", ""));
    assert!(!line_matches("a [..] c", "a b d"));
    assert!(
        !line_matches("ab[..]ba", "aba"),
        "prefix and suffix overlap"
    );
    assert!(!line_matches("6 messages", "6 messages (6 new)"));
    assert!(line_matches("trailing  ", "trailing"));
    assert!(lines_match(&lines("a\n...\nz"), &lines("a\nb\nc\nz")));
    assert!(lines_match(&lines("a\n…\nz"), &lines("a\nz")));
    assert!(lines_match(
        &lines("...\n[exit 65]"),
        &lines("x\n[exit 65]")
    ));
    assert!(!lines_match(&lines("a\n...\nz"), &lines("a\nb\nz\ny")));
    assert!(!lines_match(&lines("a"), &lines("a\n[exit 1]")));
    assert!(!lines_match(&lines("a\nb"), &lines("a")));
}

#[test]
fn console_marker_and_block_parsing() {
    let text = "x\n<!-- check: demo -->\n```console\n$ pop3 stat\n6 messages\n\n$ pop3 list\n```\n\
                <!-- check -->\n  ```console\n  $ a\n    b\n  ```\n```console\n$ not checked\n```\n";
    let blocks = checked_blocks(text).unwrap();
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[0].session.as_deref(), Some("demo"));
    assert_eq!(blocks[0].steps.len(), 2);
    assert_eq!(blocks[0].steps[0].line, 4);
    assert_eq!(blocks[0].steps[0].expected, ["6 messages", ""]);
    assert_eq!(blocks[1].session, None);
    assert_eq!(blocks[1].steps[0].command, "a");
    assert_eq!(blocks[1].steps[0].expected, ["  b"]);
    assert!(checked_blocks("<!-- check -->\n\n```console\n$ a\n```\n").is_err());
    assert!(checked_blocks("<!-- check -->\n```console\noutput\n```\n").is_err());
    assert!(checked_blocks("<!-- check -->\n```sh\n$ a\n```\n").is_err());
}
