//! The users service over real gRPC, every RPC and every error.

use std::collections::HashSet;

use contract::users::{
    CreateUserRequest, DeleteUserRequest, GetJwksRequest, GetUserRequest, ListUsersRequest, LoginRequest,
    UpdateUserRequest,
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tonic::Code;
use tonic_types::StatusExt;
use users::tokens::Claims;

use crate::helpers::{Backend, ISSUER, TestApp, spawn_app};

fn create(email: &str, name: &str, password: Option<&str>) -> CreateUserRequest {
    CreateUserRequest { email: email.to_owned(), name: name.to_owned(), password: password.map(str::to_owned) }
}

async fn create_user(app: &TestApp, email: &str, password: Option<&str>) -> contract::users::User {
    let mut client = app.client.clone();
    client.create_user(create(email, "John Doe", password)).await.unwrap().into_inner().user.unwrap()
}

fn violated_fields(status: &tonic::Status) -> Vec<String> {
    let details = status.get_error_details();
    let bad_request = details.bad_request().unwrap_or_else(|| panic!("no BadRequest details in {status:?}"));
    bad_request.field_violations.iter().map(|v| v.field.clone()).collect()
}

async fn account_lifecycle_create_get_update_delete(backend: Backend, test: &str) {
    let Some(app) = spawn_app(backend, test).await else { return };
    let mut client = app.client.clone();

    let created = create_user(&app, " User@Example.com ", Some("s3cret-password")).await;
    assert_eq!(created.email, "user@example.com", "email is normalised");
    assert_eq!(created.name, "John Doe");
    assert!(uuid::Uuid::parse_str(&created.id).is_ok());
    assert_eq!(created.created_at, created.updated_at);

    let fetched = client.get_user(GetUserRequest { id: created.id.clone() }).await.unwrap().into_inner().user;
    assert_eq!(fetched.as_ref(), Some(&created));

    let updated = client
        .update_user(UpdateUserRequest {
            id: created.id.clone(),
            name: Some("Jane Doe".to_owned()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(updated.name, "Jane Doe");
    assert_eq!(updated.email, created.email, "unset fields stay");
    let seconds_nanos = |t: &Option<prost_types::Timestamp>| t.as_ref().map(|t| (t.seconds, t.nanos));
    assert!(seconds_nanos(&updated.updated_at) > seconds_nanos(&created.updated_at));

    client.delete_user(DeleteUserRequest { id: created.id.clone() }).await.unwrap();
    let gone = client.get_user(GetUserRequest { id: created.id.clone() }).await.unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    let again = client.delete_user(DeleteUserRequest { id: created.id }).await.unwrap_err();
    assert_eq!(again.code(), Code::NotFound);
}

async fn invalid_fields_are_all_reported_as_field_violations(backend: Backend, test: &str) {
    let Some(app) = spawn_app(backend, test).await else { return };
    let mut client = app.client.clone();

    let status = client.create_user(create("not-an-email", "", Some("short"))).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["email", "name", "password"]);
    assert!(status.message().contains("email") && status.message().contains("at least 8"), "{}", status.message());

    let status = client.create_user(create("ok@example.com", &"x".repeat(101), None)).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["name"]);

    let user = create_user(&app, "valid@example.com", None).await;
    let status = client
        .update_user(UpdateUserRequest { id: user.id, email: Some("nope".to_owned()), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["email"]);
}

async fn duplicate_email_in_any_case_already_exists(backend: Backend, test: &str) {
    let Some(app) = spawn_app(backend, test).await else { return };
    let mut client = app.client.clone();
    create_user(&app, "dup@example.com", None).await;
    let status = client.create_user(create("DUP@Example.COM", "Someone Else", None)).await.unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);

    let other = create_user(&app, "other@example.com", None).await;
    let status = client
        .update_user(UpdateUserRequest {
            id: other.id,
            email: Some("Dup@example.com".to_owned()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
}

async fn unknown_ids_are_not_found_and_malformed_ids_invalid(backend: Backend, test: &str) {
    let Some(app) = spawn_app(backend, test).await else { return };
    let mut client = app.client.clone();
    let unknown = uuid::Uuid::now_v7().to_string();

    let get = client.get_user(GetUserRequest { id: unknown.clone() }).await.unwrap_err();
    let update = client
        .update_user(UpdateUserRequest { id: unknown.clone(), name: Some("X".to_owned()), ..Default::default() })
        .await
        .unwrap_err();
    let delete = client.delete_user(DeleteUserRequest { id: unknown.clone() }).await.unwrap_err();
    for status in [&get, &update, &delete] {
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        assert!(status.message().contains(&unknown), "{status:?}");
    }

    for id in ["", "42", "not-a-uuid", "'; DROP TABLE users; --"] {
        let get = client.get_user(GetUserRequest { id: id.to_owned() }).await.unwrap_err();
        let update =
            client.update_user(UpdateUserRequest { id: id.to_owned(), ..Default::default() }).await.unwrap_err();
        let delete = client.delete_user(DeleteUserRequest { id: id.to_owned() }).await.unwrap_err();
        for status in [&get, &update, &delete] {
            assert_eq!(status.code(), Code::InvalidArgument, "{id:?}: {status:?}");
            assert_eq!(violated_fields(status), ["id"]);
        }
    }
}

async fn login_returns_a_token_that_the_jwks_verifies(backend: Backend, test: &str) {
    let Some(app) = spawn_app(backend, test).await else { return };
    let mut client = app.client.clone();
    let user = create_user(&app, "login@example.com", Some("correct horse battery")).await;

    let login = client
        .login(LoginRequest { email: "LOGIN@example.com".to_owned(), password: "correct horse battery".to_owned() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(login.token_type, "Bearer");
    assert_eq!(login.expires_in, 900);
    assert_eq!(login.user.as_ref().map(|u| u.id.as_str()), Some(user.id.as_str()));

    let jwks = client.get_jwks(GetJwksRequest {}).await.unwrap().into_inner();
    let header = jsonwebtoken::decode_header(&login.access_token).unwrap();
    assert_eq!(header.alg, Algorithm::EdDSA);
    let key = jwks.keys.iter().find(|k| Some(&k.kid) == header.kid.as_ref()).expect("the token's kid is published");
    assert_eq!((key.kty.as_str(), key.crv.as_deref(), key.alg.as_str()), ("OKP", Some("Ed25519"), "EdDSA"));

    let decoding = DecodingKey::from_ed_components(key.x.as_deref().unwrap()).unwrap();
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&[ISSUER]);
    let claims = jsonwebtoken::decode::<Claims>(&login.access_token, &decoding, &validation).unwrap().claims;
    assert_eq!(claims.sub, user.id);
    assert_eq!(claims.exp - claims.iat, 900);
    assert_eq!(app.jwks_issuer.jwks()[0].kid, key.kid);
}

async fn every_login_failure_is_the_same_unauthenticated_answer(backend: Backend, test: &str) {
    let Some(app) = spawn_app(backend, test).await else { return };
    let mut client = app.client.clone();
    create_user(&app, "real@example.com", Some("right password")).await;
    create_user(&app, "nopassword@example.com", None).await;

    let mut messages = HashSet::new();
    for (email, password) in [
        ("real@example.com", "wrong password"),
        ("nobody@example.com", "right password"),
        ("nopassword@example.com", "any password"),
        ("not an email", "right password"),
        ("real@example.com", ""),
    ] {
        let status =
            client.login(LoginRequest { email: email.to_owned(), password: password.to_owned() }).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{email}/{password}");
        messages.insert(status.message().to_owned());
    }
    assert_eq!(messages.len(), 1, "messages differ, which reveals accounts: {messages:?}");
}

async fn changed_password_is_the_one_that_logs_in(backend: Backend, test: &str) {
    let Some(app) = spawn_app(backend, test).await else { return };
    let mut client = app.client.clone();
    let user = create_user(&app, "change@example.com", Some("first password")).await;
    client
        .update_user(UpdateUserRequest {
            id: user.id,
            password: Some("second password".to_owned()),
            ..Default::default()
        })
        .await
        .unwrap();
    let login = |password: &str| LoginRequest { email: "change@example.com".to_owned(), password: password.to_owned() };
    assert_eq!(client.login(login("first password")).await.unwrap_err().code(), Code::Unauthenticated);
    client.login(login("second password")).await.unwrap();
}

async fn pagination_walk_returns_every_user_exactly_once(backend: Backend, test: &str) {
    let Some(app) = spawn_app(backend, test).await else { return };
    let mut client = app.client.clone();
    let mut created = HashSet::new();
    for i in 0..45 {
        created.insert(create_user(&app, &format!("page{i}@example.com"), None).await.id);
    }

    let mut seen = Vec::new();
    let mut page_token = String::new();
    let mut pages = 0;
    loop {
        let page = client
            .list_users(ListUsersRequest { page_size: 7, page_token: page_token.clone() })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        assert!(page.users.len() <= 7);
        seen.extend(page.users.into_iter().map(|u| u.id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
        assert!(pages < 20, "pagination does not end");
    }
    assert_eq!(pages, 7);
    assert_eq!(seen.len(), 45, "no user twice");
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), created);

    let default = client.list_users(ListUsersRequest::default()).await.unwrap().into_inner();
    assert_eq!(default.users.len(), 20, "default page size");
    let capped = client.list_users(ListUsersRequest { page_size: 500, ..Default::default() }).await.unwrap();
    assert_eq!(capped.into_inner().users.len(), 45, "all 45 fit under the cap of 100");
}

async fn bad_page_requests_are_invalid_arguments(backend: Backend, test: &str) {
    let Some(app) = spawn_app(backend, test).await else { return };
    let mut client = app.client.clone();
    let status = client.list_users(ListUsersRequest { page_size: -1, ..Default::default() }).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["page_size"]);
    for token in ["garbage", "djE6bm90LWEtdXVpZA"] {
        let status = client
            .list_users(ListUsersRequest { page_token: token.to_owned(), ..Default::default() })
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&status), ["page_token"], "{token}");
    }
}

async fn concurrent_creates_with_one_email_give_exactly_one_account(backend: Backend, test: &str) {
    let Some(app) = spawn_app(backend, test).await else { return };
    let attempts = (0..20).map(|i| {
        let mut client = app.client.clone();
        tokio::spawn(async move { client.create_user(create("race@example.com", &format!("Racer {i}"), None)).await })
    });
    let results = futures::future::join_all(attempts).await;
    let codes: Vec<Code> = results.into_iter().map(|r| r.unwrap().map_or_else(|s| s.code(), |_| Code::Ok)).collect();
    assert_eq!(codes.iter().filter(|c| **c == Code::Ok).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == Code::AlreadyExists).count(), 19, "{codes:?}");
}

testkit::backend_tests!(crate::helpers::Backend { sqlite => Sqlite, postgres => Postgres }: [
    account_lifecycle_create_get_update_delete,
    invalid_fields_are_all_reported_as_field_violations,
    duplicate_email_in_any_case_already_exists,
    unknown_ids_are_not_found_and_malformed_ids_invalid,
    login_returns_a_token_that_the_jwks_verifies,
    every_login_failure_is_the_same_unauthenticated_answer,
    changed_password_is_the_one_that_logs_in,
    pagination_walk_returns_every_user_exactly_once,
    bad_page_requests_are_invalid_arguments,
    concurrent_creates_with_one_email_give_exactly_one_account,
]);
