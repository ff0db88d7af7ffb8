//! The test control plane itself: the kube-controller-manager that `scripts/control-plane.sh`
//! starts must do the two jobs later tests rely on, finishing namespace deletion and
//! garbage-collecting objects whose owner is gone.

mod common;

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};

/// A deleted namespace disappears (the namespace controller empties and finalizes it), so test
/// namespaces and the operator's own cleanup behave as on a real cluster.
#[tokio::test]
async fn deleted_namespaces_finish_deleting() {
    let client = common::client().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let name = format!("ams-nsdel-{}", std::process::id());
    let mut ns = Namespace::default();
    ns.metadata.name = Some(name.clone());
    ns.metadata.labels = Some([(common::TEST_LABEL.to_owned(), "true".to_owned())].into());
    let created = namespaces
        .create(&PostParams::default(), &ns)
        .await
        .expect("create namespace");
    let uid = created.metadata.uid.clone().expect("uid");
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), &name);
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("content".into());
    configmaps
        .create(&PostParams::default(), &cm)
        .await
        .expect("create content");

    namespaces
        .delete(&name, &DeleteParams::default())
        .await
        .expect("delete namespace");
    tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(namespaces, &name, conditions::is_deleted(&uid)),
    )
    .await
    .expect("namespace still present after 60s: is kube-controller-manager running?")
    .expect("watch namespace");
}

/// An object whose owner is deleted is garbage-collected, as the operator's owned objects will be.
#[tokio::test]
async fn dependents_of_a_deleted_owner_are_garbage_collected() {
    common::with_temp_ns("gc", |client, ns| async move {
        let configmaps: Api<ConfigMap> = Api::namespaced(client, &ns);
        let mut owner = ConfigMap::default();
        owner.metadata.name = Some("owner".into());
        let owner = configmaps.create(&PostParams::default(), &owner).await.expect("create owner");
        let mut dependent = ConfigMap::default();
        dependent.metadata.name = Some("dependent".into());
        dependent.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: "owner".into(),
            uid: owner.metadata.uid.clone().expect("uid"),
            ..OwnerReference::default()
        }]);
        let dependent = configmaps.create(&PostParams::default(), &dependent).await.expect("create dependent");
        configmaps.delete("owner", &DeleteParams::default()).await.expect("delete owner");
        let uid = dependent.metadata.uid.expect("uid");
        tokio::time::timeout(Duration::from_secs(60), await_condition(configmaps, "dependent", conditions::is_deleted(&uid)))
            .await
            .expect("dependent still present 60s after its owner was deleted: is the garbage collector running?")
            .expect("watch dependent");
    })
    .await;
}
