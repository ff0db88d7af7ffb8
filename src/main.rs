//! `ams-security-operator` command line.
//!
//! - `crds`: print the CRDs this build serves, for `kubectl apply -f -`.
//! - `validate FILE...`: check `MediaServicesAccount` manifests against every rule of the API,
//!   CEL rules included, without a cluster (for CI pipelines and for clusters older than 1.25,
//!   which do not enforce CEL).

use std::path::PathBuf;
use std::process::ExitCode;

use ams_security_operator::{crd, reconcile::validate};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    version,
    about = "Reconciles the security state of Azure Media Services accounts"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions as YAML.
    Crds,
    /// Validate MediaServicesAccount manifests (YAML, several documents per file allowed; `-`
    /// reads standard input). Other kinds in the files are skipped.
    Validate {
        /// Manifest files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Crds => match crd::render() {
            Ok(files) => {
                let docs: Vec<_> = files.iter().map(|f| f.contents.as_str()).collect();
                print!("{}", docs.join("---\n"));
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("error: failed to render CRDs: {err}");
                ExitCode::FAILURE
            }
        },
        Command::Validate { files } => validate_files(&files),
    }
}

fn validate_files(files: &[PathBuf]) -> ExitCode {
    let mut failed = false;
    for path in files {
        let text = if path.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin())
        } else {
            std::fs::read_to_string(path)
        };
        let text = match text {
            Ok(text) => text,
            Err(err) => {
                eprintln!("{}: failed to read: {err}", path.display());
                failed = true;
                continue;
            }
        };
        for (index, document) in serde_yaml_ng::Deserializer::from_str(&text).enumerate() {
            let value: serde_json::Value = match serde::Deserialize::deserialize(document) {
                Ok(value) => value,
                Err(err) => {
                    eprintln!(
                        "{}: document {}: failed to parse YAML: {err}",
                        path.display(),
                        index + 1
                    );
                    failed = true;
                    continue;
                }
            };
            if value.is_null()
                || value.get("kind").and_then(|k| k.as_str()) != Some("MediaServicesAccount")
            {
                continue;
            }
            let name = value
                .pointer("/metadata/name")
                .and_then(|n| n.as_str())
                .unwrap_or("<unnamed>");
            match validate::validate_object(&value) {
                Ok(_) => println!("{}: {name}: valid", path.display()),
                Err(errors) => {
                    failed = true;
                    for error in errors.0 {
                        eprintln!("{}: {name}: {error}", path.display());
                    }
                }
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
