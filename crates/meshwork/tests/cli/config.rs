//! Help text and configuration failures: exit code 64, before binding.

use std::net::TcpListener;

use crate::harness::run;

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
        ("users", &["PORT", "DATABASE_URL", "JWT_SIGNING_KEY_FILE", "JWT_TTL", "JAEGER_AGENT_HOST"][..]),
        ("products", &["PORT", "MONGO_URL", "RABBITMQ_URL", "ORDER_SERVICE_URL", "PRODUCTS_HOLD_TTL"][..]),
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
fn users_without_its_database_or_key_exits_64_naming_them() {
    let output = run(&["users"], &[]);
    assert_eq!(output.status.code(), Some(64));
    assert!(String::from_utf8(output.stderr).unwrap().contains("DATABASE_URL"));

    let output = run(&["users"], &[("DATABASE_URL", "postgres://127.0.0.1:1/none")]);
    assert_eq!(output.status.code(), Some(64));
    assert!(String::from_utf8(output.stderr).unwrap().contains("JWT_SIGNING_KEY_FILE"));

    let output = run(
        &["users"],
        &[("DATABASE_URL", "postgres://127.0.0.1:1/none"), ("JWT_SIGNING_KEY_FILE", "/nonexistent/key.pem")],
    );
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("JWT_SIGNING_KEY_FILE") && stderr.contains("/nonexistent/key.pem"), "{stderr}");
}

#[test]
fn products_without_its_database_exits_64_naming_it() {
    let output = run(&["products"], &[]);
    assert_eq!(output.status.code(), Some(64));
    assert!(String::from_utf8(output.stderr).unwrap().contains("MONGO_URL"));
}

#[test]
fn gateway_without_its_upstreams_exits_64_naming_them() {
    let output = run(&["gateway"], &[]);
    assert_eq!(output.status.code(), Some(64));
    assert!(String::from_utf8(output.stderr).unwrap().contains("USER_SERVICE_URL"));
}

#[test]
fn keygen_prints_a_pkcs8_pem_key() {
    let output = run(&["users", "keygen"], &[]);
    assert!(output.status.success());
    let pem = String::from_utf8(output.stdout).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n") && pem.ends_with("-----END PRIVATE KEY-----\n"), "{pem}");
}

/// As docker-compose's `keys` step runs it: the key file is the owner's
/// alone, a second run keeps the first key, and a place it cannot write to
/// is a failure (which stops the stack) that says why.
#[test]
fn keygen_out_writes_a_key_once_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("meshwork-keygen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("token.pem");
    let first = run(&["users", "keygen", "--out", key.to_str().unwrap()], &[]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let written = std::fs::read_to_string(&key).unwrap();
    assert!(written.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{written}");
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);

    let again = run(&["users", "keygen", "--out", key.to_str().unwrap()], &[]);
    assert!(again.status.success());
    assert_eq!(std::fs::read_to_string(&key).unwrap(), written, "the first key is kept");

    let nowhere = dir.join("missing-dir/token.pem");
    let failed = run(&["users", "keygen", "--out", nowhere.to_str().unwrap()], &[]);
    assert_eq!(failed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&failed.stderr).contains("cannot write"), "says why");
    std::fs::remove_dir_all(&dir).unwrap();
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
    let mut env = vec![("PORT", port.as_str()), ("MESHWORK_HOST", "127.0.0.1")];
    env.extend(crate::harness::UNREACHABLE_UPSTREAMS);
    let output = run(&["gateway"], &env);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")), "{stderr}");
}

#[test]
fn an_etcd_source_without_etcd_exits_64_naming_what_is_missing() {
    let mut env = vec![("PORT", "0"), ("MESHWORK_HOST", "127.0.0.1")];
    env.extend(crate::harness::UNREACHABLE_UPSTREAMS);
    env.push(("PRODUCT_SERVICE_URL", "etcd://products"));
    let output = run(&["gateway"], &env);
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8(output.stderr).unwrap();
    let missing = if cfg!(feature = "etcd") { "ETCD_ENDPOINTS" } else { "the etcd build" };
    assert!(stderr.contains("PRODUCT_SERVICE_URL") && stderr.contains(missing), "{stderr}");
}

/// `etcd://` from the environment, as the README documents it (the etcd
/// build, which CI's `--all-features` makes).
#[cfg(feature = "etcd")]
#[tokio::test(flavor = "multi_thread")]
async fn etcd_sources_from_the_environment_are_accepted() {
    let Some(etcd) = testkit::service_url("MESHWORK_TEST_ETCD_URL", "etcd_sources_from_the_environment") else {
        return;
    };
    let mut env = vec![("PORT", "0"), ("MESHWORK_HOST", "127.0.0.1"), ("ETCD_ENDPOINTS", etcd.as_str())];
    env.extend(crate::harness::UNREACHABLE_UPSTREAMS);
    env.push(("PRODUCT_SERVICE_URL", "etcd://products"));
    let mut running = crate::harness::Running::start(&["gateway"], &env);
    running.listening("gateway");
    assert!(running.terminate().success());
}

#[test]
fn migrate_without_its_database_exits_64_naming_it() {
    for service in ["users", "orders"] {
        let output = run(&[service, "migrate"], &[]);
        assert_eq!(output.status.code(), Some(64), "{service} migrate");
        assert!(String::from_utf8(output.stderr).unwrap().contains("DATABASE_URL"), "{service} migrate");
    }
}
