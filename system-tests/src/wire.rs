//! Round trips to Postgres, counted on the wire: a proxy between a service and the server that reads the messages
//! the service sends (the frontend protocol) and counts each request the server answers with `ReadyForQuery` — a
//! `Sync` or a simple `Query` — by what it carried. Machine-independent, and blind to what the service believes it
//! sends.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Round trips seen so far, by what they carried.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RoundTrips {
    /// A statement executed (`Execute` before the `Sync`, or a simple `Query`): what the service asked for.
    pub statements: u64,
    /// A statement prepared without being executed (`Parse`/`Describe` only): a first use on a connection.
    pub prepares: u64,
    /// Of those, statements the same connection had prepared before: a cache that does not hold.
    pub prepared_again: u64,
    /// A bare `Sync`: the pool checking that a connection is alive.
    pub pings: u64,
}

impl RoundTrips {
    pub fn total(&self) -> u64 {
        self.statements + self.prepares + self.pings
    }
}

impl std::ops::Sub for RoundTrips {
    type Output = Self;
    fn sub(self, earlier: Self) -> Self {
        Self {
            statements: self.statements - earlier.statements,
            prepares: self.prepares - earlier.prepares,
            prepared_again: self.prepared_again - earlier.prepared_again,
            pings: self.pings - earlier.pings,
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    statements: AtomicU64,
    prepares: AtomicU64,
    prepared_again: AtomicU64,
    pings: AtomicU64,
}

/// A counting proxy in front of a Postgres server; stops listening when dropped.
#[derive(Debug)]
pub struct PgRoundTrips {
    addr: SocketAddr,
    counters: Arc<Counters>,
    task: tokio::task::JoinHandle<()>,
}

impl PgRoundTrips {
    /// Listens on a free local port and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(Counters::default());
        let shared = counters.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let counters = shared.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        let _ = relay(client, server, counters).await;
                    }
                });
            }
        });
        Ok(Self { addr, counters, task })
    }

    /// `server_url` (`postgres://user@host:port/database`, as [`crate::Names::database_url`] gives it) through this
    /// proxy, without TLS so the messages can be read.
    pub fn url(&self, server_url: &str) -> String {
        let (scheme_user, rest) = server_url.split_once('@').unwrap_or(("postgres://postgres", server_url));
        let path = rest.split_once('/').map_or("", |(_, path)| path);
        format!("{scheme_user}@{}/{path}?sslmode=disable", self.addr)
    }

    /// The round trips counted so far.
    pub fn seen(&self) -> RoundTrips {
        RoundTrips {
            statements: self.counters.statements.load(Ordering::Relaxed),
            prepares: self.counters.prepares.load(Ordering::Relaxed),
            prepared_again: self.counters.prepared_again.load(Ordering::Relaxed),
            pings: self.counters.pings.load(Ordering::Relaxed),
        }
    }
}

