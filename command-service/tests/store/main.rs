//! The command side's SQL statements against a real PostgreSQL, each outcome of each: a database of each test's
//! own, made from the migrations (`TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432`). The
//! replication slot statements (`store::slots`) need a server in `wal_level=logical` and are tried by the
//! end-to-end `wal` tests instead.

mod database;
mod given;
mod lifecycle;
mod orders;
mod relay;
