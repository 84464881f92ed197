//! The users store port and its two adapters: PostgreSQL for production,
//! SQLite for `meshwork up`. Both pass the same test suite.

mod postgres;
mod sql;
mod sqlite;

pub use postgres::PostgresUserStore;
pub use sqlite::SqliteUserStore;

use async_trait::async_trait;

use crate::domain::{Roles, UserId, UserRecord};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another account has this email.
    #[error("email already registered")]
    EmailTaken,
    /// The database cannot be reached right now; worth retrying.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Other(String),
}

impl StoreError {
    /// Sorts sqlx's errors into what callers act on differently.
    fn from_sqlx(error: sqlx::Error) -> Self {
        match platform::database::classify(&error) {
            platform::database::Failure::Duplicate => Self::EmailTaken,
            platform::database::Failure::Unavailable => Self::Unavailable(error.to_string()),
            platform::database::Failure::Other => Self::Other(error.to_string()),
        }
    }
}

/// Where accounts live. Implementations turn a unique-email violation into
/// [`StoreError::EmailTaken`], whatever their SQL dialect.
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    async fn insert(&self, record: &UserRecord) -> Result<(), StoreError>;
    async fn get(&self, id: UserId) -> Result<Option<UserRecord>, StoreError>;
    async fn get_by_email(&self, email: &str) -> Result<Option<UserRecord>, StoreError>;
    /// Up to `limit` accounts in id order, after `after` if given.
    async fn list(&self, after: Option<UserId>, limit: u32) -> Result<Vec<UserRecord>, StoreError>;
    /// Replaces the stored account with the same id; false if there is none.
    async fn update(&self, record: &UserRecord) -> Result<bool, StoreError>;
    /// Sets the account's roles to `roles` if they are still `expected`
    /// (compare-and-set, so concurrent grants and revokes lose nothing);
    /// false if the account is gone or its roles changed meanwhile.
    async fn update_roles(&self, id: UserId, expected: &Roles, roles: &Roles) -> Result<bool, StoreError>;
    /// False if there was no such account.
    async fn delete(&self, id: UserId) -> Result<bool, StoreError>;
    /// Succeeds when the database answers a trivial query.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// One row of the `users` table, as both adapters read it.
#[derive(sqlx::FromRow)]
struct UserRow {
    id: uuid::Uuid,
    email: String,
    name: String,
    password_hash: Option<String>,
    roles: String,
    created_at: chrono::DateTime<chrono::Utc>,
    updated_at: chrono::DateTime<chrono::Utc>,
}

impl UserRow {
    /// Rows were validated on the way in; a row that no longer parses is
    /// corrupt data, reported rather than served.
    fn into_record(self) -> Result<UserRecord, StoreError> {
        let corrupt =
            |field: &str, why: &str| StoreError::Other(format!("stored user {} has a bad {field}: {why}", self.id));
        let email = crate::domain::Email::parse(&self.email).map_err(|why| corrupt("email", why))?;
        let name = crate::domain::UserName::parse(&self.name).map_err(|why| corrupt("name", why))?;
        let roles = Roles::from_column(&self.roles).map_err(|why| corrupt("role", why))?;
        Ok(UserRecord {
            user: crate::domain::User {
                id: UserId::from_uuid(self.id),
                email,
                name,
                roles,
                created_at: self.created_at,
                updated_at: self.updated_at,
            },
            password_hash: self.password_hash,
        })
    }
}
