//! The consulserver role's raft recovery: when it may run, and which of
//! this DC's servers the new raft configuration lists.

use super::action::{LockKind, Origin};
use super::event::{EventKind, Severity};
use super::kind::PipelineKind;
use super::machine::{Cx, Next, Scope, Slot};
use super::reason::{Idle, OperatorRefusal, PeerReturnedWarning, RaftWait};
use super::record::{Pipeline, Step};
use crate::model::{
    Component, Observation, RaftRecoveryPolicy, RaftServer, Role, Verdict, Vote, WitnessKind,
};

impl Cx<'_> {
    /// Whether raft recovery may run by itself now, or why not
    /// (`no-raft-recovery-on-time-alone`): every peer Consul server Down,
    /// no local leader for `recovery_grace`, and, unless
    /// `safety.raft_recovery: timer`, a third vantage point agreeing.
    pub(crate) fn raft_ready(&self) -> Result<(), RaftWait> {
        let verdict = self.s.verdict(Component::Consul);
        if verdict != Verdict::Down {
            return Err(RaftWait::PeerServersNot { verdict });
        }
        let Some(since) = self.s.raft.leaderless_since else {
            return Err(RaftWait::LocalLeaderPresent);
        };
        if !self
            .clock
            .window_left(
                since,
                self.s.raft.leaderless_since_boot,
                self.cfg.recovery_grace,
            )
            .is_zero()
        {
            return Err(RaftWait::Grace {
                leaderless_since: since,
                grace: self.cfg.recovery_grace,
            });
        }
        if self.cfg.raft_recovery == RaftRecoveryPolicy::Operator {
            return Err(RaftWait::OperatorOnly {
                leaderless_since: since,
            });
        }
        // The third vantage points: the arbiter (a command witness of the
        // consul component) voting Down, or fencing.consul, whose step
        // then opens the pipeline and must confirm every server OFF
        // before anything is stopped or written.
        if self.arbiter_says_down() || self.consul_fenced() {
            return Ok(());
        }
        if self.cfg.command_witness {
            // Time never stands in for the arbiter's Down vote.
            return Err(RaftWait::ArbiterDisagrees);
        }
        match self.cfg.raft_recovery {
            RaftRecoveryPolicy::Timer => Ok(()),
            _ => Err(RaftWait::Unconfirmed {
                leaderless_since: since,
            }),
        }
    }

    fn consul_fenced(&self) -> bool {
        self.cfg.fencing.contains_key(&Component::Consul)
    }

    fn arbiter_says_down(&self) -> bool {
        self.s.witnesses.iter().any(|w| {
            w.witness.component == Component::Consul
                && w.witness.kind == WitnessKind::Command
                && w.vote == Vote::Down
        })
    }

    pub(super) fn consulserver_start(&mut self) -> Next {
        if let Err(wait) = self.raft_ready() {
            let unconfirmed = match wait {
                RaftWait::Unconfirmed { leaderless_since }
                | RaftWait::OperatorOnly { leaderless_since } => Some(leaderless_since),
                // The arbiter cannot be heard (Unknown): no confirmation either.
                RaftWait::ArbiterDisagrees => self.s.raft.leaderless_since,
                _ => None,
            };
            if let Some(leaderless_since) = unconfirmed
                && self.s.raft.unreachable_reported != Some(leaderless_since)
            {
                self.s.raft.unreachable_reported = Some(leaderless_since);
                self.event(
                    Severity::Warning,
                    EventKind::PeerDcUnreachable { leaderless_since },
                    Some(Role::Consulserver),
                    format!("peer datacenter unreachable: {wait}"),
                );
            }
            return Next::Idle(Idle::RaftNotReady { wait });
        }
        let p = self.new_pipeline(
            PipelineKind::RaftRecovery,
            "every peer Consul server is Down, this side has had no leader for \
             recovery_grace, and a third vantage point agrees: recover raft with this DC's \
             servers",
            self.raft_steps(true),
        );
        self.s.role_mut(Role::Consulserver).failover = Some(p.clone());
        self.continue_pipeline(Role::Consulserver, Slot::Failover, p, Scope::Round)
    }

    /// The steps of a raft recovery. An automatic one with fencing.consul
    /// starts by confirming every peer server OFF; the operator's does
    /// not (the operator vouches for the loss, and the fence device may
    /// well be in the lost DC).
    fn raft_steps(&self, automatic: bool) -> Vec<Step> {
        let fence = automatic
            .then(|| super::pipeline::fence_step(self.cfg, Component::Consul))
            .flatten();
        fence
            .into_iter()
            .chain([
                Step::RaftRecovery {
                    servers: self.surviving_servers(),
                },
                Step::ConfirmLeader,
                Step::WriteLocks {
                    locks: vec![LockKind::Down, LockKind::Promotion],
                },
            ])
            .collect()
    }

    /// `habeat recover --peer-dc-lost`: refused while any witness of the
    /// fresh round sees a peer Consul server Up, while the local agent
    /// reports a leader (raft has its quorum), or when the round did not
    /// observe the peer servers at all; otherwise the raft recovery steps, as the
    /// operator's, and every role's retry wait cleared so that the
    /// failover goes on through the gate at the next round.
    pub(super) fn recover_peer_dc_lost(
        &mut self,
        evidence: &[Observation],
        local_leader: Option<bool>,
    ) {
        let role = Role::Consulserver;
        let refuse = |cx: &mut Self, why: OperatorRefusal| {
            cx.event(
                Severity::Error,
                EventKind::Refused,
                Some(role),
                why.to_string(),
            );
            cx.refusal = Some(why);
        };
        let consul: Vec<&Observation> = evidence
            .iter()
            .filter(|o| o.witness.component == Component::Consul)
            .collect();
        if let Some(up) = consul.iter().find(|o| o.vote == Vote::Up) {
            let why = OperatorRefusal::PeerConsulUp {
                witness: up.witness.to_string(),
                detail: up.reason.clone(),
            };
            return refuse(self, why);
        }
        if local_leader == Some(true) {
            return refuse(self, OperatorRefusal::LocalLeader);
        }
        if consul.is_empty() {
            let dc = self.cfg.dc_check.clone();
            return refuse(self, OperatorRefusal::NoConsulWitness { dc });
        }
        if let Some(p) = &self.s.role(role).failover
            && p.kind == PipelineKind::RaftRecovery
        {
            let why = if p.is_finished() {
                OperatorRefusal::RaftRecovered { pipeline: p.id }
            } else {
                OperatorRefusal::RaftUnderWay { pipeline: p.id }
            };
            return refuse(self, why);
        }
        let id = self.new_pipeline_id();
        let steps = self.raft_steps(false);
        let p = Pipeline {
            id,
            kind: PipelineKind::RaftRecovery,
            origin: Origin::Operator,
            started_at: self.now,
            reason: "the operator confirmed the peer datacenter is lost \
                     (`habeat recover --peer-dc-lost`): recover raft with this DC's servers"
                .into(),
            promotion: None,
            steps: self.steps(steps),
            stalled: None,
            finished_at: None,
        };
        self.s.role_mut(role).failover = Some(p);
        // The failover waits for this recovery, not for its retry timers.
        for r in self.s.roles.values_mut() {
            r.retry_at = None;
            r.retry_reason = None;
        }
        self.event(
            Severity::Warning,
            EventKind::Decision { reason: None },
            Some(role),
            format!(
                "the operator confirmed the peer datacenter is lost: raft recovery (pipeline \
                 {id}) starts now"
            ),
        );
    }

    /// After a raft recovery, a peer Consul server answering again (any
    /// witness of the consul component votes Up) is an event, once: it
    /// must be wiped and rejoined, not restarted with its old data.
    pub(super) fn watch_returning_servers(&mut self) {
        if self.s.raft.recovered_at.is_none() || self.s.raft.peer_returned_at.is_some() {
            return;
        }
        let Some(w) = self
            .s
            .witnesses
            .iter()
            .find(|w| w.witness.component == Component::Consul && w.vote == Vote::Up)
            .map(|w| w.witness.clone())
        else {
            return;
        };
        self.s.raft.peer_returned_at = Some(self.now);
        self.event(
            Severity::Error,
            EventKind::PeerConsulReturned { witness: w.clone() },
            Some(Role::Consulserver),
            format!("{} (witness {w} votes Up)", PeerReturnedWarning),
        );
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
