//! The shared key-access monitor end to end: the main job runs in-process, nobody calls
//! reconcile, and a key broken out of band still turns into `CustomerKeyInaccessible` on every
//! account that uses it; accounts that share a key and identity cost one probe per round.
//! Then the causes the other key-access tests do not cover, one pass at a time: RBAC grants,
//! expiry, not-before, and a pinned version that stays put when the key rotates.

use std::time::Duration;

use super::common::with_temp_ns;
use super::harness::*;

const KEY: &str = "https://media-kv.vault.azure.net/keys/account-key";
const RBAC_KEY: &str = "https://media-rbac-kv.vault.azure.net/keys/account-key";
const UAI: &str = "/subscriptions/1a2b3c4d-0000-4000-8000-000000000001/resourceGroups/media/providers/Microsoft.ManagedIdentity/userAssignedIdentities/media-id";

/// An account of the e2e world encrypted with `key` through the shared user-assigned identity,
/// checked every 10 s.
fn shared(
    name: &str,
    account: &str,
    key: &str,
) -> ams_security_operator::crd::MediaServicesAccount {
    shared_key_account(name, account, key, Duration::from_secs(10))
}

fn writes_to_accounts(emu: &ams_security_operator::emulator::Emulator) -> usize {
    azure_writes(emu)
        .iter()
        .filter(|r| r.operation.starts_with("Mediaservices_"))
        .count()
}

/// Two accounts share a key and identity: one prober, one key read per round for both. The key
/// is disabled out of band with no reconcile asked for: both accounts raise `KeyDisabled`
/// through the monitor's trigger (their resync is ten minutes away), nothing is written to
/// them while it lasts, and re-enabling it clears both with events.
#[tokio::test]
async fn a_shared_key_is_probed_once_per_round_and_its_loss_reaches_every_account() {
    with_temp_ns("e2e-monitor", |client, ns| {
        Box::pin(async move {
            let emu = emulator().await;
            create(&client, &ns, &shared("first", "mediaacct", KEY)).await;
            create(&client, &ns, &shared("second", "mediaacct2", KEY)).await;
            let operator = Operator::start(&client, &emu, &ns);
            wait_ready(&client, &ns, "first").await;
            wait_ready(&client, &ns, "second").await;

            // Steady state: count key reads over a window of about three rounds.
            tokio::time::sleep(Duration::from_secs(3)).await;
            let (keys_before, lists_before) = (
                emu.call_count("GetKey"),
                emu.call_count("Vaults_ListBySubscription"),
            );
            tokio::time::sleep(Duration::from_secs(31)).await;
            let key_reads = emu.call_count("GetKey") - keys_before;
            let vault_lists = emu.call_count("Vaults_ListBySubscription") - lists_before;
            // One prober on a 10 s interval: 3 or 4 probes in 31 s. Two probers, or a probe
            // per account, would be 6 or more.
            assert!(
                (2..=4).contains(&key_reads),
                "{key_reads} key reads in 31 s for two accounts sharing one key"
            );
            assert!(vault_lists <= key_reads, "{vault_lists} vault lists");

            let writes_before = writes_to_accounts(&emu);
            emu.disable_key("media-kv", "account-key", None)
                .expect("disable");
            for name in ["first", "second"] {
                let lost = wait_for_condition(
                    &client,
                    &ns,
                    name,
                    "CustomerKeyInaccessible",
                    "True",
                    "KeyDisabled",
                )
                .await;
                assert_eq!(state(&lost, "Ready").0, "False", "{name}");
            }
            assert_eq!(
                writes_to_accounts(&emu),
                writes_before,
                "wrote to an account while its key was inaccessible"
            );
            emu.enable_key("media-kv", "account-key", None)
                .expect("enable");
            for name in ["first", "second"] {
                wait_for_condition(
                    &client,
                    &ns,
                    name,
                    "CustomerKeyInaccessible",
                    "False",
                    "KeyAccessible",
                )
                .await;
                let reasons = wait_for_event(&client, &ns, name, "CustomerKeyAccessRestored").await;
                assert!(
                    reasons.iter().any(|r| r == "KeyDisabled"),
                    "{name}: {reasons:?}"
                );
            }
            finish(operator, emu).await;
        })
    })
    .await;
}

