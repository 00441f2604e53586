//! `pop3 completions SHELL` and `pop3 man`: generated from the same clap definitions as the
//! parser itself, so they can never disagree with it.

use std::io::Write;

use crate::cli;

/// Writes the completion script for `shell` to stdout.
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    // Generate into memory: clap_complete panics when its writer fails (`| head`).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cli::command(), "pop3", &mut script);
    let script = complete_account_names(shell, &String::from_utf8_lossy(&script));
    let mut out = crate::ui::stdout();
    out.write_all(script.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Runs `help [COMMAND...]`: the long help of pop3 or of the named subcommand, on stdout.
pub fn help(path: &[String]) -> anyhow::Result<()> {
    let mut command = cli::command();
    command.build(); // names subcommands "pop3 NAME" in their usage lines
    for name in path {
        let Some(sub) = command.find_subcommand(name) else {
            return Err(super::CommandError::NoSuchSubcommand {
                bin: command.get_bin_name().unwrap_or("pop3").to_owned(),
                name: name.clone(),
            }
            .into());
        };
        command = sub.clone();
    }
    let help = command.render_long_help().to_string();
    let mut out = crate::ui::stdout();
    out.write_all(help.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// The bash function that lists the account names, from the config file the command line
/// being completed names with `--config` (bash splits `--config=FILE` at the `=`), if any. The
/// words keep the quoting typed (`"a b"`, `'a b'`, `a\ b`), which is taken off.
const BASH_ACCOUNT_NAMES: &str = r#"_pop3_account_names() {
    local i value config=()
    for ((i = 1; i < ${#COMP_WORDS[@]}; i++)); do
        if [[ ${COMP_WORDS[i]} == --config ]]; then
            value=${COMP_WORDS[i+1]}
            [[ $value == = ]] && value=${COMP_WORDS[i+2]}
            case $value in
                \'*\') value=${value:1:${#value}-2} ;;
                \"*\") value=${value:1:${#value}-2} ;;
                *) value=${value//\\ / } ;;
            esac
            config=(--config "${value/#\~/$HOME}")
        fi
    done
    "${COMP_WORDS[0]}" "${config[@]}" accounts --names 2>/dev/null
}

"#;

/// The zsh function that lists the account names, from the config file the command line names
/// with `--config FILE` or `--config=FILE`, if any (its quoting taken off: `(Q)`).
const ZSH_ACCOUNT_NAMES: &str = r#"
(( $+functions[_pop3_account_names] )) ||
_pop3_account_names() {
    local -a names config
    local i
    for (( i = 2; i < CURRENT; i++ )); do
        case $words[i] in
            (--config) config=(--config "${${(Q)words[i+1]}/#\~/$HOME}") ;;
            (--config=*) config=(--config "${${(Q)${words[i]#--config=}}/#\~/$HOME}") ;;
        esac
    done
    names=(${(f)"$(${words[1]} $config accounts --names 2>/dev/null)"})
    compadd -a names
}
"#;

/// The fish function that lists the account names, from the config file the command line
/// names with `--config FILE` or `--config=FILE`, if any.
const FISH_ACCOUNT_NAMES: &str = r#"function __pop3_account_names
    set -l tokens (commandline -opc)
    set -l config
    for i in (seq (count $tokens))
        switch $tokens[$i]
            case --config
                set config --config (string replace -r '^~' $HOME -- $tokens[(math $i + 1)])
            case '--config=*'
                set config --config (string replace -r '^--config=' '' -- $tokens[$i] | string replace -r '^~' $HOME)
        end
    end
    $tokens[1] $config accounts --names 2>/dev/null
end

"#;

/// Makes the value of `-a/--account` complete to the configured account names, which the
/// script asks `pop3 accounts --names` for at completion time (clap only knows static values).
fn complete_account_names(shell: clap_complete::Shell, script: &str) -> String {
    use clap_complete::Shell;
    let mut out = String::with_capacity(script.len() + 512);
    let mut account_case = false;
    match shell {
        Shell::Bash => out.push_str(BASH_ACCOUNT_NAMES),
        Shell::Fish => out.push_str(FISH_ACCOUNT_NAMES),
        _ => {}
    }
    for line in script.lines() {
        let trimmed = line.trim();
        let line = match shell {
            // `-a)` / `--account)` cases are followed by a file-name completion line.
            Shell::Bash if account_case && trimmed == r#"COMPREPLY=($(compgen -f "${cur}"))"# => {
                line.replace(
                    r#"compgen -f "${cur}""#,
                    r#"compgen -W "$(_pop3_account_names)" -- "${cur}""#,
                )
            }
            Shell::Zsh if trimmed.starts_with("'-a+[") || trimmed.starts_with("'--account=[") => {
                line.replace(":NAME:_default'", ":NAME:_pop3_account_names'")
            }
            Shell::Fish if line.contains(" -s a -l account ") => {
                format!("{line} -f -a \"(__pop3_account_names)\"")
            }
            _ => line.to_owned(),
        };
        account_case = matches!(trimmed, "-a)" | "--account)");
        out.push_str(&line);
        out.push('\n');
        if shell == Shell::Zsh && trimmed == "#compdef pop3" {
            out.push_str(ZSH_ACCOUNT_NAMES);
        }
    }
    out
}

/// Writes one man page to stdout: the program, its global options, then a section per
/// subcommand with its own description and options.
pub fn man() -> anyhow::Result<()> {
    let command = cli::command();
    let page = clap_mangen::Man::new(command.clone());
    let mut text = Vec::new();
    page.render_title(&mut text)?;
    page.render_name_section(&mut text)?;
    page.render_synopsis_section(&mut text)?;
    page.render_description_section(&mut text)?;
    page.render_options_section(&mut text)?;
    render_configuration_sections(&mut text)?;
    for sub in command.get_subcommands() {
        let name = sub.get_name();
        if name == "help" {
            continue;
        }
        writeln!(text, ".SH \"POP3 {}\"", name.to_uppercase())?;
        let about = sub
            .get_long_about()
            .or_else(|| sub.get_about())
            .map(|a| a.to_string())
            .unwrap_or_default();
        writeln!(text, "{}", roff_escape(&about))?;
        // The global and connection flags have their own sections above.
        let sub_page = clap_mangen::Man::new(own_flags_only(sub).bin_name(format!("pop3 {name}")));
        let mut synopsis = Vec::new();
        sub_page.render_synopsis_section(&mut synopsis)?;
        // Demote the subcommand's own headings so they nest under its section.
        let synopsis = String::from_utf8_lossy(&synopsis).replace(".SH ", ".SS ");
        text.extend_from_slice(synopsis.as_bytes());
        let mut options = Vec::new();
        sub_page.render_options_section(&mut options)?;
        let options = String::from_utf8_lossy(&options).replace(".SH ", ".SS ");
        text.extend_from_slice(options.as_bytes());
        // Nested subcommands (`config check`) get a subsection each.
        for nested in sub.get_subcommands() {
            let nested_name = format!("{name} {}", nested.get_name());
            writeln!(text, ".SS \"pop3 {nested_name}\"")?;
            let about = nested
                .get_long_about()
                .or_else(|| nested.get_about())
                .map(|a| a.to_string())
                .unwrap_or_default();
            writeln!(text, "{}", roff_escape(&about))?;
            let nested_page = clap_mangen::Man::new(
                own_flags_only(nested).bin_name(format!("pop3 {nested_name}")),
            );
            let mut options = Vec::new();
            nested_page.render_options_section(&mut options)?;
            let options = String::from_utf8_lossy(&options).replace(".SH OPTIONS", ".PP\nOptions:");
            text.extend_from_slice(options.as_bytes());
        }
    }
    writeln!(
        text,
        ".SH \"EXIT STATUS\"\n{}",
        crate::exit::ExitCode::man_table()
    )?;
    page.render_version_section(&mut text)?;
    let mut out = crate::ui::stdout();
    out.write_all(&text)?;
    out.flush()?;
    Ok(())
}

/// CONFIGURATION, ENVIRONMENT and FILES: where settings come from, in the README's words.
fn render_configuration_sections(text: &mut Vec<u8>) -> std::io::Result<()> {
    writeln!(
        text,
        r#".SH CONFIGURATION
pop3 reads a TOML file with named accounts under \fB[accounts.NAME]\fR and shared keys under \fB[defaults]\fR.
Command-line flags override the account, which overrides \fB[defaults]\fR.
\fBdefault_account\fR names the account used without \fB-a\fR (the only account when there is one).
An account needs \fBhost\fR and \fBuser\fR; the password comes from at most one of
\fBpassword_command\fR, \fBpassword_env\fR, \fBpassword_file\fR or \fBpassword\fR, else it is asked on the terminal.
Other keys: {}. Unknown keys are errors.
.PP
\fBpop3 config check\fR checks the file offline (every account resolves; CA, certificate and password files
exist; password, token and MDA commands can be run) and shows an account's effective settings with secrets
masked; \fBpop3 config check \-\-connect\fR also logs in to every account and reports one line per account.
.SH ENVIRONMENT
.TP
\fBPOP3_CONFIG\fR
The config file, when \fB\-\-config\fR is not given.
.TP
\fBXDG_CONFIG_HOME\fR, \fBXDG_STATE_HOME\fR, \fBHOME\fR
Where the default config file and the fetch-all state live.
.TP
\fBSSL_CERT_FILE\fR
A bundle of root certificates to use instead of the system's.
.TP
\fBPOP3_PAGER\fR, \fBPAGER\fR, \fBLESS\fR
The pager for a message taller than the terminal in \fBread\fR and \fBbrowse\fR (else \fBless\fR,
with \fBLESS=FRX\fR when \fBLESS\fR is unset); empty or \fBcat\fR means none, as does \fB\-\-no\-pager\fR.
.SH FILES
.TP
\fI~/.config/pop3/config.toml\fR
The default config file (\fB$XDG_CONFIG_HOME/pop3/config.toml\fR).
.TP
\fI~/.local/state/pop3/\fR
The per-account state of \fBfetch-all\fR (the unique ids already delivered) and its lock files;
\fBstate_dir\fR moves it.
.TP
\fI~/Maildir\fR
Where \fBfetch-all\fR delivers by default.
.PP
To install this page: \fBmkdir \-p ~/.local/share/man/man1 && pop3 man > ~/.local/share/man/man1/pop3.1\fR"#,
        other_keys()
    )
}

/// The keys not named in the paragraph above, from the config's own list (so a new key is in
/// the page without anyone remembering to add it).
fn other_keys() -> String {
    const NAMED: &[&str] = &[
        "host",
        "user",
        "password_command",
        "password_env",
        "password_file",
        "password",
    ];
    let keys: Vec<String> = crate::config::keys()
        .iter()
        .filter(|key| !NAMED.contains(key))
        .map(|key| format!("\\fB{key}\\fR"))
        .collect();
    keys.join(", ")
}

/// `command` with the global and connection flags hidden, so that its page shows its own.
fn own_flags_only(command: &clap::Command) -> clap::Command {
    command.clone().mut_args(|arg| {
        if matches!(arg.get_help_heading(), Some(cli::GLOBAL | cli::CONNECTION)) {
            arg.hide(true)
        } else {
            arg
        }
    })
}

/// Escapes text for roff: a leading dot or quote would be read as a request.
fn roff_escape(text: &str) -> String {
    text.lines()
        .map(|line| {
            let line = line.replace('\\', "\\\\");
            if line.starts_with('.') || line.starts_with('\'') {
                format!("\\&{line}")
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}
