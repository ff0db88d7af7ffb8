//! Customer-key access end to end: break each link out of band through the emulator's admin
//! API, see the exact `CustomerKeyInaccessible` cause with no write to the account while it
//! lasts, repair it and see the condition clear with an event (a purged vault, last, cannot be
//! repaired). Passes are run one at a time (the reconcile function the controller runs), so
//! each step is observed deterministically.

use ams_security_operator::emulator::AdminCommand;
use serde_json::json;

use super::common::with_temp_ns;
use super::harness::*;

const KEY: &str = "https://media-kv.vault.azure.net/keys/account-key";

/// What breaks a link, and what repairs it.
type Change = Box<dyn Fn(&ams_security_operator::emulator::Emulator)>;

/// Each cause of lost key access is named exactly, the account is not written while it lasts,
/// and repairing it clears the condition with a `CustomerKeyAccessRestored` event. A removed
/// access policy comes back by itself (`grantAccess: true`).
#[tokio::test]
async fn each_lost_key_link_raises_its_cause_and_recovery_clears_it() {
    // NB: boxed, as the scenario's future is large.
    with_temp_ns("e2e-cki", |client, ns| {
        Box::pin(async move {
            let emu = emulator().await;
            let ctx = offline_context(&client, &emu);
            let spec = json!({
                "identity": { "type": "SystemAssigned" },
                "encryption": { "type": "CustomerKey", "keyIdentifier": KEY },
            });
            create(&client, &ns, &manifest("byok", spec)).await;
            let ready = reconcile_until_ready(&client, &ns, "byok", &ctx).await;
            assert_eq!(
                state(&ready, "CustomerKeyInaccessible"),
                ("False".into(), "KeyAccessible".into())
            );
            let cases: Vec<(&str, Change, Change)> = vec![
                (
                    "KeyDisabled",
                    Box::new(|e| {
                        e.disable_key("media-kv", "account-key", None)
                            .expect("disable");
                    }),
                    Box::new(|e| {
                        e.enable_key("media-kv", "account-key", None)
                            .expect("enable");
                    }),
                ),
                (
                    "KeyNotFound",
                    Box::new(|e| {
                        e.delete_key("media-kv", "account-key").expect("delete key");
                    }),
                    Box::new(|e| {
                        e.recover_key("media-kv", "account-key")
                            .expect("recover key");
                    }),
                ),
                (
                    "VaultSoftDeleted",
                    Box::new(|e| {
                        e.delete_vault("media-kv").expect("delete vault");
                    }),
                    Box::new(|e| {
                        e.recover_vault("media-kv").expect("recover vault");
                    }),
                ),
                (
                    "VaultFirewallBlocked",
                    Box::new(|e| {
                        e.close_vault_firewall("media-kv", "None").expect("close");
                    }),
                    Box::new(|e| {
                        e.open_vault_firewall("media-kv").expect("open");
                    }),
                ),
            ];
            for (cause, break_it, repair) in cases {
                let writes_before = azure_writes(&emu).len();
                break_it(&emu);
                let broken = reconcile_now(&client, &ns, "byok", &ctx).await;
                assert_eq!(
                    state(&broken, "CustomerKeyInaccessible"),
                    ("True".into(), cause.into()),
                    "{cause}: {:?}",
                    broken.status.as_ref().map(|s| &s.conditions)
                );
                assert_eq!(state(&broken, "Ready").0, "False", "{cause}");
                let message = &condition(&broken, "CustomerKeyInaccessible")
                    .expect("condition")
                    .message;
                assert!(message.contains("media-kv"), "{cause}: {message}");
                let writes = &azure_writes(&emu)[writes_before..];
                assert!(
                    writes.is_empty(),
                    "{cause}: wrote while the key was inaccessible: {:#?}",
                    describe(writes)
                );
                repair(&emu);
                let restored = reconcile_until_ready(&client, &ns, "byok", &ctx).await;
                assert_eq!(
                    state(&restored, "CustomerKeyInaccessible"),
                    ("False".into(), "KeyAccessible".into()),
                    "{cause}"
                );
                let reasons = event_reasons(&client, &ns, "byok").await;
                assert!(
                    reasons.iter().any(|r| r == cause),
                    "{cause}: no Warning event in {reasons:?}"
                );
                assert!(
                    reasons.iter().any(|r| r == "CustomerKeyAccessRestored"),
                    "{cause}: {reasons:?}"
                );
            }

            a_purged_vault_is_not_found(&client, &ns, &ctx, &emu).await;

            emu.shutdown().await;
        })
    })
    .await;
}

