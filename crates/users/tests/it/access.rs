//! Who may see and change which accounts, and where roles come from: a
//! signed-in user sees and changes only their own account; administrators
//! (the admin role, granted or named by USERS_ADMINS by id or email) list,
//! read, change and delete any; trusted callers (other services) read any.
//! Tokens carry the roles the account held when they were issued.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use platform::access::{Caller, UserIdentity};
use users::Users;
use users::config::AdminRef;
use users::domain::{Email, UserId};
use users::error::UserError;
use users::service::NewUser;
use users::store::SqliteUserStore;
use users::tokens::{Claims, TokenIssuer};

/// alice, bob and root; root is named an administrator by email.
async fn users_with_an_admin() -> (Users, [String; 3]) {
    let store = Arc::new(SqliteUserStore::in_memory().await.unwrap());
    let tokens = TokenIssuer::from_pem(&users::tokens::generate_pem(), "test", Duration::from_secs(60)).unwrap();
    let users =
        Users::new(store, Arc::new(tokens)).with_admins([AdminRef::Email(Email::parse("root@example.com").unwrap())]);
    let mut ids = Vec::new();
    for name in ["alice", "bob", "root"] {
        let password = Some("correct horse".to_owned());
        let input = NewUser { email: format!("{name}@example.com"), name: name.to_owned(), password };
        ids.push(users.create(input).await.unwrap().id.to_string());
    }
    (users, ids.try_into().unwrap())
}

fn user(id: &str, roles: &[&str]) -> Caller {
    Caller::User(UserIdentity { id: id.to_owned(), roles: roles.iter().map(|r| (*r).to_owned()).collect() })
}

async fn token_roles(users: &Users, email: &str) -> Vec<String> {
    let (token, _) = users.login(email, "correct horse").await.unwrap();
    let key = DecodingKey::from_ed_components(&users.jwks()[0].x).unwrap();
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&["test"]);
    jsonwebtoken::decode::<Claims>(&token.token, &key, &validation).unwrap().claims.roles
}

#[tokio::test]
async fn only_administrators_and_trusted_calls_list_every_account() {
    let (users, [_alice, bob, root]) = users_with_an_admin().await;
    assert!(matches!(users.list(10, "", &user(&bob, &[])).await, Err(UserError::AdminsOnly)));
    assert!(matches!(users.list(10, "", &Caller::Anonymous).await, Err(UserError::AdminsOnly)));
    assert_eq!(users.list(10, "", &user(&root, &["admin"])).await.unwrap().0.len(), 3);
    assert_eq!(users.list(10, "", &Caller::Trusted).await.unwrap().0.len(), 3);
}

#[tokio::test]
async fn a_user_acts_on_their_own_account_and_an_administrator_on_any() {
    let (users, [alice, bob, root]) = users_with_an_admin().await;
    assert!(matches!(users.get(&alice, &user(&bob, &[])).await, Err(UserError::NotYours)));
    assert!(matches!(users.get(&alice, &user(&bob, &["fulfilment"])).await, Err(UserError::NotYours)));
    assert!(matches!(users.get(&alice, &Caller::Anonymous).await, Err(UserError::NotYours)));
    assert_eq!(users.get(&alice, &user(&alice, &[])).await.unwrap().id.to_string(), alice);
    assert_eq!(users.get(&alice, &Caller::Trusted).await.unwrap().id.to_string(), alice);
    let rename = || users::service::UserChanges { name: Some("Mallory".to_owned()), ..Default::default() };
    assert!(matches!(users.update(&alice, rename(), &user(&bob, &[])).await, Err(UserError::NotYours)));
    assert!(matches!(users.delete(&alice, &user(&bob, &[])).await, Err(UserError::NotYours)));
    let renamed = users.update(&alice, rename(), &user(&root, &["admin"])).await.unwrap();
    assert_eq!(renamed.name.as_str(), "Mallory");
    users.delete(&alice, &user(&root, &["admin"])).await.unwrap();
}

#[tokio::test]
async fn tokens_carry_granted_roles_and_the_configured_admin() {
    let (users, [alice, _bob, _root]) = users_with_an_admin().await;
    assert_eq!(token_roles(&users, "root@example.com").await, ["admin"], "named by email in USERS_ADMINS");
    assert!(token_roles(&users, "alice@example.com").await.is_empty());

    let granted = users.grant_role(&alice, "fulfilment").await.unwrap();
    assert_eq!(granted.roles.names(), ["fulfilment"]);
    assert_eq!(users.grant_role(&alice, "fulfilment").await.unwrap().roles.names(), ["fulfilment"], "a no-op");
    users.grant_role(&alice, "admin").await.unwrap();
    assert_eq!(token_roles(&users, "alice@example.com").await, ["admin", "fulfilment"]);
    assert_eq!(users.revoke_role(&alice, "admin").await.unwrap().roles.names(), ["fulfilment"]);
    assert_eq!(token_roles(&users, "alice@example.com").await, ["fulfilment"]);

    let unknown = users.grant_role(&alice, "superuser").await.unwrap_err().to_string();
    assert!(unknown.contains("not a role the contract names"), "{unknown}");
    let missing = users.grant_role(&UserId::generate().to_string(), "admin").await.unwrap_err();
    assert!(matches!(missing, UserError::NotFound(_)));
}

#[tokio::test]
async fn concurrent_grants_lose_none() {
    let (users, [alice, _bob, _root]) = users_with_an_admin().await;
    let (a, b) = tokio::join!(users.grant_role(&alice, "admin"), users.grant_role(&alice, "fulfilment"));
    a.unwrap();
    b.unwrap();
    let stored = users.get(&alice, &Caller::Trusted).await.unwrap();
    assert_eq!(stored.roles.names(), ["admin", "fulfilment"]);
}
