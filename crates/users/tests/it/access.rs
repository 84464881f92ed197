//! Who may see which accounts: a signed-in user sees only their own,
//! administrators (USERS_ADMINS) list and read every one, and calls with no
//! verified caller (internal, or `meshwork up` without auth) are trusted.

use std::sync::Arc;
use std::time::Duration;

use users::Users;
use users::domain::UserId;
use users::error::UserError;
use users::service::NewUser;
use users::store::SqliteUserStore;
use users::tokens::TokenIssuer;

async fn users_with_an_admin() -> (Users, [String; 3]) {
    let store = Arc::new(SqliteUserStore::in_memory().await.unwrap());
    let tokens = TokenIssuer::from_pem(&users::tokens::generate_pem(), "test", Duration::from_secs(60)).unwrap();
    let plain = Users::new(store, Arc::new(tokens));
    let mut ids = Vec::new();
    for name in ["alice", "bob", "root"] {
        let input = NewUser { email: format!("{name}@example.com"), name: name.to_owned(), password: None };
        ids.push(plain.create(input).await.unwrap().id.to_string());
    }
    let admin = UserId::parse(&ids[2]).unwrap();
    (plain.with_admins([admin]), ids.try_into().unwrap())
}

#[tokio::test]
async fn only_administrators_and_trusted_calls_list_every_account() {
    let (users, [_alice, bob, root]) = users_with_an_admin().await;
    assert!(matches!(users.list(10, "", Some(&bob)).await, Err(UserError::AdminsOnly)));
    assert_eq!(users.list(10, "", Some(&root)).await.unwrap().0.len(), 3);
    assert_eq!(users.list(10, "", None).await.unwrap().0.len(), 3, "no caller: a trusted internal call");
}

#[tokio::test]
async fn a_user_reads_their_own_account_and_an_administrator_reads_any() {
    let (users, [alice, bob, root]) = users_with_an_admin().await;
    assert!(matches!(users.get(&alice, Some(&bob)).await, Err(UserError::NotYours)));
    assert_eq!(users.get(&alice, Some(&alice)).await.unwrap().id.to_string(), alice);
    assert_eq!(users.get(&alice, Some(&root)).await.unwrap().id.to_string(), alice);
    // Reading is all an administrator may do with another's account.
    let rename = users::service::UserChanges { name: Some("Mallory".to_owned()), ..Default::default() };
    assert!(matches!(users.update(&alice, rename, Some(&root)).await, Err(UserError::NotYours)));
    assert!(matches!(users.delete(&alice, Some(&root)).await, Err(UserError::NotYours)));
}
