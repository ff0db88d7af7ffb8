//! `ams-azure-emulator`: serves the in-process Azure emulator as a standalone HTTPS server.
//!
//! It reads a YAML seed, starts the emulator, writes its CA certificate to a file, prints how to
//! point a client at it, and runs until Ctrl-C. See `docs/emulator.md`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ams_security_operator::emulator::{Emulator, EmulatorConfig, Seed, ThrottleLimits};
use clap::Parser;

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(
    name = "ams-azure-emulator",
    about = "A stateful Azure emulator (Entra ID, ARM, Key Vault) held to the official REST specifications"
)]
struct Args {
    /// The YAML seed describing the world.
    #[arg(long, env = "EMULATOR_SEED")]
    seed: PathBuf,
    /// Listen address (HTTPS).
    #[arg(long, env = "EMULATOR_BIND", default_value = "127.0.0.1:8443")]
    bind: SocketAddr,
    /// Where to write the generated CA certificate (PEM).
    #[arg(long, env = "EMULATOR_CA_OUT", default_value = "emulator-ca.pem")]
    ca_out: PathBuf,
    /// Seconds between background customer-key access checks (0: only on demand).
    #[arg(long, default_value_t = 5)]
    key_check_interval_secs: u64,
    /// Status polls a Media Services operation stays `InProgress`.
    #[arg(long, default_value_t = 1)]
    lro_polls: u32,
    /// Role-assignment propagation delay for new principals, in seconds.
    #[arg(long, default_value_t = 0)]
    propagation_delay_secs: u64,
    /// Enforce ARM's documented throttling limits (429 when a bucket is empty).
    #[arg(long)]
    throttle: bool,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.seed)?;
    let seed = Seed::from_yaml(&text)?;
    let config = EmulatorConfig {
        seed: seed.clone(),
        bind: args.bind,
        key_check_interval: (args.key_check_interval_secs > 0)
            .then(|| Duration::from_secs(args.key_check_interval_secs)),
        lro_polls: args.lro_polls,
        propagation_delay: Duration::from_secs(args.propagation_delay_secs),
        throttle: args.throttle.then(ThrottleLimits::default),
        record_bodies: false,
    };
    let emulator = Emulator::start(config).await?;
    std::fs::write(&args.ca_out, emulator.ca_pem())?;
    println!(
        "ams-azure-emulator listening on https://{}",
        emulator.addr()
    );
    println!("  CA certificate: {}", args.ca_out.display());
    println!("  tenant: {}", emulator.tenant_id());
    println!(
        "  resolve login.microsoftonline.com, management.azure.com and <vault>.vault.azure.net to {}",
        emulator.addr()
    );
    for sp in &seed.service_principals {
        if let Some(info) = emulator.service_principal(&sp.name) {
            println!(
                "  service principal {}: client id {}, object id {}",
                info.name, info.client_id, info.object_id
            );
        }
    }
    if let Some(header) = emulator.msi_header() {
        println!(
            "  IDENTITY_ENDPOINT={} IDENTITY_HEADER={header}",
            emulator.msi_endpoint()
        );
    }
    println!(
        "  admin API: {}/admin (POST), /state, /requests, /counters (GET)",
        emulator.admin_url()
    );
    tokio::signal::ctrl_c().await?;
    emulator.shutdown().await;
    Ok(())
}
