//! The engine's view of the effective configuration.
//!
//! The conversion lives on the config side so that `src/engine/` never
//! imports `config` (which reads files and holds the token): the engine
//! sees plain values, argv lists instead of [`HookCommand`]s.

use super::{Config, HookCommand};
use crate::engine::{EngineConfig, FencePlan};
use crate::model::Component;

impl From<&Config> for EngineConfig {
    fn from(cfg: &Config) -> EngineConfig {
        let mut e = EngineConfig::new(&cfg.local.whoami, &cfg.local.dc_check, &cfg.local.roles);
        let peer = cfg.dcs.get(&cfg.local.dc_check);
        let own = cfg.own();
        e.is_primary = cfg.is_primary();
        e.fall = cfg.detection.fall.max(1);
        e.rise = cfg.detection.rise.max(1);
        e.serf_fall = cfg.detection.serf_fall.max(1);
        e.serf_rise = cfg.detection.serf_rise().max(1);
        e.quorum = cfg.detection.quorum;
        e.set_timing(
            cfg.detection.interval,
            cfg.detection.timeout,
            cfg.carbonio.command_timeout,
        );
        e.source_mail_host = peer.and_then(|d| d.appserver_vmname.clone());
        e.peer_proxy_host = peer.and_then(|d| d.proxyserver_vmname.clone().or(d.proxy_ip.clone()));
        e.threads = cfg.local.threads.max(1);
        e.disable_ha_module = cfg.local.disable_ha_module;
        e.flush_cache = cfg.local.flush_cache;
        e.flush_all_servers = cfg.local.flush_arguments_a;
        e.restart_replica = cfg.local.restart_replica;
        e.proxy_enable_activate = cfg.local.proxy_enable_activate;
        e.proxy_enable_deactivate = cfg.local.proxy_enable_deactivate;
        if let Some(tool) = own.and_then(|d| d.proxy_switch.get(&cfg.local.proxy_switch)) {
            e.proxy_activate = argvs(&tool.activate);
            e.proxy_deactivate = argvs(&tool.deactivate);
        }
        e.after_promotion = argvs(&cfg.hooks.after_promotion);
        e.on_peer_recovered = argvs(&cfg.hooks.on_peer_recovered);
        e.quorum_gate = cfg.safety.quorum_gate;
        e.recovery_grace = cfg.safety.recovery_grace;
        e.promotion_block = cfg.safety.promotion_block;
        e.rearm = cfg.safety.rearm;
        e.at_risk = cfg.replicas.at_risk;
        e.reprotect = cfg.replicas.reprotect;
        e.own_mail_host = own.and_then(|d| d.appserver_vmname.clone());
        e.command_witness = !cfg.witnesses.command.is_empty();
        e.raft_recovery = cfg.safety.raft_recovery;
        e.own_consul_hosts = own.map(|d| d.consul_vmnames.clone()).unwrap_or_default();
        e.peer_consul_hosts = peer.map(|d| d.consul_vmnames.clone()).unwrap_or_default();
        for c in [Component::Appserver, Component::Proxy, Component::Consul] {
            if let Some(t) = cfg.fencing.target(c) {
                e.fencing.insert(
                    c,
                    FencePlan {
                        action: t.action,
                        // No plug: one call, for the node the agent
                        // addresses itself (`ip` is its BMC).
                        plugs: if t.plugs.is_empty() {
                            vec![String::new()]
                        } else {
                            t.plugs.clone()
                        },
                    },
                );
            }
        }
        e
    }
}

fn argvs(cmds: &[HookCommand]) -> Vec<Vec<String>> {
    cmds.iter().map(HookCommand::argv).collect()
}
