//! Boundaries between modules that must hold for the tests to mean anything.
//!
//! The emulator and the Azure clients are written independently and meet only on the wire; the
//! official specifications referee both. If either imported the other's types, a shared mistake
//! would pass every test. So neither side may name the other.

mod common;

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|err| panic!("{}: {err}", dir.display())) {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn offenders(dirs: &[&str], files: &[&str], forbidden: &[&str]) -> Vec<String> {
    let mut paths = Vec::new();
    for dir in dirs {
        rust_files(&common::project_path(dir), &mut paths);
    }
    paths.extend(files.iter().map(|f| common::project_path(f)));
    let mut found = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).expect("readable source");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or(line);
            if forbidden.iter().any(|f| code.contains(f)) {
                found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
            }
        }
    }
    found
}

#[test]
fn the_emulator_never_names_the_azure_clients() {
    let found = offenders(
        &["src/emulator"],
        &["src/bin/ams-azure-emulator.rs"],
        &[
            "crate::azure",
            "super::azure",
            "ams_security_operator::azure",
        ],
    );
    assert!(
        found.is_empty(),
        "the emulator imports client code:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_azure_clients_never_name_the_emulator() {
    let found = offenders(&["src/azure"], &[], &["emulator::", "crate::emulator"]);
    assert!(
        found.is_empty(),
        "the Azure clients import emulator code:\n{}",
        found.join("\n")
    );
}