/// A removed access policy comes back by itself (`grantAccess: true`), and a key about to
/// expire warns (`KeyExpiringSoon`) while access still works.
#[tokio::test]
async fn a_revoked_policy_is_restored_and_an_expiring_key_warns() {
    // NB: boxed, as the scenario's future is large.
    with_temp_ns("e2e-cki2", |client, ns| {
        Box::pin(async move {
            let emu = emulator().await;
            let ctx = offline_context(&client, &emu);
            let spec = json!({
                "identity": { "type": "SystemAssigned" },
                "encryption": { "type": "CustomerKey", "keyIdentifier": KEY },
            });
            create(&client, &ns, &manifest("byok", spec)).await;
            let ready = reconcile_until_ready(&client, &ns, "byok", &ctx).await;
            let principal = ready
                .status
                .as_ref()
                .and_then(|s| s.identity.as_ref())
                .and_then(|i| i.principal_id.clone())
                .expect("system principal");

            // A removed access policy is restored by the operator itself (grantAccess: true).
            emu.remove_access_policy("media-kv", &principal)
                .expect("remove policy");
            let revoked = reconcile_now(&client, &ns, "byok", &ctx).await;
            assert_eq!(
                state(&revoked, "CustomerKeyInaccessible"),
                ("True".into(), "AccessRevoked".into())
            );
            let restored = reconcile_until_ready(&client, &ns, "byok", &ctx).await;
            assert_eq!(state(&restored, "CustomerKeyInaccessible").0, "False");
            let policy_writes = azure_writes(&emu)
                .into_iter()
                .filter(|r| r.operation == "Vaults_UpdateAccessPolicy")
                .count();
            assert_eq!(policy_writes, 2, "the first grant and its restoration");

            // A new version of a versionless key: the account moves to it, status records the
            // rotation, and an event says so.
            let before = restored
                .status
                .as_ref()
                .and_then(|s| s.encryption.as_ref())
                .and_then(|e| e.key_version.clone())
                .expect("a key version");
            let kid = emu
                .add_key_version("media-kv", "account-key")
                .expect("new version");
            emu.recheck_key_access();
            let rotated = reconcile_now(&client, &ns, "byok", &ctx).await;
            let encryption = rotated
                .status
                .as_ref()
                .and_then(|s| s.encryption.clone())
                .expect("encryption status");
            assert_ne!(encryption.key_version.as_deref(), Some(before.as_str()));
            assert!(
                kid.ends_with(encryption.key_version.as_deref().unwrap_or("?")),
                "{kid} vs {encryption:?}"
            );
            assert!(encryption.last_rotation_time.is_some(), "{encryption:?}");
            let reasons = event_reasons(&client, &ns, "byok").await;
            assert!(reasons.iter().any(|r| r == "KeyRotated"), "{reasons:?}");

            a_lagging_rotation_warns_and_clears(&client, &ns, &emu).await;

            // A key about to expire warns while access still works.
            let soon = emu.now().timestamp() + 3 * 86_400;
            emu.admin(AdminCommand::ExpireKey {
                vault: "media-kv".into(),
                key: "account-key".into(),
                version: None,
                at: Some(soon),
            })
            .expect("set expiry");
            let warned = reconcile_now(&client, &ns, "byok", &ctx).await;
            assert_eq!(
                state(&warned, "EncryptionReady"),
                ("True".into(), "KeyExpiringSoon".into())
            );
            assert_eq!(state(&warned, "CustomerKeyInaccessible").0, "False");
            let reasons = event_reasons(&client, &ns, "byok").await;
            assert!(
                reasons.iter().any(|r| r == "KeyExpiringSoon"),
                "{reasons:?}"
            );
            emu.shutdown().await;
        })
    })
    .await;
}

