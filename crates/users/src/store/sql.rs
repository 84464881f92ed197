//! The SQL both adapters run. PostgreSQL and SQLite accept the same text
//! here (`$n` parameters; a nil UUID instead of a NULL cursor, since ids are
//! UUIDv7 and sort after it), so one macro implements [`UserStore`] for each
//! pool type instead of two copies drifting apart.

/// Implements [`super::UserStore`] for a struct with pools `pool` (reads)
/// and `writes` (see `platform::database::SqlitePools`), both
/// `platform::database::StorePool`s, on the database `$system` (a
/// `platform::db_trace::DbSystem`, for the spans of its calls).
macro_rules! impl_user_store {
    ($store:ty, $system:expr) => {
        #[async_trait::async_trait]
        impl $crate::store::UserStore for $store {
            async fn insert(&self, record: &$crate::domain::UserRecord) -> Result<(), $crate::store::StoreError> {
                let user = &record.user;
                sqlx::query(
                    "INSERT INTO users (id, email, name, password_hash, roles, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(user.id.as_uuid())
                .bind(user.email.as_str())
                .bind(user.name.as_str())
                .bind(&record.password_hash)
                .bind(user.roles.to_column())
                .bind(user.created_at)
                .bind(user.updated_at)
                .execute(&mut *self.writes.acquire().await.map_err($crate::store::StoreError::from_sqlx)?)
                .db_call($system, "INSERT", "users")
                .await
                .map_err($crate::store::StoreError::from_sqlx)?;
                Ok(())
            }

            async fn get(
                &self,
                id: $crate::domain::UserId,
            ) -> Result<Option<$crate::domain::UserRecord>, $crate::store::StoreError> {
                sqlx::query_as::<_, $crate::store::UserRow>(
                    "SELECT id, email, name, password_hash, roles, created_at, updated_at FROM users WHERE id = $1",
                )
                .bind(id.as_uuid())
                .fetch_optional(&mut *self.pool.acquire().await.map_err($crate::store::StoreError::from_sqlx)?)
                .db_call($system, "SELECT", "users")
                .await
                .map_err($crate::store::StoreError::from_sqlx)?
                .map($crate::store::UserRow::into_record)
                .transpose()
            }

            async fn get_by_email(
                &self,
                email: &str,
            ) -> Result<Option<$crate::domain::UserRecord>, $crate::store::StoreError> {
                sqlx::query_as::<_, $crate::store::UserRow>(
                    "SELECT id, email, name, password_hash, roles, created_at, updated_at
                     FROM users WHERE lower(email) = lower($1)",
                )
                .bind(email)
                .fetch_optional(&mut *self.pool.acquire().await.map_err($crate::store::StoreError::from_sqlx)?)
                .db_call($system, "SELECT", "users")
                .await
                .map_err($crate::store::StoreError::from_sqlx)?
                .map($crate::store::UserRow::into_record)
                .transpose()
            }

            async fn list(
                &self,
                after: Option<$crate::domain::UserId>,
                limit: u32,
            ) -> Result<Vec<$crate::domain::UserRecord>, $crate::store::StoreError> {
                sqlx::query_as::<_, $crate::store::UserRow>(
                    "SELECT id, email, name, password_hash, roles, created_at, updated_at
                     FROM users WHERE id > $1 ORDER BY id LIMIT $2",
                )
                .bind(after.map_or(uuid::Uuid::nil(), |id| id.as_uuid()))
                .bind(i64::from(limit))
                .fetch_all(&mut *self.pool.acquire().await.map_err($crate::store::StoreError::from_sqlx)?)
                .db_call($system, "SELECT", "users")
                .await
                .map_err($crate::store::StoreError::from_sqlx)?
                .into_iter()
                .map($crate::store::UserRow::into_record)
                .collect()
            }

            async fn update(&self, record: &$crate::domain::UserRecord) -> Result<bool, $crate::store::StoreError> {
                let user = &record.user;
                let result = sqlx::query(
                    "UPDATE users SET email = $2, name = $3, password_hash = $4, updated_at = $5 WHERE id = $1",
                )
                .bind(user.id.as_uuid())
                .bind(user.email.as_str())
                .bind(user.name.as_str())
                .bind(&record.password_hash)
                .bind(user.updated_at)
                .execute(&mut *self.writes.acquire().await.map_err($crate::store::StoreError::from_sqlx)?)
                .db_call($system, "UPDATE", "users")
                .await
                .map_err($crate::store::StoreError::from_sqlx)?;
                Ok(result.rows_affected() == 1)
            }

            async fn update_roles(
                &self,
                id: $crate::domain::UserId,
                expected: &$crate::domain::Roles,
                roles: &$crate::domain::Roles,
            ) -> Result<bool, $crate::store::StoreError> {
                let result = sqlx::query("UPDATE users SET roles = $3, updated_at = $4 WHERE id = $1 AND roles = $2")
                    .bind(id.as_uuid())
                    .bind(expected.to_column())
                    .bind(roles.to_column())
                    .bind(chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 6))
                    .execute(&mut *self.writes.acquire().await.map_err($crate::store::StoreError::from_sqlx)?)
                    .db_call($system, "UPDATE", "users")
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)?;
                Ok(result.rows_affected() == 1)
            }

            async fn delete(&self, id: $crate::domain::UserId) -> Result<bool, $crate::store::StoreError> {
                let result = sqlx::query("DELETE FROM users WHERE id = $1")
                    .bind(id.as_uuid())
                    .execute(&mut *self.writes.acquire().await.map_err($crate::store::StoreError::from_sqlx)?)
                    .db_call($system, "DELETE", "users")
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)?;
                Ok(result.rows_affected() == 1)
            }

            async fn ping(&self) -> Result<(), $crate::store::StoreError> {
                let mut connection = self.pool.acquire().await.map_err($crate::store::StoreError::from_sqlx)?;
                sqlx::query("SELECT 1")
                    .execute(&mut *connection)
                    .db_call($system, "SELECT", "users")
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)?;
                Ok(())
            }
        }
    };
}

pub(crate) use impl_user_store;
