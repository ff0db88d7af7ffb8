//! Credentials per source end to end: two namespaces whose Secrets hold two secrets of one
//! application. Entra ID revokes one namespace's secret: that namespace's account reports
//! `CredentialsRejected` naming its Secret and Entra's code, while the other namespace's
//! account, probed with its own credential, stays `KeyAccessible` round after round. Fixing the
//! Secret clears it within a probe interval, through the operator's watch of the Secret.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use ams_security_operator::crd::MediaServicesAccount;
use ams_security_operator::emulator::Emulator;

use super::common::with_temp_ns;
use super::harness::*;

const KEY: &str = "https://media-kv.vault.azure.net/keys/account-key";
/// The Secret each namespace's account names.
const SECRET: &str = "azure-creds";
/// How often each account's key is checked.
const PROBE_INTERVAL: Duration = Duration::from_secs(10);

/// An account of the e2e world encrypted with the shared key through the shared identity,
/// authenticating with the namespace's [`SECRET`].
fn account(name: &str, azure_name: &str) -> MediaServicesAccount {
    let mut m = shared_key_account(name, azure_name, KEY, PROBE_INTERVAL);
    m.spec.credentials_secret_ref = Some(ams_security_operator::crd::account::SecretReference {
        name: SECRET.to_owned(),
    });
    m
}

/// Creates the namespace's credentials Secret: the operator application's id with `secret`.
async fn create_credentials(client: &Client, ns: &str, emu: &Emulator, secret: &str) {
    let app = emu
        .service_principal("operator")
        .expect("seeded application");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": { "name": SECRET },
                "stringData": {
                    "tenantId": emu.tenant_id(),
                    "clientId": app.client_id,
                    "clientSecret": secret,
                },
            }))
            .expect("secret"),
        )
        .await
        .expect("create the credentials Secret");
}

fn ready_and_accessible(o: &MediaServicesAccount) -> bool {
    state(o, "Ready") == ("True".to_owned(), "Succeeded".to_owned())
        && state(o, "CustomerKeyInaccessible") == ("False".to_owned(), "KeyAccessible".to_owned())
}

/// Asks for a pass of `name` (as `kubectl annotate … reconcile-at=…` does) and waits for it.
async fn pass_on_request(client: &Client, ns: &str, name: &str) {
    let api: Api<MediaServicesAccount> = Api::namespaced(client.clone(), ns);
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "annotations": {
            ams_security_operator::controller::account::RECONCILE_AT: "before-revocation" } } })),
    )
    .await
    .expect("ask for a pass");
    wait_until(
        client,
        ns,
        name,
        "reconciled on request",
        Duration::from_secs(30),
        |o| {
            o.status
                .as_ref()
                .and_then(|s| s.last_handled_reconcile_at.as_deref())
                == Some("before-revocation")
        },
    )
    .await;
}

/// `name` is Ready with its key accessible, its key checks never failed, and it heard nothing
/// of the other namespace's revoked secret.
async fn assert_untouched(client: &Client, ns: &str, name: &str, revoked_at: Instant) {
    let api: Api<MediaServicesAccount> = Api::namespaced(client.clone(), ns);
    let object = api.get(name).await.expect("get");
    let check_error = object
        .status
        .as_ref()
        .and_then(|s| s.encryption.as_ref())
        .and_then(|e| e.key_access_check_error.clone());
    assert_eq!(
        check_error, None,
        "{name}'s key checks failed: they used the other namespace's revoked credential"
    );
    assert!(
        ready_and_accessible(&object),
        "{:?} after the other namespace's secret was revoked {:?} ago",
        object.status,
        revoked_at.elapsed()
    );
    let reasons = event_reasons(client, ns, name).await;
    assert!(
        !reasons.iter().any(|r| r == "CredentialsRejected"),
        "{name} heard of the other namespace's revocation: {reasons:?}"
    );
}

