//! The committed CRD YAML (`crds/` and the Helm chart's copy) must be exactly what the Rust types
//! generate; otherwise users would install a schema the operator does not speak.

mod common;

use ams_security_operator::crd;

#[test]
fn committed_crds_match_the_rust_types() {
    let root = common::project_path("");
    let mut stale = Vec::new();
    for file in crd::render().expect("CRDs render") {
        for path in crd::committed_paths(&root, &file) {
            match std::fs::read_to_string(&path) {
                Ok(committed) if committed == file.contents => {}
                Ok(_) => stale.push(format!("{} differs", path.display())),
                Err(err) => stale.push(format!("{} unreadable: {err}", path.display())),
            }
        }
    }
    assert!(
        stale.is_empty(),
        "run `cargo run --bin crdgen` and commit the result:\n{}",
        stale.join("\n")
    );
}

/// Nothing but generated files lives in the CRD directories, so a removed kind's stale CRD
/// cannot linger and be installed by `kubectl apply -f crds/`.
#[test]
fn crd_directories_hold_only_generated_files() {
    let expected: Vec<String> = crd::render()
        .expect("CRDs render")
        .into_iter()
        .map(|f| f.file_name)
        .collect();
    for dir in crd::CRD_DIRS {
        let mut found: Vec<String> = std::fs::read_dir(common::project_path(dir))
            .unwrap_or_else(|err| panic!("{dir}: {err}"))
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        found.sort();
        assert_eq!(found, expected, "unexpected files in {dir}");
    }
}
