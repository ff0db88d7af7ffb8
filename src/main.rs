//! `ams-security-operator` command line.
//!
//! - `run`: the operator's main job (see `controller`): watch `MediaServicesAccount` objects and
//!   reconcile their Azure security state continuously.
//! - `crds`: print the CRDs this build serves, for `kubectl apply -f -`.
//! - `validate FILE...`: check `MediaServicesAccount` manifests against every rule of the API,
//!   CEL rules included, without a cluster (for CI pipelines and for clusters older than 1.25,
//!   which do not enforce CEL).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use ams_security_operator::azure::credentials::OperatorCredential;
#[cfg(feature = "test-endpoints")]
use ams_security_operator::azure::transport::HostOverride;
use ams_security_operator::azure::transport::TransportConfig;
use ams_security_operator::azure::{AzureClients, AzureCloud, AzureConfig};
use ams_security_operator::controller::{self, Settings};
use ams_security_operator::{crd, reconcile::validate};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    version,
    about = "Reconciles the security state of Azure Media Services accounts"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator: reconcile every MediaServicesAccount until SIGTERM or Ctrl-C.
    Run(Box<RunArgs>),
    /// Print the CustomResourceDefinitions as YAML.
    Crds,
    /// Validate MediaServicesAccount manifests (YAML, several documents per file allowed; `-`
    /// reads standard input). Other kinds in the files are skipped.
    Validate {
        /// Manifest files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// Flags of `run`; each can also be set by its environment variable.
#[derive(Args, Debug)]
struct RunArgs {
    /// Namespace to watch (repeat, or comma-separate in the variable); default: all namespaces.
    #[arg(long = "namespace", env = "AMS_NAMESPACES", value_delimiter = ',')]
    namespaces: Vec<String>,
    /// Kubeconfig file; default: in-cluster configuration, else $KUBECONFIG or ~/.kube/config.
    #[arg(long, env = "AMS_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// The operator's Azure identity for resources without credentialsSecretRef:
    /// `workload-identity` (reads AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE),
    /// `managed-identity` or `managed-identity:<client-id>`.
    #[arg(
        long,
        env = "AMS_AZURE_CREDENTIAL",
        default_value = "workload-identity"
    )]
    azure_credential: OperatorCredential,
    /// Azure cloud: AzurePublic, AzureUSGovernment or AzureChina.
    #[arg(long, env = "AMS_AZURE_CLOUD", default_value = "AzurePublic")]
    azure_cloud: String,
    /// PEM file of one more CA to trust for Azure endpoints, in addition to the system roots
    /// (for the Azure emulator; never needed against Azure). Only in builds with the
    /// `test-endpoints` feature; the image has no such flag.
    #[cfg(feature = "test-endpoints")]
    #[arg(long, env = "AMS_AZURE_EXTRA_CA")]
    azure_extra_ca: Option<PathBuf>,
    /// Connect to IP:PORT for an Azure host name, `HOST=IP:PORT` or `*.SUFFIX=IP:PORT` (repeat,
    /// or comma-separate in the variable). URLs and TLS checks stay those of Azure. For the
    /// Azure emulator; never needed against Azure. Only in builds with the `test-endpoints`
    /// feature; the image has no such flag.
    #[cfg(feature = "test-endpoints")]
    #[arg(
        long = "azure-host-override",
        env = "AMS_AZURE_HOST_OVERRIDES",
        value_delimiter = ','
    )]
    azure_host_overrides: Vec<HostOverride>,
    /// Address of /healthz and /readyz; `off` serves nothing.
    #[arg(long, env = "AMS_HEALTH_ADDR", default_value = "127.0.0.1:8080")]
    health_addr: String,
    /// Reconciles running at once.
    #[arg(long, env = "AMS_CONCURRENCY", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    concurrency: u16,
    /// Seconds in-flight reconciles may take to finish after SIGTERM before they are abandoned.
    #[arg(long, env = "AMS_SHUTDOWN_GRACE_SECONDS", default_value_t = 20)]
    shutdown_grace_seconds: u64,
    /// Days before a customer key's expiry from which `EncryptionReady` warns
    /// (`KeyExpiringSoon`) and a Warning event is sent, while access still works.
    #[arg(long, env = "AMS_KEY_EXPIRY_WARNING_DAYS", default_value_t = 30)]
    key_expiry_warning_days: u64,
    /// Hours an account may stay on an older version of a key whose spec tracks the latest
    /// before `EncryptionReady` warns (`KeyRotationPending`).
    #[arg(long, env = "AMS_KEY_ROTATION_GRACE_HOURS", default_value_t = 24)]
    key_rotation_grace_hours: u64,
    /// Seconds between drift checks of a reconciled account (identity, storage, grants). Key
    /// access is checked separately, on each resource's `keyAccessCheckInterval`.
    #[arg(long, env = "AMS_RESYNC_SECONDS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(10..=86_400))]
    resync_seconds: u64,
    /// ARM reads per hour the operator's principal may make in one subscription (ARM's limit).
    #[arg(long, env = "AMS_ARM_READS_PER_HOUR", default_value_t = 36_000, value_parser = clap::value_parser!(u32).range(1..))]
    arm_reads_per_hour: u32,
    /// Key Vault reads per hour per vault (Key Vault's limit).
    #[arg(long, env = "AMS_VAULT_READS_PER_HOUR", default_value_t = 1_440_000, value_parser = clap::value_parser!(u32).range(1..))]
    vault_reads_per_hour: u32,
    /// Percent of those limits key probes may use; past it, probe rounds stretch instead of
    /// being throttled (the effective interval is logged and shown in status).
    #[arg(long, env = "AMS_PROBE_BUDGET_PERCENT", default_value_t = 50, value_parser = clap::value_parser!(u8).range(1..=100))]
    probe_budget_percent: u8,
    /// A YAML file mapping namespaces to the subscriptions (and resource groups) they may
    /// manage (see docs/reconciler.md); a resource outside it gets `Ready=False`
    /// (`TenancyDenied`) and no Azure call. Without it every namespace may manage everything the
    /// operator's identity can reach.
    #[arg(long, env = "AMS_TENANCY_FILE")]
    tenancy_file: Option<PathBuf>,
    /// This cluster's identity, part of the names of the role assignments the operator makes
    /// (with each object's namespace, name and uid), so that clusters sharing a subscription
    /// never derive the same name. Any stable string; e.g. the uid of the `kube-system`
    /// namespace. Changing it later makes the operator treat its earlier assignments as made
    /// by someone else (kept, never revoked).
    #[arg(long, env = "AMS_CLUSTER_ID", default_value = "")]
    cluster_id: String,
    /// Elect a leader over a Lease so that several replicas can run and exactly one
    /// reconciles; the others stand by and take over when it stops.
    #[arg(long, env = "AMS_LEADER_ELECTION", default_value_t = false)]
    leader_election: bool,
    /// Namespace of the Lease (the operator's own; default: `POD_NAMESPACE`, else `default`).
    #[arg(long, env = "AMS_LEADER_ELECTION_NAMESPACE")]
    leader_election_namespace: Option<String>,
    /// Name of the Lease.
    #[arg(
        long,
        env = "AMS_LEADER_ELECTION_LEASE",
        default_value = "ams-security-operator"
    )]
    leader_election_lease: String,
    /// This instance's identity in the Lease (default: the host name and a random suffix).
    #[arg(long, env = "AMS_LEADER_ELECTION_IDENTITY")]
    leader_election_identity: Option<String>,
    /// Seconds a lease is valid after its last renewal: the longest a successor waits when a
    /// leader dies without releasing it. The leader renews a third of it before expiry.
    #[arg(long, env = "AMS_LEADER_ELECTION_LEASE_SECONDS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(3..=300))]
    leader_election_lease_seconds: u64,
    /// Log format: `text` or `json`. The filter comes from RUST_LOG (default `info`).
    #[arg(long, env = "AMS_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run(args) => match tokio::runtime::Runtime::new() {
            Ok(rt) => rt.block_on(run(*args)),
            Err(err) => {
                eprintln!("error: failed to start the async runtime: {err}");
                ExitCode::FAILURE
            }
        },
        Command::Crds => match crd::render() {
            Ok(files) => {
                let docs: Vec<_> = files.iter().map(|f| f.contents.as_str()).collect();
                print!("{}", docs.join("---\n"));
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("error: failed to render CRDs: {err}");
                ExitCode::FAILURE
            }
        },
        Command::Validate { files } => validate_files(&files),
    }
}

