//! `pop3 completions SHELL` and `pop3 man`: generated from the same clap definitions as the
//! parser itself, so they can never disagree with it.

use std::io::Write;

use clap::CommandFactory;

use crate::cli::Cli;

/// Writes the completion script for `shell` to stdout.
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    // Generate into memory: clap_complete panics when its writer fails (`| head`).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "pop3", &mut script);
    let mut out = std::io::stdout().lock();
    out.write_all(&script)?;
    out.flush()?;
    Ok(())
}

/// Writes one man page to stdout: the program, its global options, then a section per
/// subcommand with its own description and options.
pub fn man() -> anyhow::Result<()> {
    let command = Cli::command();
    let page = clap_mangen::Man::new(command.clone());
    let mut text = Vec::new();
    page.render_title(&mut text)?;
    page.render_name_section(&mut text)?;
    page.render_synopsis_section(&mut text)?;
    page.render_description_section(&mut text)?;
    page.render_options_section(&mut text)?;
    for sub in command.get_subcommands() {
        let name = sub.get_name();
        writeln!(text, ".SH \"POP3 {}\"", name.to_uppercase())?;
        let about = sub
            .get_long_about()
            .or_else(|| sub.get_about())
            .map(|a| a.to_string())
            .unwrap_or_default();
        writeln!(text, "{}", roff_escape(&about))?;
        let sub_page = clap_mangen::Man::new(sub.clone().bin_name(format!("pop3 {name}")));
        let mut synopsis = Vec::new();
        sub_page.render_synopsis_section(&mut synopsis)?;
        // Demote the subcommand's own headings so they nest under its section.
        let synopsis = String::from_utf8_lossy(&synopsis).replace(".SH ", ".SS ");
        text.extend_from_slice(synopsis.as_bytes());
        let mut options = Vec::new();
        sub_page.render_options_section(&mut options)?;
        let options = String::from_utf8_lossy(&options).replace(".SH ", ".SS ");
        text.extend_from_slice(options.as_bytes());
    }
    writeln!(
        text,
        ".SH \"EXIT STATUS\"\n0 success; 64 usage; 65 no such message; 68 unknown host; 69 unavailable; \
         70 internal error; 74 local I/O error; 75 temporary failure; 76 protocol or TLS error; \
         77 login refused; 78 configuration error."
    )?;
    page.render_version_section(&mut text)?;
    let mut out = std::io::stdout().lock();
    out.write_all(&text)?;
    out.flush()?;
    Ok(())
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