impl Drop for PgRoundTrips {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies both ways, reading the client's side as it passes.
async fn relay(client: TcpStream, server: TcpStream, counters: Arc<Counters>) -> std::io::Result<()> {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let answers = tokio::spawn(async move { tokio::io::copy(&mut server_read, &mut client_write).await });
    let mut reader = Frontend::default();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = client_read.read(&mut buffer).await?;
        if read == 0 {
            break;
        }
        for trip in reader.feed(&buffer[..read]) {
            let counter = match trip {
                Trip::Statement => &counters.statements,
                Trip::Prepare => &counters.prepares,
                Trip::PrepareAgain => {
                    counters.prepared_again.fetch_add(1, Ordering::Relaxed);
                    &counters.prepares
                }
                Trip::Ping => &counters.pings,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        server_write.write_all(&buffer[..read]).await?;
    }
    answers.abort();
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trip {
    Statement,
    Prepare,
    /// A prepare of a statement text this connection prepared before.
    PrepareAgain,
    Ping,
}

/// The frontend protocol, as far as counting needs: untyped start-up messages (an SSL or GSS request may come
/// before the start-up message), then `type byte + length` messages.
#[derive(Debug, Default)]
struct Frontend {
    pending: Vec<u8>,
    started: bool,
    /// Messages since the last `Sync`: whether one executed, whether any was sent at all.
    executed: bool,
    extended: bool,
    /// Statement texts this connection has prepared (`Parse`), and whether one since the last `Sync` was one of them.
    parsed: std::collections::HashSet<Vec<u8>>,
    parsed_again: bool,
}

/// Request codes of the untyped messages that come before the start-up message.
const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;

impl Frontend {
    /// Takes the next bytes from the client; returns the round trips they complete.
    fn feed(&mut self, bytes: &[u8]) -> Vec<Trip> {
        self.pending.extend_from_slice(bytes);
        let mut trips = Vec::new();
        loop {
            let header = if self.started { 5 } else { 8 };
            if self.pending.len() < header {
                break;
            }
            let (kind, length) = if self.started {
                (
                    self.pending[0],
                    u32::from_be_bytes([self.pending[1], self.pending[2], self.pending[3], self.pending[4]]),
                )
            } else {
                (0, u32::from_be_bytes([self.pending[0], self.pending[1], self.pending[2], self.pending[3]]))
            };
            let whole = length as usize + usize::from(self.started);
            if self.pending.len() < whole {
                break;
            }
            if self.started {
                match kind {
                    b'Q' => trips.push(Trip::Statement),
                    b'E' => (self.executed, self.extended) = (true, true),
                    b'S' => {
                        trips.push(match (self.executed, self.extended, self.parsed_again) {
                            (true, _, _) => Trip::Statement,
                            (false, true, false) => Trip::Prepare,
                            (false, true, true) => Trip::PrepareAgain,
                            (false, false, _) => Trip::Ping,
                        });
                        (self.executed, self.extended, self.parsed_again) = (false, false, false);
                    }
                    b'P' => {
                        self.extended = true;
                        // The body: the statement's name, then its text, each NUL-terminated.
                        let body = &self.pending[5..whole];
                        let text = body.splitn(3, |byte| *byte == 0).nth(1).unwrap_or_default().to_vec();
                        self.parsed_again |= !self.parsed.insert(text);
                    }
                    _ => self.extended = true,
                }
            } else {
                let code = u32::from_be_bytes([self.pending[4], self.pending[5], self.pending[6], self.pending[7]]);
                self.started = code != SSL_REQUEST && code != GSSENC_REQUEST;
            }
            self.pending.drain(..whole);
        }
        trips
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![kind];
        out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    fn untyped(code: u32, rest: &[u8]) -> Vec<u8> {
        let mut out = (8 + rest.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&code.to_be_bytes());
        out.extend_from_slice(rest);
        out
    }

    #[test]
    fn requests_are_told_apart_by_what_comes_before_their_sync_however_the_bytes_arrive() {
        let mut stream = untyped(SSL_REQUEST, &[]);
        stream.extend(untyped(196_608, b"user\0root\0\0"));
        stream.extend(message(b'Q', b"select 1\0"));
        stream.extend([message(b'P', b"\0select $1\0\0\0"), message(b'D', b"S\0"), message(b'S', &[])].concat());
        stream.extend([message(b'B', &[0; 10]), message(b'E', &[0; 5]), message(b'S', &[])].concat());
        stream.extend(message(b'S', &[]));
        stream.extend([message(b'P', b"\0select $1\0\0\0"), message(b'D', b"S\0"), message(b'S', &[])].concat());
        let expected = vec![Trip::Statement, Trip::Prepare, Trip::Statement, Trip::Ping, Trip::PrepareAgain];
        for chunk in [1, 3, 7, stream.len()] {
            let mut reader = Frontend::default();
            let trips: Vec<Trip> = stream.chunks(chunk).flat_map(|bytes| reader.feed(bytes)).collect();
            assert_eq!(trips, expected, "in chunks of {chunk}");
        }
    }
}
