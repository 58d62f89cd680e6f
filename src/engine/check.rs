//! What the executor verifies right before it runs an action, decided here
//! from who asked for the action, what it does and the configuration, and
//! handed out with it ([`super::Action::checks`]): the executor carries the
//! checks out, in their order, and decides none of them.

use super::action::{ActionKind, Origin};
use super::config::EngineConfig;
use crate::model::Component;
use serde::{Deserialize, Serialize};

/// One precondition the engine cannot see from its records, because it
/// lives in Consul and may have changed since the engine decided. The first
/// that fails is the action's outcome and the action does not run (nor
/// count as tried: the engine retries it). Each is idempotent and made
/// again at every attempt, so a kill -9 before or after it resumes
/// correctly (`resumable-steps`).
///
/// Their order, as [`PreStepCheck::for_action`] lists them:
///
/// 1. [`PreStepCheck::GateStillHeld`], `quorum-gate`: first, because
///    everything after it leans on it: the lease is taken over *with that
///    session*, and a side that has lost the gate has no proof it holds
///    the Consul majority.
/// 2. [`PreStepCheck::PeerLeaseTakenOver`], `lease-before-takeover`: after
///    the gate (it needs its session), and before the fence step of the
///    peer mailstore as before promoteAccounts: a primary that still holds
///    its lease is alive and reaches the Consul majority, so it is neither
///    powered off nor promoted away from.
/// 3. Then the fence, where `fencing.<component>` is set
///    (`fence-before-promotion`): not a check but a step of its own,
///    recorded, that the engine puts after the gate and before the
///    promotion (or the proxyserver's first switch command). Both checks
///    above run before it, so the peer is powered off only once the gate
///    and the lease are this side's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "check", rename_all = "snake_case")]
pub enum PreStepCheck {
    /// The quorum gate's Consul session is still ours: it may have been
    /// lost (invalidated, not renewed for a TTL) while an earlier step ran,
    /// and the lock may now be someone else's. Refused as
    /// `GateRefused`; the engine then takes the gate again.
    GateStillHeld,
    /// The serving lease `habeat/serving/<host>` of the peer mailstore is
    /// taken over by this side; else `PeerLeaseWait`.
    PeerLeaseTakenOver { host: String },
}

impl PreStepCheck {
    /// The checks of an action, in the order they run (see the type's doc).
    /// Operator and legacy actions get none: an operator's `promote` and
    /// `rearm` do not obey the gate.
    pub fn for_action(origin: Origin, kind: &ActionKind, cfg: &EngineConfig) -> Vec<PreStepCheck> {
        if origin != Origin::Automatic {
            return Vec::new();
        }
        let mut checks = Vec::new();
        if cfg.quorum_gate && kind.needs_gate() {
            checks.push(PreStepCheck::GateStillHeld);
        }
        // The promotion away from the host, and the power-off of its node
        // (`fencing.appserver`, the peer mailstore `source_mail_host` names).
        let leased = match kind {
            ActionKind::PromoteAccounts {
                source_mail_host, ..
            } => Some(source_mail_host.clone()),
            ActionKind::Fence {
                component: Component::Appserver,
                ..
            } => cfg.source_mail_host.clone(),
            _ => None,
        };
        if let Some(host) = leased {
            checks.push(PreStepCheck::PeerLeaseTakenOver { host });
        }
        checks
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Action, ActionId, PromoteTarget};
    use crate::model::Role;

    /// An in-flight action in a `state.json` written before the engine
    /// handed out checks (no `checks`, no `input_file`) still loads.
    #[test]
    fn an_action_saved_before_checks_were_handed_out_still_loads() {
        let action = Action {
            id: ActionId(7),
            role: Role::Appserver,
            origin: Origin::Automatic,
            step: None,
            kind: ActionKind::PromoteAccounts {
                source_mail_host: "mbox1".into(),
                target: PromoteTarget::Accounts(vec!["a@example.com".into()]),
                threads: 5,
                input_file: true,
            },
            checks: vec![PreStepCheck::GateStillHeld],
        };
        let mut old = serde_json::to_value(&action).expect("serialize");
        assert_eq!(old["checks"][0]["check"], "gate_still_held");
        assert_eq!(old["kind"]["input_file"], true);
        old.as_object_mut().expect("object").remove("checks");
        old["kind"]
            .as_object_mut()
            .expect("object")
            .remove("input_file");
        let back: Action = serde_json::from_value(old).expect("an old in-flight action loads");
        assert!(back.checks.is_empty());
        assert!(matches!(
            back.kind,
            ActionKind::PromoteAccounts {
                input_file: false,
                ..
            }
        ));
    }
}
