//! Authentication, authorization and rate limiting through the real
//! gateway, with tokens from the real users service (MESHWORK_AUTH=required),
//! under `meshwork up` and with the components started separately.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::harness::{Deployment, Platform, Reply, deploy};

async fn register_and_login(platform: &Platform, name: &str) -> (String, String) {
    let body = json!({ "email": format!("{name}@example.com"), "name": name, "password": "correct horse" });
    let created = platform.rest("POST", "/users", Some(body.to_string().as_bytes())).await;
    assert_eq!(created.status, 200, "{}", String::from_utf8_lossy(&created.body));
    let id = created.json()["id"].as_str().unwrap().to_owned();
    let body = json!({ "email": format!("{name}@example.com"), "password": "correct horse" });
    let login = platform.rest("POST", "/users/login", Some(body.to_string().as_bytes())).await.json();
    (id, login["accessToken"].as_str().unwrap().to_owned())
}

/// Signs `claims` as the users service would: with the platform's own key
/// (the one `meshwork up` generated) or with `key_pem` instead, and always
/// under the kid of the platform's key, so only the signature can be wrong.
fn sign(platform: &Platform, claims: serde_json::Value, key_pem: Option<String>) -> String {
    let real_pem = std::fs::read_to_string(platform.data_dir.join("users").join("token-signing-key.pem")).unwrap();
    let real = users::tokens::TokenIssuer::from_pem(&real_pem, "meshwork", std::time::Duration::from_secs(60)).unwrap();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(real.jwks()[0].kid.clone());
    let der = pem_to_der(&key_pem.unwrap_or(real_pem));
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(&der)).unwrap()
}

fn pem_to_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(body).unwrap()
}

async fn tokens_are_required_verified_and_ownership_enforced(deployment: Deployment, test: &str) {
    let Some(platform) =
        deploy(deployment, test, &[("MESHWORK_AUTH", "required"), ("USERS_ADMINS", "root@example.com")]).await
    else {
        return;
    };
    let (alice, alice_token) = register_and_login(&platform, "alice").await;
    let (bob, bob_token) = register_and_login(&platform, "bob").await;
    let (_, root_token) = register_and_login(&platform, "root").await;
    let product = br#"{"id":"prod-123","name":"Widget","price":29.99,"stock":100}"#;

    // Public: the catalog. Catalog writes: administrators. Protected: everything else.
    assert_eq!(platform.rest("POST", "/products", Some(product)).await.status, 401);
    let refused = platform.rest_as(Some(&alice_token), "POST", "/products", Some(product)).await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.json()["message"], "this method is for callers with the role admin");
    assert_eq!(platform.rest_as(Some(&root_token), "POST", "/products", Some(product)).await.status, 200);
    assert_eq!(platform.rest("GET", "/products/prod-123", None).await.status, 200);
    let anonymous = platform.rest("GET", "/orders", None).await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.headers["www-authenticate"], "Bearer");
    assert_eq!(anonymous.json()["code"], 16);

    // Orders are placed for, read and cancelled by their owner only.
    let for_bob = json!({ "userId": bob, "productId": "prod-123", "quantity": 1 }).to_string();
    assert_eq!(platform.rest_as(Some(&alice_token), "POST", "/orders", Some(for_bob.as_bytes())).await.status, 403);
    let mine = json!({ "userId": alice, "productId": "prod-123", "quantity": 1 }).to_string();
    let order = platform.rest_as(Some(&alice_token), "POST", "/orders", Some(mine.as_bytes())).await;
    assert_eq!(order.status, 200, "{}", String::from_utf8_lossy(&order.body));
    let order_id = order.json()["id"].as_str().unwrap().to_owned();
    let path = format!("/orders/{order_id}");
    assert_eq!(platform.rest_as(Some(&bob_token), "GET", &path, None).await.status, 404);
    assert_eq!(platform.rest_as(Some(&alice_token), "GET", &path, None).await.status, 200);
    let cancel = format!("/orders/{order_id}:cancel");
    assert_eq!(platform.rest_as(Some(&bob_token), "POST", &cancel, Some(b"{}")).await.status, 404);
    let listing = format!("/orders/user/{alice}");
    assert_eq!(platform.rest_as(Some(&bob_token), "GET", &listing, None).await.status, 403);
    let bobs_view = platform.rest_as(Some(&bob_token), "GET", "/orders", None).await.json();
    assert_eq!(bobs_view["orders"], json!([]), "bob lists only his own orders");
    assert_eq!(platform.rest_as(Some(&bob_token), "GET", &format!("/users/{alice}"), None).await.status, 403);
    assert_eq!(
        platform.rest_as(Some(&bob_token), "GET", "/users", None).await.status,
        403,
        "only admins list accounts"
    );
    assert_eq!(platform.rest_as(Some(&alice_token), "POST", &cancel, Some(b"{}")).await.status, 200);

    // Metadata claims nothing: the services believe only what they verify.
    let claim = [("Grpc-Metadata-X-User-Id", alice.as_str())];
    assert_eq!(platform.rest_with(Some(&bob_token), &claim, "GET", &path, None).await.status, 404);
    assert_eq!(platform.rest_with(None, &claim, "GET", &path, None).await.status, 401);
}

