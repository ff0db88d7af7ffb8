//! Leader election with two instances of the real binary on the real apiserver: exactly one
//! reconciles; when it is killed (SIGKILL, so it cannot release the lease) the other takes over
//! within the lease duration and reconciles what comes next.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use serde_json::json;

use super::common::with_temp_ns;
use super::harness::*;

const LEASE: &str = "ams-e2e-leader";

async fn holder(client: &kube::Client, ns: &str) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), ns);
    leases
        .get_opt(LEASE)
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty())
}

async fn wait_holder(client: &kube::Client, ns: &str, not: Option<&str>) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(h) = holder(client, ns).await
            && Some(h.as_str()) != not
        {
            return h;
        }
        assert!(Instant::now() < deadline, "no new lease holder within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn one_of_two_instances_reconciles_and_the_other_takes_over_when_it_dies() {
    with_temp_ns("e2e-leader", |client, ns| {
        Box::pin(async move {
            let emu = emulator().await;
            let args = |identity: &'static str| {
                [
                    "--leader-election",
                    "--leader-election-namespace",
                    ns.as_str(),
                    "--leader-election-lease",
                    LEASE,
                    "--leader-election-identity",
                    identity,
                    "--leader-election-lease-seconds",
                    "6",
                ]
                .map(str::to_owned)
            };
            let a_args = args("instance-a");
            let b_args = args("instance-b");
            let a = OperatorProcess::spawn(&emu, &ns, &a_args.iter().map(String::as_str).collect::<Vec<_>>());
            let b = OperatorProcess::spawn(&emu, &ns, &b_args.iter().map(String::as_str).collect::<Vec<_>>());
            // Both serve health and readiness, leader or not.
            for p in [&a, &b] {
                wait_for_http(&format!("http://{}/readyz", p.health), 200).await;
            }
            let leader = wait_holder(&client, &ns, None).await;
            create(
                &client,
                &ns,
                &manifest("one", json!({ "identity": { "type": "SystemAssigned" } })),
            )
            .await;
            wait_ready(&client, &ns, "one").await;
            let (mut leading, standby) = if leader == "instance-a" { (a, b) } else { (b, a) };
            assert!(leading.reconciles().await >= 1.0, "the leader reconciled nothing");
            assert!(standby.reconciles().await < 0.5, "the standby reconciled");

            // The leader dies without releasing the lease.
            leading.child.start_kill().expect("kill the leader");
            let killed = Instant::now();
            let _ = leading.child.wait().await;
            let mut two = manifest("two", json!({ "identity": { "type": "SystemAssigned" } }));
            two.spec.account.name = "mediaacct2".into();
            create(&client, &ns, &two).await;
            let successor = wait_holder(&client, &ns, Some(&leader)).await;
            let took_lease = killed.elapsed();
            wait_ready(&client, &ns, "two").await;
            let took_over = killed.elapsed();
            eprintln!(
                "leader {leader} killed: {successor} held the lease after {:.1} s and reconciled the next object after {:.1} s (lease 6 s)",
                took_lease.as_secs_f64(),
                took_over.as_secs_f64()
            );
            assert_ne!(successor, leader);
            assert!(standby.reconciles().await >= 1.0, "the successor reconciled nothing");
            drop(standby);
            emu.shutdown().await;
        })
    })
    .await;
}
