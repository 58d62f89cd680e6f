//! The consulserver role's raft recovery: when it may run, and which of
//! this DC's servers the new raft configuration lists.

use super::action::LockKind;
use super::machine::{Cx, Next, Scope, Slot};
use super::reason::{Idle, RaftWait};
use super::record::{PipelineKind, Step};
use crate::model::{Component, RaftServer, Role, Verdict, Vote, WitnessKind};

impl Cx<'_> {
    /// Whether raft recovery may run now, or why not.
    pub(crate) fn raft_ready(&self) -> Result<(), RaftWait> {
        let verdict = self.s.verdict(Component::Consul);
        if verdict != Verdict::Down {
            return Err(RaftWait::PeerServersNot { verdict });
        }
        let Some(since) = self.s.raft.leaderless_since else {
            return Err(RaftWait::LocalLeaderPresent);
        };
        if self.now.since(since) < self.cfg.recovery_grace {
            return Err(RaftWait::Grace {
                leaderless_since: since,
                grace: self.cfg.recovery_grace,
            });
        }
        if self.cfg.command_witness {
            let agrees = self.s.witnesses.iter().any(|w| {
                w.witness.component == Component::Consul
                    && w.witness.kind == WitnessKind::Command
                    && w.vote == Vote::Down
            });
            if !agrees {
                return Err(RaftWait::ArbiterDisagrees);
            }
        }
        Ok(())
    }

    pub(super) fn consulserver_start(&mut self) -> Next {
        if let Err(wait) = self.raft_ready() {
            return Next::Idle(Idle::RaftNotReady { wait });
        }
        let servers = self.surviving_servers();
        let steps = vec![
            Step::RaftRecovery { servers },
            Step::ConfirmLeader,
            Step::WriteLocks {
                locks: vec![LockKind::Down, LockKind::Promotion],
            },
        ];
        let p = self.new_pipeline(
            PipelineKind::RaftRecovery,
            "every peer Consul server is Down and this side has had no leader for \
             recovery_grace: recover raft with this DC's servers",
            steps,
        );
        self.s.role_mut(Role::Consulserver).failover = Some(p.clone());
        self.continue_pipeline(Role::Consulserver, Slot::Failover, p, Scope::Round)
    }

    /// This DC's servers from the last healthy raft configuration: those
    /// named after this DC's `consul_vmnames`, or, when those are not
    /// configured, every server not named after the peer's.
    pub(super) fn surviving_servers(&self) -> Vec<RaftServer> {
        let Some(all) = &self.s.raft.last_healthy else {
            return Vec::new();
        };
        let matches = |node: &str, hosts: &[String]| {
            let stripped = node
                .strip_prefix("server-")
                .or_else(|| node.strip_prefix("agent-"))
                .unwrap_or(node);
            hosts.iter().any(|h| h.replace('.', "-") == stripped)
        };
        all.iter()
            .filter(|s| {
                if self.cfg.own_consul_hosts.is_empty() {
                    !matches(&s.node, &self.cfg.peer_consul_hosts)
                } else {
                    matches(&s.node, &self.cfg.own_consul_hosts)
                }
            })
            .cloned()
            .collect()
    }
}
