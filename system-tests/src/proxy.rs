//! A TCP proxy between a service and a real server, for faults no server can be asked to make: every connection
//! going silent (a partition, a powered-off host), or answers lost after the server acted on their requests.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Forwards connections to one upstream server until it drops.
pub struct Proxy {
    pub port: u16,
    faults: Faults,
    task: tokio::task::JoinHandle<()>,
}

/// What the proxy does to the traffic it forwards.
#[derive(Clone, Default)]
struct Faults {
    /// Every connection stops moving bytes, both ways, and stays open (no FIN, no RST).
    silent: Arc<AtomicBool>,
    /// A request holding these bytes still reaches the server; its answer, and anything later on that connection,
    /// never comes back.
    lose_answer_to: Option<Arc<[u8]>>,
    /// Whether answers to such requests are still lost: from the start, until the first is lost (`once`) or the
    /// test says so ([`Proxy::stop_losing`]).
    losing: Arc<AtomicBool>,
    once: bool,
    /// How many answers have been lost.
    lost: Arc<AtomicUsize>,
    /// Bytes per second each connection forwards to the server, if limited: a slow link, or a server slow to take
    /// what it is sent.
    upload_rate: Option<u64>,
    /// Connections still to come whose (HTTP) answer is cut off a few bytes into its body, the connection closed: a
    /// server killed, or a link dropped, while it answered.
    cut_short: Arc<AtomicUsize>,
    /// While set, answers wait in the proxy (requests still reach the server): a server that acted on a request
    /// and whose answer is slow to arrive.
    holding: Arc<AtomicBool>,
    /// How many reads of requests have been sent on to the server.
    sent: Arc<AtomicUsize>,
    /// Cancelled when the proxy is dropped: every connection it holds, silent ones too, is closed then.
    dropped: CancellationToken,
}

impl Proxy {
    /// A proxy that forwards everything until told to go silent.
    pub async fn start(upstream: SocketAddr) -> Self {
        Self::with(upstream, Faults::default()).await
    }

    /// A proxy that loses the answer to the first request holding `request` (see [`bson_field`]).
    pub async fn losing_the_answer_to(upstream: SocketAddr, request: Vec<u8>) -> Self {
        Self::losing(upstream, request, true).await
    }

    /// A proxy that loses the answer to every request holding `request` until [`Proxy::stop_losing`]: a store that
    /// takes longer than a client waits for each such request.
    pub async fn losing_every_answer_to(upstream: SocketAddr, request: Vec<u8>) -> Self {
        Self::losing(upstream, request, false).await
    }

    /// A proxy that forwards at most `bytes_per_second` to the server on each connection.
    pub async fn throttled(upstream: SocketAddr, bytes_per_second: u64) -> Self {
        Self::with(upstream, Faults { upload_rate: Some(bytes_per_second), ..Faults::default() }).await
    }

    /// A proxy that cuts off the HTTP answer on each of the first `connections` connections a few bytes into its
    /// body, and closes them; later ones are forwarded whole.
    pub async fn cutting_answers_short(upstream: SocketAddr, connections: usize) -> Self {
        Self::with(upstream, Faults { cut_short: Arc::new(AtomicUsize::new(connections)), ..Faults::default() }).await
    }

    async fn losing(upstream: SocketAddr, request: Vec<u8>, once: bool) -> Self {
        let faults = Faults {
            lose_answer_to: Some(request.into()),
            losing: Arc::new(AtomicBool::new(true)),
            once,
            ..Faults::default()
        };
        Self::with(upstream, faults).await
    }

    async fn with(upstream: SocketAddr, faults: Faults) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
        let port = listener.local_addr().expect("proxy address").port();
        let shared = faults.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else { continue };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                let faults = shared.clone();
                // This connection's answers are lost from the request that trips the fault on.
                let muted = Arc::new(AtomicBool::new(false));
                let mut watch = RequestWatch::new(faults.clone(), muted.clone());
                let (silent, sent) = (faults.silent.clone(), faults.sent.clone());
                tokio::spawn(forward(
                    (client_read, server_write),
                    faults.upload_rate,
                    (move || silent.load(Ordering::SeqCst), || false),
                    move |bytes| {
                        sent.fetch_add(1, Ordering::SeqCst);
                        watch.inspect(bytes);
                    },
                    faults.dropped.clone(),
                ));
                let cut = faults.cut_short.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
                if cut.is_ok() {
                    tokio::spawn(cut_short(server_read, client_write));
                    continue;
                }
                let (silent, holding) = (faults.silent.clone(), faults.holding.clone());
                let halted = move || silent.load(Ordering::SeqCst) || muted.load(Ordering::SeqCst);
                let held = move || holding.load(Ordering::SeqCst);
                tokio::spawn(forward(
                    (server_read, client_write),
                    None,
                    (halted, held),
                    |_| {},
                    faults.dropped.clone(),
                ));
            }
        });
        Self { port, faults, task }
    }

    /// From now on no connection moves a byte, both ways; all stay open.
    pub fn go_silent(&self) {
        self.faults.silent.store(true, Ordering::SeqCst);
    }

    /// Connections opened from now on forward again (those that went silent stay so).
    pub fn speak_again(&self) {
        self.faults.silent.store(false, Ordering::SeqCst);
    }

    /// From now on answers wait in the proxy, on every connection, until [`Proxy::release_answers`]; requests still
    /// reach the server.
    pub fn hold_answers(&self) {
        self.faults.holding.store(true, Ordering::SeqCst);
    }

    /// Answers held move on, and later ones are no longer held.
    pub fn release_answers(&self) {
        self.faults.holding.store(false, Ordering::SeqCst);
    }

    /// How many reads of requests the proxy has sent on to the server so far.
    pub fn requests_sent(&self) -> usize {
        self.faults.sent.load(Ordering::SeqCst)
    }

    /// Whether the proxy has lost an answer it was told to lose.
    pub fn lost_an_answer(&self) -> bool {
        self.answers_lost() > 0
    }

    /// How many answers the proxy has lost.
    pub fn answers_lost(&self) -> usize {
        self.faults.lost.load(Ordering::SeqCst)
    }

    /// From now on requests are answered again (on connections opened later: one that lost an answer stays mute).
    pub fn stop_losing(&self) {
        self.faults.losing.store(false, Ordering::SeqCst);
    }
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy").field("port", &self.port).finish_non_exhaustive()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.faults.dropped.cancel();
    }
}

