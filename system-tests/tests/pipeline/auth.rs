//! `AUTH_MODE=jwt`: tokens signed with keys the test makes (RS256 and ES256, published as a JWKS by a server of the
//! test's own; HS256 with a development secret). Every fault of a token is a 401 that writes nothing; a customer
//! sees and changes its own orders only (another's is a 404, as an unknown one); staff scopes reach every order;
//! idempotency keys belong to their caller; the event feed and the admin endpoints need their scopes.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use uuid::Uuid;

use crate::helpers::{amqp_url, eventually, mongodb_uri, Names, TestApp};
use crate::streams::EventReader;

pub const ISSUER: &str = "https://idp.test";
pub const AUDIENCE: &str = "orders";
pub const HS256_SECRET: &str = "the development secret of the auth tests, 32+ bytes";

/// A key pair made with `openssl` for this test: the signing key, its public half as PEM and as a JWK.
struct KeyPair {
    signing: EncodingKey,
    public_pem: Vec<u8>,
    jwk: Value,
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let output = std::process::Command::new("openssl").args(args).output().expect("openssl runs");
    assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

impl KeyPair {
    fn make(dir: &std::path::Path, name: &str, algorithm: Algorithm) -> Self {
        let path = dir.join(format!("{name}.pem"));
        let path_str = path.to_str().expect("a UTF-8 path");
        let options: &[&str] = match algorithm {
            Algorithm::RS256 => &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            _ => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        };
        openssl(&[&["genpkey"], options, &["-out", path_str]].concat());
        let private = std::fs::read(&path).expect("the key file");
        let public_pem = openssl(&["pkey", "-in", path_str, "-pubout"]);
        let signing = match algorithm {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&private),
            _ => EncodingKey::from_ec_pem(&private),
        }
        .expect("a signing key");
        let mut jwk: Value =
            serde_json::to_value(Jwk::from_encoding_key(&signing, algorithm).expect("a JWK")).expect("json");
        jwk["kid"] = name.into();
        jwk["use"] = "sig".into();
        Self { signing, public_pem, jwk }
    }
}

/// The test's identity provider: its keys, and a JWKS endpoint whose key set the test can change.
pub struct Idp {
    rsa: KeyPair,
    /// Not in the JWKS until the test publishes it (a rotation).
    rotated: KeyPair,
    /// Another key that claims the RSA key's id.
    impostor: KeyPair,
    ec: KeyPair,
    published: Arc<RwLock<Value>>,
    pub jwks_url: String,
    dir: PathBuf,
    server: tokio::task::JoinHandle<()>,
}