async fn every_kind_of_bad_token_is_refused_with_401(deployment: Deployment, test: &str) {
    let Some(platform) = deploy(deployment, test, &[("MESHWORK_AUTH", "required")]).await else { return };
    let (alice, _) = register_and_login(&platform, "carol").await;
    let now = chrono::Utc::now().timestamp();
    let valid = json!({ "sub": alice, "iss": "meshwork", "iat": now, "exp": now + 600 });
    let good = sign(&platform, valid.clone(), None);
    assert_eq!(
        platform.rest_as(Some(&good), "GET", "/orders", None).await.status,
        200,
        "the forged-but-correct token works"
    );

    let expired =
        sign(&platform, json!({ "sub": alice, "iss": "meshwork", "iat": now - 3600, "exp": now - 600 }), None);
    let wrong_issuer =
        sign(&platform, json!({ "sub": alice, "iss": "someone-else", "iat": now, "exp": now + 600 }), None);
    let wrongly_signed = sign(&platform, valid.clone(), Some(users::tokens::generate_pem()));
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(valid.to_string());
    let alg_none = format!("{header}.{payload}.");
    let mut tampered = good.clone();
    tampered.insert(good.find('.').unwrap() + 3, 'x');
    for (what, token) in [
        ("expired", expired.as_str()),
        ("wrong issuer", wrong_issuer.as_str()),
        ("wrongly signed", wrongly_signed.as_str()),
        ("alg none", alg_none.as_str()),
        ("tampered", tampered.as_str()),
        ("garbage", "not.a.token"),
    ] {
        let reply = platform.rest_as(Some(token), "GET", "/orders", None).await;
        assert_eq!(reply.status, 401, "{what}: {}", String::from_utf8_lossy(&reply.body));
        // Even a public method refuses a bad token rather than ignoring it.
        assert_eq!(platform.rest_as(Some(token), "GET", "/products", None).await.status, 401, "{what}");
    }
}

async fn grpc_through_the_gateway_is_guarded_too(deployment: Deployment, test: &str) {
    use contract::orders::ListOrdersRequest;
    use contract::orders::order_service_client::OrderServiceClient;

    let Some(platform) = deploy(deployment, test, &[("MESHWORK_AUTH", "required")]).await else { return };
    let (_, token) = register_and_login(&platform, "dave").await;
    let mut orders = OrderServiceClient::new(platform.channel(platform.gateway).await);
    let anonymous = orders.list_orders(ListOrdersRequest::default()).await.unwrap_err();
    assert_eq!(anonymous.code(), tonic::Code::Unauthenticated);
    let mut request = tonic::Request::new(ListOrdersRequest::default());
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    orders.list_orders(request).await.unwrap();
}

async fn each_identity_has_its_own_rate_limit(deployment: Deployment, test: &str) {
    let Some(platform) = deploy(deployment, test, &[("GATEWAY_RATE_LIMIT", "1"), ("GATEWAY_RATE_BURST", "4")]).await
    else {
        return;
    };
    // Two requests from this address: registering and logging in.
    let (_, token) = register_and_login(&platform, "erin").await;
    for remaining in ["1", "0"] {
        let reply = platform.rest("GET", "/products", None).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.headers["ratelimit-limit"], "4");
        assert_eq!(reply.headers["ratelimit-remaining"], remaining);
    }
    let limited = platform.rest("GET", "/products", None).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.headers["retry-after"], "1");
    assert_eq!(limited.headers["ratelimit-remaining"], "0");
    assert_eq!(limited.json()["code"], 8);

    // A signed-in user is counted as itself, not as the address it shares.
    for _ in 0..4 {
        assert_eq!(platform.rest_as(Some(&token), "GET", "/products", None).await.status, 200);
    }
    assert_eq!(platform.rest_as(Some(&token), "GET", "/products", None).await.status, 429);
}

async fn repeated_bad_logins_for_one_account_are_held_back_and_a_good_one_still_works_later(
    deployment: Deployment,
    test: &str,
) {
    // The per-address limit (next test) is raised out of the way.
    let Some(platform) =
        deploy(deployment, test, &[("MESHWORK_AUTH", "required"), ("GATEWAY_SIGN_IN_RATE", "100")]).await
    else {
        return;
    };
    register_and_login(&platform, "frank").await;
    let wrong = json!({ "email": "frank@example.com", "password": "wrong password" }).to_string();
    for _ in 0..5 {
        assert_eq!(platform.rest("POST", "/users/login", Some(wrong.as_bytes())).await.status, 401);
    }
    let held = platform.rest("POST", "/users/login", Some(wrong.as_bytes())).await;
    assert_eq!(held.status, 429, "{}", String::from_utf8_lossy(&held.body));
    assert_eq!(held.headers["retry-after"], "1");
    assert!(held.json()["message"].as_str().unwrap().contains("too many failed logins"));
    // Another account is not held back.
    let other = json!({ "email": "grace@example.com", "password": "wrong password" }).to_string();
    assert_eq!(platform.rest("POST", "/users/login", Some(other.as_bytes())).await.status, 401);
    // Once the wait is over, the right password signs in.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let right = json!({ "email": "frank@example.com", "password": "correct horse" }).to_string();
    assert_eq!(platform.rest("POST", "/users/login", Some(right.as_bytes())).await.status, 200);
}

