//! End-to-end tests live in `tests/`; `src/bin/load.rs` is a simple load run against running services.
