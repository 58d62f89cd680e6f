//! The metrics endpoint over real TCP: scraped with an HTTP client, parsed
//! with a Prometheus text parser, bounded against slow clients.

use habeat::daemon::endpoint::{
    METRICS_CONTENT_TYPE, MetricsServer, ServerOptions, StatusSource, json_body,
};
use habeat::daemon::metrics::{ActionOutcome, Metrics};
use habeat::model::{Component, Observation, Round, Verdict, Vote, WitnessId, WitnessKind};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

fn obs(component: Component, kind: WitnessKind, vote: Vote) -> Observation {
    Observation {
        witness: WitnessId { component, kind },
        vote,
        reason: "test".into(),
        latency: Duration::from_millis(3),
    }
}

async fn start(
    metrics: &Metrics,
    opts: ServerOptions,
) -> (MetricsServer, watch::Sender<serde_json::Value>) {
    let (tx, rx) = watch::channel(serde_json::json!({ "state": "starting" }));
    let status: StatusSource = Arc::new(move |_| json_body(&rx.borrow()));
    let server = MetricsServer::start(
        "127.0.0.1:0".parse().unwrap(),
        metrics.clone(),
        status,
        opts,
    )
    .await
    .unwrap();
    (server, tx)
}

async fn scrape(addr: std::net::SocketAddr) -> prometheus_parse::Scrape {
    let resp = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let ctype = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert_eq!(ctype, METRICS_CONTENT_TYPE);
    let body = resp.text().await.unwrap();
    assert!(
        body.ends_with("# EOF\n"),
        "OpenMetrics ends with # EOF: {body}"
    );
    prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

fn value(s: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    s.samples
        .iter()
        .find(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .and_then(|x| match x.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => Some(v),
            _ => None,
        })
}

fn histogram_count(s: &prometheus_parse::Scrape, name: &str) -> Option<f64> {
    s.samples
        .iter()
        .find(|x| x.metric == name)
        .and_then(|x| match &x.value {
            prometheus_parse::Value::Histogram(buckets) => buckets
                .iter()
                .find(|b| b.less_than.is_infinite())
                .map(|b| b.count),
            _ => None,
        })
}

#[tokio::test]
async fn scrapes_reflect_what_the_daemon_records() {
    let metrics = Metrics::new();
    let (server, _tx) = start(&metrics, ServerOptions::default()).await;
    let addr = server.local_addr();

    let s = scrape(addr).await;
    assert_eq!(value(&s, "habeat_rounds_total", &[]), Some(0.0));
    assert_eq!(value(&s, "habeat_promotions_total", &[]), Some(0.0));
    assert_eq!(
        histogram_count(&s, "habeat_round_duration_seconds"),
        Some(0.0)
    );
    assert_eq!(
        value(&s, "habeat_last_round_timestamp_seconds", &[]),
        Some(0.0)
    );

    let round = Round {
        observations: vec![
            obs(Component::Appserver, WitnessKind::Icmp, Vote::Down),
            obs(
                Component::Appserver,
                WitnessKind::Tcp { port: 7071 },
                Vote::Up,
            ),
            obs(
                Component::Appserver,
                WitnessKind::ConsulMembers,
                Vote::Unknown,
            ),
        ],
        ..Round::default()
    };
    let verdicts = [
        (Component::Appserver, Verdict::Up),
        (Component::Consul, Verdict::Unknown),
        (Component::Proxy, Verdict::Down),
    ];
    metrics.record_round(&round, Duration::from_millis(40), &verdicts);
    metrics.record_round(&round, Duration::from_millis(1500), &verdicts);
    metrics.record_action("promote_accounts", ActionOutcome::Succeeded);
    metrics.record_action("hook", ActionOutcome::Failed);
    metrics.record_action("hook", ActionOutcome::Failed);
    metrics.record_promotion();
    metrics.record_quorum_gate_refusal();

    let s = scrape(addr).await;
    assert_eq!(value(&s, "habeat_rounds_total", &[]), Some(2.0));
    assert_eq!(
        histogram_count(&s, "habeat_round_duration_seconds"),
        Some(2.0)
    );
    let sum = value(&s, "habeat_round_duration_seconds_sum", &[]).unwrap();
    assert!((sum - 1.54).abs() < 1e-9, "{sum}");
    let app = ("component", "appserver");
    assert_eq!(
        value(&s, "habeat_witness_vote", &[app, ("witness", "icmp")]),
        Some(0.0)
    );
    assert_eq!(
        value(&s, "habeat_witness_vote", &[app, ("witness", "tcp:7071")]),
        Some(1.0)
    );
    assert_eq!(
        value(
            &s,
            "habeat_witness_vote",
            &[app, ("witness", "consul_members")]
        ),
        Some(-1.0)
    );
    assert_eq!(value(&s, "habeat_component_verdict", &[app]), Some(1.0));
    assert_eq!(
        value(&s, "habeat_component_verdict", &[("component", "consul")]),
        Some(-1.0)
    );
    assert_eq!(
        value(&s, "habeat_component_verdict", &[("component", "proxy")]),
        Some(0.0)
    );
    assert_eq!(
        value(
            &s,
            "habeat_actions_total",
            &[("kind", "hook"), ("outcome", "failed")]
        ),
        Some(2.0)
    );
    assert_eq!(
        value(
            &s,
            "habeat_actions_total",
            &[("kind", "promote_accounts"), ("outcome", "succeeded")]
        ),
        Some(1.0)
    );
    assert_eq!(value(&s, "habeat_promotions_total", &[]), Some(1.0));
    assert_eq!(
        value(&s, "habeat_quorum_gate_refusals_total", &[]),
        Some(1.0)
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let last = value(&s, "habeat_last_round_timestamp_seconds", &[]).unwrap();
    assert!((now - last).abs() < 600.0, "last round {last}, now {now}");

    // A witness that is no longer probed (after a reload) disappears.
    let fewer = Round {
        observations: vec![obs(Component::Appserver, WitnessKind::Icmp, Vote::Up)],
        ..Round::default()
    };
    metrics.record_round(&fewer, Duration::from_millis(5), &verdicts);
    let s = scrape(addr).await;
    assert_eq!(
        value(&s, "habeat_witness_vote", &[app, ("witness", "icmp")]),
        Some(1.0)
    );
    assert_eq!(
        value(&s, "habeat_witness_vote", &[app, ("witness", "tcp:7071")]),
        None
    );
}

#[tokio::test]
async fn status_serves_the_callers_json_and_unknown_paths_are_404() {
    let metrics = Metrics::new();
    let (server, tx) = start(&metrics, ServerOptions::default()).await;
    let base = format!("http://{}", server.local_addr());

    let r = reqwest::get(format!("{base}/status")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["state"], "starting");

    tx.send(serde_json::json!({ "peer": "primary", "appserver": "Down" }))
        .unwrap();
    let v: serde_json::Value = reqwest::get(format!("{base}/status"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["appserver"], "Down");

    for path in ["/", "/metricsx", "/status/extra", "/favicon.ico"] {
        let r = reqwest::get(format!("{base}{path}")).await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
    let r = reqwest::Client::new()
        .post(format!("{base}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
}

#[tokio::test]
async fn slow_clients_are_cut_off_and_do_not_block_scrapes() {
    let metrics = Metrics::new();
    let opts = ServerOptions {
        header_timeout: Duration::from_millis(300),
        connection_lifetime: Duration::from_secs(2),
        max_connections: 4,
    };
    let (server, _tx) = start(&metrics, opts).await;
    let addr = server.local_addr();

    // A client that connects and sends half a request, then nothing.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Others are still served meanwhile.
    let s = scrape(addr).await;
    assert_eq!(value(&s, "habeat_rounds_total", &[]), Some(0.0));
    // And the slow one is closed by the server (generous bound: no hang).
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(20), slow.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "the server must close an idle half-request");

    // More idle connections than allowed: the extra ones are closed at once,
    // and once the idle ones time out, scrapes work again.
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    let mut all_closed = true;
    for mut c in idle {
        let mut b = Vec::new();
        all_closed &= tokio::time::timeout(Duration::from_secs(20), c.read_to_end(&mut b))
            .await
            .is_ok();
    }
    assert!(all_closed, "every idle connection is eventually closed");
    let s = scrape(addr).await;
    assert_eq!(value(&s, "habeat_rounds_total", &[]), Some(0.0));
}

#[tokio::test]
async fn a_busy_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let status: StatusSource = Arc::new(|_| json_body(&serde_json::Value::Null));
    let err = MetricsServer::start(addr, Metrics::new(), status, ServerOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&addr.to_string()), "{err}");
    assert!(err.contains("metrics.listen"), "{err}");
}
