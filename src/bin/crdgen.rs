//! Writes the CRD YAML generated from the Rust types into `crds/` and the Helm chart's `crds/`,
//! or with `--check` fails when a committed copy differs from what the types generate.
//!
//! Usage: `cargo run --bin crdgen [-- --check] [--root DIR]`

use std::path::PathBuf;
use std::process::ExitCode;

use ams_security_operator::crd;

fn main() -> ExitCode {
    let mut check = false;
    let mut root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--check" => check = true,
            "--root" => match args.next() {
                Some(dir) => root = PathBuf::from(dir),
                None => return usage("--root needs a directory"),
            },
            other => return usage(&format!("unknown argument {other:?}")),
        }
    }
    let files = match crd::render() {
        Ok(files) => files,
        Err(err) => {
            eprintln!("crdgen: failed to render CRDs: {err}");
            return ExitCode::FAILURE;
        }
    };
    let mut stale = Vec::new();
    for file in &files {
        for path in crd::committed_paths(&root, file) {
            let current = std::fs::read_to_string(&path).ok();
            if current.as_deref() == Some(file.contents.as_str()) {
                continue;
            }
            if check {
                stale.push(path.display().to_string());
            } else if let Err(err) = write(&path, &file.contents) {
                eprintln!("crdgen: failed to write {}: {err}", path.display());
                return ExitCode::FAILURE;
            } else {
                println!("wrote {}", path.display());
            }
        }
    }
    if stale.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "crdgen: these files differ from the CRDs the Rust types generate; run `cargo run --bin crdgen`:\n  {}",
            stale.join("\n  ")
        );
        ExitCode::FAILURE
    }
}

fn write(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, contents)
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("crdgen: {problem}\nusage: crdgen [--check] [--root DIR]");
    ExitCode::from(2)
}
