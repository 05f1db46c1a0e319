//! A small HTTP client for the CLI's `--endpoint` mode: trusts the server's CA when given, sends a
//! bearer token, turns CloudErrors into readable errors, and reads lists to their end by following
//! `nextLink`s ([`Client::get_all`]).

use anyhow::{bail, Context, Result};
use reqwest::{StatusCode, Url};
use serde_json::Value;
use std::collections::HashSet;

use super::args::Target;
use crate::wire::{ImportEvent, ImportReport, NDJSON};

pub struct Client {
    http: reqwest::Client,
    base: String,
    /// `base` parsed: nextLinks are resolved against it and must stay on its origin.
    base_url: Url,
    token: Option<String>,
}

impl Client {
    pub fn new(endpoint: &str, target: &Target) -> Result<Client> {
        crate::server::install_crypto_provider();
        let mut builder = reqwest::Client::builder().use_rustls_tls();
        if let Some(ca) = &target.ca {
            let pem = std::fs::read(ca)
                .with_context(|| format!("cannot read the CA file {}", ca.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .with_context(|| format!("{} is not a PEM certificate", ca.display()))?;
            builder = builder.add_root_certificate(cert);
        }
        let base = endpoint.trim_end_matches('/').to_string();
        let base_url = Url::parse(&base).with_context(|| {
            format!("the endpoint '{endpoint}' is not a URL such as https://127.0.0.1:8443")
        })?;
        Ok(Client { http: builder.build()?, base, base_url, token: target.token.clone() })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.request_to(method, format!("{}{path}", self.base))
    }

    /// A request to a full URL, with the bearer token.
    fn request_to(
        &self,
        method: reqwest::Method,
        url: impl reqwest::IntoUrl,
    ) -> reqwest::RequestBuilder {
        let mut r = self.http.request(method, url);
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        r
    }

    async fn answer(response: reqwest::Response) -> Result<Value> {
        let status = response.status();
        let body = response.bytes().await?;
        let value: Value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body).unwrap_or(Value::Null)
        };
        if !status.is_success() {
            let code = value.pointer("/error/code").and_then(Value::as_str).unwrap_or("");
            let message = value.pointer("/error/message").and_then(Value::as_str).unwrap_or("");
            bail!("the server answered {status}: ({code}) {message}");
        }
        Ok(value)
    }

    async fn send(&self, r: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        r.send().await.with_context(|| {
            format!(
                "cannot reach {} (is the server running? for HTTPS pass --ca DATA_DIR/ca.pem)",
                self.base
            )
        })
    }

    pub async fn get_json(&self, path: &str) -> Result<Value> {
        Self::answer(self.send(self.request(reqwest::Method::GET, path)).await?).await
    }