/// In an RBAC vault a removed role assignment is `AccessRevoked` and `grantAccess` restores
/// it; an expired and a not-yet-valid version each have their cause; a pinned version stays
/// pinned when the key gains a newer one.
#[tokio::test]
async fn rbac_revocation_expiry_not_before_and_a_pinned_version() {
    with_temp_ns("e2e-monitor2", |client, ns| {
        Box::pin(async move {
            let emu = emulator().await;
            let ctx = offline_context(&client, &emu);
            let pinned = format!("{RBAC_KEY}/0a1b2c3d4e5f60718293a4b5c6d7e8f9");
            create(&client, &ns, &shared("rbac", "mediaacct", &pinned)).await;
            let ready = reconcile_until_ready(&client, &ns, "rbac", &ctx).await;
            let principal = emu
                .user_assigned_identity(UAI)
                .map(|(principal, _)| principal)
                .expect("identity principal");
            let version = |o: &ams_security_operator::crd::MediaServicesAccount| {
                o.status
                    .as_ref()
                    .and_then(|s| s.encryption.as_ref())
                    .and_then(|e| e.key_version.clone())
            };
            assert_eq!(
                version(&ready).as_deref(),
                Some("0a1b2c3d4e5f60718293a4b5c6d7e8f9")
            );

            // The role assignment at the key is removed out of band.
            let removed = emu
                .remove_role_assignments_of(&principal, None)
                .expect("remove");
            assert!(removed > 0, "the operator's grant was there");
            let revoked = reconcile_now(&client, &ns, "rbac", &ctx).await;
            assert_eq!(
                state(&revoked, "CustomerKeyInaccessible"),
                ("True".into(), "AccessRevoked".into())
            );
            let message = &condition(&revoked, "CustomerKeyInaccessible")
                .expect("condition")
                .message;
            assert!(
                message.contains(&principal) && message.contains("media-rbac-kv"),
                "{message}"
            );
            reconcile_until_ready(&client, &ns, "rbac", &ctx).await;

            // Expired, then extended.
            let pinned_version = Some("0a1b2c3d4e5f60718293a4b5c6d7e8f9");
            emu.expire_key("media-rbac-kv", "account-key", pinned_version)
                .expect("expire");
            let expired = reconcile_now(&client, &ns, "rbac", &ctx).await;
            assert_eq!(
                state(&expired, "CustomerKeyInaccessible"),
                ("True".into(), "KeyExpired".into())
            );
            let year = emu.now().timestamp() + 365 * 86_400;
            emu.expire_key_at("media-rbac-kv", "account-key", pinned_version, year)
                .expect("extend");
            reconcile_until_ready(&client, &ns, "rbac", &ctx).await;

            // Not valid before an hour from now, then cleared.
            let hour = emu.now().timestamp() + 3600;
            emu.set_key_not_before("media-rbac-kv", "account-key", pinned_version, Some(hour))
                .expect("nbf");
            let early = reconcile_now(&client, &ns, "rbac", &ctx).await;
            assert_eq!(
                state(&early, "CustomerKeyInaccessible"),
                ("True".into(), "KeyNotYetValid".into())
            );
            emu.set_key_not_before("media-rbac-kv", "account-key", pinned_version, None)
                .expect("clear nbf");
            reconcile_until_ready(&client, &ns, "rbac", &ctx).await;

            // A newer version appears: the pinned account stays on its version.
            emu.add_key_version("media-rbac-kv", "account-key")
                .expect("new version");
            emu.recheck_key_access();
            let after = reconcile_until_ready(&client, &ns, "rbac", &ctx).await;
            assert_eq!(
                version(&after).as_deref(),
                Some("0a1b2c3d4e5f60718293a4b5c6d7e8f9")
            );
            let reasons = event_reasons(&client, &ns, "rbac").await;
            for cause in ["AccessRevoked", "KeyExpired", "KeyNotYetValid"] {
                assert!(reasons.iter().any(|r| r == cause), "{cause}: {reasons:?}");
            }
            assert!(!reasons.iter().any(|r| r == "KeyRotated"), "{reasons:?}");
            let log = emu.request_log();
            super::spec::check_requests(&log).expect("requests match the specs");
            emu.shutdown().await;
        })
    })
    .await;
}
