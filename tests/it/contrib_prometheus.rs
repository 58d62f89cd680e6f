//! contrib/: the Prometheus rules and the Grafana dashboard.
//!
//! - `promtool check rules` and `promtool test rules` on every
//!   `contrib/prometheus/*.test.yml` (series fed in, alerts expected, and
//!   alerts that must not fire);
//! - every `habeat_*` metric the rules and the dashboard query exists in a
//!   live `/metrics` of `habeat run`, so renaming a metric breaks a test,
//!   not an operator's alerting;
//! - a real `prometheus` (Debian's) scrapes a running `habeat run` and
//!   evaluates the rules: the series are there through its HTTP API, every
//!   rule evaluates without error, and the alert for a peer appserver that
//!   cannot be seen is pending or firing.
//!
//! No timed assertion: everything polls with a generous deadline.

use crate::bin::{BIN, DEAD_IP};
use crate::support::{self, Need, require};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long a real Prometheus may take to start, scrape and evaluate on a
/// loaded machine.
const DEADLINE: Duration = Duration::from_secs(180);

fn contrib(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("contrib")
        .join(rel)
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run a tool");
    let text = format!(
        "{cmd:?}: exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    text
}

#[test]
fn promtool_accepts_the_rules() {
    if !require(&[Need::PROMTOOL]) {
        return;
    }
    let text = run(Command::new(Need::PROMTOOL.program())
        .args(["check", "rules"])
        .arg(contrib("prometheus/habeat-rules.yml")));
    assert!(text.contains("SUCCESS"), "{text}");
}

#[test]
fn promtool_unit_tests_fire_the_alerts_and_hold_the_rest() {
    if !require(&[Need::PROMTOOL]) {
        return;
    }
    let dir = contrib("prometheus");
    let mut tests: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read contrib/prometheus")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".test.yml"))
        .collect();
    tests.sort();
    assert!(!tests.is_empty(), "no *.test.yml in {}", dir.display());
    let text = run(Command::new(Need::PROMTOOL.program())
        .current_dir(&dir)
        .args(["test", "rules"])
        .args(&tests));
    assert!(!text.contains("FAILED"), "{text}");
}

/// Every `habeat_...` name in `text` (PromQL expressions, or the whole
/// dashboard).
fn habeat_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("habeat_") {
        let before = rest[..i].chars().next_back();
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            out.insert(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    out
}

/// The PromQL of the rules file: each `expr:` value.
fn rule_exprs(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("read the rules");
    let v: serde_json::Value = serde_saphyr::from_str(&text).expect("rules are YAML");
    let mut out = Vec::new();
    for g in v["groups"].as_array().expect("groups") {
        for r in g["rules"].as_array().expect("rules") {
            out.push(r["expr"].as_str().expect("expr").to_owned());
        }
    }
    out
}

/// The PromQL of the dashboard: each target's `expr`, and the template
/// variables' queries.
fn dashboard_exprs(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("read the dashboard");
    let v: serde_json::Value = serde_json::from_str(&text).expect("dashboard is JSON");
    let mut out = Vec::new();
    for p in v["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().expect("targets") {
            out.push(t["expr"].as_str().expect("expr").to_owned());
        }
    }
    for var in v["templating"]["list"].as_array().expect("templating") {
        if let Some(q) = var["definition"].as_str() {
            out.push(q.to_owned());
        }
    }
    out
}

/// The series names a scrape can have, from its `# TYPE` lines (a family
/// without samples yet, such as `habeat_actions_total` before any action,
/// is declared all the same) and its sample lines.
fn scraped_names(body: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in body.lines() {
        if let Some(t) = line.strip_prefix("# TYPE ") {
            let mut it = t.split_whitespace();
            let (Some(family), Some(kind)) = (it.next(), it.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "counter" => &["_total", "_created"],
                "histogram" => &["_bucket", "_sum", "_count", "_created"],
                "summary" => &["_sum", "_count", "_created"],
                _ => &[""],
            };
            for s in suffixes {
                out.insert(format!("{family}{s}"));
            }
        } else if !line.starts_with('#') {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            if end > 0 {
                out.insert(line[..end].to_owned());
            }
        }
    }
    out
}

/// `habeat run` with `metrics.listen` on loopback: an appserver that never
/// answers (TEST-NET-3), Consul on a closed port, state and lock files in
/// a scratch directory.
struct Daemon {
    child: Child,
    _dir: tempfile::TempDir,
    config: PathBuf,
    stderr: PathBuf,
    metrics: u16,
}

impl Daemon {
    fn start() -> Daemon {
        Daemon::start_with("")
    }

    /// `extra_detection`: more lines of the `detection:` section.
    fn start_with(extra_detection: &str) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display();
        let metrics = support::free_port();
        let consul = support::closed_port();
        let yaml = format!(
            "local:\n  whoami: secondary\n  dc_check: primary\n  state_dir: {d}/state\n  \
             checkDownFile: {d}/appserverdown-habeat\n  \
             checkPromotionFile: {d}/appserverprom-habeat\n  \
             checkRestartReplicaFile: {d}/appserverrstopha\n\
             primary:\n  appserver_ip: {DEAD_IP}\n  appserver_vmname: mbox1.example.com\n\
             consul:\n  hostname: 127.0.0.1\n  port: {consul}\n\
             detection:\n  interval: 300ms\n  timeout: 250ms\n{extra_detection}\
             metrics:\n  listen: 127.0.0.1:{metrics}\n"
        );
        let config = dir.path().join("habeat.yml");
        std::fs::write(&config, yaml).expect("write config");
        let stderr = dir.path().join("stderr.log");
        let child = Command::new(BIN)
            .arg("--config")
            .arg(config.as_path())
            .arg("run")
            .env_remove("CONSUL_HTTP_TOKEN")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("create stderr.log"))
            .spawn()
            .expect("start habeat run");
        Daemon {
            child,
            _dir: dir,
            config,
            stderr,
            metrics,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// `/metrics` once a round has completed.
    async fn scrape_after_a_round(&mut self) -> String {
        let url = format!("http://127.0.0.1:{}/metrics", self.metrics);
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("habeat run exited ({status}):\n{}", self.log());
            }
            if let Ok(resp) = reqwest::get(&url).await
                && let Ok(body) = resp.text().await
                && body
                    .lines()
                    .any(|l| l.starts_with("habeat_rounds_total ") && !l.ends_with(" 0"))
            {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no completed round on {url} within {DEADLINE:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The value of the sample of `name` whose labels include every one of
/// `labels` (`key="value"` each), in a scrape.
fn labelled(body: &str, name: &str, labels: &[&str]) -> Option<f64> {
    body.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?.strip_prefix('{')?;
        let (set, value) = rest.split_once("} ")?;
        let have: Vec<&str> = set.split(',').collect();
        labels
            .iter()
            .all(|want| have.contains(want))
            .then(|| value.trim().parse().ok())?
    })
}

/// The value of an unlabelled sample in a scrape.
fn sample(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_metric_the_rules_and_the_dashboard_query_is_in_a_live_scrape() {
    let mut daemon = Daemon::start();
    let body = daemon.scrape_after_a_round().await;
    let have = scraped_names(&body);

    let mut queried: Vec<(String, String)> = Vec::new();
    for e in rule_exprs(&contrib("prometheus/habeat-rules.yml")) {
        for n in habeat_names(&e) {
            queried.push(("contrib/prometheus/habeat-rules.yml".into(), n));
        }
    }
    for e in dashboard_exprs(&contrib("grafana/habeat.json")) {
        for n in habeat_names(&e) {
            queried.push(("contrib/grafana/habeat.json".into(), n));
        }
    }
    // The check itself must see the names the files use.
    assert!(
        queried
            .iter()
            .any(|(_, n)| n == "habeat_round_duration_seconds_bucket"),
        "the dashboard's round duration panel was not found: {queried:?}"
    );
    let missing: Vec<String> = queried
        .iter()
        .filter(|(_, n)| !have.contains(n))
        .map(|(f, n)| format!("{f} queries {n}"))
        .collect();
    assert!(
        missing.is_empty(),
        "metrics that `habeat run` does not export (renamed? see src/daemon/metrics.rs):\n  {}\n\
         exported: {have:?}",
        missing.join("\n  ")
    );
}

/// A real Prometheus with its own storage directory and port, scraping
/// `target` every second and evaluating the habeat rules every second.
struct Prometheus {
    child: Child,
    _dir: tempfile::TempDir,
    log: PathBuf,
    port: u16,
}

impl Prometheus {
    fn start(target: u16) -> Prometheus {
        let dir = tempfile::tempdir().expect("tempdir");
        let rules = contrib("prometheus/habeat-rules.yml");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {}\n\
                 scrape_configs:\n  - job_name: habeat\n    static_configs:\n      \
                 - targets: ['127.0.0.1:{target}']\n",
                rules.display()
            ),
        )
        .expect("write prometheus.yml");
        let port = support::free_port();
        let log = dir.path().join("prometheus.log");
        let child = Command::new(Need::PROMETHEUS.program())
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("create prometheus.log"))
            .spawn()
            .expect("start prometheus");
        Prometheus {
            child,
            _dir: dir,
            log,
            port,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn api(&self, path: &str, query: &[(&str, &str)]) -> Option<serde_json::Value> {
        let client = reqwest::Client::new();
        let resp = client
            .get(format!("http://127.0.0.1:{}/api/v1/{path}", self.port))
            .query(query)
            .send()
            .await
            .ok()?;
        let v: serde_json::Value = resp.json().await.ok()?;
        (v["status"] == "success").then(|| v["data"].clone())
    }

    /// Poll `probe` until it returns Some, or fail saying `what`, with
    /// both logs.
    async fn until<T>(
        &mut self,
        what: &str,
        daemon: &Daemon,
        probe: impl AsyncFn(&Prometheus) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("prometheus exited ({status}):\n{}", self.log());
            }
            if let Some(v) = probe(self).await {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what} within {DEADLINE:?}\n--- prometheus\n{}\n--- habeat\n{}",
                self.log(),
                daemon.log()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The instant vector of `query`, once it has at least one sample.
async fn query(p: &Prometheus, q: &str) -> Option<Vec<serde_json::Value>> {
    let data = p.api("query", &[("query", q)]).await?;
    let r = data["result"].as_array()?.clone();
    (!r.is_empty()).then_some(r)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_prometheus_scrapes_habeat_run_and_evaluates_the_rules() {
    if !require(&[Need::PROMETHEUS]) {
        return;
    }
    let mut daemon = Daemon::start();
    daemon.scrape_after_a_round().await;
    let mut prom = Prometheus::start(daemon.metrics);

    // The series arrive through the scrape, with the labels the rules use.
    let rounds = prom
        .until(
            "prometheus has no habeat_rounds_total from the habeat target",
            &daemon,
            async |p| query(p, r#"habeat_rounds_total{job="habeat"} > 0"#).await,
        )
        .await;
    assert_eq!(rounds.len(), 1, "{rounds:?}");
    for q in [
        r#"habeat_component_verdict{component="appserver"}"#,
        r#"habeat_witness_vote{component="appserver",witness="icmp"}"#,
        r#"habeat_failover_locked{role="appserver"} == 0"#,
        "habeat_paused_since_timestamp_seconds == 0",
        "habeat_cannot_decide == 0",
        // At 0 from the start, so that the first failure is an increase.
        r#"habeat_actions_total{kind="promote_accounts",outcome="failed"} == 0"#,
        "habeat_round_duration_seconds_count > 0",
    ] {
        prom.until(
            &format!("prometheus has no sample for {q}"),
            &daemon,
            async |p| query(p, q).await,
        )
        .await;
    }

    // Every rule of the file is loaded and has been evaluated without error.
    let groups = prom
        .until(
            "the habeat rules were not all evaluated",
            &daemon,
            async |p| {
                let data = p.api("rules", &[]).await?;
                let groups = data["groups"].as_array()?.clone();
                let rules: Vec<&serde_json::Value> = groups
                    .iter()
                    .flat_map(|g| g["rules"].as_array().into_iter().flatten())
                    .collect();
                let all_evaluated = !rules.is_empty()
                    && rules.iter().all(|r| {
                        r["health"] == "ok"
                            && r["lastEvaluation"]
                                .as_str()
                                .is_some_and(|t| !t.starts_with("0001-"))
                    });
                all_evaluated.then_some(groups)
            },
        )
        .await;
    let loaded: BTreeSet<String> = groups
        .iter()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .filter_map(|r| r["name"].as_str().map(str::to_owned))
        .collect();
    let text = std::fs::read_to_string(contrib("prometheus/habeat-rules.yml")).expect("rules");
    for line in text.lines() {
        if let Some(name) = line.trim().strip_prefix("- alert: ") {
            assert!(
                loaded.contains(name),
                "prometheus did not load {name}: {loaded:?}"
            );
        }
    }

    // The appserver answers no ping and Consul cannot be asked: a verdict
    // that is not Up, and the alert for it becomes active (pending for its
    // `for:`, then firing).
    let alert = prom
        .until(
            "no HabeatPeerComponentDown/Unknown alert for the appserver",
            &daemon,
            async |p| {
                let data = p.api("alerts", &[]).await?;
                data["alerts"]
                    .as_array()?
                    .iter()
                    .find(|a| {
                        let name = a["labels"]["alertname"].as_str().unwrap_or("");
                        (name == "HabeatPeerComponentDown" || name == "HabeatPeerComponentUnknown")
                            && a["labels"]["component"] == "appserver"
                    })
                    .cloned()
            },
        )
        .await;
    assert_eq!(alert["labels"]["job"], "habeat", "{alert}");
    assert!(
        alert["state"] == "pending" || alert["state"] == "firing",
        "{alert}"
    );
    // The daemon's metrics are present, so the absence alert holds.
    let data = prom.api("alerts", &[]).await.expect("alerts");
    let absent = data["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|a| a["labels"]["alertname"] == "HabeatMetricsAbsent");
    assert!(
        !absent,
        "HabeatMetricsAbsent is active while habeat is scraped: {data}"
    );
}

/// What HabeatPausedTooLong reads: `habeat pause` beside the daemon sets
/// `habeat_paused_since_timestamp_seconds` to when the pause began, and
/// `habeat resume` sets it back to 0.
#[tokio::test(flavor = "multi_thread")]
async fn a_pause_beside_the_daemon_shows_in_paused_since_and_resume_clears_it() {
    let mut daemon = Daemon::start();
    let body = daemon.scrape_after_a_round().await;
    let name = "habeat_paused_since_timestamp_seconds";
    assert_eq!(sample(&body, name), Some(0.0), "{body}");
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let out = crate::bin::habeat(&daemon.config, &["pause", "--for", "1h"]);
    assert_eq!(out.status.code(), Some(0), "{}", crate::bin::text(&out));
    let url = format!("http://127.0.0.1:{}/metrics", daemon.metrics);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let since = loop {
        let body = reqwest::get(&url)
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("body");
        if let Some(v) = sample(&body, name).filter(|v| *v > 0.0) {
            break v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} still 0 after habeat pause:\n{body}\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        (since - before).abs() < 600.0,
        "paused since {since}, the pause began about {before}"
    );
    let out = crate::bin::habeat(&daemon.config, &["resume"]);
    assert_eq!(out.status.code(), Some(0), "{}", crate::bin::text(&out));
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let body = reqwest::get(&url)
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("body");
        if sample(&body, name) == Some(0.0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} not 0 after habeat resume:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `/metrics` once `want` holds of it, or a panic with the last scrape.
async fn scrape_until(daemon: &mut Daemon, what: &str, want: impl Fn(&str) -> bool) -> String {
    let url = format!("http://127.0.0.1:{}/metrics", daemon.metrics);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut last = String::new();
    loop {
        if let Ok(Some(status)) = daemon.child.try_wait() {
            panic!("habeat run exited ({status}):\n{}", daemon.log());
        }
        if let Ok(resp) = reqwest::get(&url).await
            && let Ok(body) = resp.text().await
        {
            if want(&body) {
                return body;
            }
            last = body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not seen within {DEADLINE:?}:\n{last}\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The engine's plan reaches the metrics: a peer appserver judged Down
/// whose promotion the quorum gate refuses (Consul does not answer) is
/// held back, and `habeat_decision` names why; a pause changes the reason
/// at once, and the alert for it stays quiet while paused.
#[tokio::test(flavor = "multi_thread")]
async fn a_peer_down_that_the_gate_keeps_habeat_from_acting_on_is_held_back_and_says_why() {
    // One Down vote is enough: the ICMP witness of the dead address.
    let mut daemon = Daemon::start_with("  quorum: 1\n");
    let body = scrape_until(&mut daemon, "appserver held back", |b| {
        labelled(b, "habeat_held_back", &["role=\"appserver\""]) == Some(1.0)
    })
    .await;
    assert_eq!(
        labelled(
            &body,
            "habeat_component_verdict",
            &["component=\"appserver\""]
        ),
        Some(0.0),
        "held back while the peer is not Down:\n{body}"
    );
    let decisions: Vec<&str> = body
        .lines()
        .filter(|l| l.starts_with("habeat_decision{") && l.contains("role=\"appserver\""))
        .collect();
    assert_eq!(decisions.len(), 1, "one decision per role:\n{body}");
    assert!(
        decisions[0].ends_with(" 1")
            && !decisions[0].contains("kind=\"would_act\"")
            && !decisions[0].contains("kind=\"in_progress\""),
        "the decision names why it does not act: {}",
        decisions[0]
    );
    let out = crate::bin::habeat(&daemon.config, &["pause", "--for", "1h"]);
    assert_eq!(out.status.code(), Some(0), "{}", crate::bin::text(&out));
    let body = scrape_until(&mut daemon, "decision kind blocked after pause", |b| {
        labelled(
            b,
            "habeat_decision",
            &["role=\"appserver\"", "kind=\"blocked\""],
        ) == Some(1.0)
    })
    .await;
    let decisions = body
        .lines()
        .filter(|l| l.starts_with("habeat_decision{") && l.contains("role=\"appserver\""))
        .count();
    assert_eq!(
        decisions, 1,
        "the old reason's series was not removed:\n{body}"
    );
}

/// An appserver-only daemon watches only the peer appserver: it exports no
/// verdict for the proxy or Consul (an "unknown" there would fire
/// HabeatPeerComponentUnknown on every mailstore for ever). Its local
/// Consul agent does not answer (a closed port): that is a WARNING in the
/// log and `habeat_local_consul_up` 0, which HabeatLocalConsulDown reads.
#[tokio::test(flavor = "multi_thread")]
async fn unwatched_components_export_nothing_and_a_lost_local_consul_is_a_warning_and_a_metric() {
    let mut daemon = Daemon::start();
    let body = scrape_until(&mut daemon, "habeat_local_consul_up at 0", |b| {
        sample(b, "habeat_local_consul_up") == Some(0.0)
    })
    .await;
    assert!(
        labelled(
            &body,
            "habeat_component_verdict",
            &["component=\"appserver\""]
        )
        .is_some(),
        "the watched appserver has no verdict:\n{body}"
    );
    for c in ["proxy", "consul"] {
        assert_eq!(
            labelled(
                &body,
                "habeat_component_verdict",
                &[&format!("component=\"{c}\"")]
            ),
            None,
            "a verdict for the unwatched {c}:\n{body}"
        );
    }
    let log = daemon.log();
    let warning = log
        .lines()
        .find(|l| l.contains("local Consul agent"))
        .unwrap_or_else(|| panic!("no line about the local Consul agent:\n{log}"));
    assert!(
        warning.contains("WARN") && warning.contains("no failover is possible"),
        "{warning}"
    );
}
