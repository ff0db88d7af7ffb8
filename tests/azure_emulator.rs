#![cfg(feature = "emulator")]
//! The Azure clients against the in-process emulator, over the production code path: real
//! `https://` Azure URLs, TLS verified against the emulator's CA (added to the system roots),
//! Azure host names resolved to the emulator. Covers token acquisition per credential kind,
//! every operation the reconciler uses, long-running operations, paging, throttling, retries
//! and timeouts.

#[path = "emulator/spec.rs"]
mod spec;

use std::sync::Arc;
use std::time::Duration;

use ams_security_operator::azure::credentials::CredentialSource;
use ams_security_operator::azure::keys::KeyKind;
use ams_security_operator::azure::models::authorization::STORAGE_BLOB_DATA_CONTRIBUTOR;
use ams_security_operator::azure::models::keyvault::{
    AccessPolicyEntry, AccessPolicyPermissions, AccessPolicyUpdateKind,
};
use ams_security_operator::azure::models::media::{MediaAccountProperties, MediaAccountUpdate};
use ams_security_operator::azure::models::storage::ResourceAccessRule;
use ams_security_operator::azure::policy::RetryBudget;
use ams_security_operator::azure::transport::TransportConfig;
use ams_security_operator::azure::{
    AzureApi, AzureClients, AzureCloud, AzureConfig, ErrorClass, PollOutcome, ResourceId, Started,
    new_role_assignment_name,
};
use ams_security_operator::emulator::{
    Emulator, EmulatorConfig, Fault, FaultRule, Seed, SeedKey, ThrottleLimits,
};

const WORLD: &str = include_str!("azure/world.yaml");
const SUB: &str = "0000a001-0000-0000-0000-000000000001";
const RG: &str = "media-rg";
const OPERATOR_SUBJECT: &str = "system:serviceaccount:ams-system:ams-security-operator";

fn seed() -> Seed {
    Seed::from_yaml(WORLD).expect("tests/azure/world.yaml is a valid seed")
}

async fn start(seed: Seed) -> Emulator {
    let config = EmulatorConfig {
        key_check_interval: None,
        ..EmulatorConfig::with_seed(seed)
    };
    Emulator::start(config).await.expect("emulator starts")
}

fn clients(emu: &Emulator, budget: RetryBudget, call_timeout: Option<Duration>) -> AzureClients {
    AzureClients::new(AzureConfig {
        cloud: AzureCloud::AzurePublic,
        transport: TransportConfig::emulator(emu.addr(), emu.ca_pem()),
        budget,
        call_timeout,
        ..AzureConfig::default()
    })
    .expect("transport builds")
}

fn operator(emu: &Emulator) -> CredentialSource {
    let sp = emu.service_principal("operator").expect("seeded operator");
    let data = [
        ("tenantId".to_owned(), emu.tenant_id().into_bytes()),
        ("clientId".to_owned(), sp.client_id.into_bytes()),
        (
            "clientSecret".to_owned(),
            sp.secret.expect("operator has a secret").into_bytes(),
        ),
    ]
    .into_iter()
    .collect();
    CredentialSource::client_secret_from_secret_data("media", None, "azure-credentials", &data)
        .expect("complete secret")
}

async fn setup() -> (Emulator, AzureClients, Arc<dyn AzureApi>) {
    let emu = start(seed()).await;
    let clients = clients(&emu, RetryBudget::default(), None);
    let api = clients.api(&operator(&emu)).expect("client");
    (emu, clients, api)
}

fn account() -> ResourceId {
    ResourceId::media_account(SUB, RG, "amsacct")
}

fn storage() -> ResourceId {
    ResourceId::storage_account(SUB, RG, "amsstore")
}

fn identity() -> ResourceId {
    ResourceId::user_assigned_identity(SUB, RG, "ams-id")
}

const VAULT_URL: &str = "https://ams-kv.vault.azure.net/";

// ---------------------------------------------------------------------------------------------
// Credentials

/// A client secret from a Kubernetes Secret's data gets an ARM token from Entra ID.
#[tokio::test]
async fn client_secret_credential_gets_an_arm_token() {
    let emu = start(seed()).await;
    let clients = clients(&emu, RetryBudget::default(), None);
    let expires = clients
        .check_credential(&operator(&emu))
        .await
        .expect("token");
    assert!(
        expires > azure_core::time::OffsetDateTime::now_utc(),
        "token already expired: {expires}"
    );
    let log = emu.request_log();
    assert!(
        log.iter()
            .any(|r| r.host.starts_with("login.microsoftonline.com")
                && r.operation == "Token"
                && r.status == 200),
        "no token request to the real authority host: {:#?}",
        log.iter()
            .map(|r| (&r.host, &r.uri, r.status))
            .collect::<Vec<_>>()
    );
}

