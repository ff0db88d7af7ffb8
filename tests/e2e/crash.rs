//! Crash safety of grants: the operator's real binary is killed (SIGKILL) after Azure has made a
//! role assignment but before the operator heard back or wrote status, and a new process then
//! finishes the job without leaving a second assignment.

use std::time::{Duration, Instant};

use ams_security_operator::crd::MediaServicesAccount;
use ams_security_operator::emulator::{Emulator, Fault, FaultRule, LoggedRequest};
use kube::api::Api;
use serde_json::{Value, json};

use super::common::with_temp_ns;
use super::harness::*;

/// Storage Blob Data Contributor.
const SBDC: &str = "ba92f5b4-2d11-453d-a403-e96b0029c9fe";
/// How long the emulator holds the answer to the first create: far longer than the test needs
/// to see the write and kill the process.
const HOLD: Duration = Duration::from_secs(30);

/// The emulator's role assignments of `role` to `principal` at exactly `scope`.
fn assignments(emu: &Emulator, scope: &str, principal: &str, role: &str) -> Vec<Value> {
    role_assignments_at(emu, scope, principal)
        .into_iter()
        .filter(|a| {
            a["role_guid"]
                .as_str()
                .is_some_and(|r| r.eq_ignore_ascii_case(role))
        })
        .collect()
}

/// The role-assignment creates sent for `scope`, with the assignment name each carried.
fn creates(log: &[LoggedRequest], scope: &str) -> Vec<(String, LoggedRequest)> {
    let prefix =
        format!("{scope}/providers/Microsoft.Authorization/roleAssignments/").to_ascii_lowercase();
    log.iter()
        .filter(|r| r.operation == "RoleAssignments_Create")
        .filter_map(|r| {
            let path = r
                .uri
                .split('?')
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            let name = path.strip_prefix(&prefix)?.to_owned();
            Some((name, r.clone()))
        })
        .collect()
}

