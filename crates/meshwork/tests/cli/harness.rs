//! Running the `meshwork` binary from tests: a clean environment, its
//! output, SIGTERM, and a health probe.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_meshwork");

/// Upstream URLs the gateway accepts but never reaches (it connects lazily).
pub const UNREACHABLE_UPSTREAMS: [(&str, &str); 3] = [
    ("USER_SERVICE_URL", "http://127.0.0.1:1"),
    ("PRODUCT_SERVICE_URL", "http://127.0.0.1:1"),
    ("ORDER_SERVICE_URL", "http://127.0.0.1:1"),
];

/// A command with a clean environment: only what the test sets is seen.
pub fn meshwork(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BIN);
    command.args(args).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    command.env("MESHWORK_LOG_FORMAT", "json").envs(env.iter().copied());
    command
}

pub fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    meshwork(args, env).output().expect("meshwork runs")
}

/// A running `meshwork` process, killed if the test fails. Its blocking waits
/// need a multi-threaded test runtime, so that the test's own gRPC connections
/// keep answering the server's graceful-shutdown handshake meanwhile.
pub struct Running {
    child: Child,
    pub stdout: BufReader<std::process::ChildStdout>,
}

impl Running {
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = meshwork(args, env).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Self { child, stdout }
    }

    pub fn read_line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        assert!(!line.is_empty(), "meshwork closed its output early");
        line
    }

    /// Reads the `<component> listening on <address>` line: the address.
    pub fn listening(&mut self, component: &str) -> String {
        let line = self.read_line();
        let prefix = format!("{component} listening on ");
        line.trim().strip_prefix(&prefix).unwrap_or_else(|| panic!("{line}")).to_owned()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: the process stops at whatever instant it had reached.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
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

impl Running {
    /// Reads the `meshwork up` banner: each component's name and address.
    pub fn read_up_banner(&mut self) -> Vec<(String, String)> {
        let header = self.read_line();
        assert!(header.starts_with("meshwork is up"), "{header}");
        (0..4)
            .map(|_| {
                let line = self.read_line();
                let mut words = line.split_whitespace();
                let name = words.next().unwrap_or_default().to_owned();
                let address =
                    words.next().and_then(|url| url.strip_prefix("http://")).unwrap_or_else(|| panic!("{line}"));
                (name, address.to_owned())
            })
            .collect()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn health(address: &str) -> tonic_health::pb::health_check_response::ServingStatus {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let channel = tonic::transport::Channel::from_shared(format!("http://{address}")).unwrap();
    let mut client = HealthClient::new(channel.connect().await.unwrap());
    let response = client.check(HealthCheckRequest { service: String::new() }).await.unwrap();
    response.into_inner().status()
}
