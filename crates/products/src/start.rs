//! Assembling the products component: on MongoDB (`MONGO_URL`, indexes
//! created at start), or embedded on SQLite for `meshwork up`.

use std::path::Path;
use std::sync::Arc;

use platform::StartError;
use platform::settings::{self, Settings};

use crate::Products;
use crate::store::{MongoProductStore, SqliteProductStore};

/// The production component. The driver connects lazily, so the service
/// starts (and reports not ready) while MongoDB is still coming up; indexes
/// are created once it answers.
pub async fn production(settings: &Settings) -> Result<Products, StartError> {
    let url = Settings::require(
        &settings.mongo_url,
        settings::MONGO_URL,
        "the products service stores its catalog in MongoDB",
    )?;
    let store = MongoProductStore::connect(url.expose())
        .await
        .map_err(|error| settings.invalid(settings::MONGO_URL, error.to_string()))?;
    let indexing = store.clone();
    tokio::spawn(async move {
        let mut delay = std::time::Duration::from_millis(250);
        while let Err(error) = indexing.create_indexes().await {
            tracing::warn!(%error, "cannot create MongoDB indexes yet; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(std::time::Duration::from_secs(10));
        }
    });
    Ok(Products::new(Arc::new(store)))
}

/// The embedded component for `meshwork up`: `products.db` in `data_dir`.
pub async fn embedded(data_dir: &Path) -> Result<Products, StartError> {
    let store = SqliteProductStore::open(&data_dir.join("products.db")).await.map_err(StartError::other)?;
    Ok(Products::new(Arc::new(store)))
}
