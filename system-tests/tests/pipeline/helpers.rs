//! `TestApp`: both services, in process, on port 0, against the real Postgres, RabbitMQ and MongoDB-wire server,
//! with a database, exchange, queues and Mongo database of their own that are removed when it drops.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lapin::ConnectionProperties;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

pub use system_tests::Names;

pub fn amqp_url() -> String {
    env_or("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
}

pub fn mongodb_uri() -> String {
    env_or("TEST_MONGODB_URI", "mongodb://127.0.0.1:27017/?directConnection=true&retryWrites=false")
}

pub fn free_port() -> u16 {
    system_tests::free_port().expect("a free port")
}

/// A service binary built beside this test binary (`cargo build --workspace --bins` builds them).
pub fn service_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>/deps");
    let binary = dir.join(name);
    assert!(binary.exists(), "{} is missing: build the workspace first (cargo build --workspace)", binary.display());
    binary
}

/// A child process of a test, killed when it drops, however the test ends (a failed assertion included).
pub struct ChildProcess(pub std::process::Child);

impl std::ops::Deref for ChildProcess {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for ChildProcess {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub use system_tests::{command_config, query_config, ADMIN_TOKEN, TEST_ORIGIN};

/// Places a valid order through the command endpoint at `url` and returns the command's whole answer.
pub async fn place_order_at(http: &reqwest::Client, url: &str, customer: &str) -> serde_json::Value {
    let response = http
        .post(url)
        .json(&serde_json::json!({
            "customerId": customer, "currency": "EUR",
            "items": [{"sku": "SKU-1", "quantity": 2, "unitPrice": "19.99"}, {"sku": "SKU-2", "quantity": 1, "unitPrice": 5}]
        }))
        .send()
        .await
        .expect("POST answers");
    assert_eq!(response.status(), 201, "{:?}", response.text().await);
    response.json().await.expect("json body")
}

/// Both services running for one test.
pub struct TestApp {
    pub names: Names,
    pub command_addr: SocketAddr,
    pub query_addr: SocketAddr,
    pub pool: PgPool,
    pub mongo: mongodb::Database,
    pub http: reqwest::Client,
    /// The waiter board of the (projecting) query-service.
    pub waiters: query_service::read::VersionWaiters,
    /// The supervisor of the query-service's background tasks.
    pub query_tasks: service_runtime::supervisor::Supervisor,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
    mongodb_uri: String,
    cleaned: bool,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(Names::new("test"), &amqp_url(), &mongodb_uri(), true).await
    }

    /// Starts both services; `relay` false leaves the outbox unpublished (a relay process can be started apart).
    pub async fn spawn_with(names: Names, amqp_url: &str, mongodb_uri: &str, relay: bool) -> Self {
        Self::spawn_tuned(names, amqp_url, mongodb_uri, |command| command.relay_enabled = relay, |_, _| {}).await
    }

    /// Both services as a browser uses them: the demo page on the query-service sends its commands to the
    /// command-service, which lets the page's origin in; each configuration adjusted further as the test says.
    pub async fn spawn_for_browser(
        tune_command: impl FnOnce(&mut command_service::config::Config),
        tune_query: impl FnOnce(&mut query_service::config::Config),
    ) -> Self {
        let query_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("an address");
        Self::spawn_tuned(
            Names::new("test"),
            &amqp_url(),
            &mongodb_uri(),
            |command| {
                command.cors_allowed_origins = format!("{TEST_ORIGIN},http://{query_addr}");
                tune_command(command);
            },
            |query, command_addr| {
                query.http_addr = query_addr;
                query.demo_command_url = format!("http://{command_addr}");
                tune_query(query);
            },
        )
        .await
    }

    /// Starts both services, with each configuration adjusted first (the query side's knowing the command side's
    /// address).
    pub async fn spawn_tuned(
        names: Names,
        amqp_url: &str,
        mongodb_uri: &str,
        tune_command: impl FnOnce(&mut command_service::config::Config),
        tune_query: impl FnOnce(&mut query_service::config::Config, SocketAddr),
    ) -> Self {
        // The command side first, so that the query side knows its event feed.
        CommandFirst::spawn(names, amqp_url, tune_command).await.then_query(mongodb_uri, tune_query).await
    }