/// Watches one connection's requests for the bytes whose answer is to be lost (across reads: it keeps the tail of
/// the previous one).
struct RequestWatch {
    faults: Faults,
    muted: Arc<AtomicBool>,
    tail: Vec<u8>,
}

impl RequestWatch {
    fn new(faults: Faults, muted: Arc<AtomicBool>) -> Self {
        Self { faults, muted, tail: Vec::new() }
    }

    /// Called with each read before it is sent on.
    fn inspect(&mut self, bytes: &[u8]) {
        let Some(pattern) = self.faults.lose_answer_to.as_deref() else { return };
        if !self.faults.losing.load(Ordering::SeqCst) {
            return;
        }
        self.tail.extend_from_slice(bytes);
        let matched = self.tail.windows(pattern.len()).any(|window| window == pattern);
        // Only one connection may take the one answer a `once` proxy loses.
        let lose = matched
            && (!self.faults.once
                || self.faults.losing.compare_exchange(true, false, Ordering::SeqCst, Ordering::SeqCst).is_ok());
        if lose {
            self.faults.lost.fetch_add(1, Ordering::SeqCst);
            self.muted.store(true, Ordering::SeqCst);
            self.tail.clear();
            return;
        }
        let keep = pattern.len().saturating_sub(1).min(self.tail.len());
        self.tail.drain(..self.tail.len() - keep);
    }
}

/// Copies bytes, at most `rate` a second if given, showing each read to `inspect` first, until `halted`; from then
/// on it holds both sockets open and moves nothing (what it had read is dropped) until the proxy is `dropped`.
/// While `held`, it reads nothing (what comes waits in the socket) and goes on after.
async fn forward(
    (mut from, mut to): (OwnedReadHalf, OwnedWriteHalf),
    rate: Option<u64>,
    (halted, held): (impl Fn() -> bool, impl Fn() -> bool),
    mut inspect: impl FnMut(&[u8]),
    dropped: CancellationToken,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        if halted() {
            // Keep the halves alive (no FIN) until the proxy goes.
            dropped.cancelled().await;
            return;
        }
        if held() {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(20)) => continue,
                () = dropped.cancelled() => return,
            }
        }
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            () = tokio::time::sleep(Duration::from_millis(50)) => continue,
            () = dropped.cancelled() => return,
        };
        let Ok(n) = read else { return };
        if n == 0 {
            return;
        }
        if halted() {
            continue;
        }
        inspect(&buffer[..n]);
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
        if let Some(rate) = rate {
            tokio::time::sleep(Duration::from_secs_f64(n as f64 / rate as f64)).await;
        }
    }
}

/// Forwards an HTTP answer's head and the first few bytes of its body, then closes the connection.
async fn cut_short(mut from: OwnedReadHalf, mut to: OwnedWriteHalf) {
    const BODY_BYTES: usize = 5;
    let mut answer = Vec::new();
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let Ok(n) = from.read(&mut buffer).await else { return };
        if n == 0 {
            return;
        }
        answer.extend_from_slice(&buffer[..n]);
        if let Some(head) = answer.windows(4).position(|window| window == b"\r\n\r\n") {
            let end = (head + 4 + BODY_BYTES).min(answer.len());
            let _ = to.write_all(&answer[..end]).await;
            let _ = to.shutdown().await;
            return;
        }
    }
}

/// The bytes of the BSON string field `key: value` as a request carries them (a command's name and collection, a
/// field of a document it writes).
pub fn bson_field(key: &str, value: &str) -> Vec<u8> {
    let document = mongodb::bson::to_vec(&mongodb::bson::doc! { key: value }).expect("a BSON document");
    // Without the document's length before its one field and the terminating zero after it.
    document[4..document.len() - 1].to_vec()
}

/// The address of the server a MongoDB URI of the form `mongodb://host:port/…` names.
pub fn mongodb_address(uri: &str) -> SocketAddr {
    let rest = uri.strip_prefix("mongodb://").expect("a mongodb:// URI");
    let host = rest.split(['/', '?']).next().expect("a host");
    std::net::ToSocketAddrs::to_socket_addrs(host).ok().and_then(|mut a| a.next()).expect("a resolvable host:port")
}

/// `uri` with its server replaced by the proxy's.
pub fn through(uri: &str, proxy: &Proxy) -> String {
    let rest = uri.strip_prefix("mongodb://").expect("a mongodb:// URI");
    let path = rest.find(['/', '?']).map_or("", |at| &rest[at..]);
    format!("mongodb://127.0.0.1:{}{path}", proxy.port)
}