/// `held` is a per-address limit of 3 a minute's refusal, saying it is `exceeded`.
fn assert_held_at_three_a_minute(held: &Reply, exceeded: &str) {
    assert_eq!(held.status, 429, "{}", String::from_utf8_lossy(&held.body));
    assert_eq!(held.headers["retry-after"], "20", "3 a minute: one more every 20 s");
    let message = held.json()["message"].as_str().unwrap().to_owned();
    assert!(message.contains(exceeded), "{message}");
}

async fn sign_in_attempts_are_limited_per_address_whichever_accounts_they_try(deployment: Deployment, test: &str) {
    use contract::users::LoginRequest;
    use contract::users::user_service_client::UserServiceClient;

    let Some(platform) =
        deploy(deployment, test, &[("MESHWORK_AUTH", "required"), ("GATEWAY_SIGN_IN_RATE", "3")]).await
    else {
        return;
    };
    for victim in ["ivan", "judy", "mallory"] {
        let guess = json!({ "email": format!("{victim}@example.com"), "password": "hunter2" }).to_string();
        assert_eq!(platform.rest("POST", "/users/login", Some(guess.as_bytes())).await.status, 401);
    }
    let guess = json!({ "email": "oscar@example.com", "password": "hunter2" }).to_string();
    let held = platform.rest("POST", "/users/login", Some(guess.as_bytes())).await;
    assert_held_at_three_a_minute(&held, "too many sign-in attempts from this address");

    // The same address over gRPC is the same bucket.
    let mut users = UserServiceClient::new(platform.channel(platform.gateway).await);
    let login = LoginRequest { email: "peggy@example.com".to_owned(), password: "hunter2".to_owned() };
    assert_eq!(users.login(login).await.unwrap_err().code(), tonic::Code::ResourceExhausted);
    // Nothing else is held back.
    assert_eq!(platform.rest("GET", "/products", None).await.status, 200);
}

async fn signature_checks_are_limited_per_address_so_forged_tokens_cannot_get_past_the_rate_limit(
    deployment: Deployment,
    test: &str,
) {
    use contract::orders::ListOrdersRequest;
    use contract::orders::order_service_client::OrderServiceClient;

    let Some(platform) =
        deploy(deployment, test, &[("MESHWORK_AUTH", "required"), ("GATEWAY_TOKEN_CHECK_RATE", "3")]).await
    else {
        return;
    };
    let (alice, token) = register_and_login(&platform, "trent").await;
    // Its first use checks its signature: one of the address's three.
    assert_eq!(platform.rest_as(Some(&token), "GET", "/orders", None).await.status, 200);
    let now = chrono::Utc::now().timestamp();
    let claims = json!({ "sub": alice, "iss": "meshwork", "iat": now, "exp": now + 600 });
    let forged = sign(&platform, claims, Some(users::tokens::generate_pem()));
    for _ in 0..2 {
        let refused = platform.rest_as(Some(&forged), "GET", "/orders", None).await;
        assert_eq!(refused.status, 401, "{}", String::from_utf8_lossy(&refused.body));
    }
    let held = platform.rest_as(Some(&forged), "GET", "/orders", None).await;
    assert_held_at_three_a_minute(&held, "too many new tokens from this address");

    // The same address over gRPC is the same bucket.
    let mut orders = OrderServiceClient::new(platform.channel(platform.gateway).await);
    let mut request = tonic::Request::new(ListOrdersRequest::default());
    request.metadata_mut().insert("authorization", format!("Bearer {forged}").parse().unwrap());
    assert_eq!(orders.list_orders(request).await.unwrap_err().code(), tonic::Code::ResourceExhausted);
    // A token verified before needs no check, and a caller with none none.
    assert_eq!(platform.rest_as(Some(&token), "GET", "/orders", None).await.status, 200);
    assert_eq!(platform.rest("GET", "/products", None).await.status, 200);
}

in_both_deployments!(
    signature_checks_are_limited_per_address_so_forged_tokens_cannot_get_past_the_rate_limit,
    grpc_through_the_gateway_is_guarded_too,
    repeated_bad_logins_for_one_account_are_held_back_and_a_good_one_still_works_later,
    sign_in_attempts_are_limited_per_address_whichever_accounts_they_try,
    tokens_are_required_verified_and_ownership_enforced,
    every_kind_of_bad_token_is_refused_with_401,
    each_identity_has_its_own_rate_limit,
);
