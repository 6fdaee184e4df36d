//! One helper per endpoint the tests call: the request built and sent in one place, the answer returned as it came
//! (its status and body are the test's to check). Requests a test builds on purpose — odd headers, another token,
//! a raw socket — stay in the test.

use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{TestApp, ADMIN_TOKEN};

impl TestApp {
    /// `POST /commands/orders/{id}/{action}`, with `body` as JSON when given.
    pub(crate) async fn command(&self, id: Uuid, action: &str, body: Option<Value>) -> reqwest::Response {
        let mut request = self.http.post(self.command_url(&format!("/commands/orders/{id}/{action}")));
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("command answers")
    }

    /// `GET /queries/orders/{id}` followed by `query` (`""`, or `?minVersion=…`).
    pub(crate) async fn read_order(&self, id: impl std::fmt::Display, query: &str) -> reqwest::Response {
        self.http.get(self.query_url(&format!("/queries/orders/{id}{query}"))).send().await.expect("a read answers")
    }

    /// `GET /queries/orders?{query}`.
    pub(crate) async fn list_orders(&self, query: &str) -> reqwest::Response {
        self.http.get(self.query_url(&format!("/queries/orders?{query}"))).send().await.expect("a list answers")
    }

    /// A request of `method` to the query side's `path`, with the admin token.
    pub(crate) async fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::Response {
        self.http.request(method, self.query_url(path)).bearer_auth(ADMIN_TOKEN).send().await.expect("admin answers")
    }

    /// Reads the order view at `version` in one request (it must answer 200) and returns its data.
    pub(crate) async fn read_at(&self, id: Uuid, version: i64) -> Value {
        let response = self.read_order(id, &format!("?minVersion={version}")).await;
        assert_eq!(response.status(), 200, "version {version} not readable in one request");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["metadata"]["version"], version);
        body["data"].clone()
    }
}
