//! The SQL both adapters run: PostgreSQL and SQLite accept the same text
//! here (`$n` parameters, a nil/max UUID instead of NULL cursors), so one
//! macro implements [`super::OrderStore`] for each pool type. Reads go to
//! `pool`, writes to `writes` (the same pool on PostgreSQL; SQLite's one
//! writing connection, see `platform::database::SqlitePools`). Only the
//! relay lease differs, and each adapter provides it as `relay_lease_impl`.
//! Every statement runs in its CLIENT span (`platform::db_trace`), on a
//! connection taken from a `platform::database::StorePool`.

macro_rules! impl_order_store {
    ($store:ty, $database:ty, $system:expr) => {
        #[async_trait::async_trait]
        impl $crate::store::OrderStore for $store {
            async fn create(
                &self,
                order: &$crate::domain::Order,
                idempotency_key: Option<&str>,
                event: &events::Event,
            ) -> Result<(), $crate::store::StoreError> {
                use $crate::store::StoreError;
                let mut connection = self.writes.acquire().await.map_err(StoreError::from_sqlx)?;
                let mut tx = sqlx::Connection::begin(&mut *connection)
                    .db_call($system, "BEGIN", "")
                    .await
                    .map_err(StoreError::from_sqlx)?;
                sqlx::query(
                    "INSERT INTO orders (id, user_id, status, total_minor, idempotency_key, created_at, updated_at, currency)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(order.id.as_uuid())
                .bind(order.user_id)
                .bind(order.status.as_str())
                .bind(order.total_minor())
                .bind(idempotency_key)
                .bind(order.created_at)
                .bind(order.updated_at)
                .bind(order.currency.as_str())
                .execute(&mut *tx)
                .db_call($system, "INSERT", "orders")
                .await
                .map_err(StoreError::from_sqlx)?;
                for (position, item) in order.items.iter().enumerate() {
                    sqlx::query(
                        "INSERT INTO order_items (order_id, position, product_id, product_name, quantity, unit_price_minor)
                         VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(order.id.as_uuid())
                    .bind(position as i32)
                    .bind(&item.product_id)
                    .bind(&item.product_name)
                    .bind(item.quantity)
                    .bind(item.unit_price_minor)
                    .execute(&mut *tx)
                    .db_call($system, "INSERT", "order_items")
                    .await
                    .map_err(StoreError::from_sqlx)?;
                }
                Self::insert_event(&mut tx, event, order.created_at).await?;
                tx.commit().db_call($system, "COMMIT", "").await.map_err(StoreError::from_sqlx)
            }

            async fn get(
                &self,
                id: $crate::domain::OrderId,
            ) -> Result<Option<$crate::domain::Order>, $crate::store::StoreError> {
                let rows = sqlx::query_as::<_, $crate::store::OrderRow>(
                    "SELECT id, user_id, status, currency, created_at, updated_at FROM orders WHERE id = $1",
                )
                .bind(id.as_uuid())
                .fetch_all(&mut *self.pool.acquire().await.map_err($crate::store::StoreError::from_sqlx)?)
                .db_call($system, "SELECT", "orders")
                .await
                .map_err($crate::store::StoreError::from_sqlx)?;
                Ok(self.with_items(rows).await?.pop())
            }

            async fn find_by_idempotency_key(
                &self,
                user_id: uuid::Uuid,
                key: &str,
            ) -> Result<Option<$crate::domain::Order>, $crate::store::StoreError> {
                let rows = sqlx::query_as::<_, $crate::store::OrderRow>(
                    "SELECT id, user_id, status, currency, created_at, updated_at FROM orders
                     WHERE user_id = $1 AND idempotency_key = $2",
                )
                .bind(user_id)
                .bind(key)
                .fetch_all(&mut *self.pool.acquire().await.map_err($crate::store::StoreError::from_sqlx)?)
                .db_call($system, "SELECT", "orders")
                .await
                .map_err($crate::store::StoreError::from_sqlx)?;
                Ok(self.with_items(rows).await?.pop())
            }

            async fn list(
                &self,
                query: &$crate::store::OrderQuery,
            ) -> Result<Vec<$crate::domain::Order>, $crate::store::StoreError> {
                // Unset filters match everything: the status is compared only
                // when given, the user only when given.
                let rows = sqlx::query_as::<_, $crate::store::OrderRow>(
                    "SELECT id, user_id, status, currency, created_at, updated_at FROM orders
                     WHERE id < $1 AND ($2 = '' OR status = $2) AND ($3 = $4 OR user_id = $3)
                     ORDER BY id DESC LIMIT $5",
                )
                .bind(query.before.map_or(uuid::Uuid::max(), |id| id.as_uuid()))
                .bind(query.status.map_or("", |status| status.as_str()))
                .bind(query.user_id.unwrap_or(uuid::Uuid::nil()))
                .bind(uuid::Uuid::nil())
                .bind(i64::from(query.limit))
                .fetch_all(&mut *self.pool.acquire().await.map_err($crate::store::StoreError::from_sqlx)?)
                .db_call($system, "SELECT", "orders")
                .await
                .map_err($crate::store::StoreError::from_sqlx)?;
                self.with_items(rows).await
            }

            async fn change_status(
                &self,
                id: $crate::domain::OrderId,
                from: $crate::domain::OrderStatus,
                to: $crate::domain::OrderStatus,
                at: chrono::DateTime<chrono::Utc>,
                event: &events::Event,
            ) -> Result<bool, $crate::store::StoreError> {
                use $crate::store::StoreError;
                let mut connection = self.writes.acquire().await.map_err(StoreError::from_sqlx)?;
                let mut tx = sqlx::Connection::begin(&mut *connection)
                    .db_call($system, "BEGIN", "")
                    .await
                    .map_err(StoreError::from_sqlx)?;
                // Compare-and-set on the status: of two concurrent changes
                // from one status, exactly one wins.
                let changed = sqlx::query("UPDATE orders SET status = $3, updated_at = $4 WHERE id = $1 AND status = $2")
                    .bind(id.as_uuid())
                    .bind(from.as_str())
                    .bind(to.as_str())
                    .bind(at)
                    .execute(&mut *tx)
                    .db_call($system, "UPDATE", "orders")
                    .await
                    .map_err(StoreError::from_sqlx)?;
                if changed.rows_affected() != 1 {
                    return Ok(false);
                }
                Self::insert_event(&mut tx, event, at).await?;
                tx.commit().db_call($system, "COMMIT", "").await.map_err(StoreError::from_sqlx)?;
                Ok(true)
            }

            async fn unsent(&self, limit: u32) -> Result<Vec<$crate::store::OutboxEntry>, $crate::store::StoreError> {
                let rows = sqlx::query_as::<_, $crate::store::OutboxRow>(
                    "SELECT seq, event_id, kind, payload, traceparent FROM outbox ORDER BY seq LIMIT $1",
                )
                .bind(i64::from(limit))
                .fetch_all(&mut *self.pool.acquire().await.map_err($crate::store::StoreError::from_sqlx)?)
                .db_call($system, "SELECT", "outbox")
                .await
                .map_err($crate::store::StoreError::from_sqlx)?;
                Ok(rows.into_iter().map($crate::store::OutboxRow::into_entry).collect())
            }

            async fn mark_sent(&self, seqs: &[i64]) -> Result<(), $crate::store::StoreError> {
                if seqs.is_empty() {
                    return Ok(());
                }
                // Exactly these rows: one with a smaller seq may have
                // committed after they were read, and is still to be sent.
                let mut delete = sqlx::QueryBuilder::<$database>::new("DELETE FROM outbox WHERE seq IN (");
                let mut listed = delete.separated(", ");
                for seq in seqs {
                    listed.push_bind(*seq);
                }
                delete.push(")");
                let mut connection = self.writes.acquire().await.map_err($crate::store::StoreError::from_sqlx)?;
                delete
                    .build()
                    .execute(&mut *connection)
                    .db_call($system, "DELETE", "outbox")
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)?;
                Ok(())
            }

            async fn backlog(&self) -> Result<$crate::store::Backlog, $crate::store::StoreError> {
                use $crate::store::StoreError;
                let unsent: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
                    .fetch_one(&mut *self.pool.acquire().await.map_err($crate::store::StoreError::from_sqlx)?)
                    .db_call($system, "SELECT", "outbox")
                    .await
                    .map_err(StoreError::from_sqlx)?;
                let oldest: Option<chrono::DateTime<chrono::Utc>> =
                    sqlx::query_scalar("SELECT created_at FROM outbox ORDER BY seq LIMIT 1")
                        .fetch_optional(&mut *self.pool.acquire().await.map_err($crate::store::StoreError::from_sqlx)?)
                        .db_call($system, "SELECT", "outbox")
                        .await
                        .map_err(StoreError::from_sqlx)?;
                Ok($crate::store::Backlog { unsent: unsent.max(0) as u64, oldest })
            }

            async fn relay_lease(
                &self,
            ) -> Result<Option<Box<dyn $crate::store::RelayLease>>, $crate::store::StoreError> {
                self.relay_lease_impl().await
            }

            async fn ping(&self) -> Result<(), $crate::store::StoreError> {
                let mut connection = self.pool.acquire().await.map_err($crate::store::StoreError::from_sqlx)?;
                sqlx::query("SELECT 1")
                    .execute(&mut *connection)
                    .db_call($system, "SELECT", "")
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)?;
                Ok(())
            }
        }

        impl $store {
            async fn insert_event(
                tx: &mut sqlx::Transaction<'_, $database>,
                event: &events::Event,
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO outbox (event_id, kind, payload, traceparent, created_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(event.id)
                .bind(&event.kind)
                .bind(&event.payload)
                .bind(&event.traceparent)
                .bind(at)
                .execute(&mut **tx)
                .db_call($system, "INSERT", "outbox")
                .await
                .map_err($crate::store::StoreError::from_sqlx)?;
                Ok(())
            }

            /// The orders of `rows` with their items, in the rows' order.
            async fn with_items(
                &self,
                rows: Vec<$crate::store::OrderRow>,
            ) -> Result<Vec<$crate::domain::Order>, $crate::store::StoreError> {
                let mut items = Vec::new();
                for row in &rows {
                    let mut rows = sqlx::query_as::<_, $crate::store::ItemRow>(
                        "SELECT order_id, product_id, product_name, quantity, unit_price_minor
                         FROM order_items WHERE order_id = $1 ORDER BY position",
                    )
                    .bind(row.id)
                    .fetch_all(&mut *self.pool.acquire().await.map_err($crate::store::StoreError::from_sqlx)?)
                    .db_call($system, "SELECT", "order_items")
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)?;
                    items.append(&mut rows);
                }
                $crate::store::assemble(rows, items)
            }
        }
    };
}

pub(crate) use impl_order_store;