    pub fn command_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.command_addr)
    }

    pub fn query_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.query_addr)
    }

    /// GETs `url` and returns its JSON body, whatever the status.
    pub async fn get_json(&self, url: impl reqwest::IntoUrl) -> serde_json::Value {
        self.http.get(url).send().await.expect("GET answers").json().await.expect("a JSON body")
    }

    /// Places a valid order and returns `(orderId, sequenceId)`.
    pub async fn place_order(&self, customer: &str) -> (Uuid, i64) {
        let body = self.place_order_answer(customer).await;
        let id = body["orderId"].as_str().and_then(|s| s.parse().ok()).expect("orderId is a uuid");
        (id, body["sequenceId"].as_i64().expect("sequenceId"))
    }

    /// Places a valid order and returns the command's whole answer.
    pub async fn place_order_answer(&self, customer: &str) -> serde_json::Value {
        place_order_at(&self.http, &self.command_url("/commands/orders"), customer).await
    }

    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("select count(*) from {table}")).fetch_one(&self.pool).await.expect("count")
    }

    /// Holds every batch the projector takes for `delay_ms` (`0`: no longer), as the demo's slowdown does; the
    /// admin endpoint's status.
    pub async fn slow_projector(&self, delay_ms: u32) -> reqwest::StatusCode {
        let url = self.query_url(&format!("/admin/projector/slowdown?delayMs={delay_ms}"));
        self.http.post(url).bearer_auth(ADMIN_TOKEN).send().await.expect("the slowdown answers").status()
    }

    pub async fn unpublished(&self) -> i64 {
        sqlx::query_scalar("select count(*) from outbox_backlog").fetch_one(&self.pool).await.expect("count")
    }

    /// Signals both services to shut down, as SIGTERM does, without waiting for them (`stop` still cleans up).
    pub fn begin_shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Stops both services and waits for them (and what they were finishing, a rebuild's clean-up included),
    /// leaving what they made for the test to look at.
    pub async fn stop_services(&mut self) {
        self.shutdown.cancel();
        for task in std::mem::take(&mut self.tasks) {
            let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
        }
    }

    /// Waits up to `deadline` for both services to end on their own; how each ended (the query-service first), or
    /// `None` for one still running.
    pub async fn ended(&mut self, deadline: Duration) -> Vec<Option<anyhow::Result<()>>> {
        let mut ended = Vec::new();
        for task in std::mem::take(&mut self.tasks) {
            ended.push(tokio::time::timeout(deadline, task).await.ok().map(|joined| joined.expect("no panic")));
        }
        ended
    }

    /// Stops both services and removes the test's database, exchange, queues and Mongo database.
    pub async fn stop(mut self) {
        // Let the projector finish its last write before the database goes, or the write would create it again.
        self.stop_services().await;
        self.pool.close().await;
        remove_test_objects(&self.names, &self.mongodb_uri).await;
        self.cleaned = true;
    }
}

/// The command side running alone, as in a deployment that starts it before any query-service exists.
pub struct CommandFirst {
    names: Names,
    amqp_url: String,
    command_addr: SocketAddr,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl CommandFirst {
    pub async fn spawn(
        names: Names,
        amqp_url: &str,
        tune_command: impl FnOnce(&mut command_service::config::Config),
    ) -> Self {
        service_runtime::init_tracing();
        let shutdown = CancellationToken::new();
        let mut config = command_config(&names, amqp_url);
        tune_command(&mut config);
        let command = command_service::run::start(config, shutdown.clone()).await.expect("command-service starts");
        Self { names, amqp_url: amqp_url.to_owned(), command_addr: command.addr, shutdown, task: Some(command.task) }
    }

    pub fn command_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.command_addr)
    }

    /// Where the command-service listens.
    pub fn command_addr(&self) -> SocketAddr {
        self.command_addr
    }

    pub fn http(&self) -> reqwest::Client {
        reqwest::Client::builder().timeout(Duration::from_secs(40)).build().expect("http client")
    }

    /// Starts the query side against this command side; the pair is then one [`TestApp`].
    pub async fn then_query(
        mut self,
        mongodb_uri: &str,
        tune_query: impl FnOnce(&mut query_service::config::Config, SocketAddr),
    ) -> TestApp {
        let names = self.names.clone();
        let mut config = query_config(&names, &self.amqp_url, mongodb_uri);
        config.event_feed_url = format!("http://{}/events", self.command_addr);
        tune_query(&mut config, self.command_addr);
        let split = config.projector_partitions > 1;
        let query = query_service::run::start(config, self.shutdown.clone()).await.expect("query-service starts");
        // Declared by whichever replica projects: the queue, or its partitions' (all at once).
        let queue = if split { format!("{}.0", names.queue) } else { names.queue.clone() };
        wait_for_queue(&self.amqp_url, &queue).await;
        let pool = PgPool::connect(&names.database_url()).await.expect("test pool connects");
        let mongo = mongodb::Client::with_uri_str(mongodb_uri).await.expect("mongo client").database(&names.database);
        let command_task = self.task.take().expect("the command task is still here");
        TestApp {
            names,
            command_addr: self.command_addr,
            query_addr: query.addr,
            pool,
            mongo,
            http: reqwest::Client::builder().timeout(Duration::from_secs(40)).build().expect("http client"),
            waiters: query.waiters.clone(),
            query_tasks: query.supervisor.clone(),
            shutdown: self.shutdown.clone(),
            tasks: vec![query.task, command_task],
            mongodb_uri: mongodb_uri.to_owned(),
            cleaned: false,
        }
    }
}

