//! Every setting either service reads is documented: each environment variable of the services' configuration
//! structs (followed through every flattened part) has a row in `docs/configuration.md` and a line in
//! `.env.example`, and neither names a variable no service reads. No server is needed.

use std::collections::BTreeSet;

/// The environment variables a configuration struct reads, as clap knows them.
fn read_by<T: clap::Args>() -> BTreeSet<String> {
    T::augment_args(clap::Command::new("settings"))
        .get_arguments()
        .filter_map(|arg| arg.get_env().map(|env| env.to_string_lossy().into_owned()))
        .collect()
}

fn repository_file(path: &str) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn is_variable(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// The variables in the first column of the document's tables (`` | `NAME` | … ``).
fn documented(markdown: &str) -> BTreeSet<String> {
    markdown
        .lines()
        .filter_map(|line| line.strip_prefix("| `")?.split_once('`'))
        .map(|(name, _)| name.to_owned())
        .filter(|name| is_variable(name))
        .collect()
}

/// The variables `.env.example` sets or shows commented out (`NAME=…`, `#NAME=…`, `# NAME=…`).
fn examples(env_file: &str) -> BTreeSet<String> {
    env_file
        .lines()
        .map(|line| line.trim_start_matches('#').trim_start())
        .filter_map(|line| line.split_once('='))
        .map(|(name, _)| name.to_owned())
        .filter(|name| is_variable(name))
        .collect()
}

#[test]
fn every_setting_the_services_read_is_documented_and_nothing_else() {
    let mut read = read_by::<command_service::config::Config>();
    read.extend(read_by::<query_service::config::Config>());
    assert!(read.len() > 30 && read.contains("PROJECTOR_PARTITIONS"), "clap's view of the settings: {read:?}");
    let docs = documented(&repository_file("docs/configuration.md"));
    let example = examples(&repository_file(".env.example"));
    assert_eq!(read.difference(&docs).collect::<Vec<_>>(), Vec::<&String>::new(), "read but not documented");
    assert_eq!(docs.difference(&read).collect::<Vec<_>>(), Vec::<&String>::new(), "documented but not read");
    assert_eq!(read.difference(&example).collect::<Vec<_>>(), Vec::<&String>::new(), "not in .env.example");
    assert_eq!(example.difference(&read).collect::<Vec<_>>(), Vec::<&String>::new(), "in .env.example, not read");
}
