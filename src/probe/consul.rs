//! Consul witnesses: what the local agent's Serf gossip and catalog say
//! about the peer's nodes. Any failure to ask (agent down, slow, token
//! refused, garbage) is Unknown with the reason — never Down, because a
//! broken local Consul proves nothing about the peer.
//!
//! A token without `node:read` is not refused: Consul answers 200 with the
//! nodes it may not read left out (and says so in
//! [`consul::RESULTS_FILTERED_BY_ACLS`]). A node missing from such an
//! answer is not gone, so it is Unknown too.

use super::Finding;
use crate::consul::{self, Client, SERF_HEALTH, member_status};

/// What to tell the operator when ACLs hid nodes from habeat.
const CANNOT_READ_NODES: &str = "the Consul token cannot read nodes: give its policy node:read on the peer's nodes (check consul.token, consul.token_file or CONSUL_HTTP_TOKEN)";

/// `consul_members`: Up if any of `hostnames` has an alive member; Down when
/// every one is left, failed, leaving or absent; Unknown on any API error,
/// and for a node absent from a list Consul filtered by the token's ACLs.
/// An empty list is Unknown as well: the local agent always lists itself,
/// so an empty answer is one the token was not allowed to see.
pub async fn members(client: &Client, hostnames: &[String]) -> Finding {
    if hostnames.is_empty() {
        return Finding::unknown("no hostname configured to look up in Consul");
    }
    let listing = match client.members_visible().await {
        Ok(m) => m,
        Err(e) => return Finding::unknown(e.to_string()),
    };
    let filtered = listing.filtered_by_acls;
    let members = listing.value;
    if members.is_empty() {
        return Finding::unknown(format!(
            "Consul listed no member at all, not even this node's own agent: {CANNOT_READ_NODES}"
        ));
    }
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
            let names = consul::candidate_node_names(host).join(" or ");
            if filtered {
                unknowns.push(format!(
                    "no member named {names} visible: Consul left nodes out of its member list because {CANNOT_READ_NODES}"
                ));
            } else {
                downs.push(format!("no member named {names} in Consul"));
            }
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
type NodeAnswer = (
    String,
    Result<consul::Visible<Vec<consul::HealthCheck>>, consul::Error>,
);

/// What the catalog says about one host.
enum HostHealth {
    Passing(String),
    Critical(String),
    Unclear(String),
}

/// `consul_health`: the `serfHealth` check of each host's node, read with
/// `?stale` so that any server can answer. Up if any host passes; Down when
/// every host's check is critical and every question about it was
/// answered; Unknown otherwise (an error for either node name, a `warning`,
/// a node the catalog does not know, checks the token may not read, or an
/// answer that contradicts itself: `serfHealth` listed twice, a check of
/// another node).
pub async fn health(client: &Client, hostnames: &[String]) -> Finding {
    if hostnames.is_empty() {
        return Finding::unknown("no hostname configured to look up in Consul");
    }
    let mut asks = tokio::task::JoinSet::new();
    for (i, host) in hostnames.iter().enumerate() {
        for node in consul::candidate_node_names(host) {
            let c = client.clone();
            asks.spawn(async move {
                let r = c.node_health_visible(&node).await;
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
            Ok(answer) => {
                if let Some(why) = contradiction(&node, &answer.value) {
                    errors.push(why);
                    continue;
                }
                let serf = answer.value.iter().find(|c| c.check_id == SERF_HEALTH);
                if serf.is_none() && answer.filtered_by_acls {
                    errors.push(format!(
                        "Consul hid the checks of node {node} because {CANNOT_READ_NODES}"
                    ));
                }
                if let Some(c) = serf {
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
        // A critical check is Down only if every question about the host
        // was answered: the other name erring (timeout, 403) may be the
        // node that would have said passing.
        Some((node, s)) if s == "critical" && errors.is_empty() => {
            HostHealth::Critical(format!("{node} serfHealth critical"))
        }
        Some((node, s)) if s == "critical" => HostHealth::Unclear(format!(
            "{node} serfHealth critical, but the other question failed, so this is not a Down: {}",
            errors.join("; ")
        )),
        Some((node, s)) => HostHealth::Unclear(format!("{node} serfHealth {s}")),
        None if !errors.is_empty() => HostHealth::Unclear(errors.join("; ")),
        None => HostHealth::Unclear(format!(
            "Consul's catalog has no serfHealth check for {} (node {} unknown)",
            host,
            consul::candidate_node_names(host).join(" or ")
        )),
    }
}

/// Why an answer about `node` cannot be Consul's own, if it cannot: a check
/// of another node (the catalog answers `/v1/health/node/:node` with that
/// node's checks only), or `serfHealth` listed more than once (a node has
/// one). Such an answer proves nothing either way, so the host is Unknown,
/// never Down, whatever its checks say.
fn contradiction(node: &str, checks: &[consul::HealthCheck]) -> Option<String> {
    if let Some(other) = checks.iter().find(|c| !c.node.eq_ignore_ascii_case(node)) {
        return Some(format!(
            "Consul's health answer for node {node} holds check {:?} of node {:?}; an answer \
             that mixes nodes proves nothing",
            other.check_id, other.node
        ));
    }
    let serf: Vec<&str> = checks
        .iter()
        .filter(|c| c.check_id == SERF_HEALTH)
        .map(|c| c.status.as_str())
        .collect();
    if serf.len() > 1 {
        return Some(format!(
            "Consul's health answer for node {node} lists {SERF_HEALTH} {} times ({}); a node \
             has one, so the answer proves nothing",
            serf.len(),
            serf.join(", ")
        ));
    }
    None
}