/// A command side dropped before the query side started (a failed test) stops and removes what it made.
impl Drop for CommandFirst {
    fn drop(&mut self) {
        if self.task.is_none() {
            return;
        }
        self.shutdown.cancel();
        let names = self.names.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(remove_test_objects(&names, &mongodb_uri()));
        })
        .join();
    }
}

/// Removes what a test's names own when it drops, however the test ends (for tests that run services without a
/// [`TestApp`]).
pub struct RemoveOnDrop(pub Names);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let names = self.0.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(remove_test_objects(&names, &mongodb_uri()));
        })
        .join();
    }
}

/// A test that panicked before `stop` still removes what it made.
impl Drop for TestApp {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        self.shutdown.cancel();
        let (names, mongodb_uri) = (self.names.clone(), self.mongodb_uri.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(remove_test_objects(&names, &mongodb_uri));
        })
        .join();
    }
}

async fn remove_test_objects(names: &Names, mongodb_uri: &str) {
    names.remove(&amqp_url(), mongodb_uri).await;
}

/// Waits until `queue` exists (the projector declares it as it starts).
pub async fn wait_for_queue(amqp_url: &str, queue: &str) {
    eventually(Duration::from_secs(30), || async {
        let connection = service_runtime::amqp::connect(amqp_url, ConnectionProperties::default()).await.ok()?;
        let channel = connection.create_channel().await.ok()?;
        let options = lapin::options::QueueDeclareOptions { passive: true, ..Default::default() };
        let found = channel.queue_declare(queue.into(), options, Default::default()).await.ok();
        let _ = connection.close(200, "probe".into()).await;
        found.map(drop)
    })
    .await;
}