    /// GET a list (`{"value": [...], "nextLink": "..."}`) and every page after it, returning all
    /// items in order. A nextLink is an absolute URL, as ARM gives it (a path is resolved against
    /// the endpoint); it is followed as it is, but only on the endpoint's own scheme, host and port,
    /// so the token never goes anywhere else. A nextLink seen before is an error, not a loop.
    pub async fn get_all(&self, path: &str) -> Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut seen: HashSet<Url> =
            Url::parse(&format!("{}{path}", self.base)).into_iter().collect();
        let mut page = self.get_json(path).await?;
        loop {
            match page.get("value") {
                Some(Value::Array(values)) => items.extend(values.iter().cloned()),
                _ => bail!("the server's answer to {path} is not a list (no \"value\" array)"),
            }
            let Some(link) = page.get("nextLink").and_then(Value::as_str).filter(|l| !l.is_empty())
            else {
                return Ok(items);
            };
            let url = self.next_url(link)?;
            if !seen.insert(url.clone()) {
                bail!("the server's nextLink {url} points back at a page already read");
            }
            page =
                Self::answer(self.send(self.request_to(reqwest::Method::GET, url)).await?).await?;
        }
    }

    fn next_url(&self, link: &str) -> Result<Url> {
        let url = self
            .base_url
            .join(link)
            .with_context(|| format!("the server's nextLink '{link}' is not a URL"))?;
        if url.origin() != self.base_url.origin() {
            bail!(
                "the server's nextLink {url} leaves the endpoint {}; not following it with the token",
                self.base
            );
        }
        Ok(url)
    }

    pub async fn put_json(&self, path: &str, body: &Value) -> Result<Value> {
        Self::answer(self.send(self.request(reqwest::Method::PUT, path).json(body)).await?).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Result<Value> {
        Self::answer(self.send(self.request(reqwest::Method::POST, path).json(body)).await?).await
    }

    /// DELETE; false when the server had nothing to delete (404/204).
    pub async fn delete(&self, path: &str) -> Result<bool> {
        let response = self.send(self.request(reqwest::Method::DELETE, path)).await?;
        if matches!(response.status(), StatusCode::NOT_FOUND | StatusCode::NO_CONTENT) {
            return Ok(false);
        }
        Self::answer(response).await.map(|_| true)
    }

    /// POST NDJSON streamed from `input` to an import endpoint and ask for a streamed answer:
    /// `on_event` sees every event (a progress object per committed batch); returns the final
    /// report. An answer cut before its report is an error that says what the server had
    /// committed by then.
    pub async fn upload_ndjson<R, F>(
        &self,
        path: &str,
        input: R,
        mut on_event: F,
    ) -> Result<ImportReport>
    where
        R: tokio::io::AsyncRead + Send + Sync + 'static,
        F: FnMut(&ImportEvent),
    {
        use futures::TryStreamExt;
        use tokio::io::AsyncBufReadExt;
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
            input,
            64 * 1024,
        ));
        let r = self
            .request(reqwest::Method::POST, path)
            .header(reqwest::header::CONTENT_TYPE, NDJSON)
            .header(reqwest::header::ACCEPT, NDJSON)
            .body(body);
        let response = self.send(r).await?;
        let streamed = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(NDJSON));
        if !response.status().is_success() || !streamed {
            // An error, or a server that answers one JSON report.
            let value = Self::answer(response).await?;
            return serde_json::from_value(value)
                .context("the server's import report is not in the expected shape");
        }
        let stream = response.bytes_stream().map_err(std::io::Error::other);
        let mut lines =
            tokio::io::BufReader::new(tokio_util::io::StreamReader::new(stream)).lines();
        let mut last = None;
        let cut = loop {
            match lines.next_line().await {
                Ok(Some(line)) if line.trim().is_empty() => {}
                Ok(Some(line)) => {
                    let event: ImportEvent = serde_json::from_str(&line).with_context(|| {
                        format!("unexpected line in the server's answer: {line}")
                    })?;
                    on_event(&event);
                    match event {
                        ImportEvent::Report(report) => return Ok(report),
                        ImportEvent::Progress(p) => last = Some(p),
                    }
                }
                Ok(None) => break String::from("it ended"),
                Err(e) => break e.to_string(),
            }
        };
        match last {
            Some(p) => bail!(
                "the server's answer broke off before its report ({cut}); by then it had committed lines 1 to {} ({} created, {} replaced, {} rejected); importing the file again is safe",
                p.last_line, p.created, p.replaced, p.failed
            ),
            None => bail!(
                "the server's answer broke off before its report ({cut}), before any batch was reported committed; importing the file again is safe"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn client(endpoint: &str) -> Client {
        let target = Target {
            data_dir: None,
            database_url: None,
            endpoint: None,
            ca: None,
            token: Some("t".into()),
        };
        Client::new(endpoint, &target).expect("a valid endpoint")
    }

    #[test]
    fn next_links_are_followed_only_on_the_endpoint() {
        let c = client("https://127.0.0.1:8443/");
        // Absolute, as ARM returns it: taken as it is, not appended to the base.
        let link = "https://127.0.0.1:8443/subscriptions/x/providers/Microsoft.Security/assessments?api-version=2021-06-01&$skipToken=abc";
        assert_eq!(c.next_url(link).unwrap().as_str(), link);
        // A path is resolved against the endpoint.
        assert_eq!(c.next_url("/a?b=c").unwrap().as_str(), "https://127.0.0.1:8443/a?b=c");
        // The host name's case and an explicit default port do not make another origin.
        let azure = client("https://management.azure.com");
        assert!(azure.next_url("https://MANAGEMENT.azure.com:443/x").is_ok());
        // Another host, port or scheme would receive the token: refused.
        for elsewhere in [
            "https://evil.example/x",
            "https://127.0.0.1:9999/x",
            "http://127.0.0.1:8443/x",
            "//evil.example/x",
        ] {
            let e = c.next_url(elsewhere).unwrap_err().to_string();
            assert!(e.contains("leaves the endpoint"), "{elsewhere}: {e}");
        }
    }

    /// What a test server answers for page N of its list (given its base URL).
    type PageFn = fn(&str, u32) -> Value;

    /// A server whose lists answer whatever `page` says for `?page=N`.
    async fn pages(page: PageFn) -> (String, tokio::task::JoinHandle<()>) {
        use axum::extract::{Query, State};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let base = format!("http://{}", listener.local_addr().expect("bound"));
        let handler =
            |State((base, page)): State<(String, PageFn)>,
             Query(q): Query<std::collections::HashMap<String, u32>>| async move {
                axum::Json(page(&base, q.get("page").copied().unwrap_or(0)))
            };
        let app = axum::Router::new()
            .route("/list", axum::routing::get(handler))
            .with_state((base.clone(), page));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (base, server)
    }

    #[tokio::test]
    async fn get_all_reads_absolute_and_relative_next_links_to_the_end() {
        let (base, server) = pages(|base, n| match n {
            0 => json!({"value": [0, 1], "nextLink": format!("{base}/list?page=1")}),
            1 => json!({"value": [2], "nextLink": "/list?page=2"}),
            _ => json!({"value": [3], "nextLink": ""}),
        })
        .await;
        let items = client(&base).get_all("/list").await.expect("three pages");
        assert_eq!(items, vec![json!(0), json!(1), json!(2), json!(3)]);
        server.abort();
    }

    #[tokio::test]
    async fn get_all_refuses_loops_foreign_links_and_non_lists() {
        let (base, server) =
            pages(|base, _| json!({"value": [1], "nextLink": format!("{base}/list?page=0")})).await;
        let e = client(&base).get_all("/list?page=0").await.expect_err("a loop").to_string();
        assert!(e.contains("already read"), "{e}");
        server.abort();

        let (base, server) =
            pages(|_, _| json!({"value": [1], "nextLink": "https://elsewhere.example/list"})).await;
        let e = client(&base).get_all("/list").await.expect_err("another host").to_string();
        assert!(e.contains("leaves the endpoint"), "{e}");
        server.abort();

        let (base, server) = pages(|_, _| json!({"values": []})).await;
        let e = client(&base).get_all("/list").await.expect_err("not a list").to_string();
        assert!(e.contains("not a list"), "{e}");
        server.abort();
    }

    #[test]
    fn an_endpoint_that_is_not_a_url_is_an_error() {
        let target =
            Target { data_dir: None, database_url: None, endpoint: None, ca: None, token: None };
        let e = Client::new("127.0.0.1:8443", &target).err().expect("no scheme").to_string();
        assert!(e.contains("is not a URL"), "{e}");
    }
}