/// One namespace's revoked secret is that namespace's problem only: its account reports
/// `CredentialsRejected` naming its Secret and `AADSTS7000215`, while the other namespace's
/// account, whose Secret holds another secret of the same application, keeps its key checks
/// (made with its own credential) passing. Putting a valid secret in the Secret clears it
/// within a probe interval, with no resync in sight (ten minutes away).
#[tokio::test]
async fn a_revoked_secret_stays_in_its_namespace_and_a_fixed_secret_clears_at_once() {
    with_temp_ns("e2e-creds-a", |_, ns_a| async move {
        with_temp_ns("e2e-creds-b", |client, ns_b| async move {
            let emu = emulator().await;
            for secret in ["team-a-secret", "team-b-secret", "team-b-new-secret"] {
                emu.add_client_secret("operator", secret)
                    .expect("add a client secret");
            }
            // Tokens shorter than the SDKs' refresh margin: every call asks Entra afresh, and
            // as the SDK keeps using a refused refresh's still-valid token, the revocation
            // shows once the last token expires: within seconds rather than an hour.
            emu.set_token_lifetime(Some(Duration::from_secs(5)));
            create_credentials(&client, &ns_a, &emu, "team-a-secret").await;
            create_credentials(&client, &ns_b, &emu, "team-b-secret").await;
            create(&client, &ns_a, &account("first", "mediaacct")).await;
            create(&client, &ns_b, &account("second", "mediaacct2")).await;
            let operator = Operator::start_watching(&client, &emu, &[&ns_a, &ns_b], None);
            for (ns, name) in [(&ns_a, "first"), (&ns_b, "second")] {
                wait_until(
                    &client,
                    ns,
                    name,
                    "Ready and KeyAccessible",
                    Duration::from_secs(60),
                    ready_and_accessible,
                )
                .await;
            }

            // team-b's account reads its key last before the revocation: a prober shared by
            // both namespaces would now probe with team-b's credential.
            pass_on_request(&client, &ns_b, "second").await;
            emu.revoke_client_secret("operator", "team-b-secret")
                .expect("revoke");
            let revoked_at = Instant::now();
            let rejected = wait_for_condition(
                &client,
                &ns_b,
                "second",
                "Ready",
                "False",
                "CredentialsRejected",
            )
            .await;
            let message = &condition(&rejected, "Ready").expect("Ready").message;
            assert!(
                message.contains(&format!("Secret {ns_b}/{SECRET}"))
                    && message.contains("AADSTS7000215"),
                "the message names neither the Secret nor Entra's code: {message}"
            );
            assert!(
                !message.contains("team-b-secret"),
                "the message carries the secret: {message}"
            );

            // Several probe rounds later the other namespace still checks its key, with its own
            // credential, and finds it accessible.
            let probes_before = emu.call_count("GetKey");
            tokio::time::sleep(PROBE_INTERVAL * 3 + Duration::from_secs(1)).await;
            let probes = emu.call_count("GetKey") - probes_before;
            assert!(probes >= 2, "{probes} key probes in three rounds");
            assert_untouched(&client, &ns_a, "first", revoked_at).await;
            let refused: Vec<_> = emu
                .request_log()
                .into_iter()
                .filter(|r| r.operation == "Token" && r.status == 401)
                .collect();
            assert!(!refused.is_empty(), "no refused token request");

            // The Secret is fixed: the watch re-triggers the account before its key's next
            // failing probe could matter and long before its resync.
            let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns_b);
            let fixed_at = Instant::now();
            secrets
                .patch(
                    SECRET,
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "stringData": { "clientSecret": "team-b-new-secret" } })),
                )
                .await
                .expect("fix the Secret");
            wait_until(
                &client,
                &ns_b,
                "second",
                "Ready again",
                PROBE_INTERVAL,
                ready_and_accessible,
            )
            .await;
            assert!(
                fixed_at.elapsed() <= PROBE_INTERVAL,
                "cleared {:?} after the fix",
                fixed_at.elapsed()
            );
            assert_untouched(&client, &ns_a, "first", revoked_at).await;
            finish(operator, emu).await;
        })
        .await;
    })
    .await;
}