/// Retries `probe` until it returns `Some`, or panics after `deadline`.
pub async fn eventually<T, F, Fut>(deadline: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(start.elapsed() < deadline, "condition not met within {deadline:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A query-service process of `names` on `port`, not yet spawned: the broker, the read store, no sampler, no demo
/// page, `RUST_LOG=warn`, its log on the test's stderr. Callers add what their test needs.
pub fn query_service_command(names: &Names, port: u16) -> std::process::Command {
    let mut command = std::process::Command::new(service_binary("query-service"));
    command
        .env("AMQP_URL", amqp_url())
        .env("AMQP_EXCHANGE", &names.exchange)
        .env("AMQP_QUEUE", &names.queue)
        .env("MONGODB_URI", mongodb_uri())
        .env("MONGODB_DATABASE", &names.database)
        .env("HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("READ_MODEL_SAMPLE_RATE", "0")
        .env("DEMO_PAGE", "false")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit());
    command
}

/// A relay process of its own (`command-service relay`), so that it can be killed with SIGKILL or stopped with
/// SIGTERM: reaching Postgres at `database_url`, reading the outbox in `mode` (`notify` or `wal`), `batch` rows a
/// round.
pub fn spawn_relay_process(names: &Names, database_url: &str, mode: &str, batch: usize) -> ChildProcess {
    let child = std::process::Command::new(service_binary("command-service"))
        .arg("relay")
        .env("DATABASE_URL", database_url)
        .env("AMQP_URL", amqp_url())
        .env("AMQP_EXCHANGE", &names.exchange)
        .env("RELAY_BATCH_SIZE", batch.to_string())
        .env("RELAY_MODE", mode)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("relay process starts");
    ChildProcess(child)
}

/// Loses what `database` holds of `model` while its pointer survives: every generation's documents (its gaps stay)
/// and its stored positions, as a restore of some collections and not others, or collections dropped by hand, do.
pub async fn lose_documents_and_positions(
    database: &mongodb::Database,
    model: &query_service::store::models::ReadModel,
) {
    for name in database.list_collection_names().await.expect("collections") {
        if model.generation_number(&name).is_some() {
            database.collection::<mongodb::bson::Document>(&name).drop().await.expect("dropped");
        }
    }
    let positions = database.collection::<mongodb::bson::Document>("read_model_positions");
    positions.delete_one(mongodb::bson::doc! { "_id": model.collection }).await.expect("deleted");
}

/// Stops a child as a deployment does (SIGTERM) and waits for it to exit, up to 30 s.
pub async fn terminate(child: &mut ChildProcess) {
    let pid = child.id().to_string();
    let sent = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
    assert!(sent.success(), "SIGTERM sent to {pid}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().ok().flatten().is_none() {
        assert!(Instant::now() < deadline, "process {pid} did not exit within 30 s of SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A queue bound to every routing key of the order views' exchange: it sees every event published, duplicates
/// included.
pub struct Tap {
    connection: lapin::Connection,
    channel: lapin::Channel,
    queue: String,
}

impl Tap {
    pub async fn open(names: &Names) -> Self {
        use lapin::options::{QueueBindOptions, QueueDeclareOptions};
        let connection = lapin::Connection::connect(&amqp_url(), ConnectionProperties::default()).await.expect("amqp");
        let channel = connection.create_channel().await.expect("channel");
        let queue = format!("{}.tap", names.queue);
        let exclusive = QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() };
        channel.queue_declare(queue.as_str().into(), exclusive, Default::default()).await.expect("tap queue");
        channel
            .queue_bind(
                queue.as_str().into(),
                names.order_views_exchange().as_str().into(),
                "#".into(),
                QueueBindOptions::default(),
                Default::default(),
            )
            .await
            .expect("bind tap");
        Self { connection, channel, queue }
    }

    /// The id of every event delivered, duplicates included, once `distinct` different ones have come and the tap
    /// has then been quiet for a second (so that late duplicates are counted too).
    pub async fn event_ids(self, distinct: usize) -> Vec<Uuid> {
        use futures_util::StreamExt as _;
        let consume = lapin::options::BasicConsumeOptions { no_ack: true, ..Default::default() };
        let mut consumer = self
            .channel
            .basic_consume(self.queue.as_str().into(), "".into(), consume, Default::default())
            .await
            .expect("consume tap");
        let mut seen = Vec::new();
        let mut different = std::collections::HashSet::new();
        loop {
            let quiet = if different.len() < distinct { Duration::from_secs(30) } else { Duration::from_secs(1) };
            let delivery = match tokio::time::timeout(quiet, consumer.next()).await {
                Ok(delivery) => delivery.expect("tap open").expect("delivery"),
                Err(_) if different.len() >= distinct => break,
                Err(_) => panic!("only {} of {distinct} events reached the tap", different.len()),
            };
            if delivery.properties.kind().as_ref().map(|kind| kind.as_str()) == Some(shared_events::CHECKPOINT_TYPE) {
                continue;
            }
            let envelope: shared_events::Envelope = serde_json::from_slice(&delivery.data).expect("an envelope");
            different.insert(envelope.event_id);
            seen.push(envelope.event_id);
        }
        let _ = self.connection.close(200, "done".into()).await;
        seen
    }
}

/// The consumer settings of `projection` in a query-service of `names` as the tests configure it: for declaring its
/// topology or redriving its dead letters from a test.
pub fn consumer_settings_of(names: &Names, projection: &str) -> query_service::projection::ConsumerSettings {
    let config = query_config(names, &amqp_url(), &mongodb_uri());
    let projection = query_service::projection::named(projection).expect("a projection");
    let metrics = query_service::metrics::QueryMetrics::new().expect("metrics");
    query_service::run::consumer_settings(
        &config,
        projection,
        metrics.projector(projection.name()),
        Default::default(),
        Default::default(),
        Default::default(),
    )
}
