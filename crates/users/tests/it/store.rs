//! One store suite, run against SQLite and PostgreSQL alike.

use chrono::{Duration as ChronoDuration, Utc};
use users::domain::{Email, User, UserId, UserName, UserRecord};
use users::store::StoreError;

use crate::helpers::{Backend, store};

fn record(email: &str) -> UserRecord {
    // Whole microseconds: both databases keep that precision, no more.
    let now = Utc::now();
    let now = now - ChronoDuration::nanoseconds(i64::from(now.timestamp_subsec_nanos() % 1000));
    UserRecord {
        user: User {
            id: UserId::generate(),
            email: Email::parse(email).unwrap(),
            name: UserName::parse("Test User").unwrap(),
            roles: Default::default(),
            created_at: now,
            updated_at: now,
        },
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned()),
    }
}

async fn inserted_record_reads_back_by_id_and_email(backend: Backend, test: &str) {
    let Some((store, _db)) = store(backend, test).await else { return };
    let record = record("reader@example.com");
    store.insert(&record).await.unwrap();
    assert_eq!(store.get(record.user.id).await.unwrap(), Some(record.clone()));
    assert_eq!(store.get_by_email("READER@example.com").await.unwrap(), Some(record));
    assert_eq!(store.get(UserId::generate()).await.unwrap(), None);
    assert_eq!(store.get_by_email("nobody@example.com").await.unwrap(), None);
}

async fn second_account_with_an_email_is_refused(backend: Backend, test: &str) {
    let Some((store, _db)) = store(backend, test).await else { return };
    store.insert(&record("taken@example.com")).await.unwrap();
    let error = store.insert(&record("taken@example.com")).await.unwrap_err();
    assert!(matches!(error, StoreError::EmailTaken), "{error:?}");
}

async fn list_pages_through_every_account_in_id_order(backend: Backend, test: &str) {
    let Some((store, _db)) = store(backend, test).await else { return };
    let mut ids = Vec::new();
    for i in 0..7 {
        let record = record(&format!("user{i}@example.com"));
        ids.push(record.user.id);
        store.insert(&record).await.unwrap();
    }
    ids.sort();
    let first = store.list(None, 3).await.unwrap();
    let second = store.list(Some(first[2].user.id), 3).await.unwrap();
    let third = store.list(Some(second[2].user.id), 3).await.unwrap();
    let listed: Vec<UserId> = first.iter().chain(&second).chain(&third).map(|r| r.user.id).collect();
    assert_eq!(listed, ids);
    assert!(store.list(Some(ids[6]), 3).await.unwrap().is_empty());
}

async fn update_replaces_the_account_and_reports_a_missing_one(backend: Backend, test: &str) {
    let Some((store, _db)) = store(backend, test).await else { return };
    let mut record = record("before@example.com");
    store.insert(&record).await.unwrap();
    record.user.email = Email::parse("after@example.com").unwrap();
    record.user.name = UserName::parse("Renamed").unwrap();
    record.password_hash = None;
    assert!(store.update(&record).await.unwrap());
    assert_eq!(store.get(record.user.id).await.unwrap(), Some(record.clone()));

    let other = self::record("other@example.com");
    store.insert(&other).await.unwrap();
    let mut clash = other.clone();
    clash.user.email = record.user.email.clone();
    assert!(matches!(store.update(&clash).await, Err(StoreError::EmailTaken)));

    assert!(!store.update(&self::record("ghost@example.com")).await.unwrap());
}

async fn delete_removes_the_account_once(backend: Backend, test: &str) {
    let Some((store, _db)) = store(backend, test).await else { return };
    let record = record("gone@example.com");
    store.insert(&record).await.unwrap();
    assert!(store.delete(record.user.id).await.unwrap());
    assert!(!store.delete(record.user.id).await.unwrap());
    assert_eq!(store.get(record.user.id).await.unwrap(), None);
    // The email is free again.
    store.insert(&self::record("gone@example.com")).await.unwrap();
}

async fn ping_answers_while_the_database_is_up(backend: Backend, test: &str) {
    let Some((store, _db)) = store(backend, test).await else { return };
    store.ping().await.unwrap();
}

testkit::backend_tests!(crate::helpers::Backend { sqlite => Sqlite, postgres => Postgres }: [
    inserted_record_reads_back_by_id_and_email,
    second_account_with_an_email_is_refused,
    list_pages_through_every_account_in_id_order,
    update_replaces_the_account_and_reports_a_missing_one,
    delete_removes_the_account_once,
    ping_answers_while_the_database_is_up,
]);
