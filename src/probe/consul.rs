//! Consul witnesses: what the local agent's Serf gossip and catalog say
//! about the peer's nodes. Any failure to ask (agent down, slow, token
//! refused, garbage) is Unknown with the reason — never Down, because a
//! broken local Consul proves nothing about the peer.

use super::Finding;
use crate::consul::{self, Client, SERF_HEALTH, member_status};

/// `consul_members`: Up if any of `hostnames` has an alive member; Down when
/// every one is left, failed, leaving or absent; Unknown on any API error.
pub async fn members(client: &Client, hostnames: &[String]) -> Finding {
    if hostnames.is_empty() {
        return Finding::unknown("no hostname configured to look up in Consul");
    }
    let members = match client.members().await {
        Ok(m) => m,
        Err(e) => return Finding::unknown(e.to_string()),
    };
    let mut downs = Vec::new();
    let mut unknowns = Vec::new();
    for host in hostnames {
        let mine: Vec<&consul::Member> = members
            .iter()
            .filter(|m| consul::node_matches_host(&m.name, host))
            .collect();
        if let Some(alive) = mine.iter().find(|m| m.status == member_status::ALIVE) {
            return Finding::up(format!("member {} is alive", alive.name));
        }
        if mine.is_empty() {
            downs.push(format!(
                "no member named {} in Consul",
                consul::candidate_node_names(host).join(" or ")
            ));
            continue;
        }
        for m in mine {
            let text = format!(
                "member {} status {} ({})",
                m.name,
                m.status,
                member_status::name(m.status)
            );
            match m.status {
                member_status::LEAVING | member_status::LEFT | member_status::FAILED => {
                    downs.push(text)
                }
                _ => unknowns.push(text),
            }
        }
    }
    if unknowns.is_empty() {
        Finding::down(downs.join("; "))
    } else {
        unknowns.extend(downs);
        Finding::unknown(unknowns.join("; "))
    }
}

/// One node name asked about, and Consul's answer.
type NodeAnswer = (String, Result<Vec<consul::HealthCheck>, consul::Error>);

/// What the catalog says about one host.
enum HostHealth {
    Passing(String),
    Critical(String),
    Unclear(String),
}

/// `consul_health`: the `serfHealth` check of each host's node, read with
/// `?stale` so that any server can answer. Up if any host passes; Down when
/// every host's check is critical; Unknown otherwise (no answer, a
/// `warning`, or a node the catalog does not know).
pub async fn health(client: &Client, hostnames: &[String]) -> Finding {
    if hostnames.is_empty() {
        return Finding::unknown("no hostname configured to look up in Consul");
    }
    let mut asks = tokio::task::JoinSet::new();
    for (i, host) in hostnames.iter().enumerate() {
        for node in consul::candidate_node_names(host) {
            let c = client.clone();
            asks.spawn(async move {
                let r = c.node_health(&node).await;
                (i, node, r)
            });
        }
    }
    let mut per_host: Vec<Vec<NodeAnswer>> = vec![Vec::new(); hostnames.len()];
    while let Some(j) = asks.join_next().await {
        match j {
            Ok((i, node, r)) => per_host[i].push((node, r)),
            Err(e) => return Finding::unknown(format!("health lookup failed: {e}")),
        }
    }
    let mut verdicts = Vec::new();
    for (host, answers) in hostnames.iter().zip(per_host) {
        verdicts.push(host_health(host, answers));
    }
    if let Some(HostHealth::Passing(r)) = verdicts
        .iter()
        .find(|v| matches!(v, HostHealth::Passing(_)))
    {
        return Finding::up(r.clone());
    }
    let all_critical = verdicts
        .iter()
        .all(|v| matches!(v, HostHealth::Critical(_)));
    let text = verdicts
        .into_iter()
        .map(|v| match v {
            HostHealth::Passing(r) | HostHealth::Critical(r) | HostHealth::Unclear(r) => r,
        })
        .collect::<Vec<_>>()
        .join("; ");
    if all_critical {
        Finding::down(text)
    } else {
        Finding::unknown(text)
    }
}

fn host_health(host: &str, mut answers: Vec<NodeAnswer>) -> HostHealth {
    answers.sort_by(|a, b| a.0.cmp(&b.0));
    let mut errors = Vec::new();
    let mut found = None;
    for (node, r) in answers {
        match r {
            Ok(checks) => {
                if let Some(c) = checks.iter().find(|c| c.check_id == SERF_HEALTH) {
                    // Prefer a passing node if both names exist.
                    let better = match &found {
                        None => true,
                        Some((_, s)) => s != "passing" && c.status == "passing",
                    };
                    if better {
                        found = Some((node, c.status.clone()));
                    }
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    match found {
        Some((node, s)) if s == "passing" => {
            HostHealth::Passing(format!("{node} serfHealth passing"))
        }
        Some((node, s)) if s == "critical" => {
            HostHealth::Critical(format!("{node} serfHealth critical"))
        }
        Some((node, s)) => HostHealth::Unclear(format!("{node} serfHealth {s}")),
        None if !errors.is_empty() => HostHealth::Unclear(errors.join("; ")),
        None => HostHealth::Unclear(format!(
            "Consul's catalog has no serfHealth check for {} (node {} unknown)",
            host,
            consul::candidate_node_names(host).join(" or ")
        )),
    }
}
