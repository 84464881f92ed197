//! Signing-key rotation: the users service restarts with a new key, and the
//! gateway, which cached the old key, fetches the keys again when a token
//! names the new `kid`; tokens signed with the retired key stop working.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use contract::users::user_service_client::UserServiceClient;
use contract::users::{CreateUserRequest, LoginRequest};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use platform::{CancellationToken, Env, Settings};
use tokio::net::TcpListener;
use users::store::UserStore;
use users::tokens::TokenIssuer;

/// A users server over `store`, signing with a new key, on `address`.
async fn users_with_new_key(
    store: Arc<dyn UserStore>,
    address: SocketAddr,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let tokens = TokenIssuer::from_pem(&users::tokens::generate_pem(), "meshwork", Duration::from_secs(600)).unwrap();
    let env = Env::from_pairs([("MESHWORK_SERVICE_SECRET", "a service secret of at least 32 bytes")]);
    let server =
        users::server(users::Users::new(store, Arc::new(tokens)), &Settings::load(&env, &[]).unwrap()).unwrap();
    let listener = TcpListener::bind(address).await.unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { server.serve(listener, shutdown).await.unwrap() }
    });
    (shutdown, task)
}

async fn login(users: SocketAddr) -> String {
    let channel = tonic::transport::Channel::from_shared(format!("http://{users}")).unwrap().connect().await.unwrap();
    let request = LoginRequest { email: "rota@example.com".to_owned(), password: "correct horse".to_owned() };
    UserServiceClient::new(channel).login(request).await.unwrap().into_inner().access_token
}

/// The status of `GET /users/{id}` through the gateway with `token`.
async fn get_user(gateway: SocketAddr, id: &str, token: &str) -> u16 {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = http::Request::get(format!("http://{gateway}/users/{id}"))
        .header("authorization", format!("Bearer {token}"))
        .body(Full::default())
        .unwrap();
    let response = client.request(request).await.unwrap();
    let status = response.status().as_u16();
    let _ = response.into_body().collect().await;
    status
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_signing_key_is_fetched_when_a_token_names_it() {
    platform::telemetry::init_for_tests();
    let store: Arc<dyn UserStore> = Arc::new(users::store::SqliteUserStore::in_memory().await.unwrap());
    let users_address = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let (stop_first, first) = users_with_new_key(Arc::clone(&store), users_address).await;

    let env = Env::from_pairs([("MESHWORK_AUTH", "required"), ("GATEWAY_RATE_LIMIT", "0")]);
    let settings = Settings::load(&env, &meshwork::component_settings()).unwrap();
    let unused = gateway::EndpointSource::single("http://127.0.0.1:9");
    let sources = [gateway::EndpointSource::single(format!("http://{users_address}")), unused.clone(), unused];
    let mut config = gateway::GatewayConfig::with_shop_sources(&settings, sources).unwrap();
    // Production waits 5 s between fetches; the test need not.
    config.auth.key_refetch_interval = Duration::ZERO;
    let shutdown = CancellationToken::new();
    let _stop_gateway = shutdown.clone().drop_guard();
    let server = gateway::server(gateway::Gateway::new(&config).unwrap(), &settings, &config.cors, &shutdown);
    let gateway = testkit::serve(server, &shutdown).await;

    let channel =
        tonic::transport::Channel::from_shared(format!("http://{users_address}")).unwrap().connect().await.unwrap();
    let created = UserServiceClient::new(channel)
        .create_user(CreateUserRequest {
            email: "rota@example.com".to_owned(),
            name: "Rota".to_owned(),
            password: Some("correct horse".to_owned()),
        })
        .await
        .unwrap();
    let id = created.into_inner().user.unwrap().id;
    let old_token = login(users_address).await;
    assert_eq!(get_user(gateway, &id, &old_token).await, 200, "the first key is fetched and cached");

    // The users service is redeployed with a new key, same accounts.
    stop_first.cancel();
    first.await.unwrap();
    let (stop_second, _second) = users_with_new_key(store, users_address).await;
    let _stop_users = stop_second.drop_guard();
    let new_token = login(users_address).await;
    assert_ne!(new_token, old_token);

    assert_eq!(get_user(gateway, &id, &new_token).await, 200, "the new kid makes the gateway fetch again");
    assert_eq!(get_user(gateway, &id, &old_token).await, 401, "the retired key is no longer trusted");
}