/// A wrong secret is the user's to fix, not a transient failure.
#[tokio::test]
async fn wrong_client_secret_needs_user_action() {
    let emu = start(seed()).await;
    let clients = clients(&emu, RetryBudget::default(), None);
    let sp = emu.service_principal("operator").expect("seeded");
    let data = [
        ("tenantId".to_owned(), emu.tenant_id().into_bytes()),
        ("clientId".to_owned(), sp.client_id.into_bytes()),
        ("clientSecret".to_owned(), b"not-the-secret".to_vec()),
    ]
    .into_iter()
    .collect();
    let source =
        CredentialSource::client_secret_from_secret_data("media", None, "azure-credentials", &data)
            .expect("complete");
    let err = clients
        .check_credential(&source)
        .await
        .expect_err("rejected");
    assert_eq!(err.class(), ErrorClass::UserActionRequired, "{err:?}");
    assert!(
        !format!("{err:?}").contains("not-the-secret"),
        "secret leaked into the error"
    );
    // A resource's call through its Secret: Entra's refusal names the Secret and Entra's code.
    let key = ams_security_operator::azure::CredentialSourceKey::secret(
        "media",
        "azure-credentials",
        &source,
    );
    let api = clients.api_for(&key, &source).expect("client");
    let err = api
        .get_media_account(&account())
        .await
        .expect_err("rejected");
    assert_eq!(err.reason(), "CredentialsRejected", "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("Secret media/azure-credentials")
            && text.contains("AADSTS7000215 (invalid_client)"),
        "{text}"
    );
    assert!(
        !format!("{err:?}").contains("not-the-secret"),
        "secret leaked"
    );
}

