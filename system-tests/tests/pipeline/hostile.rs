//! Hostile clients: huge bodies, header floods, injection strings in every field and parameter, and ten thousand
//! idle connections. Each is answered with a clear error (or served verbatim) and leaves the service up.

use std::process::{Command, Stdio};
use std::time::Duration;

use futures_util::StreamExt as _;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::helpers::{amqp_url, eventually, free_port, mongodb_uri, service_binary, ChildProcess, Names, TestApp};

/// The answer is a problem document with `status`, and the service is still up afterwards.
async fn assert_refused(app: &TestApp, response: reqwest::Response, status: u16, case: &str) {
    assert_eq!(response.status(), status, "{case}");
    assert_eq!(response.headers()["content-type"], "application/problem+json", "{case}");
    let live = app.http.get(app.command_url("/health/live")).send().await.expect("still answers");
    assert_eq!(live.status(), 200, "{case}: service still up");
}

/// Every byte but letters and digits as `%XX`.
fn percent_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// Sends `body` with `Transfer-Encoding: chunked` over a raw connection and returns the status code of the answer.
/// The server may answer and close before the body is through: write errors are expected then.
async fn chunked_post(addr: std::net::SocketAddr, path: &str, body: &[u8]) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connects");
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    let (mut reader, mut writer) = stream.split();
    let write = async {
        writer.write_all(head.as_bytes()).await?;
        for chunk in body.chunks(64 * 1024) {
            writer.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await?;
            writer.write_all(chunk).await?;
            writer.write_all(b"\r\n").await?;
        }
        writer.write_all(b"0\r\n\r\n").await
    };
    let read = async {
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = reader.read(&mut buf).await.expect("reads the answer");
            assert!(n > 0, "connection closed without an answer");
            answer.extend_from_slice(&buf[..n]);
        }
        answer
    };
    let (_, answer) = tokio::time::timeout(Duration::from_secs(30), async { tokio::join!(write, read) })
        .await
        .expect("answered within 30 s");
    let status_line = String::from_utf8_lossy(&answer);
    status_line.split(' ').nth(1).and_then(|code| code.parse().ok()).expect("a status line")
}

