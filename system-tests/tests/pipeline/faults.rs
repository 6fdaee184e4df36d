//! Faults on the real components: the broker stops, the relay is killed mid-batch, MongoDB restarts. After each,
//! every order's event reaches its view exactly at its version, and the outbox is fully published.