/// Polls the emulator's world (at most 60 s) until it holds the grant; returns it.
async fn wait_for_assignment(emu: &Emulator, scope: &str, principal: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(a) = assignments(emu, scope, principal, SBDC).pop() {
            return a;
        }
        assert!(
            Instant::now() < deadline,
            "no Storage Blob Data Contributor assignment within 60 s; writes: {:#?}",
            describe(&azure_writes(emu))
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `METHOD operation uri -> status` of the creates, for messages.
fn describe_creates(sent: &[(String, LoggedRequest)]) -> Vec<String> {
    describe(&sent.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>())
}

/// Waits until the emulator holds the grant (its answer still held), kills the process with
/// SIGKILL and checks it sent one create; returns the name that create carried.
async fn kill_in_the_window(
    mut first: OperatorProcess,
    emu: &Emulator,
    scope: &str,
    principal: &str,
) -> String {
    let made = wait_for_assignment(emu, scope, principal).await;
    let committed = Instant::now();
    first.child.start_kill().expect("kill the operator");
    let _ = first.child.wait().await;
    assert!(
        committed.elapsed() < HOLD,
        "the kill took {:?}, past the {HOLD:?} hold: the answer may have been delivered",
        committed.elapsed()
    );
    let sent = creates(&emu.request_log(), scope);
    assert_eq!(
        sent.len(),
        1,
        "the first process sent one create before it died: {:#?}",
        describe_creates(&sent)
    );
    let (name, _) = sent.into_iter().next().expect("one create");
    assert!(
        made["name"]
            .as_str()
            .is_some_and(|n| n.eq_ignore_ascii_case(&name)),
        "the assignment {made} is not the one the create named ({name})"
    );
    name
}

/// The object's status names no storage role assignment.
async fn assert_grant_unrecorded(client: &kube::Client, ns: &str) {
    let api: Api<MediaServicesAccount> = Api::namespaced(client.clone(), ns);
    let object = serde_json::to_value(api.get("crash").await.expect("get")).expect("json");
    let recorded: Vec<&Value> = object["status"]["storage"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| !s["roleAssignmentId"].is_null())
        .collect();
    assert!(
        recorded.is_empty(),
        "the killed process recorded the grant it never heard back about: {recorded:?}"
    );
}

/// Waits (at most 60 s) until a second create for `scope` is in the log.
async fn wait_for_resend(emu: &Emulator, scope: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while creates(&emu.request_log(), scope).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the restarted process sent no create within 60 s; writes: {:#?}",
            describe(&azure_writes(emu))
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Killing the operator between a role-assignment create and its status write, then starting
/// it again, leaves exactly one assignment: the new process re-sends the create under the same
/// name, and ARM answers that identical PUT with 200 instead of making another.
///
/// The emulator commits the first create at once and holds its answer for 30 s
/// (`slowAfterCommit`); the process is killed in that window, so it never learns the write
/// succeeded and its status does not record it. The restarted process must not find the
/// assignment by listing (ARM's cached reads can trail a write: the emulator's list lag
/// stands for that), so it sends the create again; only the name tells ARM this is the same
/// assignment. (With lists up to date the new process reads the assignment back and sends no
/// second create at all: the plan grants only what it does not see.)
///
/// Were names random, the second PUT would carry a new name. For an assignment without an
/// ABAC condition, as the operator makes them, ARM (and the emulator, `arm.rs`
/// `create_role_assignment`) refuses a second name for the same principal, role and scope with
/// 409 `RoleAssignmentExists` and creates nothing; the operator counts that as held. So the
/// count alone would still be one, and this test would fail on the name and status checks of
/// the second PUT instead. What random names would cost is ownership: the surviving assignment
/// would carry a name the restarted process never derived, so the `RevokeGrants` cleanup, which
/// removes only assignments whose name it derives for this object, would leave it behind. Only
/// assignments with a condition may repeat under new names (the emulator checks for a
/// duplicate only when neither has one), and there random names would leave two.
#[tokio::test]
async fn a_crash_between_role_assignment_create_and_status_write_leaves_one_assignment() {
    with_temp_ns("e2e-crash", |client, ns| async move {
        let emu = emulator().await;
        let (principal, _) = emu
            .user_assigned_identity(&identity_id())
            .expect("identity");
        let scope = storage_id("mediaprimary");
        emu.inject_fault(FaultRule {
            operation: "RoleAssignments_Create".into(),
            fault: Fault::SlowAfterCommit {
                millis: u64::try_from(HOLD.as_millis()).expect("fits"),
            },
            times: None,
        });
        let first = OperatorProcess::spawn(&emu, &ns, &[]);
        let uai = json!({ "userAssignedIdentity": identity_id() });
        let spec = json!({
            "identity": { "type": "UserAssigned", "userAssignedIdentities": [identity_id()] },
            "storage": { "authentication": "ManagedIdentity", "accounts": [
                { "id": scope, "type": "Primary", "identity": uai } ] },
        });
        create(&client, &ns, &manifest("crash", spec)).await;

        // Azure has made the grant; the answer is still held.
        let first_name = kill_in_the_window(first, &emu, &scope, &principal).await;
        assert_grant_unrecorded(&client, &ns).await;

        // A new process, whose list of the storage account's assignments misses the one made.
        emu.clear_faults();
        emu.set_role_assignment_list_lag(Duration::from_secs(3600));
        let second = OperatorProcess::spawn(&emu, &ns, &[]);
        wait_for_resend(&emu, &scope).await;
        // Lists catch up; the process finishes on what it then sees.
        emu.set_role_assignment_list_lag(Duration::ZERO);
        wait_ready(&client, &ns, "crash").await;

        let sent = creates(&emu.request_log(), &scope);
        eprintln!("creates: {:#?}", describe_creates(&sent));
        let held = assignments(&emu, &scope, &principal, SBDC);
        assert_eq!(
            held.len(),
            1,
            "one assignment for (scope, principal, role): {held:#?}"
        );
        let resent = &sent[1..];
        for (name, request) in resent {
            assert_eq!(
                name,
                &first_name,
                "the restarted process named the assignment differently: {:#?}",
                describe_creates(&sent)
            );
            assert_eq!(
                request.status,
                200,
                "ARM did not answer the re-sent create as the identical PUT it is: {:#?}",
                describe(std::slice::from_ref(request))
            );
        }
        drop(second);
        if let Err(problems) = super::spec::check_requests(&emu.request_log()) {
            panic!(
                "the operator sent requests the specs refuse:\n{}",
                problems.join("\n")
            );
        }
        emu.shutdown().await;
    })
    .await;
}