impl Idp {
    pub async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("auth-test-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("a key folder");
        let rsa = KeyPair::make(&dir, "rsa-1", Algorithm::RS256);
        let rotated = KeyPair::make(&dir, "rsa-2", Algorithm::RS256);
        let impostor = KeyPair::make(&dir, "rsa-1-impostor", Algorithm::RS256);
        let ec = KeyPair::make(&dir, "ec-1", Algorithm::ES256);
        let published = Arc::new(RwLock::new(json!({ "keys": [rsa.jwk, ec.jwk] })));
        let served = published.clone();
        let app = axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                let keys = served.read().map(|k| k.clone()).unwrap_or_default();
                async move { axum::Json(keys) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let jwks_url = format!("http://{}/jwks", listener.local_addr().expect("addr"));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { rsa, rotated, impostor, ec, published, jwks_url, dir, server }
    }

    /// Publishes the rotated key beside the others.
    pub fn rotate(&self) {
        if let Ok(mut keys) = self.published.write() {
            *keys = json!({ "keys": [self.rsa.jwk, self.ec.jwk, self.rotated.jwk] });
        }
    }

    /// The services' authentication settings for this provider (HS256 for development too).
    pub fn config(&self) -> service_runtime::auth::AuthConfig {
        service_runtime::auth::AuthConfig {
            auth_mode: service_runtime::auth::AuthMode::Jwt,
            auth_jwks_url: Some(self.jwks_url.clone()),
            auth_hs256_secret: Some(HS256_SECRET.to_owned()),
            auth_issuer: Some(ISSUER.to_owned()),
            auth_audience: Some(AUDIENCE.to_owned()),
            auth_ticket_secret: Some("the ticket secret of the auth tests".to_owned()),
            ..service_runtime::auth::AuthConfig::default()
        }
    }

    /// Good claims for `subject` (lasting five minutes), with `extra` over them.
    pub fn claims(subject: &str, extra: Value) -> Value {
        let now = jsonwebtoken::get_current_timestamp();
        let mut claims = json!({"sub": subject, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300});
        if let (Some(claims), Value::Object(extra)) = (claims.as_object_mut(), extra) {
            claims.extend(extra);
        }
        claims
    }

    fn sign(key: &EncodingKey, algorithm: Algorithm, kid: &str, claims: &Value) -> String {
        let header = Header { kid: Some(kid.to_owned()), ..Header::new(algorithm) };
        jsonwebtoken::encode(&header, claims, key).expect("a token")
    }

    /// An RS256 token of the published key.
    pub fn token(&self, subject: &str, extra: Value) -> String {
        Self::sign(&self.rsa.signing, Algorithm::RS256, "rsa-1", &Self::claims(subject, extra))
    }

    /// An ES256 token of the published EC key.
    pub fn es256(&self, subject: &str) -> String {
        Self::sign(&self.ec.signing, Algorithm::ES256, "ec-1", &Self::claims(subject, json!({})))
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.server.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Both services in `jwt` mode with this provider (command rate unlimited unless `tune` says otherwise); the query
/// side reads the event feed with a service token.
pub async fn spawn_jwt(
    idp: &Idp,
    tune_command: impl FnOnce(&mut command_service::config::Config),
    tune_query: impl FnOnce(&mut query_service::config::Config),
) -> TestApp {
    let config = idp.config();
    let feed_token = idp.token("query-service", json!({"scope": "events:read"}));
    TestApp::spawn_tuned(
        Names::new("auth"),
        &amqp_url(),
        &mongodb_uri(),
        |command| {
            command.auth = config.clone();
            command.command_rate_per_client = Some(0.0);
            tune_command(command);
        },
        |query, _| {
            query.auth = config.clone();
            query.event_feed_token = Some(feed_token);
            tune_query(query);
        },
    )
    .await
}

fn order(customer: Option<&str>) -> Value {
    let mut body = json!({"currency": "EUR", "items": [{"sku": "SKU-1", "quantity": 1, "unitPrice": "9.99"}]});
    if let Some(customer) = customer {
        body["customerId"] = customer.into();
    }
    body
}

/// Places an order with `token`; the response.
pub async fn place(app: &TestApp, token: &str, customer: Option<&str>) -> reqwest::Response {
    let request = app.http.post(app.command_url("/commands/orders")).bearer_auth(token).json(&order(customer));
    request.send().await.expect("POST answers")
}

/// Places an order with `token` and returns its id and position.
pub async fn placed(app: &TestApp, token: &str) -> (Uuid, i64) {
    let response = place(app, token, None).await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.expect("json");
    (body["orderId"].as_str().and_then(|id| id.parse().ok()).expect("an id"), body["position"].as_i64().expect("p"))
}

async fn get(app: &TestApp, path: &str, token: &str) -> reqwest::Response {
    app.http.get(app.query_url(path)).bearer_auth(token).send().await.expect("GET answers")
}

/// A 401 problem with a Bearer challenge.
async fn assert_unauthenticated(response: reqwest::Response, case: &str) {
    assert_eq!(response.status(), 401, "{case}");
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "application/problem+json", "{case}");
    let challenge = headers["www-authenticate"].to_str().expect("ASCII");
    assert!(challenge.starts_with("Bearer realm=\"orders\""), "{case}: {challenge}");
    let body: Value = response.json().await.expect("a problem");
    assert_eq!(body["type"], "/problems/unauthorized", "{case}");
}

fn segment(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("json"))
}

#[tokio::test]
async fn every_fault_of_a_token_is_a_401_and_writes_nothing() {
    let idp = Idp::start().await;
    let app = spawn_jwt(&idp, |_| {}, |_| {}).await;
    let now = jsonwebtoken::get_current_timestamp();
    let good = idp.token("cust-a", json!({}));
    let claims = |extra| Idp::claims("cust-a", extra);
    let [header, payload, signature]: [&str; 3] =
        good.split('.').collect::<Vec<_>>().try_into().expect("three segments");
    let tampered = format!("{header}.{}.{signature}", segment(&claims(json!({"sub": "cust-b"}))));
    let alg_none = format!("{}.{}.", segment(&json!({"alg": "none", "typ": "JWT"})), payload);
    // The classic confusion: HS256 "signed" with the RSA public key, hoping it is taken as the HMAC secret.
    let public_as_secret = jsonwebtoken::encode(
        &Header { kid: Some("rsa-1".to_owned()), ..Header::new(Algorithm::HS256) },
        &claims(json!({})),
        &EncodingKey::from_secret(&idp.rsa.public_pem),
    )
    .expect("a token");
    let rs256 = |key: &KeyPair, kid: &str, claims: Value| Idp::sign(&key.signing, Algorithm::RS256, kid, &claims);
    let cases: Vec<(&str, Option<String>)> = vec![
        ("expired", Some(idp.token("cust-a", json!({"exp": now - 120})))),
        ("not yet valid", Some(idp.token("cust-a", json!({"nbf": now + 600})))),
        ("wrong issuer", Some(idp.token("cust-a", json!({"iss": "https://other-idp.test"})))),
        ("wrong audience", Some(idp.token("cust-a", json!({"aud": "billing"})))),
        ("wrong signature", Some(rs256(&idp.impostor, "rsa-1", claims(json!({}))))),
        ("tampered payload", Some(tampered)),
        ("alg none", Some(alg_none)),
        ("HS256 signed with the RSA public key", Some(public_as_secret)),
        ("unknown kid", Some(rs256(&idp.rotated, "rsa-2", claims(json!({}))))),
        ("missing header", None),
        ("wrong scheme", Some("Basic Y3VzdC1hOnB3".to_owned())),
    ];
    for (case, token) in &cases {
        let mut request = app.http.post(app.command_url("/commands/orders")).json(&order(None));
        let mut read = app.http.get(app.query_url(&format!("/queries/orders/{}", Uuid::now_v7())));
        match token {
            Some(value) if *case == "wrong scheme" => {
                request = request.header("authorization", value);
                read = read.header("authorization", value);
            }
            Some(token) => {
                request = request.bearer_auth(token);
                read = read.bearer_auth(token);
            }
            None => {}
        }
        assert_unauthenticated(request.send().await.expect("POST answers"), case).await;
        assert_unauthenticated(read.send().await.expect("GET answers"), case).await;
    }
    assert_eq!(app.count("customer_order").await, 0, "no refused command wrote an order");
    assert_eq!(app.count("outbox").await, 0);

    // The good token, HS256 development tokens and ES256 are all accepted.
    assert_eq!(place(&app, &good, None).await.status(), 201);
    let hs256 = service_runtime::auth::jwt::dev_token(&idp.config(), "cust-hs", &[], 60).expect("a dev token");
    assert_eq!(place(&app, &hs256, None).await.status(), 201);
    assert_eq!(place(&app, &idp.es256("cust-ec"), None).await.status(), 201);

    // The rotated key is found once the provider publishes it (the service reads the key set again).
    let rotated = rs256(&idp.rotated, "rsa-2", claims(json!({})));
    idp.rotate();
    eventually(Duration::from_secs(10), || async { (place(&app, &rotated, None).await.status() == 201).then_some(()) })
        .await;
    app.stop().await;
}

#[tokio::test]
async fn customers_see_and_change_only_their_own_orders_and_staff_reach_all() {
    let idp = Idp::start().await;
    let app = spawn_jwt(&idp, |_| {}, |_| {}).await;
    let (a, b) = (idp.token("cust-a", json!({})), idp.token("cust-b", json!({})));
    let reader = idp.token("staff-r", json!({"scope": "orders:read:any"}));
    let writer = idp.token("staff-w", json!({"scp": ["orders:write:any"]}));

    // Placing: for oneself (the body may leave the customer out), never for another; staff for anyone.
    let response = place(&app, &a, Some("cust-b")).await;
    assert_eq!(response.status(), 403);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let (order_a, _) = placed(&app, &a).await;
    let for_b = place(&app, &writer, Some("cust-b")).await;
    assert_eq!(for_b.status(), 201, "staff place for a customer");
    let (order_b, position) = placed(&app, &b).await;

    // Reading: A's order is A's; to B it does not exist, however asked.
    let own = get(&app, &format!("/queries/orders/{order_a}?minVersion=1"), &a).await;
    assert_eq!(own.status(), 200);
    let own: Value = own.json().await.expect("json");
    assert_eq!(own["data"]["customerId"], "cust-a", "the customer came from the token");
    let unknown = Uuid::now_v7();
    for (path, status) in [
        (format!("/queries/orders/{order_a}"), 404),
        (format!("/queries/orders/{unknown}"), 404),
        (format!("/queries/orders/{order_a}?minVersion=1&waitMs=300"), 202),
        (format!("/queries/orders/{unknown}?minVersion=1&waitMs=300"), 202),
    ] {
        let response = get(&app, &path, &b).await;
        assert_eq!(response.status(), status, "B reads {path}");
        let body: Value = response.json().await.expect("json");
        if status == 202 {
            assert_eq!(body["data"], Value::Null, "{path}: nothing of A's order shows");
            assert_eq!(body["metadata"]["version"], 0, "{path}");
        } else {
            assert_eq!(body["type"], "/problems/not-found", "{path}");
        }
    }
    assert_eq!(get(&app, &format!("/queries/orders/{order_a}"), &reader).await.status(), 200, "staff read any");

    // Lists: a customer's are its own, whatever it asks; asking for another's is 403.
    let list = get(&app, &format!("/queries/orders?minPosition={position}"), &b).await;
    let list: Value = list.json().await.expect("json");
    let customers: Vec<&str> =
        list["data"].as_array().expect("data").iter().filter_map(|v| v["customerId"].as_str()).collect();
    assert_eq!(customers, ["cust-b", "cust-b"], "B's own two, A's not among them");
    assert_eq!(get(&app, "/queries/orders?customerId=cust-a", &b).await.status(), 403);
    let all = get(&app, &format!("/queries/orders?minPosition={position}"), &reader).await;
    assert_eq!(all.json::<Value>().await.expect("json")["data"].as_array().map(Vec::len), Some(3));

    // Commands: B cannot confirm A's order (404, as an unknown one); a reader cannot either; a writer can.
    let confirm = |token: &str, id: Uuid| {
        app.http.post(app.command_url(&format!("/commands/orders/{id}/confirm"))).bearer_auth(token.to_owned()).send()
    };
    assert_eq!(confirm(&b, order_a).await.expect("answers").status(), 404);
    assert_eq!(confirm(&reader, order_a).await.expect("answers").status(), 404);
    assert_eq!(confirm(&a, order_b).await.expect("answers").status(), 404);
    assert_eq!(confirm(&writer, order_a).await.expect("answers").status(), 200);
    assert_eq!(confirm(&b, order_b).await.expect("answers").status(), 200);

    // Streams: B's stream of A's order sends nothing; A's own, opened with a ticket as a browser does, sends it.
    let ticket: Value = app
        .http
        .post(app.query_url(&format!("/queries/orders/{order_a}/stream-ticket")))
        .bearer_auth(&a)
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    let stream_url = ticket["streamUrl"].as_str().expect("a stream URL");
    let mut own = EventReader::new(app.http.get(app.query_url(stream_url)).send().await.expect("a stream"));
    let first = own.next().await.expect("A's view");
    assert_eq!(first.data["data"]["orderId"], order_a.to_string());
    let theirs = get(&app, &format!("/queries/orders/{order_a}/stream"), &b).await;
    assert_eq!(theirs.status(), 200, "as for an order that may yet come");
    let mut theirs = EventReader::new(theirs);
    assert!(tokio::time::timeout(Duration::from_secs(2), theirs.next()).await.is_err(), "nothing of A's order");
    // A ticket opens its own order's stream only, and only as a ticket of this service.
    let elsewhere = stream_url.replace(&order_a.to_string(), &order_b.to_string());
    assert_unauthenticated(app.http.get(app.query_url(&elsewhere)).send().await.expect("answers"), "ticket of A").await;
    let forged = format!("/queries/orders/{order_a}/stream?ticket={a}");
    assert_unauthenticated(app.http.get(app.query_url(&forged)).send().await.expect("answers"), "a bearer token").await;
    app.stop().await;
}

#[tokio::test]
async fn a_key_reused_by_another_customer_replays_nothing_of_the_first() {
    let idp = Idp::start().await;
    let app = spawn_jwt(&idp, |_| {}, |_| {}).await;
    let (a, b) = (idp.token("cust-a", json!({})), idp.token("cust-b", json!({})));
    let with_key = |token: &str| {
        app.http
            .post(app.command_url("/commands/orders"))
            .bearer_auth(token.to_owned())
            .header("idempotency-key", "same-key")
            .json(&order(None))
            .send()
    };
    let first: Value = with_key(&a).await.expect("answers").json().await.expect("json");
    let again: Value = with_key(&a).await.expect("answers").json().await.expect("json");
    assert_eq!(first, again, "A's retry replays A's answer");
    let other = with_key(&b).await.expect("answers");
    assert_eq!(other.status(), 201, "B's request with the same key is B's own");
    let other: Value = other.json().await.expect("json");
    assert_ne!(other["orderId"], first["orderId"]);
    assert_eq!(app.count("customer_order").await, 2);
    app.stop().await;
}

#[tokio::test]
async fn the_event_feed_and_the_admin_endpoints_need_their_scopes() {
    let idp = Idp::start().await;
    let app = spawn_jwt(&idp, |_| {}, |_| {}).await;
    let customer = idp.token("cust-a", json!({}));
    let feed_reader = idp.token("svc", json!({"scope": "events:read"}));
    let admin = idp.token("ops", json!({"scope": "orders:admin"}));
    let feed = |token: &str| app.http.get(app.command_url("/events")).bearer_auth(token.to_owned()).send();
    assert_eq!(feed(&customer).await.expect("answers").status(), 403);
    assert_eq!(feed(&admin).await.expect("answers").status(), 403, "admin is not the feed's scope");
    assert_eq!(feed(&feed_reader).await.expect("answers").status(), 200);
    let status =
        |token: &str| app.http.get(app.query_url("/admin/read-models/orders")).bearer_auth(token.to_owned()).send();
    assert_eq!(status(&customer).await.expect("answers").status(), 403);
    assert_eq!(status(&admin).await.expect("answers").status(), 200);
    // The public endpoints need no token.
    for (url, what) in [
        (app.query_url("/health/live"), "live"),
        (app.command_url("/health/ready"), "ready"),
        (app.query_url("/metrics"), "metrics"),
        (app.command_url("/openapi.json"), "openapi"),
        (app.query_url("/"), "the demo page"),
    ] {
        assert_eq!(app.http.get(url).send().await.expect("answers").status(), 200, "{what}");
    }
    // The documents declare the bearer scheme and the answers it brings; a customer may leave its id out.
    let command: Value = app.get_json(app.command_url("/openapi.json")).await;
    assert_eq!(command["components"]["securitySchemes"]["bearer"]["bearerFormat"], "JWT");
    let required = command["components"]["schemas"]["PlaceOrder"]["required"].as_array().expect("required").clone();
    assert!(!required.contains(&json!("customerId")) && required.contains(&json!("items")), "{required:?}");
    let place = &command["paths"]["/commands/orders"]["post"]["responses"];
    let query: Value = app.get_json(app.query_url("/openapi.json")).await;
    let list = &query["paths"]["/queries/orders"]["get"]["responses"];
    for status in ["401", "403", "429"] {
        assert!(place[status].is_object() && list[status].is_object(), "{status} is declared");
    }
    // The rebuild reads the feed with the service token the query side was given.
    let started = app.http.post(app.query_url("/admin/read-models/orders/rebuild")).bearer_auth(&admin).send();
    assert_eq!(started.await.expect("answers").status(), 202);
    eventually(Duration::from_secs(30), || async {
        let status: Value = status(&admin).await.ok()?.json().await.ok()?;
        (status["building"].is_null() && status["active"] != "order_views").then_some(())
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn a_customer_token_lists_only_its_own_orders_among_hundreds_of_three_customers() {
    let idp = Idp::start().await;
    let app = spawn_jwt(&idp, |_| {}, |_| {}).await;
    let customers = ["cust-x", "cust-y", "cust-z"];
    let tokens: Vec<String> = customers.iter().map(|c| idp.token(c, json!({}))).collect();
    let mut last_position = 0;
    let mut placed_by = [0usize; 3];
    for n in 0..240 {
        let who = (n * 7 + n / 5) % 3;
        let (_, position) = placed(&app, &tokens[who]).await;
        last_position = last_position.max(position);
        placed_by[who] += 1;
    }
    for (who, token) in tokens.iter().enumerate() {
        let mut seen = 0;
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/queries/orders?limit=100&minPosition={last_position}&waitMs=30000");
            if let Some(cursor) = &cursor {
                path.push_str(&format!("&cursor={cursor}"));
            }
            let page: Value = get(&app, &path, token).await.json().await.expect("a page");
            let views = page["data"].as_array().expect("data");
            assert!(views.iter().all(|v| v["customerId"] == customers[who]), "only {}'s orders", customers[who]);
            seen += views.len();
            match page["metadata"]["nextCursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        assert_eq!(seen, placed_by[who], "every order of {} and no other", customers[who]);
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_setting_refused_stops_a_service_before_it_binds_or_connects() {
    // `jwt` mode with a secret too short to sign with: each service must refuse it before it listens, and before it
    // reaches its stores (pointed where nothing answers, so trying them first would say so instead).
    for service in ["command-service", "query-service"] {
        let port = crate::helpers::free_port();
        let output = tokio::process::Command::new(crate::helpers::service_binary(service))
            .env("AUTH_MODE", "jwt")
            .env("AUTH_ISSUER", ISSUER)
            .env("AUTH_AUDIENCE", AUDIENCE)
            .env("AUTH_HS256_SECRET", "short")
            .env("DATABASE_URL", "postgres://root@127.0.0.1:9/nowhere")
            .env("MONGODB_URI", "mongodb://127.0.0.1:9/?directConnection=true&serverSelectionTimeoutMS=60000")
            .env("AMQP_URL", "amqp://guest:guest@127.0.0.1:9/%2f")
            .env("HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "info")
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(20), output)
            .await
            .unwrap_or_else(|_| panic!("{service} did not stop within 20 s"))
            .expect("the service runs");
        let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(!output.status.success(), "{service} exits with an error: {said}");
        assert!(said.contains("AUTH_HS256_SECRET"), "{service} names the setting: {said}");
        assert!(!said.contains("listening"), "{service} refused the setting before it listened: {said}");
    }
}

#[tokio::test]
async fn the_status_page_needs_the_admin_scope_in_jwt_mode() {
    // It names positions and the sampler's last finding, another customer's order id among them.
    let idp = Idp::start().await;
    let app = spawn_jwt(&idp, |_| {}, |_| {}).await;
    let customer = idp.token("cust-a", json!({}));
    let reader = idp.token("support", json!({"scope": "orders:read:any"}));
    let admin = idp.token("ops", json!({"scope": "orders:admin"}));
    let url = app.query_url("/queries/_status");
    assert_unauthenticated(app.http.get(&url).send().await.expect("answers"), "no token").await;
    for (token, what) in [(&customer, "a customer"), (&reader, "orders:read:any")] {
        let answer = app.http.get(&url).bearer_auth(token).send().await.expect("answers");
        assert_eq!(answer.status(), 403, "{what}");
        assert_eq!(answer.headers()["content-type"], "application/problem+json", "{what}");
    }
    let answer = app.http.get(&url).bearer_auth(&admin).send().await.expect("answers");
    assert_eq!(answer.status(), 200);
    let status: Value = answer.json().await.expect("json");
    assert!(status["position"].is_i64(), "{status}");
    app.stop().await;
}

/// The lines of the query-service's metrics about read waits: what a caller could compare before and after a read.
async fn wait_metrics(app: &TestApp) -> Vec<String> {
    let text = app.http.get(app.query_url("/metrics")).send().await.expect("GET").text().await.expect("text");
    text.lines().filter(|line| line.starts_with("read_wait")).map(str::to_owned).collect()
}

#[tokio::test]
async fn another_customers_order_and_an_unknown_one_look_the_same_in_the_metrics_too() {
    let idp = Idp::start().await;
    let app = spawn_jwt(&idp, |_| {}, |_| {}).await;
    let (a, b) = (idp.token("cust-a", json!({})), idp.token("cust-b", json!({})));
    let (hidden, _) = placed(&app, &b).await;
    let own = get(&app, &format!("/queries/orders/{hidden}?minVersion=1&waitMs=20000"), &b).await;
    assert_eq!(own.status(), 200, "B reads its own order");
    // A asks for B's order and for an id nobody placed, at a version B's order has and at one it has not.
    for min_version in [1, 2] {
        let mut seen = Vec::new();
        for id in [hidden, Uuid::now_v7()] {
            let before = wait_metrics(&app).await;
            let answer = get(&app, &format!("/queries/orders/{id}?minVersion={min_version}&waitMs=300"), &a).await;
            let status = answer.status();
            let mut body: Value = answer.json().await.expect("json");
            body.as_object_mut().map(|body| body.remove("orderId"));
            let after = wait_metrics(&app).await;
            let changed: Vec<&String> = after.iter().filter(|line| !before.contains(line)).collect();
            let changed: Vec<String> =
                changed.iter().map(|line| line.split(' ').next().unwrap_or("").to_owned()).collect();
            seen.push((status, body, changed));
        }
        assert_eq!(seen[0], seen[1], "minVersion={min_version}: B's order (first) and an unknown id (second)");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_stream_ends_when_the_credential_it_was_opened_with_expires() {
    let idp = Idp::start().await;
    let app = spawn_jwt(&idp, |_| {}, |query| query.auth.auth_leeway_secs = 0).await;
    let lasting = idp.token("cust-a", json!({}));
    let (id, _) = placed(&app, &lasting).await;
    let soon = jsonwebtoken::get_current_timestamp() + 3;
    let brief = idp.token("cust-a", json!({ "exp": soon }));
    // Opened with the token itself, and with a ticket that token had minted: each ends at the token's expiry.
    let ticket = app.http.post(app.query_url(&format!("/queries/orders/{id}/stream-ticket"))).bearer_auth(&brief);
    let ticket: Value = ticket.send().await.expect("POST").json().await.expect("json");
    let by_ticket = app.http.get(app.query_url(ticket["streamUrl"].as_str().expect("a URL")));
    let by_token = app.http.get(app.query_url(&format!("/queries/orders/{id}/stream"))).bearer_auth(&brief);
    let opened = [(by_token.send().await.expect("GET"), "a token"), (by_ticket.send().await.expect("GET"), "a ticket")];
    for (response, how) in opened {
        assert_eq!(response.status(), 200, "{how}");
        let mut events = EventReader::new(response);
        let first = events.next().await.expect("the view");
        assert_eq!(first.event, "view", "{how}");
        let expired = events.next().await.expect("an event that says the stream ends");
        assert_eq!(expired.event, "expired", "{how}: {:?}", expired.data);
        assert!(jsonwebtoken::get_current_timestamp() >= soon, "{how}: not before the token expires");
        assert!(expired.data["detail"].as_str().is_some_and(|d| d.contains("expired")), "{how}: {:?}", expired.data);
        assert!(events.next().await.is_none(), "{how}: the stream ended");
    }
    // Its ticket no longer opens the stream once that token has expired.
    let again = app.http.get(app.query_url(ticket["streamUrl"].as_str().expect("a URL"))).send().await.expect("GET");
    assert_eq!(again.status(), 401);
    app.stop().await;
}