/// Workload identity: a projected service-account token exchanged for an Entra token, then
/// used for an ARM call.
#[tokio::test]
async fn workload_identity_exchanges_a_service_account_token_and_calls_arm() {
    let emu = start(seed()).await;
    let clients = clients(&emu, RetryBudget::default(), None);
    let dir = std::env::temp_dir().join(format!("ams-azure-wi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let token_file = dir.join("azure-identity-token");
    std::fs::write(
        &token_file,
        emu.mint_service_account_token(OPERATOR_SUBJECT)
            .expect("mint"),
    )
    .expect("write token");
    let sp = emu.service_principal("operator").expect("seeded");
    let tenant = emu.tenant_id();
    let file = token_file.to_string_lossy().into_owned();
    let source = CredentialSource::workload_identity_from_env(|k| match k {
        "AZURE_TENANT_ID" => Some(tenant.clone()),
        "AZURE_CLIENT_ID" => Some(sp.client_id.clone()),
        "AZURE_FEDERATED_TOKEN_FILE" => Some(file.clone()),
        _ => None,
    })
    .expect("complete");
    clients
        .check_credential(&source)
        .await
        .expect("token from the federated assertion");
    let api = clients.api(&source).expect("client");
    let account = api
        .get_media_account(&account())
        .await
        .expect("authorized")
        .expect("exists");
    assert_eq!(account.name.as_deref(), Some("amsacct"));
    std::fs::remove_dir_all(&dir).ok();
}

/// A service-account token with a subject the application does not federate is refused.
#[tokio::test]
async fn workload_identity_with_an_unfederated_subject_is_refused() {
    let emu = start(seed()).await;
    let clients = clients(&emu, RetryBudget::default(), None);
    let dir = std::env::temp_dir().join(format!("ams-azure-wi-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let token_file = dir.join("token");
    std::fs::write(
        &token_file,
        emu.mint_service_account_token("system:serviceaccount:other:intruder")
            .expect("mint"),
    )
    .expect("write");
    let source = CredentialSource::WorkloadIdentity {
        tenant_id: emu.tenant_id(),
        client_id: emu.service_principal("operator").expect("seeded").client_id,
        token_file,
    };
    let err = clients
        .check_credential(&source)
        .await
        .expect_err("refused");
    assert_eq!(err.class(), ErrorClass::UserActionRequired, "{err:?}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Managed identity over the App Service protocol. `azure_identity` reads `IDENTITY_ENDPOINT`
/// and `IDENTITY_HEADER` from the process environment only, so this runs in a child process.
#[tokio::test]
async fn managed_identity_gets_a_token_from_the_identity_endpoint() {
    let emu = start(seed()).await;
    let exe = std::env::current_exe().expect("test binary");
    let mut cmd = tokio::process::Command::new(exe);
    cmd.args([
        "managed_identity_child",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("IDENTITY_ENDPOINT", emu.msi_endpoint())
    .env(
        "IDENTITY_HEADER",
        emu.msi_header().expect("seed sets a header"),
    )
    .env("AMS_AZURE_TEST_EMULATOR_ADDR", emu.addr().to_string())
    .env("AMS_AZURE_TEST_EMULATOR_CA", emu.ca_pem())
    .env_remove("MSI_ENDPOINT")
    .env_remove("IDENTITY_SERVER_THUMBPRINT")
    .env_remove("IMDS_ENDPOINT");
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("child finishes")
        .expect("child runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = emu.request_log();
    assert!(
        log.iter()
            .any(|r| r.uri.starts_with("/msi/token") && r.status == 200),
        "no managed-identity token request was served"
    );
}

/// Run only by `managed_identity_gets_a_token_from_the_identity_endpoint`, with the
/// managed-identity environment set.
#[tokio::test]
#[ignore = "child of managed_identity_gets_a_token_from_the_identity_endpoint"]
async fn managed_identity_child() {
    let var =
        |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} must be set by the parent test"));
    let addr = var("AMS_AZURE_TEST_EMULATOR_ADDR").parse().expect("addr");
    let clients = AzureClients::new(AzureConfig {
        transport: TransportConfig::emulator(addr, &var("AMS_AZURE_TEST_EMULATOR_CA")),
        ..AzureConfig::default()
    })
    .expect("transport");
    let source = CredentialSource::ManagedIdentity { client_id: None };
    clients
        .check_credential(&source)
        .await
        .expect("managed identity token");
    let api = clients.api(&source).expect("client");
    // The endpoint's default identity is the operator principal, which is Owner.
    assert!(
        api.get_media_account(&account())
            .await
            .expect("authorized")
            .is_some()
    );
}

/// One credential and one client per identity, however many times the reconciler asks.
#[tokio::test]
async fn credentials_are_shared_per_identity() {
    let emu = start(seed()).await;
    let clients = clients(&emu, RetryBudget::default(), None);
    let a = clients.credential(&operator(&emu)).expect("credential");
    let b = clients.credential(&operator(&emu)).expect("credential");
    assert!(Arc::ptr_eq(&a, &b));
    let api1 = clients.client(&operator(&emu)).expect("client");
    let api2 = clients.client(&operator(&emu)).expect("client");
    assert!(Arc::ptr_eq(&api1, &api2));
    let api = clients.api(&operator(&emu)).expect("client");
    for _ in 0..3 {
        api.get_media_account(&account()).await.expect("ok");
    }
    assert_eq!(
        emu.call_count("Token"),
        1,
        "the token is cached across calls"
    );
}

// ---------------------------------------------------------------------------------------------
// ARM operations

#[tokio::test]
async fn reads_the_resources_the_reconciler_observes() {
    let (emu, clients, api) = setup().await;
    let acct = api
        .get_media_account(&account())
        .await
        .expect("ok")
        .expect("exists");
    let identity_block = acct.identity.expect("identity");
    assert!(identity_block.has_system_assigned());
    assert!(
        identity_block.principal_id.is_some(),
        "system principal id is read"
    );
    let props = acct.properties.expect("properties");
    assert!(
        ResourceId::parse(
            props.storage_accounts.expect("storage")[0]
                .id
                .as_deref()
                .expect("id")
        )
        .expect("id")
            == storage()
    );

    let sa = api
        .get_storage_account(&storage())
        .await
        .expect("ok")
        .expect("exists");
    let acls = sa.properties.network_acls.expect("networkAcls");
    assert!(acls.bypasses_azure_services());
    assert_eq!(acls.default_action, "Deny");

    let vault = api
        .get_vault(&ResourceId::vault(SUB, RG, "ams-kv"))
        .await
        .expect("ok")
        .expect("exists");
    assert_eq!(vault.properties.enable_purge_protection, Some(true));
    assert_eq!(
        vault
            .properties
            .vault_uri
            .as_deref()
            .map(|u| u.trim_end_matches('/')),
        Some(VAULT_URL.trim_end_matches('/'))
    );

    let uai = api
        .get_user_assigned_identity(&identity())
        .await
        .expect("ok")
        .expect("exists");
    assert_eq!(
        uai.properties.principal_id,
        emu.user_assigned_identity(&identity().to_string())
            .map(|(p, _)| p)
    );

    let role = api
        .get_role_definition(&storage().to_string(), STORAGE_BLOB_DATA_CONTRIBUTOR)
        .await
        .expect("ok")
        .expect("built-in role");
    assert_eq!(
        role.properties.role_name.as_deref(),
        Some("Storage Blob Data Contributor")
    );

    assert!(
        api.get_media_account(&ResourceId::media_account(SUB, RG, "missing"))
            .await
            .expect("ok")
            .is_none()
    );
    assert!(
        api.get_vault(&ResourceId::vault(SUB, RG, "nope"))
            .await
            .expect("ok")
            .is_none()
    );
    let metrics = clients.metrics();
    let get = ams_security_operator::azure::Operation::MediaservicesGet;
    assert_eq!(metrics.requests(get, "Ok"), 1);
    assert_eq!(
        metrics.requests(get, "AzureResourceNotFound"),
        1,
        "a 404 read is counted by its reason"
    );
}

/// PATCH of a media account is long-running: it parks, polls `InProgress`, then `Succeeded` with
/// the final resource.
#[tokio::test]
async fn media_account_update_is_a_pending_operation_polled_to_completion() {
    let (emu, _, api) = setup().await;
    let update = MediaAccountUpdate {
        identity: Some(
            serde_json::from_value(serde_json::json!({
                "type": "SystemAssigned,UserAssigned",
                "userAssignedIdentities": { identity().to_string(): {} }
            }))
            .expect("identity"),
        ),
        properties: None,
        tags: None,
    };
    let started = api
        .update_media_account(&account(), &update)
        .await
        .expect("accepted");
    let Started::Pending(pending) = started else {
        panic!("expected a pending operation, got {started:?}")
    };
    // The reconciler parks it in status and polls in a later reconcile.
    let parked = serde_json::to_value(&pending).expect("serializes");
    let pending = serde_json::from_value(parked).expect("deserializes");
    let mut polls = 0;
    let done = loop {
        polls += 1;
        assert!(polls <= 5, "operation never finished");
        match api.poll_operation(&pending).await.expect("polls") {
            PollOutcome::InProgress { .. } => {}
            PollOutcome::Succeeded(body) => break body,
        }
    };
    let done = done.expect("final resource");
    assert!(
        done["identity"]["userAssignedIdentities"]
            .as_object()
            .is_some_and(|m| !m.is_empty()),
        "{done:#}"
    );
    assert!(emu.call_count("MediaServicesOperationStatuses_Get") >= 1);
    let acct = api
        .get_media_account(&account())
        .await
        .expect("ok")
        .expect("exists");
    assert!(
        acct.identity
            .expect("identity")
            .has_user_assigned(&identity().to_string().to_uppercase())
    );
}

/// A long-running operation that Azure accepts and later reports `Failed` surfaces when it is
/// polled, as a classified error carrying Azure's code, not as success or a hang. Both a
/// user-fixable and a transient failure code are checked, since the reconciler acts on the class.
#[tokio::test]
async fn media_account_update_that_fails_asynchronously_is_reported_when_polled() {
    let (emu, _, api) = setup().await;
    for (code, class) in [
        ("InvalidParameter", ErrorClass::UserActionRequired),
        ("InternalServerError", ErrorClass::Transient),
    ] {
        emu.fail_next_operation(code, "the operation failed in the service");
        let update = MediaAccountUpdate {
            identity: None,
            properties: None,
            tags: None,
        };
        let started = api
            .update_media_account(&account(), &update)
            .await
            .expect("accepted");
        let Started::Pending(pending) = started else {
            panic!("expected a pending operation, got {started:?}")
        };
        let mut polls = 0;
        let err = loop {
            polls += 1;
            assert!(polls <= 5, "operation never finished");
            match api.poll_operation(&pending).await {
                Ok(PollOutcome::InProgress { .. }) => {}
                Ok(PollOutcome::Succeeded(body)) => {
                    panic!("a failed operation was reported as success: {body:?}")
                }
                Err(err) => break err,
            }
        };
        assert_eq!(err.code(), Some(code), "{err}");
        assert_eq!(err.class(), class, "{err}");
    }
}

/// A rejected update comes back classified, naming the account.
#[tokio::test]
async fn media_account_update_with_storage_in_another_subscription_needs_user_action() {
    let (_emu, _, api) = setup().await;
    let update: MediaAccountUpdate = MediaAccountUpdate {
        identity: None,
        properties: Some(serde_json::from_value(serde_json::json!({
            "storageAccounts": [{ "id": ResourceId::storage_account("0000b002-0000-0000-0000-000000000002", "other-rg", "x").to_string(), "type": "Primary" }]
        })).expect("props")),
        tags: None,
    };
    let err = api
        .update_media_account(&account(), &update)
        .await
        .expect_err("rejected");
    assert_eq!(err.class(), ErrorClass::UserActionRequired, "{err:?}");
    assert_eq!(err.status(), Some(400));
    assert!(err.to_string().contains(&account().to_string()), "{err}");
}

#[tokio::test]
async fn storage_firewall_update_admits_the_media_account() {
    let (emu, _, api) = setup().await;
    let mut acls = api
        .get_storage_account(&storage())
        .await
        .expect("ok")
        .expect("exists")
        .properties
        .network_acls
        .expect("acls");
    acls.resource_access_rules.push(ResourceAccessRule {
        tenant_id: emu.tenant_id(),
        resource_id: account().to_string(),
    });
    match api
        .update_storage_network_rules(&storage(), &acls)
        .await
        .expect("updated")
    {
        Started::Done(sa) => assert!(
            sa.properties
                .network_acls
                .expect("acls")
                .admits_resource(&account().to_string())
        ),
        Started::Pending(p) => panic!("storage update is synchronous in the spec, got {p:?}"),
    }
    let again = api
        .get_storage_account(&storage())
        .await
        .expect("ok")
        .expect("exists");
    assert!(
        again
            .properties
            .network_acls
            .expect("acls")
            .admits_resource(&account().to_string())
    );
}

#[tokio::test]
async fn role_assignments_are_created_listed_and_deleted() {
    let (emu, _, api) = setup().await;
    let (principal, _) = emu
        .user_assigned_identity(&identity().to_string())
        .expect("seeded identity");
    let scope = storage();
    assert!(
        api.list_role_assignments(&scope.to_string(), Some(&principal))
            .await
            .expect("lists")
            .is_empty()
    );
    let name = new_role_assignment_name();
    let created = api
        .create_role_assignment(&scope, &name, STORAGE_BLOB_DATA_CONTRIBUTOR, &principal)
        .await
        .expect("created");
    assert!(
        created.grants(&principal, STORAGE_BLOB_DATA_CONTRIBUTOR),
        "{created:?}"
    );
    let listed = api
        .list_role_assignments(&scope.to_string(), Some(&principal))
        .await
        .expect("lists");
    assert!(
        listed
            .iter()
            .any(|a| a.grants(&principal, STORAGE_BLOB_DATA_CONTRIBUTOR)),
        "{listed:?}"
    );
    // ARM refuses a second assignment of the same role to the same principal at the scope.
    let dup = api
        .create_role_assignment(
            &scope,
            &new_role_assignment_name(),
            STORAGE_BLOB_DATA_CONTRIBUTOR,
            &principal,
        )
        .await
        .expect_err("duplicate");
    assert_eq!(dup.code(), Some("RoleAssignmentExists"), "{dup:?}");
    let id = created.id.expect("id");
    assert!(api.delete_role_assignment(&id).await.expect("deleted"));
    assert!(
        !api.delete_role_assignment(&id)
            .await
            .expect("already gone is fine")
    );
    assert!(
        api.list_role_assignments(&scope.to_string(), Some(&principal))
            .await
            .expect("lists")
            .is_empty()
    );
}

#[tokio::test]
async fn vault_access_policy_add_grants_key_permissions() {
    let (emu, _, api) = setup().await;
    let (principal, _) = emu
        .user_assigned_identity(&identity().to_string())
        .expect("seeded identity");
    let vault = ResourceId::vault(SUB, RG, "ams-kv");
    let entry = AccessPolicyEntry {
        tenant_id: emu.tenant_id(),
        object_id: principal.clone(),
        application_id: None,
        permissions: AccessPolicyPermissions {
            keys: vec!["get".into(), "wrapKey".into(), "unwrapKey".into()],
            ..Default::default()
        },
    };
    api.update_vault_access_policy(&vault, AccessPolicyUpdateKind::Add, &[entry])
        .await
        .expect("updated");
    let v = api.get_vault(&vault).await.expect("ok").expect("exists");
    let granted = v
        .properties
        .access_policies
        .iter()
        .find(|p| p.object_id.eq_ignore_ascii_case(&principal))
        .expect("entry added");
    assert!(
        granted.grants_keys(&["get", "wrapKey", "unwrapKey"]),
        "{granted:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Key Vault keys

#[tokio::test]
async fn keys_are_read_with_type_size_and_attributes() {
    let (emu, _, api) = setup().await;
    let latest = api
        .get_key(VAULT_URL, "cmk", None)
        .await
        .expect("ok")
        .expect("exists");
    assert_eq!(latest.kind, KeyKind::Rsa);
    assert_eq!(latest.rsa_bits, Some(3072), "size is read from the modulus");
    assert!(latest.enabled && latest.expires.is_none());
    let pinned = api
        .get_key(VAULT_URL, "cmk", Some(&latest.version))
        .await
        .expect("ok")
        .expect("exists");
    assert_eq!(pinned.kid, latest.kid);
    let ec = api
        .get_key(VAULT_URL, "eckey", None)
        .await
        .expect("ok")
        .expect("exists");
    assert_eq!((ec.kind, ec.rsa_bits), (KeyKind::Ec, None));
    assert!(
        api.get_key(VAULT_URL, "nokey", None)
            .await
            .expect("ok")
            .is_none()
    );

    emu.disable_key("ams-kv", "cmk", None).expect("disable");
    let disabled = api
        .get_key(VAULT_URL, "cmk", None)
        .await
        .expect("ok")
        .expect("exists");
    assert!(!disabled.enabled);
    emu.expire_key("ams-kv", "cmk", None).expect("expire");
    let expired = api
        .get_key(VAULT_URL, "cmk", None)
        .await
        .expect("ok")
        .expect("exists");
    assert!(
        expired.expires.is_some_and(|e| e
            <= azure_core::time::OffsetDateTime::now_utc()
                + azure_core::time::Duration::seconds(1)),
        "{expired:?}"
    );
}

/// Versions come in pages of at most 25; the client follows `nextLink`.
#[tokio::test]
async fn key_versions_are_listed_across_pages() {
    let mut s = seed();
    s.vaults[0].keys.push(SeedKey {
        name: "rotated".into(),
        versions: Some(27),
        ..SeedKey::default()
    });
    let emu = start(s).await;
    let clients = clients(&emu, RetryBudget::default(), None);
    let api = clients.api(&operator(&emu)).expect("client");
    let versions = api
        .list_key_versions(VAULT_URL, "rotated")
        .await
        .expect("lists");
    assert_eq!(versions.len(), 27);
    let mut unique: Vec<_> = versions.iter().map(|v| v.version.clone()).collect();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 27, "pages must not repeat versions");
    assert!(
        emu.request_log()
            .iter()
            .filter(|r| r.uri.contains("/keys/rotated/versions"))
            .count()
            >= 2,
        "expected at least two pages"
    );
}

/// A vault URL outside the cloud never receives a token.
#[tokio::test]
async fn key_requests_to_foreign_hosts_are_refused() {
    let (emu, _, api) = setup().await;
    let err = api
        .get_key(&format!("https://{}/", emu.addr()), "cmk", None)
        .await
        .expect_err("refused");
    assert_eq!(err.reason(), "AzureInvalidInput");
    assert!(emu.request_log().iter().all(|r| !r.uri.contains("/keys/")));
}

// ---------------------------------------------------------------------------------------------
// Budgets: throttling, retries, timeouts

/// A 429 with a long Retry-After returns at once as Throttled with the delay.
#[tokio::test]
async fn throttled_answer_returns_retry_after_without_waiting() {
    let (emu, _, api) = setup().await;
    emu.inject_fault(FaultRule {
        operation: "Mediaservices_Get".into(),
        fault: Fault::Throttle {
            retry_after_secs: 30,
        },
        times: Some(1),
    });
    let started = std::time::Instant::now();
    let err = api
        .get_media_account(&account())
        .await
        .expect_err("throttled");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(err.class(), ErrorClass::Throttled, "{err:?}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(30)));
    assert_eq!(
        emu.call_count("Mediaservices_Get"),
        1,
        "no retry against a long Retry-After"
    );
    // The fault is spent: the next call succeeds.
    assert!(
        api.get_media_account(&account())
            .await
            .expect("ok")
            .is_some()
    );
}

/// A 429 with a short Retry-After is waited out within the budget.
#[tokio::test]
async fn short_retry_after_is_waited_out() {
    let (emu, _, api) = setup().await;
    emu.inject_fault(FaultRule {
        operation: "Mediaservices_Get".into(),
        fault: Fault::Throttle {
            retry_after_secs: 1,
        },
        times: Some(1),
    });
    let started = std::time::Instant::now();
    assert!(
        api.get_media_account(&account())
            .await
            .expect("retried")
            .is_some()
    );
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(emu.call_count("Mediaservices_Get"), 2);
}

/// 5xx answers and dropped connections are retried; persistent ones end as Transient.
#[tokio::test]
async fn server_errors_and_resets_are_retried_then_reported_transient() {
    let (emu, clients, api) = setup().await;
    emu.inject_fault(FaultRule {
        operation: "StorageAccounts_GetProperties".into(),
        fault: Fault::ServerError { status: 503 },
        times: Some(1),
    });
    emu.inject_fault(FaultRule {
        operation: "StorageAccounts_GetProperties".into(),
        fault: Fault::ConnectionReset,
        times: Some(1),
    });
    assert!(
        api.get_storage_account(&storage())
            .await
            .expect("retried")
            .is_some()
    );
    assert_eq!(emu.call_count("StorageAccounts_GetProperties"), 3);
    assert!(clients.metrics().http_retries() >= 2);

    emu.inject_fault(FaultRule {
        operation: "Vaults_Get".into(),
        fault: Fault::ServerError { status: 500 },
        times: None,
    });
    let err = api
        .get_vault(&ResourceId::vault(SUB, RG, "ams-kv"))
        .await
        .expect_err("gives up");
    assert_eq!(err.class(), ErrorClass::Transient, "{err:?}");
    assert_eq!(
        emu.call_count("Vaults_Get"),
        3,
        "1 attempt + 2 retries, no more"
    );
    emu.clear_faults();
}

/// A hanging Azure is cut by the per-attempt timeout and the whole-call budget.
#[tokio::test]
async fn slow_answers_time_out_within_the_budget() {
    let emu = start(seed()).await;
    let budget = RetryBudget {
        per_try_timeout: Duration::from_millis(500),
        total: Duration::from_secs(1),
        ..RetryBudget::default()
    };
    let clients = clients(&emu, budget, Some(Duration::from_secs(3)));
    let api = clients.api(&operator(&emu)).expect("client");
    // Warm up the token so only the ARM call is slow.
    api.get_media_account(&account()).await.expect("ok");
    emu.inject_fault(FaultRule {
        operation: "Mediaservices_Get".into(),
        fault: Fault::Slow { millis: 10_000 },
        times: None,
    });
    let started = std::time::Instant::now();
    let err = api
        .get_media_account(&account())
        .await
        .expect_err("times out");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "took {took:?}");
    assert_eq!(err.reason(), "AzureTimeout", "{err:?}");
    assert_eq!(err.class(), ErrorClass::Transient);
    emu.clear_faults();
}

/// The client-side limiter reads `x-ms-ratelimit-remaining-subscription-reads` and slows down
/// before ARM's bucket is empty: a burst twice the size of ARM's bucket gets no 429.
#[tokio::test]
async fn rate_limiter_adapts_to_remaining_headers_and_avoids_429() {
    let config = EmulatorConfig {
        key_check_interval: None,
        throttle: Some(ThrottleLimits {
            read_bucket: 40,
            read_refill_per_sec: 5,
            ..ThrottleLimits::default()
        }),
        ..EmulatorConfig::with_seed(seed())
    };
    let emu = Emulator::start(config).await.expect("emulator starts");
    let clients = clients(&emu, RetryBudget::default(), None);
    let api = clients.api(&operator(&emu)).expect("client");
    for i in 0..80 {
        if let Err(e) = api.get_media_account(&account()).await {
            panic!("call {i} failed: {e:?}");
        }
    }
    let throttled = emu.request_log().iter().filter(|r| r.status == 429).count();
    assert_eq!(throttled, 0, "the emulator had to throttle us");
    assert_eq!(emu.call_count("Mediaservices_Get"), 80);
}

// ---------------------------------------------------------------------------------------------
// Classification of the answers the reconciler acts on

/// A principal without a role is forbidden: the user must grant it, retrying will not help.
#[tokio::test]
async fn missing_permission_is_user_action_required() {
    let emu = start(seed()).await;
    let clients = clients(&emu, RetryBudget::default(), None);
    let sp = emu.service_principal("outsider").expect("seeded");
    let source = CredentialSource::ClientSecret {
        tenant_id: emu.tenant_id(),
        client_id: sp.client_id,
        secret: azure_core::credentials::Secret::new(sp.secret.expect("secret")),
    };
    let api = clients.api(&source).expect("client");
    let err = api
        .get_media_account(&account())
        .await
        .expect_err("forbidden");
    assert_eq!(err.code(), Some("AuthorizationFailed"), "{err:?}");
    assert_eq!(err.class(), ErrorClass::UserActionRequired);
    assert_eq!(err.status(), Some(403));
}

/// A grant to a principal the directory does not know (yet) is Propagating, not a failure.
#[tokio::test]
async fn grant_to_an_unknown_principal_is_propagating() {
    let (_emu, _, api) = setup().await;
    let err = api
        .create_role_assignment(
            &storage(),
            &new_role_assignment_name(),
            STORAGE_BLOB_DATA_CONTRIBUTOR,
            &new_role_assignment_name(),
        )
        .await
        .expect_err("unknown principal");
    assert_eq!(err.code(), Some("PrincipalNotFound"), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Propagating);
}

/// Media Services refuses an EC key for account encryption: the spec must change.
#[tokio::test]
async fn customer_key_of_type_ec_needs_user_action() {
    let (emu, _, api) = setup().await;
    let (principal, _) = emu
        .user_assigned_identity(&identity().to_string())
        .expect("seeded identity");
    let entry = AccessPolicyEntry {
        tenant_id: emu.tenant_id(),
        object_id: principal,
        application_id: None,
        permissions: AccessPolicyPermissions {
            keys: vec!["get".into(), "wrapKey".into(), "unwrapKey".into()],
            ..Default::default()
        },
    };
    api.update_vault_access_policy(
        &ResourceId::vault(SUB, RG, "ams-kv"),
        AccessPolicyUpdateKind::Add,
        &[entry],
    )
    .await
    .expect("granted");
    let update = MediaAccountUpdate {
        identity: Some(
            serde_json::from_value(serde_json::json!({
                "type": "SystemAssigned,UserAssigned",
                "userAssignedIdentities": { identity().to_string(): {} }
            }))
            .expect("identity"),
        ),
        properties: Some(
            serde_json::from_value(serde_json::json!({ "encryption": {
                "type": "CustomerKey",
                "keyVaultProperties": { "keyIdentifier": format!("{VAULT_URL}keys/eckey") },
                "identity": { "userAssignedIdentity": identity().to_string(), "useSystemAssignedIdentity": false }
            } }))
            .expect("properties"),
        ),
        tags: None,
    };
    let err = api
        .update_media_account(&account(), &update)
        .await
        .expect_err("EC key refused");
    assert_eq!(err.class(), ErrorClass::UserActionRequired, "{err:?}");
    assert_eq!(err.status(), Some(400));
    assert!(
        err.to_string().contains("RSA"),
        "refused for another reason: {err}"
    );
}

/// A rotated client secret replaces the identity's credential and client; calls keep working.
#[tokio::test]
async fn rotated_client_secret_replaces_the_credential() {
    let emu = start(seed()).await;
    let clients = clients(&emu, RetryBudget::default(), None);
    let before = clients.client(&operator(&emu)).expect("client");
    before
        .get_media_account(&account())
        .await
        .expect("ok with the first secret");
    let sp = emu.service_principal("operator").expect("seeded");
    let rotated = CredentialSource::ClientSecret {
        tenant_id: emu.tenant_id(),
        client_id: sp.client_id,
        secret: azure_core::credentials::Secret::new("operator-secret-rotated"),
    };
    let after = clients.client(&rotated).expect("client");
    assert!(
        !Arc::ptr_eq(&before, &after),
        "the rotated secret must not reuse the old client"
    );
    after
        .get_media_account(&account())
        .await
        .expect("ok with the rotated secret");
    after
        .get_key(VAULT_URL, "cmk", None)
        .await
        .expect("key vault too");
    assert_eq!(
        emu.call_count("Token"),
        3,
        "one ARM token per secret, one Key Vault token"
    );
    assert!(Arc::ptr_eq(
        &after,
        &clients.client(&rotated).expect("client")
    ));
}

/// The reconciler finds a vault by the name in a key identifier among the subscription's vaults,
/// tells a soft-deleted vault from a missing one, and can delete an account.
#[tokio::test]
async fn vaults_are_listed_deleted_vaults_read_and_accounts_deleted() {
    let (emu, _clients, api) = setup().await;
    let vaults = api.list_vaults(SUB).await.expect("list vaults");
    assert!(
        vaults.iter().any(|v| v.name.as_deref() == Some("ams-kv")),
        "{:?}",
        vaults.iter().map(|v| &v.name).collect::<Vec<_>>()
    );
    assert_eq!(
        api.get_deleted_vault(SUB, "westeurope", "ams-kv")
            .await
            .expect("read deleted vault"),
        None,
        "a live vault is not deleted"
    );
    emu.delete_vault("ams-kv").expect("delete vault");
    assert!(
        api.list_vaults(SUB)
            .await
            .expect("list vaults")
            .iter()
            .all(|v| v.name.as_deref() != Some("ams-kv")),
        "a deleted vault is still listed"
    );
    let deleted = api
        .get_deleted_vault(SUB, "westeurope", "ams-kv")
        .await
        .expect("read deleted vault")
        .expect("the vault is soft-deleted");
    assert!(
        deleted
            .properties
            .vault_id
            .as_deref()
            .is_some_and(|id| id.ends_with("/vaults/ams-kv")),
        "{deleted:?}"
    );
    assert!(
        deleted.properties.scheduled_purge_date.is_some(),
        "{deleted:?}"
    );

    match api
        .delete_media_account(&account())
        .await
        .expect("delete account")
    {
        Started::Done(existed) => assert!(existed),
        Started::Pending(op) => {
            let mut done = false;
            for _ in 0..10 {
                if let PollOutcome::Succeeded(_) = api.poll_operation(&op).await.expect("poll") {
                    done = true;
                    break;
                }
            }
            assert!(done, "the delete did not finish");
        }
    }
    assert_eq!(api.get_media_account(&account()).await.expect("get"), None);
    assert!(matches!(
        api.delete_media_account(&account())
            .await
            .expect("delete again"),
        Started::Done(false)
    ));
    emu.shutdown().await;
}

/// The end-of-scenario request check is not a formality: an invented enum value sent through
/// the production client path is refused by the emulator (naming the property) and reported
/// by the check, while a correct request passes it.
#[tokio::test]
async fn an_invented_enum_value_is_refused_and_fails_the_request_check() {
    let emu = Emulator::start(EmulatorConfig {
        key_check_interval: None,
        record_bodies: true,
        ..EmulatorConfig::with_seed(seed())
    })
    .await
    .expect("emulator starts");
    let clients = clients(&emu, RetryBudget::default(), None);
    let api = clients.api(&operator(&emu)).expect("client");
    let good = MediaAccountUpdate {
        identity: None,
        properties: Some(MediaAccountProperties {
            storage_authentication: Some("System".to_owned()),
            ..MediaAccountProperties::default()
        }),
        tags: None,
    };
    api.update_media_account(&account(), &good)
        .await
        .expect("a valid update is accepted");
    let checked = spec::check_requests(&emu.request_log()).expect("valid requests pass");
    assert!(checked >= 1, "checked {checked} bodies");

    let bad = MediaAccountUpdate {
        identity: None,
        properties: Some(MediaAccountProperties {
            storage_authentication: Some("Bogus".to_owned()),
            ..MediaAccountProperties::default()
        }),
        tags: None,
    };
    let err = api
        .update_media_account(&account(), &bad)
        .await
        .expect_err("the emulator refuses an invented enum value");
    assert_eq!(err.status(), Some(400), "{err}");
    assert_eq!(err.code(), Some("InvalidRequestContent"), "{err}");
    assert!(
        err.to_string().contains("properties.storageAuthentication"),
        "{err}"
    );
    let problems = spec::check_requests(&emu.request_log()).expect_err("the check must fail");
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].contains("Mediaservices_Update")
            && problems[0].contains("storageAuthentication"),
        "{problems:#?}"
    );
    emu.shutdown().await;
}
