//! What the executor verifies right before it runs an action, decided here
//! from who asked for the action, what it does and the configuration, and
//! handed out with it ([`super::Action::checks`]): the executor carries the
//! checks out, in their order, and decides none of them.

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
