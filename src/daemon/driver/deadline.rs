//! The detection deadline (docs/decisions.md §1): a witness whose last
//! `fall − 1` probes went unanswered votes Down the instant its tolerance
//! runs out, so the engine is fed then ([`Input::Deadline`]), not when the
//! next round's probes have timed out. The run loop awaits the round's
//! probes beside [`SessionDriver::next_deadline`].

use super::{ActionJob, Chain, Ran, SessionDriver};
use crate::engine::Input;
use crate::session::Fed;
use crate::state::StateLock;

impl SessionDriver {
    /// When the engine's next detection deadline falls, as an instant of
    /// the run loop's clock; `None` when none runs or it was fed already
    /// (a deadline fed that settled nothing, because rounds were late, is
    /// not fed again: the next round decides).
    pub(super) fn next_deadline(&self) -> Option<tokio::time::Instant> {
        let at = self.engine_deadline()?;
        if self.deadline_fed == Some(at) {
            return None;
        }
        let left = at.since(crate::session::now());
        Some(tokio::time::Instant::now() + left)
    }

    /// The engine's next deadline with the probes now out: none between
    /// rounds (the probe a deadline judges has not gone out yet; the next
    /// round decides), none for a witness whose probe out has already
    /// been answered.
    fn engine_deadline(&self) -> Option<crate::engine::UnixMillis> {
        let live = crate::engine::Live {
            probes_out: Some(self.session.live.probes_out?),
            answered_out: self.answered_now(),
            ..Default::default()
        };
        crate::engine::next_deadline(&self.session.state, &live, &self.session.ecfg)
    }

    fn answered_now(&self) -> Vec<crate::model::WitnessId> {
        self.answered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Feed the deadline: under the chain's state lock while an action
    /// runs (the engine then only updates the verdicts), else under the
    /// state lock taken for it, and run what the engine hands out as a
    /// round would.
    pub(super) async fn feed_deadline(&mut self) -> Option<ActionJob<Ran>> {
        self.deadline_fed = self.engine_deadline();
        self.session.live.answered_out = self.answered_now();
        let mut fed = Fed::default();
        if self.chain.is_some() {
            match self.session.decide(Input::Deadline, &mut fed) {
                Ok(None) => {}
                Ok(Some(a)) => tracing::error!(
                    "the engine handed out {} while an action runs (a bug, please report); not \
                     running it",
                    a.kind.describe()
                ),
                Err(e) => tracing::error!("the detection deadline is not recorded: {e}"),
            }
            return None;
        }
        let dir = self.cfg.local.state_dir.clone();
        let lock = match tokio::task::spawn_blocking(move || {
            StateLock::acquire(&dir, super::ROUND_LOCK_WAIT)
        })
        .await
        {
            Ok(Ok(lock)) => lock,
            Ok(Err(e)) => {
                tracing::info!("not deciding at the detection deadline: {e}; the next round does");
                return None;
            }
            Err(e) => {
                tracing::error!("not deciding at the detection deadline: {e}");
                return None;
            }
        };
        let action = match self.session.decide(Input::Deadline, &mut fed) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!("the detection deadline is not recorded: {e}");
                self.hand_back("the action handed out at the detection deadline")
                    .await;
                return None;
            }
        };
        self.publish(&self.session.state, &self.session.live, &self.session.ecfg);
        let action = action?;
        self.chain = Some(Chain {
            _lock: lock,
            what: String::new(),
            steps: 0,
        });
        Some(self.run(action))
    }
}