fn validate_files(files: &[PathBuf]) -> ExitCode {
    let mut failed = false;
    for path in files {
        let text = if path.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin())
        } else {
            std::fs::read_to_string(path)
        };
        let text = match text {
            Ok(text) => text,
            Err(err) => {
                eprintln!("{}: failed to read: {err}", path.display());
                failed = true;
                continue;
            }
        };
        for (index, document) in serde_yaml_ng::Deserializer::from_str(&text).enumerate() {
            let value: serde_json::Value = match serde::Deserialize::deserialize(document) {
                Ok(value) => value,
                Err(err) => {
                    eprintln!(
                        "{}: document {}: failed to parse YAML: {err}",
                        path.display(),
                        index + 1
                    );
                    failed = true;
                    continue;
                }
            };
            if value.is_null()
                || value.get("kind").and_then(|k| k.as_str()) != Some("MediaServicesAccount")
            {
                continue;
            }
            let name = value
                .pointer("/metadata/name")
                .and_then(|n| n.as_str())
                .unwrap_or("<unnamed>");
            match validate::validate_object(&value) {
                Ok(_) => println!("{}: {name}: valid", path.display()),
                Err(errors) => {
                    failed = true;
                    for error in errors.0 {
                        eprintln!("{}: {name}: {error}", path.display());
                    }
                }
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "failed to listen for SIGTERM; only Ctrl-C stops the operator");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested; letting in-flight reconciles finish");
}

