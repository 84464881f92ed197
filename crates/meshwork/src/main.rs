//! `meshwork`: the one binary. `up` runs everything in one process on
//! embedded backends; `gateway|users|products|orders` run one component on
//! its production backends, as docker-compose and Kubernetes do.

mod cli;
mod healthcheck;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use clap::Parser;
use cli::{Cli, Command, OrdersAction, UsersAction};
use meshwork::components::{Backends, Component, start_error};
use meshwork::{bind, up};
use platform::{CancellationToken, ConfigError, EXIT_INVALID_CONFIG, Env, Settings};

/// mimalloc instead of glibc's malloc: with the token check remembered, the
/// allocator was the largest cost left on the gateway's request path (about
/// a fifth of its CPU, `perf` under `scripts/bench-peers`).
///
/// Built `no_thp`: mimalloc otherwise asks for transparent huge pages for
/// its arenas, and every 2 MiB page touched counts whole in RSS. The
/// gateway idled at 33 MB and peaked at 62-75 MB under 256 connections with
/// them; at 19 MB and 45-51 MB without, at the same CPU per request
/// (alternating runs of one binary, `MIMALLOC_ALLOW_THP=0`). Where THP is
/// `always` rather than `madvise`, the kernel hands out huge pages unasked:
/// the image sets `MIMALLOC_ALLOW_THP=0`, which turns THP off for the process.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Users { action: Some(UsersAction::Keygen { out }) } = &cli.command {
        return match out {
            None => {
                print!("{}", users::tokens::generate_pem());
                ExitCode::SUCCESS
            }
            Some(path) => match write_key(path) {
                Ok(message) => {
                    println!("{message}");
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("meshwork users keygen: cannot write {}: {error}", path.display());
                    ExitCode::FAILURE
                }
            },
        };
    }
    if let Command::Healthcheck { port, path } = &cli.command {
        return match healthcheck::check(*port, path) {
            Ok(()) => ExitCode::SUCCESS,
            Err(why) => {
                eprintln!("meshwork healthcheck: {why}");
                ExitCode::FAILURE
            }
        };
    }
    // Configuration is checked before the runtime starts and before any port
    // is bound, so a bad deployment fails at once and says why.
    let settings = match Settings::load(&Env::from_process(), &meshwork::component_settings()) {
        Ok(settings) => settings,
        Err(error) => return invalid_configuration(&error),
    };
    let runtime = tokio::runtime::Runtime::new().expect("the Tokio runtime starts");
    match runtime.block_on(run(cli.command, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => match (error.downcast_ref::<Logged>(), error.downcast_ref::<ConfigError>()) {
            (Some(Logged { invalid_configuration: true }), _) => ExitCode::from(EXIT_INVALID_CONFIG as u8),
            (Some(Logged { invalid_configuration: false }), _) => ExitCode::FAILURE,
            (None, Some(error)) => invalid_configuration(error),
            (None, None) => {
                eprintln!("meshwork: {error:#}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Writes a new signing key to `path`, created readable by its owner only,
/// unless a key is already there (a restarted stack keeps its tokens valid).
fn write_key(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let created = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path);
    match created {
        Ok(mut file) => {
            file.write_all(users::tokens::generate_pem().as_bytes())?;
            file.sync_all()?;
            Ok(format!("wrote a new token signing key to {}", path.display()))
        }
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists && std::fs::metadata(path)?.len() > 0 => {
            Ok(format!("kept the token signing key in {}", path.display()))
        }
        Err(error) => Err(error),
    }
}

fn invalid_configuration(error: &ConfigError) -> ExitCode {
    eprintln!("meshwork: invalid configuration: {error}");
    ExitCode::from(EXIT_INVALID_CONFIG as u8)
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    let service_name = match &command {
        Command::Up { .. } => "meshwork",
        Command::Gateway => "gateway",
        Command::Users { .. } => "users",
        Command::Products => "products",
        Command::Orders { .. } => "orders",
        Command::Healthcheck { .. } => unreachable!("handled before configuration"),
    };
    let _telemetry = platform::telemetry::init(&settings.telemetry, service_name)?;
    // From here on, a failure is a line of the log stream like any other.
    run_logged(command, settings).await.map_err(|error| {
        let invalid_configuration = error.downcast_ref::<ConfigError>().is_some();
        let error = format!("{error:#}");
        match invalid_configuration {
            true => tracing::error!(error, "meshwork: invalid configuration"),
            false => tracing::error!(error, "meshwork stopped"),
        }
        anyhow::Error::new(Logged { invalid_configuration })
    })
}

/// A failure already written to the log stream; only the exit code is left to give.
#[derive(Debug)]
struct Logged {
    invalid_configuration: bool,
}

impl std::fmt::Display for Logged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("see the log")
    }
}

impl std::error::Error for Logged {}

async fn run_logged(command: Command, settings: Settings) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    platform::shutdown::cancel_on_signal(shutdown.clone());
    match command {
        Command::Up { base_port, only } => up::run(settings, base_port, only, shutdown).await,
        Command::Gateway => serve_one(Component::Gateway, settings, shutdown).await,
        Command::Users { action: None } => serve_one(Component::Users, settings, shutdown).await,
        Command::Orders { action: Some(OrdersAction::Migrate) } => {
            orders::start::postgres_store(&settings).map_err(start_error)?.migrate().await?;
            println!("orders database migrated");
            Ok(())
        }
        Command::Users { action: Some(UsersAction::Migrate) } => {
            users::start::postgres_store(&settings).map_err(start_error)?.migrate().await?;
            println!("users database migrated");
            Ok(())
        }
        Command::Users { action: Some(UsersAction::Keygen { .. }) } | Command::Healthcheck { .. } => {
            unreachable!("handled before configuration")
        }
        Command::Products => serve_one(Component::Products, settings, shutdown).await,
        Command::Orders { action: None } => serve_one(Component::Orders, settings, shutdown).await,
    }
}

async fn serve_one(component: Component, settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let host = settings.host.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let address = SocketAddr::new(host, settings.port.unwrap_or(component.default_port()));
    let server = component.server(&settings, Backends::Production, &shutdown).await?;
    let listener = bind(address).await?;
    // The server logs its address ("serving gRPC and HTTP"), on the log
    // stream like every other line; stdout carries nothing.
    register(component, &settings, &shutdown);
    server.serve(listener, shutdown).await?;
    Ok(())
}

/// Registers the instance in etcd when configured (`ETCD_ENDPOINTS` and
/// `MESHWORK_ADVERTISE_URL`), for the gateway's `etcd://` discovery.
#[cfg(feature = "etcd")]
fn register(component: Component, settings: &Settings, shutdown: &CancellationToken) {
    let (false, Some(url)) = (settings.etcd_endpoints.is_empty(), settings.advertise_url.clone()) else { return };
    let registration = platform::registry::Registration {
        etcd_endpoints: settings.etcd_endpoints.clone(),
        prefix: settings.etcd_prefix.clone(),
        component: component.name().to_owned(),
        url,
        ttl: std::time::Duration::from_secs(10),
    };
    tokio::spawn(platform::registry::register_until(registration, shutdown.clone()));
}

/// Without the etcd build there is nothing to register in (configuration
/// refuses `ETCD_ENDPOINTS` there).
#[cfg(not(feature = "etcd"))]
fn register(_: Component, _: &Settings, _: &CancellationToken) {}
