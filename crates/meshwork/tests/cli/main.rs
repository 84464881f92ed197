//! The `meshwork` binary as an operator runs it: help, configuration
//! failures, serving, and a clean exit on SIGTERM.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_meshwork");

/// A command with a clean environment: only what the test sets is seen.
fn meshwork(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BIN);
    command.args(args).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    command.env("MESHWORK_LOG_FORMAT", "json").envs(env.iter().copied());
    command
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    meshwork(args, env).output().expect("meshwork runs")
}

#[test]
fn help_lists_every_subcommand() {
    let output = run(&["--help"], &[]);
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for subcommand in ["up", "gateway", "users", "products", "orders"] {
        assert!(help.contains(subcommand), "--help lacks {subcommand}:\n{help}");
    }
}

#[test]
fn each_subcommand_help_names_its_environment_variables() {
    for (subcommand, variables) in [
        ("up", &["MESHWORK_DATA_DIR", "RUST_LOG", "OTEL_EXPORTER_OTLP_ENDPOINT"][..]),
        ("gateway", &["PORT", "USER_SERVICE_URL", "PRODUCT_SERVICE_URL", "ORDER_SERVICE_URL"][..]),
        ("users", &["PORT", "DATABASE_URL", "JAEGER_AGENT_HOST"][..]),
        ("products", &["PORT", "MONGO_URL", "RABBITMQ_URL"][..]),
        ("orders", &["PORT", "DATABASE_URL", "RABBITMQ_URL", "USER_SERVICE_URL", "PRODUCT_SERVICE_URL"][..]),
    ] {
        let output = run(&[subcommand, "--help"], &[]);
        assert!(output.status.success(), "{subcommand} --help failed");
        let help = String::from_utf8(output.stdout).unwrap();
        for variable in variables {
            assert!(help.contains(variable), "`{subcommand} --help` does not name {variable}:\n{help}");
        }
    }
}

#[test]
fn invalid_configuration_exits_64_naming_the_setting() {
    for (name, value) in [("PORT", "eighty"), ("DATABASE_URL", "mysql://db"), ("MESHWORK_SHUTDOWN_GRACE", "soon")] {
        let output = run(&["users"], &[(name, value)]);
        assert_eq!(output.status.code(), Some(64), "{name}={value}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(stderr.contains(name), "{name}={value}: {stderr}");
    }
}

#[test]
fn unknown_key_in_the_config_file_exits_64() {
    let path = std::env::temp_dir().join(format!("meshwork-cli-{}.toml", std::process::id()));
    std::fs::write(&path, "databse_url = \"postgres://localhost/db\"\n").unwrap();
    let output = run(&["users"], &[("MESHWORK_CONFIG", path.to_str().unwrap())]);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(output.status.code(), Some(64));
    assert!(String::from_utf8(output.stderr).unwrap().contains("databse_url"));
}

#[test]
fn configuration_is_checked_before_any_port_is_bound() {
    // Hold the port: if meshwork tried to bind before checking its settings,
    // it would fail with a bind error (exit 1) instead of exit 64.
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port().to_string();
    let output = run(&["users"], &[("PORT", &port), ("MESHWORK_HOST", "127.0.0.1"), ("RABBITMQ_URL", "http://x")]);
    assert_eq!(output.status.code(), Some(64));
    assert!(String::from_utf8(output.stderr).unwrap().contains("RABBITMQ_URL"));
}

#[test]
fn a_taken_port_is_a_clear_error() {
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port().to_string();
    let output = run(&["users"], &[("PORT", &port), ("MESHWORK_HOST", "127.0.0.1")]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")), "{stderr}");
}

/// A running `meshwork` process, killed if the test fails. Its blocking waits
/// need a multi-threaded test runtime, so that the test's own gRPC connections
/// keep answering the server's graceful-shutdown handshake meanwhile.
struct Running {
    child: Child,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Running {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = meshwork(args, env).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Self { child, stdout }
    }

    fn read_line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        assert!(!line.is_empty(), "meshwork closed its output early");
        line
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        for _ in 0..100 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("meshwork did not exit within 5 s of SIGTERM");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn health(address: &str) -> tonic_health::pb::health_check_response::ServingStatus {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let channel = tonic::transport::Channel::from_shared(format!("http://{address}")).unwrap();
    let mut client = HealthClient::new(channel.connect().await.unwrap());
    let response = client.check(HealthCheckRequest { service: String::new() }).await.unwrap();
    response.into_inner().status()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_component_serves_health_and_exits_cleanly_on_sigterm() {
    let mut running = Running::start(&["users"], &[("PORT", "0"), ("MESHWORK_HOST", "127.0.0.1")]);
    let line = running.read_line();
    let address = line.trim().strip_prefix("users listening on ").unwrap_or_else(|| panic!("{line}")).to_owned();
    assert_eq!(health(&address).await, tonic_health::pb::health_check_response::ServingStatus::Serving);
    let status = running.terminate();
    assert!(status.success(), "exit status {status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn up_serves_four_components_and_exits_cleanly_on_sigterm() {
    let data_dir = std::env::temp_dir().join(format!("meshwork-up-{}", std::process::id()));
    let mut running = Running::start(&["up", "--base-port", "0"], &[("MESHWORK_DATA_DIR", data_dir.to_str().unwrap())]);
    let header = running.read_line();
    assert!(header.starts_with("meshwork is up"), "{header}");
    for name in ["gateway", "users", "products", "orders"] {
        let line = running.read_line();
        let mut words = line.split_whitespace();
        assert_eq!(words.next(), Some(name), "{line}");
        let address = words.next().and_then(|url| url.strip_prefix("http://")).unwrap_or_else(|| panic!("{line}"));
        assert_eq!(health(address).await, tonic_health::pb::health_check_response::ServingStatus::Serving);
    }
    let status = running.terminate();
    assert!(status.success(), "exit status {status}");
}
