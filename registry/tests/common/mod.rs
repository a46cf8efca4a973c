//! Opening a fresh store on each backend for the shared test suite.
//!
//! SQLite: a file in a temporary directory. PostgreSQL: a fresh database
//! `cerulean_test_<random>` on the server named by `CERULEAN_TEST_PG_URL` (default
//! `postgresql://postgres@127.0.0.1:5432/postgres`), dropped afterwards. A PostgreSQL that cannot
//! be reached fails the test: CI starts one.

#![allow(dead_code)]

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use cerulean_registry::store::{SqlStore, StoreOptions};
use futures::FutureExt;
use sqlx::Connection;

/// The admin URL of the test PostgreSQL.
pub fn pg_admin_url() -> String {
    std::env::var("CERULEAN_TEST_PG_URL")
        .unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/postgres".into())
}

fn with_database(admin: &str, db: &str) -> String {
    let (base, _) = admin.rsplit_once('/').expect("a database in the URL");
    format!("{base}/{db}")
}

/// Runs `body` against a store on a fresh SQLite file.
pub async fn on_sqlite<F, Fut>(body: F)
where
    F: FnOnce(Arc<SqlStore>) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let uri = format!("sqlite://{}/registry.db", dir.path().display());
    let store = Arc::new(
        SqlStore::connect(&uri, StoreOptions::default())
            .await
            .unwrap(),
    );
    body(store.clone()).await;
    store.close().await;
}

/// Runs `body` against a store on a fresh PostgreSQL database, dropped afterwards (also when the
/// body panics).
pub async fn on_postgres<F, Fut>(body: F)
where
    F: FnOnce(Arc<SqlStore>) -> Fut,
    Fut: Future<Output = ()>,
{
    sqlx::any::install_default_drivers();
    let admin = pg_admin_url();
    let mut conn = match sqlx::PgConnection::connect(&admin).await {
        Ok(c) => c,
        Err(e) => panic!(
            "PostgreSQL is not reachable at {admin} ({e}). The registry's store tests need a \
             running PostgreSQL (trust auth, user postgres); start one, or point \
             CERULEAN_TEST_PG_URL at one."
        ),
    };
    let db = format!("cerulean_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let url = with_database(&admin, &db);
    let result = AssertUnwindSafe(async {
        let store = Arc::new(
            SqlStore::connect(&url, StoreOptions::default())
                .await
                .unwrap(),
        );
        body(store.clone()).await;
        store.close().await;
    })
    .catch_unwind()
    .await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// Declares one test per backend running the same body: `both!(name, body_fn)`.
#[macro_export]
macro_rules! both {
    ($name:ident, $body:path) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                $crate::common::on_sqlite(|s| $body(s)).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                $crate::common::on_postgres(|s| $body(s)).await;
            }
        }
    };
}
