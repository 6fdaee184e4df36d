//! Limits per client, so that one client cannot take what all share: [`Slots`] caps what a client holds open at
//! once (view streams and waiting reads), per client and in total; [`RateLimiter`] caps how fast a client sends
//! commands (a token bucket per client). A client is a [`crate::auth::Caller::client`]: the token's subject, or the
//! peer address in `none` mode. Both answer "no" with how long to wait, for a 429 with `Retry-After`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

/// Why a client may not hold one more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// This client holds its share.
    Client,
    /// Every slot of this process is held.
    Total,
}

/// Counted slots: at most `per_client` held by one client, `total` by all.
#[derive(Debug, Clone)]
pub struct Slots {
    per_client: usize,
    total: usize,
    held: Arc<Mutex<Held>>,
}

#[derive(Debug, Default)]
struct Held {
    by_client: HashMap<String, usize>,
    total: usize,
}

/// One held slot, given back when dropped.
#[derive(Debug)]
pub struct Slot {
    held: Arc<Mutex<Held>>,
    client: String,
}

impl Slots {
    pub fn new(per_client: usize, total: usize) -> Self {
        Self { per_client, total, held: Arc::default() }
    }

    /// A slot for `client`, unless it or the process is full.
    pub fn take(&self, client: &str) -> Result<Slot, Full> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if held.total >= self.total {
            return Err(Full::Total);
        }
        let count = held.by_client.entry(client.to_owned()).or_default();
        if *count >= self.per_client {
            return Err(Full::Client);
        }
        *count += 1;
        held.total += 1;
        Ok(Slot { held: self.held.clone(), client: client.to_owned() })
    }

    /// Slots held now, by every client.
    pub fn held(&self) -> usize {
        self.held.lock().unwrap_or_else(PoisonError::into_inner).total
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        held.total = held.total.saturating_sub(1);
        if let Some(count) = held.by_client.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                held.by_client.remove(&self.client);
            }
        }
    }
}

/// A token bucket per client: `rate` requests a second on average, up to `burst` at once.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Arc<Mutex<HashMap<String, Bucket>>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets kept before full ones (clients that have been quiet long enough) are forgotten.
const FORGET_ABOVE: usize = 10_000;

impl RateLimiter {
    /// `rate` > 0 requests a second, bursts of `burst` (at least 1).
    pub fn new(rate: f64, burst: f64) -> Self {
        Self { rate, burst: burst.max(1.0), buckets: Arc::default() }
    }

    /// Takes one token of `client`'s bucket at `now`, or says how long until one is there.
    pub fn check(&self, client: &str, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() > FORGET_ABOVE {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, bucket| bucket.tokens + rate * (now - bucket.at).as_secs_f64() < burst);
        }
        let bucket = buckets.entry(client.to_owned()).or_insert(Bucket { tokens: self.burst, at: now });
        let tokens =
            (bucket.tokens + self.rate * now.saturating_duration_since(bucket.at).as_secs_f64()).min(self.burst);
        *bucket = Bucket { tokens, at: now };
        if tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_holds_its_share_and_no_more_and_gets_it_back() {
        let slots = Slots::new(2, 3);
        let a1 = slots.take("a").expect("first");
        let _a2 = slots.take("a").expect("second");
        assert_eq!(slots.take("a").err(), Some(Full::Client));
        let _b1 = slots.take("b").expect("another client is served");
        assert_eq!(slots.take("c").err(), Some(Full::Total), "the total is reached");
        drop(a1);
        assert_eq!(slots.held(), 2);
        assert!(slots.take("a").is_ok(), "a slot given back can be taken again");
    }

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let limiter = RateLimiter::new(2.0, 3.0);
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check("a", start).is_ok());
        }
        let wait = limiter.check("a", start).expect_err("the burst is spent");
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-6, "one token in half a second: {wait:?}");
        assert!(limiter.check("b", start).is_ok(), "each client has its own bucket");
        assert!(limiter.check("a", start + Duration::from_millis(500)).is_ok());
        assert!(limiter.check("a", start + Duration::from_millis(500)).is_err());
    }
}
