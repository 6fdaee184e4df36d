//! A database of one test's own: created with the schema on the test server, dropped when the test ends (passed
//! or not).

use sqlx::{Executor as _, PgPool};

pub struct Database {
    pub pool: PgPool,
    server: String,
    name: String,
}

/// The server the tests use, without a database.
fn server() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

impl Database {
    /// A new database with every migration applied.
    pub async fn new() -> Self {
        let server = server();
        let name = format!("store_{}", uuid::Uuid::new_v4().simple());
        let admin = PgPool::connect(&format!("{server}/postgres")).await.expect("the test server answers");
        admin.execute(format!("create database {name}").as_str()).await.expect("a database");
        admin.close().await;
        let pool = PgPool::connect(&format!("{server}/{name}")).await.expect("the new database");
        command_service::store::MIGRATOR.run(&pool).await.expect("the migrations");
        Self { pool, server, name }
    }

    /// Rows of `table`.
    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("select count(*) from {table}")).fetch_one(&self.pool).await.expect("a count")
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        // Drop runs inside the test's runtime, which cannot be waited on from here: a thread of its own drops the
        // database, and `force` ends the test's own connections to it.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            runtime.block_on(async move {
                if let Ok(admin) = PgPool::connect(&format!("{server}/postgres")).await {
                    let _ = admin.execute(format!("drop database if exists {name} with (force)").as_str()).await;
                    admin.close().await;
                }
            });
        });
        let _ = dropped.join();
    }
}
