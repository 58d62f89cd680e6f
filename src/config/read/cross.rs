//! The checks that span sections, made once every section is read: the
//! watched datacenter exists and has what each role needs, the proxy
//! switch tool named by `local.proxy_switch` has its commands, the quorum
//! can be reached by the witness plan, and the warnings about safety and
//! timing.

use super::super::suggest;
use super::super::yaml::Pos;
use super::super::{Config, Quorum};
use super::Walker;
use crate::model::Role;

impl Walker<'_> {
    pub(in crate::config) fn cross_checks(&mut self, cfg: &mut Config) {
        let local = &cfg.local;
        let roles_mark = self
            .marks
            .given("local.roles")
            .or(self.marks.given("local.role"));
        let roles_pos = roles_mark.or(self.marks.local).unwrap_or(Pos::START);
        let roles_where = match roles_mark {
            Some(p) => format!("local.roles, line {}", p.line),
            None => "the default when local.roles is not set".to_owned(),
        };

        let peer = match cfg.dcs.get(&local.dc_check) {
            Some(p) => Some(p.clone()),
            None => {
                if local.whoami != local.dc_check {
                    let others: Vec<&str> =
                        self.marks.other_top.iter().map(String::as_str).collect();
                    let hint = match suggest::nearest(&local.dc_check, &others) {
                        Some(near) => {
                            format!("did you mean `{near}`? (the file defines `{near}:`)")
                        }
                        None => format!(
                            "add the watched datacenter's addresses under `{}:` (proxy_ip, \
                             appserver_ip, ...)",
                            local.dc_check
                        ),
                    };
                    self.error(
                        self.marks.given("local.dc_check").unwrap_or(Pos::START),
                        format!(
                            "local.dc_check names `{}`, but the file has no `{}:` section; {hint}",
                            local.dc_check, local.dc_check
                        ),
                    );
                }
                None
            }
        };
        let peer_name = local.dc_check.clone();
        let peer_pos = self
            .marks
            .dcs
            .get(&peer_name)
            .copied()
            .unwrap_or(Pos::START);
        let consul_witness = cfg.witnesses.consul_members || cfg.witnesses.consul_health;

        if let Some(peer) = &peer {
            for role in local.roles.clone() {
                let mut need: Vec<(&str, &str)> = Vec::new();
                match role {
                    Role::Appserver => {
                        if peer.appserver_ip.is_none() {
                            need.push(("appserver_ip", "the address habeat pings"));
                        }
                        if peer.appserver_vmname.is_none() {
                            need.push((
                                "appserver_vmname",
                                "the mailstore whose accounts are promoted",
                            ));
                        }
                    }
                    Role::Proxyserver => {
                        if peer.proxy_ip.is_none() {
                            need.push(("proxy_ip", "the address habeat pings"));
                        }
                        if consul_witness && peer.proxyserver_vmname.is_none() {
                            need.push((
                                "proxyserver_vmname",
                                "the proxy's node name for the Consul witnesses",
                            ));
                        }
                    }
                    Role::Consulserver => {
                        if peer.consul_ips.is_empty() {
                            need.push(("consul_ips", "the Consul servers habeat pings"));
                        }
                        if peer.consul_vmnames.is_empty() {
                            need.push((
                                "consul_vmnames",
                                "the Consul servers' names, to tell them Down",
                            ));
                        }
                    }
                }
                for (key, why) in need {
                    if self.marks.given.contains_key(&format!("{peer_name}.{key}")) {
                        continue; // written but invalid: already reported where it is
                    }
                    self.error(
                        peer_pos,
                        format!(
                            "{peer_name}.{key} is not set, but the {role} role ({roles_where}) needs it ({why}); add it under `{peer_name}:`"
                        ),
                    );
                }
            }
        }
        let own_name = local.whoami.clone();
        let own = cfg.dcs.get(&own_name);
        let own_pos = self.marks.dcs.get(&own_name).copied();
        if local.roles.contains(&Role::Consulserver)
            && own.is_none_or(|o| o.consul_vmnames.is_empty())
            && !self
                .marks
                .given
                .contains_key(&format!("{own_name}.consul_vmnames"))
        {
            self.error(
                own_pos.unwrap_or(roles_pos),
                format!(
                    "{own_name}.consul_vmnames is not set, but the consulserver role \
                     ({roles_where}) needs this datacenter's own Consul servers \
                     (the survivors written to peers.json on raft recovery); add them under `{own_name}:`"
                ),
            );
        }

        // The proxy switch tool named by local.proxy_switch, when enabled.
        let tool = local.proxy_switch.clone();
        for (enabled, what, key, pos) in [
            (
                local.proxy_enable_activate,
                "activate",
                "proxy_enable_activate",
                self.marks.given("local.proxy_enable_activate"),
            ),
            (
                local.proxy_enable_deactivate,
                "deactivate",
                "proxy_enable_deactivate",
                self.marks.given("local.proxy_enable_deactivate"),
            ),
        ] {
            if !enabled {
                continue;
            }
            let cmds = own.and_then(|o| o.proxy_switch.get(&tool)).map(|c| {
                if what == "activate" {
                    &c.activate
                } else {
                    &c.deactivate
                }
            });
            match cmds {
                Some(c) if !c.is_empty() => {}
                Some(_) => self.error(
                    pos.or(own_pos).unwrap_or(Pos::START),
                    format!(
                        "local.{key} is true, but {own_name}.proxy_switch.{tool}.{what} lists \
                         no command; add the commands or set {key}: false"
                    ),
                ),
                None => self.error(
                    pos.or(self.marks.given("local.proxy_switch"))
                        .unwrap_or(Pos::START),
                    format!(
                        "local.{key} is true, but `{own_name}:` has no proxy_switch.{tool} \
                         (the tool named by local.proxy_switch); add `proxy_switch: {{ {tool}: \
                         {{ activate: [...], deactivate: [...] }} }}` under `{own_name}:`"
                    ),
                ),
            }
        }

        // A quorum larger than the votes on a watched component could
        // never be reached: habeat would silently never act.
        // The votes come from the prober's own plan: a witness the
        // prober would not run (ICMP without an address, a Consul witness
        // without a hostname) is no vote, and witnesses of one source (the
        // two that read Serf) are one vote, as the engine counts them
        // (`one-source-one-vote`). A plan that cannot be made (a bad
        // address) has been reported above.
        if let (Quorum::AtLeast(n), Ok(plan)) =
            (cfg.detection.quorum, crate::config::witness_plan::plan(cfg))
        {
            for role in &local.roles {
                let c = role.watched_component();
                let votes = crate::config::witness_plan::votes(&plan, c);
                if n as usize > votes.len() {
                    let described: Vec<String> = votes.iter().map(|v| v.describe()).collect();
                    let described = if described.is_empty() {
                        "none".to_owned()
                    } else {
                        described.join("; ")
                    };
                    let serf = if votes.iter().any(|v| v.source.is_shared()) {
                        " (consul_members and consul_health both report the local Consul \
                         agent's Serf gossip: one source, one vote)"
                    } else {
                        ""
                    };
                    self.error(
                        self.marks.given("detection.quorum").unwrap_or(Pos::START),
                        format!(
                            "detection.quorum is {n}, but the {c} component has only {} \
                             independent vote(s): {described}{serf}; it could never be judged \
                             Down; ICMP needs its address, the Consul witnesses its hostname \
                             (vmname); lower the quorum, write `all`, or add probes",
                            votes.len()
                        ),
                    );
                }
            }
        }

        if !cfg.safety.quorum_gate {
            self.warn(
                self.marks.given("safety.quorum_gate").unwrap_or(Pos::START),
                "safety.quorum_gate is false: habeat will act on ping and Serf alone, and a \
                 network partition between the datacenters can make it promote while the \
                 primary is alive (split brain); set it to true unless you accept that",
            );
        }
        if cfg.lease.enabled && crate::config::serving_lease::lease_key(cfg).is_none() {
            self.warn(
                self.marks.given("lease.enabled").unwrap_or(Pos::START),
                format!(
                    "lease.enabled is true but this node holds no serving lease: only the \
                     primary side (local.whoami: primary, now `{}`) with the appserver or \
                     proxyserver role and its own {}.appserver_vmname set holds one",
                    cfg.local.whoami, cfg.local.whoami
                ),
            );
        }
        if cfg.safety.raft_recovery == super::super::RaftRecoveryPolicy::Timer
            && cfg.local.roles.contains(&Role::Consulserver)
        {
            self.warn(
                self.marks
                    .given("safety.raft_recovery")
                    .unwrap_or(Pos::START),
                "safety.raft_recovery is timer: the consulserver role recovers raft on \
                 recovery_grace alone, and an inter-DC link cut longer than that gives this \
                 side a Consul cluster of its own while the primary lives (split brain); set \
                 it to confirmed and add an arbiter (witnesses.command) or fencing.consul",
            );
        }
        if cfg.detection.timeout > cfg.detection.interval {
            self.warn(
                self.marks.given("detection.timeout").unwrap_or(Pos::START),
                format!(
                    "detection.timeout ({}) is longer than detection.interval ({}): probe \
                     rounds will be further apart than the interval says",
                    humantime::format_duration(cfg.detection.timeout),
                    humantime::format_duration(cfg.detection.interval)
                ),
            );
        }
    }
}
