//! docker-compose.yml, proved without a container engine: the four
//! components run as processes with exactly the environment the compose
//! file gives each one (as `docker-compose config` renders it), its names
//! mapped to this machine: the backends' host names and database names to
//! the test servers (a database of this test's own), the components' host
//! names and ports to free ports on 127.0.0.1, `/keys` to a directory of the
//! test. One variable is added, `RABBITMQ_PREFIX`, so that the run has the
//! broker's exchange and queues to itself. The key is written by the
//! compose file's own `keys` command, every component is waited for with
//! its own healthcheck command, and the template's scenario then runs
//! through the gateway, the event path included (a cancelled order's stock
//! comes back).

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use testkit::amqp::TestBroker;
use testkit::mongo::TestMongo;
use testkit::postgres::TestDatabase;

use crate::harness::{Running, run};

/// The compose file's services as `docker-compose config` renders them, or
/// `None` (skipped) without docker-compose; CI (`MESHWORK_REQUIRE_SERVICES=1`)
/// installs it and fails instead.
fn rendered_compose_file(secret: &str) -> Option<Value> {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docker-compose.yml");
    let rendered = Command::new("docker-compose")
        .args(["-f", file, "config"])
        .env("MESHWORK_SERVICE_SECRET", secret)
        .stderr(Stdio::inherit())
        .output();
    let rendered = match rendered {
        Ok(output) if output.status.success() => output.stdout,
        Ok(output) => panic!("docker-compose config failed: {output:?}"),
        Err(_) if std::env::var("MESHWORK_REQUIRE_SERVICES").is_ok_and(|v| v == "1") => {
            panic!("docker-compose is not installed, and MESHWORK_REQUIRE_SERVICES=1 requires it")
        }
        Err(_) => {
            eprintln!("skipped: docker-compose is not installed (`source scripts/services` installs it)");
            return None;
        }
    };
    // YAML to JSON with Python's PyYAML, which the test machines have.
    let mut python = Command::new("python3")
        .args(["-c", "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    std::io::Write::write_all(&mut python.stdin.take().unwrap(), &rendered).unwrap();
    let output = python.wait_with_output().unwrap();
    assert!(output.status.success(), "the rendered compose file is YAML");
    Some(serde_json::from_slice(&output.stdout).unwrap())
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The last path segment of a URL, before any query: a database's name.
fn database_name(url: &str) -> &str {
    url.split('?').next().unwrap().rsplit('/').next().unwrap()
}

/// A URL's `host:port`.
fn host_port(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap();
    authority.rsplit_once('@').map_or(authority, |(_, host)| host)
}

async fn rest(method: &str, url: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let mut request = http::Request::builder().method(method).uri(url).header("content-type", "application/json");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let response = client.request(request.body(body.into()).unwrap()).await.unwrap();
    let status = response.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_compose_files_settings_run_the_template_scenario_through_the_gateway() {
    let test = "compose_settings";
    let Some(users_db) = TestDatabase::create(test).await else { return };
    let Some(orders_db) = TestDatabase::create(test).await else { return };
    let Some(mongo) = TestMongo::create(test).await else { return };
    let Some(broker) = TestBroker::create(test) else { return };
    let Some(compose) = rendered_compose_file(testkit::SERVICE_SECRET) else { return };
    let services = &compose["services"];

    // The compose file's user owns its databases, as in its PostgreSQL.
    let admin_url = users_db.url().replace(database_name(users_db.url()), "postgres");
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url).await.unwrap();
    let create_role = "DO $$ BEGIN CREATE ROLE meshwork LOGIN PASSWORD 'meshwork'; \
                       EXCEPTION WHEN duplicate_object THEN NULL; END $$";
    sqlx::query(create_role).execute(&mut admin).await.unwrap();
    for database in [&users_db, &orders_db] {
        let owner = format!("ALTER DATABASE {} OWNER TO meshwork", database_name(database.url()));
        sqlx::query(sqlx::AssertSqlSafe(owner)).execute(&mut admin).await.unwrap();
    }

    let keys = std::env::temp_dir().join(format!("meshwork-compose-keys-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&keys).unwrap();
    let ports: BTreeMap<&str, u16> =
        ["gateway", "users", "products", "orders"].into_iter().map(|name| (name, free_port())).collect();
    let mut names: Vec<(String, String)> = vec![
        (
            format!("postgres:5432/{}", "users"),
            format!("{}/{}", host_port(users_db.url()), database_name(users_db.url())),
        ),
        (
            format!("postgres:5432/{}", "orders"),
            format!("{}/{}", host_port(orders_db.url()), database_name(orders_db.url())),
        ),
        ("mongo:27017/shop".to_owned(), format!("{}/{}", host_port(&mongo.url()), database_name(&mongo.url()))),
        ("rabbitmq:5672".to_owned(), host_port(&broker.url).to_owned()),
        ("jaeger:4317".to_owned(), format!("127.0.0.1:{}", free_port())),
        ("/keys/".to_owned(), format!("{}/", keys.display())),
    ];
    for (name, port) in &ports {
        let compose_port = services[*name]["environment"]["PORT"].as_str().unwrap();
        names.push((format!("{name}:{compose_port}"), format!("127.0.0.1:{port}")));
    }
    let localise = |value: &str| names.iter().fold(value.to_owned(), |value, (from, to)| value.replace(from, to));
    let environment = |name: &str| -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = services[name]["environment"]
            .as_object()
            .unwrap_or_else(|| panic!("{name} has an environment"))
            .iter()
            .map(|(key, value)| (key.clone(), localise(value.as_str().unwrap_or_default())))
            .collect();
        for (key, value) in &mut env {
            if key == "PORT" {
                *value = ports[name].to_string();
            }
        }
        env.push(("RABBITMQ_PREFIX".to_owned(), broker.prefix.clone()));
        env
    };
    let command = |name: &str| -> Vec<String> {
        services[name]["command"].as_array().unwrap().iter().map(|word| localise(word.as_str().unwrap())).collect()
    };

    // The keys step, as compose runs it.
    let keygen = command("keys");
    let written = run(&keygen.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert!(written.status.success(), "{}", String::from_utf8_lossy(&written.stderr));

    let mut running = Vec::new();
    for name in ["users", "products", "orders", "gateway"] {
        let env = environment(name);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let args = command(name);
        running.push(Running::start(&args.iter().map(String::as_str).collect::<Vec<_>>(), &env));
    }
    // Each healthy by its own healthcheck command, as compose waits for it.
    for (name, port) in &ports {
        let port = port.to_string();
        let mut healthy = false;
        for _ in 0..300 {
            if run(&["healthcheck", "--port", &port], &[]).status.success() {
                healthy = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(healthy, "{name} never became healthy");
    }

    // The template's scenario, through the gateway, as its administrator
    // (the compose file names one) and customer.
    let gateway = format!("http://127.0.0.1:{}", ports["gateway"]);
    let admin_email =
        services["users"]["environment"]["USERS_ADMINS"].as_str().expect("compose names an administrator");
    let account = json!({ "email": admin_email, "name": "Admin", "password": "correct horse battery" });
    let (status, user) = rest("POST", &format!("{gateway}/users"), None, Some(account)).await;
    assert_eq!(status, 200, "{user}");
    let login = json!({ "email": admin_email, "password": "correct horse battery" });
    let (status, session) = rest("POST", &format!("{gateway}/users/login"), None, Some(login)).await;
    assert_eq!(status, 200, "{session}");
    let token = session["accessToken"].as_str().unwrap().to_owned();
    let product = json!({ "id": "prod-123", "name": "Widget", "price": 29.99, "stock": 100 });
    let (status, body) = rest("POST", &format!("{gateway}/products"), Some(&token), Some(product)).await;
    assert_eq!(status, 200, "{body}");
    let order = json!({ "userId": user["id"], "productId": "prod-123", "quantity": 2 });
    let (status, order) = rest("POST", &format!("{gateway}/orders"), Some(&token), Some(order)).await;
    assert_eq!(status, 200, "{order}");

    // Counts as proto3's JSON writes them: int32 a number, int64 a string.
    let count = |value: &Value| value.as_i64().or_else(|| value.as_str()?.parse().ok());
    let stock_and_sold = || async {
        let (_, product) = rest("GET", &format!("{gateway}/products/prod-123"), Some(&token), None).await;
        (count(&product["stock"]), count(&product["unitsSold"]))
    };
    testkit::eventually("the order's stock taken and its sale counted", Duration::from_secs(20), || async {
        stock_and_sold().await == (Some(98), Some(2))
    })
    .await;
    let cancel = format!("{gateway}/orders/{}:cancel", order["id"].as_str().unwrap());
    let (status, body) = rest("POST", &cancel, Some(&token), Some(json!({}))).await;
    assert_eq!(status, 200, "{body}");
    testkit::eventually("the cancelled order's stock to come back", Duration::from_secs(20), || async {
        stock_and_sold().await == (Some(100), Some(0))
    })
    .await;

    for (name, mut component) in ["users", "products", "orders", "gateway"].into_iter().zip(running) {
        let status = component.terminate();
        assert!(status.success(), "{name} exited {status} on SIGTERM; its log:\n{}", component.log().join("\n"));
    }
    std::fs::remove_dir_all(keys).unwrap();
}
