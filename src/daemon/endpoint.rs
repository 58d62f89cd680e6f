//! The optional HTTP endpoint (`metrics.listen`): `GET /metrics` (the
//! [`Metrics`] registry) and `GET /status` (the status view's JSON).
//!
//! [`MetricsServer`] serves them on its own task. It is bounded so that a
//! scraper cannot hurt the daemon: at most `max_connections` connections
//! at once (more are closed at accept), a deadline to send request
//! headers, and a lifetime after which any connection is closed, however
//! slowly the client reads. Nothing in it waits on the probe loop:
//! `/status` returns whatever the status source says now.

use super::metrics::Metrics;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// The content type of OpenMetrics text, which is what prometheus-client
/// produces (Prometheus negotiates and parses it natively).
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Supplies the body of `GET /status` (the JSON of `habeat status --json`,
/// built by whoever owns the state). Called on the server's task for each
/// request, so it must be quick: the daemon hands out the body it
/// serialized once for the round (shared, not copied, however many
/// requests come at once) and builds one only for `?accounts=all`.
pub type StatusSource = Arc<dyn Fn(StatusQuery) -> Bytes + Send + Sync>;

/// What a `GET /status` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatusQuery {
    /// `?accounts=all`: every account of the last replica survey in
    /// `replicas.accounts` (as `status --json --accounts all`), not only
    /// the counts and the accounts at risk.
    pub all_accounts: bool,
}

impl StatusQuery {
    /// Read from the query string; `None` for a value of `accounts` it
    /// does not know.
    pub fn parse(query: Option<&str>) -> Option<StatusQuery> {
        let mut q = StatusQuery::default();
        for pair in query.unwrap_or_default().split('&') {
            if let Some(v) = pair.strip_prefix("accounts=") {
                q.all_accounts = match v {
                    "all" => true,
                    "at-risk" | "at_risk" => false,
                    _ => return None,
                };
            }
        }
        Some(q)
    }
}

/// A `/status` body: the JSON on one line.
pub fn json_body(v: &serde_json::Value) -> Bytes {
    let mut s = serde_json::to_vec(v).unwrap_or_else(|e| {
        serde_json::json!({ "error": format!("cannot serialize status: {e}") })
            .to_string()
            .into_bytes()
    });
    s.push(b'\n');
    Bytes::from(s)
}

/// Limits that keep slow or hostile clients from tying up the endpoint.
#[derive(Debug, Clone, Copy)]
pub struct ServerOptions {
    /// Time a client has to send the request headers (also the idle limit
    /// between keep-alive requests).
    pub header_timeout: Duration,
    /// Any connection is closed after this long, whatever it is doing.
    pub connection_lifetime: Duration,
    /// Connections served at once; more are closed right after accept.
    pub max_connections: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            header_timeout: Duration::from_secs(5),
            connection_lifetime: Duration::from_secs(30),
            max_connections: 16,
        }
    }
}

/// Why the metrics endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The listening socket could not be bound (port taken, address not
    /// local, no permission for a port below 1024).
    #[error(
        "cannot listen on {addr} for metrics: {source} (is another program using that port? change or remove metrics.listen in the configuration)"
    )]
    Bind {
        /// The address from `metrics.listen`.
        addr: SocketAddr,
        /// What the kernel said.
        #[source]
        source: std::io::Error,
    },
}

/// The running `/metrics` + `/status` endpoint. Dropping it (or calling
/// [`MetricsServer::shutdown`]) stops accepting and closes connections.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl MetricsServer {
    /// Bind `addr` and serve on a background task (inside a tokio runtime).
    /// Use port 0 to let the kernel choose (tests); [`Self::local_addr`]
    /// says which.
    pub async fn start(
        addr: SocketAddr,
        metrics: Metrics,
        status: StatusSource,
        opts: ServerOptions,
    ) -> Result<MetricsServer, MetricsError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| MetricsError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| MetricsError::Bind { addr, source })?;
        let task = tokio::spawn(accept_loop(listener, metrics, status, opts));
        tracing::info!("serving /metrics and /status on http://{local}");
        Ok(MetricsServer { addr: local, task })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop serving.
    pub fn shutdown(self) {
        self.task.abort();
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    metrics: Metrics,
    status: StatusSource,
    opts: ServerOptions,
) {
    let slots = Arc::new(Semaphore::new(opts.max_connections.max(1)));
    // Connection tasks die with the accept loop (abort on shutdown).
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("metrics endpoint: cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::debug!("metrics endpoint: too many connections, closing one from {peer}");
            drop(stream);
            continue;
        };
        let metrics = metrics.clone();
        let status = status.clone();
        conns.spawn(async move {
            let _permit = permit;
            let svc = service_fn(move |req| {
                let resp = respond(&req, &metrics, &status);
                async move { Ok::<_, std::convert::Infallible>(resp) }
            });
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(opts.header_timeout);
            let conn = builder.serve_connection(TokioIo::new(stream), svc);
            match tokio::time::timeout(opts.connection_lifetime, conn).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!("metrics endpoint: connection from {peer}: {e}"),
                Err(_) => tracing::debug!(
                    "metrics endpoint: closed a connection from {peer} that outlived its limit"
                ),
            }
        });
    }
}

fn respond(
    req: &Request<Incoming>,
    metrics: &Metrics,
    status: &StatusSource,
) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let known = matches!(path, "/metrics" | "/status");
    if !known {
        return plain(
            StatusCode::NOT_FOUND,
            "not found: try /metrics or /status\n",
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let (body, ctype) = if path == "/metrics" {
        (Bytes::from(metrics.encode()), METRICS_CONTENT_TYPE)
    } else {
        let Some(q) = StatusQuery::parse(req.uri().query()) else {
            return plain(
                StatusCode::BAD_REQUEST,
                "accounts= takes `all` (every account of the last replica survey) or `at-risk` (the default)\n",
            );
        };
        (status(q), "application/json")
    };
    let mut r = Response::new(Full::new(body));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

fn plain(code: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *r.status_mut() = code;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