#[tokio::test]
async fn ten_megabyte_bodies_are_refused_and_write_nothing() {
    let app = TestApp::spawn().await;
    let (id, _) = app.place_order("cust-big-bodies").await;
    let ten_mb = format!(r#"{{"customerId":"{}","items":[]}}"#, "a".repeat(10 * 1024 * 1024));
    let sized = app
        .http
        .post(app.command_url("/commands/orders"))
        .header("content-type", "application/json")
        .body(ten_mb.clone())
        .send()
        .await
        .expect("answers");
    assert_refused(&app, sized, 413, "10 MB with a content-length").await;
    // Streamed without a length (chunked): cut off once the limit is passed, not buffered to the end.
    let status = chunked_post(app.command_addr, &format!("/commands/orders/{id}/cancel"), ten_mb.as_bytes()).await;
    assert_eq!(status, 413, "10 MB chunked into a lifecycle command");
    assert_eq!(app.count("customer_order").await, 1);
    assert_eq!(app.count("outbox").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn header_floods_are_refused_and_the_services_stay_up() {
    let app = TestApp::spawn().await;
    for base in [app.command_url("/health/live"), app.query_url("/health/live")] {
        let mut many = reqwest::header::HeaderMap::new();
        for n in 0..500 {
            let name = reqwest::header::HeaderName::try_from(format!("x-flood-{n}")).expect("header name");
            many.insert(name, reqwest::header::HeaderValue::from_static("x"));
        }
        let flood = app.http.get(&base).headers(many).send().await.expect("answers");
        assert_eq!(flood.status(), 431, "500 headers at {base}");
        // One header of 1 MB: refused by the HTTP parser before any handler runs (431, or the connection closed).
        let giant = app.http.get(&base).header("x-giant", "g".repeat(1024 * 1024)).send().await;
        if let Ok(response) = giant {
            assert_eq!(response.status(), 431, "1 MB header at {base}");
        }
        assert_eq!(app.http.get(&base).send().await.expect("answers").status(), 200, "{base} still up");
    }
    app.stop().await;
}

#[tokio::test]
async fn injection_strings_and_huge_numbers_are_refused_or_stored_verbatim() {
    let app = TestApp::spawn().await;
    let attacks = [
        "'; DROP TABLE outbox; --",
        "\" OR 1=1 --",
        "1; SELECT pg_sleep(10)",
        "$where: function() { return true }",
        "{\"$ne\": null}",
        "Robert'); DELETE FROM customer_order WHERE ('1'='1",
    ];
    let (id, _) = app.place_order("cust-injection").await;
    for attack in attacks {
        // Strings with a grammar are refused; a free-text line name is kept exactly as sent.
        let line = json!({"sku": "SKU-1", "name": attack, "quantity": 1, "unitPrice": "2.50"});
        for body in [
            json!({"customerId": attack, "items": [line.clone()]}),
            json!({"customerId": "c", "currency": attack, "items": [line.clone()]}),
            json!({"customerId": "c", "customerSegment": attack, "items": [line.clone()]}),
            json!({"customerId": "c", "items": [{"sku": attack, "quantity": 1, "unitPrice": 1}]}),
            json!({"customerId": "c", "items": [{"sku": "s", "quantity": attack, "unitPrice": 1}]}),
            json!({"customerId": "c", "items": [{"sku": "s", "quantity": 1, "unitPrice": attack}]}),
        ] {
            let refused = app.http.post(app.command_url("/commands/orders")).json(&body).send().await.expect("answers");
            assert_refused(&app, refused, 400, &format!("{attack} in {body}")).await;
        }
        let stored = app
            .http
            .post(app.command_url("/commands/orders"))
            .header("idempotency-key", attack.replace(['\'', '"', ' '], "_"))
            .json(&json!({"customerId": "cust-injection", "items": [line]}))
            .send()
            .await
            .expect("answers");
        assert_eq!(stored.status(), 201, "{attack} as a line name is plain text");
        let answer: serde_json::Value = stored.json().await.expect("json");
        let view: serde_json::Value = app
            .http
            .get(app.query_url(&format!("/queries/orders/{}?minVersion=1", answer["orderId"].as_str().expect("id"))))
            .send()
            .await
            .expect("answers")
            .json()
            .await
            .expect("json");
        assert_eq!(view["data"]["items"][0]["name"], attack, "stored and served verbatim: {view}");

        let encoded = percent_encoded(attack);
        let reason = json!({"reason": attack});
        let cancel = app.http.post(app.command_url(&format!("/commands/orders/{encoded}/cancel"))).json(&reason);
        assert_refused(&app, cancel.send().await.expect("answers"), 400, "injection as the order id").await;
        for path in [
            format!("/queries/orders/{encoded}"),
            format!("/queries/orders?customerId={encoded}"),
            format!("/queries/orders?status={encoded}"),
            format!("/queries/orders?cursor={encoded}"),
            format!("/queries/orders?minPosition={encoded}"),
            format!("/queries/orders/{id}?minVersion={encoded}"),
        ] {
            let response = app.http.get(app.query_url(&path)).send().await.expect("answers");
            assert_eq!(response.status(), 400, "{path}");
            assert_eq!(response.headers()["content-type"], "application/problem+json", "{path}");
        }
    }
    // Huge numbers in every numeric place.
    for path in [
        format!("/queries/orders/{id}?minVersion=1e400"),
        format!("/queries/orders/{id}?waitMs=184467440737095516160"),
        "/queries/orders?limit=99999999999999999999999".to_owned(),
        "/queries/orders?minPosition=-99999999999999999999".to_owned(),
    ] {
        let response = app.http.get(app.query_url(&path)).send().await.expect("answers");
        assert_eq!(response.status(), 400, "{path}");
    }
    let huge_version = app
        .http
        .post(app.command_url(&format!("/commands/orders/{id}/confirm")))
        .header("content-type", "application/json")
        .body(r#"{"expectedVersion": 99999999999999999999999}"#)
        .send()
        .await
        .expect("answers");
    assert_refused(&app, huge_version, 400, "huge expectedVersion").await;
    // The tables are all still there and hold exactly the orders that were accepted.
    assert_eq!(app.count("customer_order").await, 1 + attacks.len() as i64);
    assert_eq!(app.count("outbox").await, 1 + attacks.len() as i64);
    app.stop().await;
}

/// Ten thousand clients connect and send nothing: the service keeps answering others, and closes the idle
/// connections once their idle time is over. Run as a process of its own, so that its sockets and the test's are
/// counted against separate open-file limits.
#[tokio::test]
async fn ten_thousand_idle_connections_do_not_take_the_service_down() {
    const IDLE: usize = 10_000;
    let names = Names::new("test");
    let port = free_port();
    let mut service = Command::new(service_binary("query-service"))
        .env("HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("HTTP_IDLE_TIMEOUT_SECS", "20")
        .env("PROJECTOR_ENABLED", "false")
        .env("AMQP_URL", amqp_url())
        .env("AMQP_EXCHANGE", &names.exchange)
        .env("AMQP_QUEUE", &names.queue)
        .env("MONGODB_URI", mongodb_uri())
        .env("MONGODB_DATABASE", &names.database)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map(ChildProcess)
        .expect("query-service starts");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    let live = format!("http://127.0.0.1:{port}/health/live");
    eventually(Duration::from_secs(30), || async {
        http.get(&live).send().await.ok().filter(|r| r.status() == 200).map(|_| ())
    })
    .await;

    // Opened in steps of 500, each step accepted by the service (its open files show it) before the next: a client
    // that opens connections faster than the server accepts them overflows the kernel's accept queue, and the
    // connections it drops stay open on the client's side only.
    let open_files = || std::fs::read_dir(format!("/proc/{}/fd", service.id())).map(|d| d.count()).unwrap_or(0);
    let before = open_files();
    let mut idle = Vec::with_capacity(IDLE);
    while idle.len() < IDLE {
        let step: Vec<tokio::net::TcpStream> = futures_util::stream::iter(0..500)
            .map(|_| tokio::net::TcpStream::connect(("127.0.0.1", port)))
            .buffer_unordered(100)
            .map(|connected| connected.expect("idle connection opens"))
            .collect()
            .await;
        idle.extend(step);
        let opened = idle.len();
        eventually(Duration::from_secs(30), || async { (open_files() >= before + opened).then_some(()) }).await;
    }
    assert_eq!(idle.len(), IDLE);
    // Fresh clients are still served while all of them are open.
    let fresh = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    let answer = fresh.get(&live).send().await.expect("served beside 10,000 idle connections");
    assert_eq!(answer.status(), 200);

    // Every idle connection is closed by the server (EOF or reset) within its idle time plus a margin.
    let closed = futures_util::stream::iter(idle)
        .map(|mut stream| async move {
            let mut byte = [0u8; 1];
            matches!(tokio::time::timeout(Duration::from_secs(60), stream.read(&mut byte)).await, Ok(Ok(0) | Err(_)))
        })
        .buffer_unordered(IDLE)
        .filter(|closed| std::future::ready(*closed))
        .count()
        .await;
    assert_eq!(closed, IDLE, "every idle connection was closed by the server");
    assert!(open_files() < before + 10, "the service holds no socket of them");
    assert_eq!(fresh.get(&live).send().await.expect("still serving").status(), 200);
    assert!(service.try_wait().expect("status").is_none(), "the service is still running");

    drop(service);
    names.remove(&amqp_url(), &mongodb_uri()).await;
}
