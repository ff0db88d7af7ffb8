//! `examples/emulator/world.yaml` is the Azure side of `examples/` for `scripts/run-local.sh`:
//! every Azure resource an example names must exist in it, and the emulator must start with it
//! and serve those accounts. Otherwise the "try it without Azure" run would show a world that
//! does not match the manifests beside it.
#![cfg(feature = "emulator")]

mod common;

use ams_security_operator::emulator::{Emulator, EmulatorConfig, Seed};
use ams_security_operator::reconcile::validate::validate_object;

fn seed() -> Seed {
    let path = common::project_path("examples/emulator/world.yaml");
    Seed::from_yaml(&std::fs::read_to_string(&path).expect("seed readable")).expect("seed parses")
}

fn contains(ids: &[String], id: &str) -> bool {
    ids.iter().any(|known| known.eq_ignore_ascii_case(id))
}

/// Every account, storage account, user-assigned identity and vault an example refers to is in
/// the world, in the right region where the example depends on it.
#[test]
fn every_resource_an_example_names_exists_in_the_world() {
    let seed = seed();
    let accounts: Vec<String> = seed.media_accounts.iter().map(|a| a.id.clone()).collect();
    let storage: Vec<String> = seed.storage_accounts.iter().map(|s| s.id.clone()).collect();
    let identities: Vec<String> = seed
        .user_assigned_identities
        .iter()
        .map(|i| i.id.clone())
        .collect();
    let vaults: Vec<String> = seed
        .vaults
        .iter()
        .map(|v| v.id.rsplit('/').next().expect("vault name").to_owned())
        .collect();
    let mut missing = Vec::new();
    for (file, object) in common::manifests::examples() {
        let spec = validate_object(&object).expect("examples are valid");
        let a = &spec.account;
        let account_id = format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Media/mediaservices/{}",
            a.subscription_id, a.resource_group, a.name
        );
        if !contains(&accounts, &account_id) {
            missing.push(format!("{file}: account {account_id}"));
        }
        for s in spec.storage.iter().flat_map(|s| &s.accounts) {
            if !contains(&storage, &s.id) {
                missing.push(format!("{file}: storage account {}", s.id));
            }
        }
        let referenced = spec
            .identity
            .iter()
            .flat_map(|i| i.user_assigned_identities.clone())
            .chain(
                spec.access_grants
                    .iter()
                    .filter_map(|g| g.identity_resource_id.clone()),
            );
        for id in referenced {
            if !contains(&identities, &id) {
                missing.push(format!("{file}: identity {id}"));
            }
        }
        if let Some(key) = spec
            .encryption
            .as_ref()
            .and_then(|e| e.key_identifier.as_deref())
        {
            let vault = key
                .trim_start_matches("https://")
                .split('.')
                .next()
                .expect("vault host");
            if !contains(&vaults, vault) {
                missing.push(format!("{file}: vault {vault}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "examples/emulator/world.yaml lacks:\n{}",
        missing.join("\n")
    );
}

/// The emulator starts with the world and lists the examples' accounts in its state.
#[tokio::test]
async fn the_emulator_serves_the_examples_world() {
    let emulator = Emulator::start(EmulatorConfig::with_seed(seed()))
        .await
        .expect("emulator starts");
    let state = emulator.snapshot().to_string();
    for name in [
        "contosomedia",
        "fabrikammedia",
        "northwindmedia",
        "tailspinmedia",
    ] {
        assert!(
            state.contains(&format!("/mediaservices/{name}")),
            "{name} missing from the emulator state"
        );
    }
    emulator.shutdown().await;
}