/// Last of the causes, as nothing brings it back: a deleted vault whose retention has passed is
/// purged by Key Vault, and the key is gone for good.
async fn a_purged_vault_is_not_found(
    client: &kube::Client,
    ns: &str,
    ctx: &std::sync::Arc<ams_security_operator::controller::Context>,
    emu: &ams_security_operator::emulator::Emulator,
) {
    let writes_before = azure_writes(emu).len();
    emu.delete_vault("media-kv").expect("delete vault");
    emu.purge_after_retention("media-kv").expect("purge");
    let gone = reconcile_now(client, ns, "byok", ctx).await;
    assert_eq!(
        state(&gone, "CustomerKeyInaccessible"),
        ("True".into(), "VaultNotFound".into()),
        "{:?}",
        gone.status.as_ref().map(|s| &s.conditions)
    );
    let message = &condition(&gone, "CustomerKeyInaccessible")
        .expect("condition")
        .message;
    assert!(message.contains("media-kv"), "{message}");
    assert!(
        azure_writes(emu)[writes_before..].is_empty(),
        "wrote to a purged key's account"
    );
    assert!(
        event_reasons(client, ns, "byok")
            .await
            .iter()
            .any(|r| r == "VaultNotFound")
    );
}

/// An account that stays on the older version of a versionless key past the grace is a
/// warning, not drift to fight: no write to the account, and it clears once Azure moves on.
async fn a_lagging_rotation_warns_and_clears(
    client: &kube::Client,
    ns: &str,
    emu: &ams_security_operator::emulator::Emulator,
) {
    let grace = offline_context_with(client, emu, |c| {
        c.key_rotation_grace = std::time::Duration::from_secs(1);
    });
    emu.hold_key_rotation(true).expect("hold");
    let newest = emu
        .add_key_version("media-kv", "account-key")
        .expect("newer version");
    emu.recheck_key_access();
    let writes_before = azure_writes(emu).len();
    let pending = reconcile_now(client, ns, "byok", &grace).await;
    let since = pending
        .status
        .as_ref()
        .and_then(|s| s.encryption.as_ref())
        .and_then(|e| e.rotation_pending_since.clone());
    assert!(since.is_some(), "{:?}", pending.status);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let lagging = reconcile_now(client, ns, "byok", &grace).await;
    assert_eq!(
        state(&lagging, "EncryptionReady"),
        ("True".into(), "KeyRotationPending".into()),
        "{:?}",
        lagging.status.as_ref().map(|s| &s.conditions)
    );
    assert!(
        condition(&lagging, "EncryptionReady")
            .expect("condition")
            .message
            .contains(newest.rsplit('/').next().unwrap_or("?")),
        "the warning names the version the account has not reached"
    );
    assert!(
        azure_writes(emu)[writes_before..].is_empty(),
        "a rotation lag was fought with a write: {:#?}",
        describe(&azure_writes(emu)[writes_before..])
    );
    emu.hold_key_rotation(false).expect("release");
    emu.recheck_key_access();
    let caught_up = reconcile_now(client, ns, "byok", &grace).await;
    assert_eq!(
        state(&caught_up, "EncryptionReady"),
        ("True".into(), "Succeeded".into())
    );
    let encryption = caught_up
        .status
        .as_ref()
        .and_then(|s| s.encryption.clone())
        .expect("encryption status");
    assert_eq!(encryption.rotation_pending_since, None);
    assert!(newest.ends_with(encryption.key_version.as_deref().unwrap_or("?")));
}