async fn run(args: RunArgs) -> ExitCode {
    init_logging(&args.log_format);
    match try_run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let mut message = err.to_string();
            let mut source = err.source();
            while let Some(s) = source {
                message.push_str(": ");
                message.push_str(&s.to_string());
                source = s.source();
            }
            tracing::error!("{message}");
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Leader election as the flags ask for it.
fn leader_election(
    args: &RunArgs,
) -> Result<Option<controller::leader::LeaderElection>, Box<dyn std::error::Error>> {
    Ok(if args.leader_election {
        let election = controller::leader::LeaderElection {
            namespace: args
                .leader_election_namespace
                .clone()
                .or_else(|| std::env::var("POD_NAMESPACE").ok())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "default".to_owned()),
            lease_name: args.leader_election_lease.clone(),
            identity: args
                .leader_election_identity
                .clone()
                .filter(|i| !i.is_empty())
                .unwrap_or_else(controller::leader::default_identity),
            lease_duration: Duration::from_secs(args.leader_election_lease_seconds),
            renew_before: Duration::from_secs((args.leader_election_lease_seconds / 3).max(1)),
        };
        election.validate()?;
        Some(election)
    } else {
        None
    })
}

/// The tenancy map named by `--tenancy-file`.
fn tenancy(
    args: &RunArgs,
) -> Result<Option<ams_security_operator::tenancy::Tenancy>, Box<dyn std::error::Error>> {
    Ok(match &args.tenancy_file {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("failed to read the tenancy map {}: {e}", path.display()))?;
            Some(ams_security_operator::tenancy::Tenancy::from_yaml(
                &text,
                &path.display().to_string(),
            )?)
        }
    })
}

/// The transport `--azure-extra-ca` and `--azure-host-override` ask for.
#[cfg(feature = "test-endpoints")]
fn test_endpoints(args: &RunArgs) -> Result<TransportConfig, Box<dyn std::error::Error>> {
    let extra_root_ca_pem = match &args.azure_extra_ca {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| format!("failed to read --azure-extra-ca {}: {e}", path.display()))?,
        ),
        None => None,
    };
    let transport = TransportConfig {
        extra_root_ca_pem,
        host_overrides: args.azure_host_overrides.clone(),
        ..TransportConfig::default()
    };
    if transport.is_customised() {
        tracing::warn!(
            overrides = args.azure_host_overrides.len(),
            "Azure endpoints are redirected (--azure-extra-ca / --azure-host-override): this is for the Azure emulator"
        );
    }
    Ok(transport)
}

async fn try_run(args: RunArgs) -> Result<(), Box<dyn std::error::Error>> {
    let health_addr: Option<SocketAddr> =
        if args.health_addr.eq_ignore_ascii_case("off") {
            None
        } else {
            Some(args.health_addr.parse().map_err(|e| {
                format!("failed to parse --health-addr {:?}: {e}", args.health_addr)
            })?)
        };
    let tenancy = tenancy(&args)?;
    let leader_election = leader_election(&args)?;
    let cloud = AzureCloud::from_name(&args.azure_cloud)?;
    let operator_credential = args
        .azure_credential
        .source(|name| std::env::var(name).ok())?;
    #[cfg(feature = "test-endpoints")]
    let transport = test_endpoints(&args)?;
    #[cfg(not(feature = "test-endpoints"))]
    let transport = TransportConfig::default();
    let azure = AzureClients::new(AzureConfig {
        cloud,
        transport,
        ..AzureConfig::default()
    })?;
    let kube_config = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)?;
            kube::Config::from_custom_kubeconfig(
                kubeconfig,
                &kube::config::KubeConfigOptions::default(),
            )
            .await?
        }
        None => kube::Config::infer().await?,
    };
    let client = kube::Client::try_from(kube_config)?;
    let settings = Settings {
        namespaces: args
            .namespaces
            .into_iter()
            .filter(|n| !n.is_empty())
            .collect(),
        concurrency: args.concurrency,
        health_addr,
        shutdown_grace: Duration::from_secs(args.shutdown_grace_seconds),
        operator_credential,
        reporter: "ams-security-operator".to_owned(),
        key_expiry_warning: Duration::from_secs(
            args.key_expiry_warning_days.saturating_mul(86_400),
        ),
        resync_interval: Duration::from_secs(args.resync_seconds),
        probe_budget: ams_security_operator::monitor::Budget {
            arm_reads_per_hour: f64::from(args.arm_reads_per_hour),
            vault_reads_per_hour: f64::from(args.vault_reads_per_hour),
            share: f64::from(args.probe_budget_percent) / 100.0,
        },
        key_rotation_grace: Duration::from_secs(args.key_rotation_grace_hours.saturating_mul(3600)),
        tenancy,
        leader_election,
        cluster_id: args.cluster_id.clone(),
    };
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        namespaces = ?settings.namespaces,
        credential = settings.operator_credential.kind(),
        "starting"
    );
    controller::run(client, Arc::new(azure), settings, shutdown_signal()).await?;
    Ok(())
}
