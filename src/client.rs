//! A small HTTP client for the CLI's `--endpoint` mode: trusts the server's CA when given, sends a
//! bearer token, and turns CloudErrors into readable errors.

use anyhow::{bail, Context, Result};
use reqwest::StatusCode;
use serde_json::Value;

use crate::cli::structs::Target;
use crate::wire::{ImportEvent, ImportReport, NDJSON};

pub struct Client {
    http: reqwest::Client,
    base: String,
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
        Ok(Client {
            http: builder.build()?,
            base: endpoint.trim_end_matches('/').to_string(),
            token: target.token.clone(),
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self.http.request(method, format!("{}{path}", self.base));
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
