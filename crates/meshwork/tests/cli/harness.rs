//! Running the `meshwork` binary from tests: a clean environment, its
//! output, SIGTERM, and a health probe.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
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
    /// Every line of its log stream (stderr) so far, read as it is written
    /// (a full pipe would stop the process).
    log: Arc<(Mutex<Vec<String>>, Condvar)>,
}

impl Running {
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = meshwork(args, env).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let log = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let (written, stderr) = (log.clone(), child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                written.0.lock().unwrap().push(line);
                written.1.notify_all();
            }
        });
        Self { child, stdout, log }
    }

    /// The log lines written so far.
    pub fn log(&self) -> Vec<String> {
        self.log.0.lock().unwrap().clone()
    }

    /// Waits (at most 30 s) for a JSON log line that `matches`, and returns it.
    pub fn wait_for_log(&self, what: &str, matches: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let (lines, written) = &*self.log;
        let mut lines = lines.lock().unwrap();
        let mut seen = 0;
        loop {
            for line in &lines[seen..] {
                if let Ok(json) = serde_json::from_str::<serde_json::Value>(line)
                    && matches(&json)
                {
                    return json;
                }
            }
            seen = lines.len();
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            assert!(!left.is_zero(), "no log line {what} within 30 s; the log:\n{}", lines.join("\n"));
            lines = written.wait_timeout(lines, left).unwrap().0;
        }
    }

    pub fn read_line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        assert!(!line.is_empty(), "meshwork closed its output early");
        line
    }

    /// Waits for the component's "serving" log line: its address.
    pub fn listening(&mut self, component: &str) -> String {
        let line = self.wait_for_log(&format!("of {component} serving"), |line| {
            line["message"] == "serving gRPC and HTTP" && line["component"] == component
        });
        line["address"].as_str().expect("the address is a string").to_owned()
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
