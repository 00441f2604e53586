//! Every TOML example in the README and in docs/ is a config file a user may copy: each must
//! parse, and each account in it must resolve, so the documentation cannot rot.

use std::path::{Path, PathBuf};

fn markdown_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    if let Ok(entries) = std::fs::read_dir(root.join("docs")) {
        for entry in entries.flatten() {
            if entry.path().extension().is_some_and(|e| e == "md") {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    files
}

/// The ```toml blocks of a markdown text, with the line each starts on.
fn toml_blocks(text: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        match &mut current {
            None if trimmed.starts_with("```toml") => current = Some((index + 2, String::new())),
            Some(_) if trimmed.starts_with("```") => blocks.extend(current.take()),
            Some((_, block)) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

#[test]
fn every_toml_example_in_the_docs_parses_and_resolves() {
    let mut checked = 0;
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        for (line, block) in toml_blocks(&text) {
            let place = format!("{}:{line}", file.display());
            let parsed = pop3::config::parse(&block, &file)
                .unwrap_or_else(|e| panic!("{place}: example does not parse: {e}"));
            let loaded = pop3::config::LoadedConfig {
                file: parsed.clone(),
                path: Some(file.clone()),
                warnings: Vec::new(),
            };
            for name in parsed.accounts.keys() {
                loaded
                    .resolve(Some(name), pop3::config::Settings::default())
                    .unwrap_or_else(|e| panic!("{place}: account {name}: {e}"));
            }
            checked += 1;
        }
    }
    assert!(checked >= 1, "no TOML examples found");
}
