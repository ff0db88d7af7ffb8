//! `examples/` against `examples/emulator/world.yaml`, the pair `scripts/run-local.sh` runs: with
//! the operator's main job in-process, every example becomes Ready.

use std::collections::BTreeMap;

use ams_security_operator::crd::MediaServicesAccount;
use ams_security_operator::emulator::{Emulator, EmulatorConfig, Seed};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};

use super::common::{manifests, project_path, with_temp_ns};
use super::harness::{Operator, create, finish, wait_ready};

/// Every example converges: what a newcomer sees at the end of `scripts/run-local.sh`.
#[tokio::test]
async fn every_example_becomes_ready_against_the_examples_world() {
    with_temp_ns("e2e-examples", |client, ns| async move {
        let text = std::fs::read_to_string(project_path("examples/emulator/world.yaml"))
            .expect("read the examples world");
        let emu = Emulator::start(EmulatorConfig {
            key_check_interval: None,
            record_bodies: true,
            ..EmulatorConfig::with_seed(Seed::from_yaml(&text).expect("seed parses"))
        })
        .await
        .expect("emulator starts");
        // examples/access-grants.yaml names a credentials Secret; run-local.sh creates the same.
        let sp = emu.service_principal("operator").expect("seeded operator");
        let data: BTreeMap<String, ByteString> = [
            ("tenantId", emu.tenant_id()),
            ("clientId", sp.client_id.clone()),
            ("clientSecret", sp.secret.clone().expect("operator secret")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), ByteString(v.into_bytes())))
        .collect();
        let mut secret = Secret::default();
        secret.metadata.name = Some("tailspin-azure-credentials".into());
        secret.data = Some(data);
        Api::<Secret>::namespaced(client.clone(), &ns)
            .create(&PostParams::default(), &secret)
            .await
            .expect("create the credentials Secret");

        let operator = Operator::start(&client, &emu, &ns);
        let mut names = Vec::new();
        for (file, object) in manifests::examples() {
            let mut example: MediaServicesAccount =
                serde_json::from_value(object).unwrap_or_else(|e| panic!("{file}: {e}"));
            example.metadata.namespace = None;
            names.push(example.metadata.name.clone().expect("examples are named"));
            create(&client, &ns, &example).await;
        }
        assert!(names.len() >= 4, "{names:?}");
        for name in &names {
            let ready = wait_ready(&client, &ns, name).await;
            assert_eq!(
                ready.status.as_ref().and_then(|s| s.observed_generation),
                ready.metadata.generation,
                "{name}"
            );
        }
        finish(operator, emu).await;
    })
    .await;
}
