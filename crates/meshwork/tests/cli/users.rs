//! The users service through the binary, as a user checks it: on PostgreSQL
//! (`meshwork users migrate`, then `meshwork users`), under a flood of bad
//! logins, and under `meshwork up` across a restart.

use contract::users::user_service_client::UserServiceClient;
use contract::users::{CreateUserRequest, GetJwksRequest, GetUserRequest, LoginRequest};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use testkit::postgres::TestDatabase;
use tonic::transport::Channel;

use crate::harness::{Running, run};

async fn client(address: &str) -> UserServiceClient<Channel> {
    let channel = Channel::from_shared(format!("http://{address}")).unwrap().connect().await.unwrap();
    UserServiceClient::new(channel)
}

/// Whether `token` verifies against the keys the service publishes now.
async fn token_verifies(client: &mut UserServiceClient<Channel>, token: &str) -> bool {
    let kid = jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
    let jwks = client.get_jwks(GetJwksRequest {}).await.unwrap().into_inner();
    let Some(key) = jwks.keys.iter().find(|key| key.kid == kid) else { return false };
    let key = DecodingKey::from_ed_components(key.x.as_deref().unwrap()).unwrap();
    let validation = Validation::new(Algorithm::EdDSA);
    jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation).is_ok()
}

/// `meshwork users` alone on a fresh PostgreSQL database, migrated first
/// with `meshwork users migrate`: the process, its address, and what must
/// outlive it.
struct UsersAlone {
    running: Running,
    address: String,
    key_file: std::path::PathBuf,
    _database: TestDatabase,
}

impl UsersAlone {
    async fn start(test: &str) -> Option<Self> {
        let database = TestDatabase::create(test).await?;
        let key_file = std::env::temp_dir().join(format!("meshwork-key-{}.pem", uuid::Uuid::new_v4()));
        std::fs::write(&key_file, run(&["users", "keygen"], &[]).stdout).unwrap();
        let env = [
            ("DATABASE_URL", database.url()),
            ("JWT_SIGNING_KEY_FILE", key_file.to_str().unwrap()),
            ("PORT", "0"),
            ("MESHWORK_HOST", "127.0.0.1"),
            ("MESHWORK_SERVICE_SECRET", testkit::SERVICE_SECRET),
        ];
        let migrated = run(&["users", "migrate"], &env);
        assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
        let mut running = Running::start(&["users"], &env);
        let address = running.listening("users");
        Some(Self { running, address, key_file, _database: database })
    }

    fn stop(mut self) {
        assert!(self.running.terminate().success());
        std::fs::remove_file(&self.key_file).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn users_migrates_and_serves_on_postgres() {
    let Some(alone) = UsersAlone::start("users_migrates_and_serves_on_postgres").await else { return };
    let mut users = client(&alone.address).await;
    let request = CreateUserRequest {
        email: "user@example.com".to_owned(),
        name: "John Doe".to_owned(),
        password: Some("hunter2hunter2".to_owned()),
    };
    users.create_user(request).await.unwrap();
    let login = LoginRequest { email: "user@example.com".to_owned(), password: "hunter2hunter2".to_owned() };
    let token = users.login(login).await.unwrap().into_inner().access_token;
    assert!(token_verifies(&mut users, &token).await);
    alone.stop();
}

/// The Kubernetes users pod's memory limit, with room to spare.
const MEMORY_CEILING_MIB: f64 = 200.0;

/// A process's resident memory, from /proc.
fn resident_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib / 1024.0
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_concurrent_bad_logins_stay_under_the_memory_ceiling() {
    let Some(alone) = UsersAlone::start("two_hundred_concurrent_bad_logins").await else { return };
    let mut users = client(&alone.address).await;
    let account = CreateUserRequest {
        email: "victim@example.com".to_owned(),
        name: "Victim".to_owned(),
        password: Some("correct horse battery".to_owned()),
    };
    users.create_user(account).await.unwrap();

    let pid = alone.running.pid();
    let before = resident_mib(pid);
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        std::thread::spawn(move || {
            let mut peak = 0.0_f64;
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(resident_mib(pid));
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            peak
        })
    };
    // Straight at the service port: no gateway limit in the way. Each email
    // is a different (unknown) account, so no per-account throttle either:
    // every attempt wants a password hash.
    let attempts: Vec<_> = (0..200)
        .map(|i| {
            let mut users = users.clone();
            tokio::spawn(async move {
                let guess = LoginRequest { email: format!("nobody-{i}@example.com"), password: format!("guess-{i}") };
                users.login(guess).await.unwrap_err().code()
            })
        })
        .collect();
    let mut codes = Vec::with_capacity(attempts.len());
    for attempt in attempts {
        codes.push(attempt.await.unwrap());
    }
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.join().unwrap();
    let held_back = codes.iter().filter(|code| **code == tonic::Code::ResourceExhausted).count();
    let refused = codes.iter().filter(|code| **code == tonic::Code::Unauthenticated).count();
    assert_eq!(refused + held_back, 200, "each attempt is refused or told to retry: {codes:?}");

    let right = LoginRequest { email: "victim@example.com".to_owned(), password: "correct horse battery".to_owned() };
    users.login(right).await.expect("the right password signs in once the flood is over");
    let after = resident_mib(pid);
    eprintln!(
        "users resident memory: {before:.0} MiB before, {peak:.0} MiB at peak, {after:.0} MiB after 200 concurrent \
         bad logins ({refused} checked, {held_back} told to retry)"
    );
    assert!(peak < MEMORY_CEILING_MIB, "peak {peak:.0} MiB over the {MEMORY_CEILING_MIB} MiB ceiling");
    alone.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn up_keeps_users_and_token_keys_across_a_restart() {
    let data_dir = std::env::temp_dir().join(format!("meshwork-up-{}", uuid::Uuid::new_v4()));
    let env = [("MESHWORK_DATA_DIR", data_dir.to_str().unwrap())];

    let mut first = Running::start(&["up", "--base-port", "0"], &env);
    let users_address = first.read_up_banner().remove(1).1;
    let mut users = client(&users_address).await;
    let request = CreateUserRequest {
        email: "keep@example.com".to_owned(),
        name: "Kept".to_owned(),
        password: Some("long enough".to_owned()),
    };
    let created = users.create_user(request).await.unwrap().into_inner().user.unwrap();
    let login = LoginRequest { email: "keep@example.com".to_owned(), password: "long enough".to_owned() };
    let token = users.login(login).await.unwrap().into_inner().access_token;
    assert!(first.terminate().success());
    drop(users);

    let mut second = Running::start(&["up", "--base-port", "0"], &env);
    let users_address = second.read_up_banner().remove(1).1;
    let mut users = client(&users_address).await;
    let fetched = users.get_user(GetUserRequest { id: created.id.clone() }).await.unwrap().into_inner().user;
    assert_eq!(fetched, Some(created), "the user survived the restart");
    assert!(token_verifies(&mut users, &token).await, "the old token still verifies");
    assert!(second.terminate().success());
    std::fs::remove_dir_all(data_dir).unwrap();
}
