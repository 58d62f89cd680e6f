//! The chain of actions the daemon runs: each action on a task of its
//! own with the executor lent to it, its outcome back to the engine in
//! [`SessionDriver`], the next action the same way, until the engine hands
//! out no more. Nothing here is shared: the executor passes to the task
//! and comes back in [`Ran`].

use super::SessionDriver;
use crate::daemon::run::ActionJob;
use crate::engine::{Action, Input, OutcomeResult};
use crate::exec::Executor;
use crate::session::{Fed, MAX_STEPS};
use crate::state::StateLock;

/// A chain of actions running: one action after the other, each on a task
/// of its own, until the engine hands out no more.
pub(super) struct Chain {
    /// `state_dir/lock`, held from the chain's first action to its end,
    /// so that no `check` or `promote` decides in between.
    pub(super) _lock: StateLock,
    /// The action running now, for STATUS.
    pub(super) what: String,
    /// Actions handed out so far in this chain ([`MAX_STEPS`] at most).
    pub(super) steps: usize,
}

/// Why an action has no outcome.
#[derive(Debug)]
pub enum Lost {
    /// The loop did not start it (habeat is stopping).
    NotStarted,
    /// It panicked (a bug); the message says where.
    Panicked(String),
}

/// What an action's job hands back: the executor it ran with, the action,
/// and its result.
pub struct Ran {
    pub(super) exec: Executor,
    pub(super) action: Action,
    pub(super) result: Result<OutcomeResult, Lost>,
}

impl SessionDriver {
    /// Run `action`, the next of the chain, on a task of its own with the
    /// executor, which comes back with its result in [`Ran`]. Every step
    /// is bounded by the executor (its own command, hook or Consul
    /// timeouts, and a backstop per step), so the job has no outer bound.
    pub(super) fn run(&mut self, action: Action) -> ActionJob<Ran> {
        let what = action.kind.describe();
        if let Some(c) = &mut self.chain {
            c.what.clone_from(&what);
            c.steps += 1;
        }
        let exec = self.session.lend_executor();
        let state_dir = self.cfg.local.state_dir.clone();
        ActionJob::holding(
            what,
            (exec, action),
            |(mut exec, action)| async move {
                let result =
                    catching(crate::session::run_action(&mut exec, &action, &state_dir)).await;
                Ran {
                    exec,
                    action,
                    result: result.map_err(Lost::Panicked),
                }
            },
            |(exec, action)| Ran {
                exec,
                action,
                result: Err(Lost::NotStarted),
            },
        )
    }

    /// The action running came back: feed its outcome to the engine, and
    /// run the next action of the chain, if it hands one out.
    pub(super) async fn next_of_chain(
        &mut self,
        what: &str,
        action: Action,
        result: OutcomeResult,
    ) -> Option<ActionJob<Ran>> {
        let mut fed = Fed::default();
        let next = self.session.outcome(action, result, &mut fed);
        self.record_fed(&fed);
        if fed.failed() {
            tracing::error!("{what}: an action failed; see `habeat history`");
        }
        match next {
            Err(e) => {
                tracing::error!("{what}: cannot save the state: {e}");
                self.hand_back(what).await;
                None
            }
            Ok(None) => {
                self.end_chain();
                None
            }
            Ok(Some(next)) if self.chain.as_ref().is_some_and(|c| c.steps >= MAX_STEPS) => {
                tracing::error!(
                    "stopped a chain after {MAX_STEPS} actions before: {}; the next round takes \
                     it up again",
                    next.kind.describe()
                );
                self.hand_back(what).await;
                None
            }
            Ok(Some(next)) => Some(self.run(next)),
        }
    }

    /// The one place where an action handed out is handed back without
    /// its outcome (it panicked, was not started, its outcome could not be
    /// saved, or its chain ran too long). Treated as a crash would be: the
    /// action is in doubt (the next input journals it as interrupted and
    /// the engine decides whether to run it again), and the quorum gate
    /// is given back, to be taken again if a step still needs it.
    pub(super) async fn hand_back(&mut self, what: &str) {
        if self.session.live.running_here.is_some() {
            tracing::warn!("{what}: no outcome recorded; the next round takes it as interrupted");
        }
        self.session.abandon_running().await;
        self.end_chain();
    }

    /// The chain is over: the state lock goes, and `/status` shows where
    /// it left things.
    pub(super) fn end_chain(&mut self) {
        self.chain = None;
        self.publish(&self.session.state, &self.session.live, &self.session.ecfg);
    }

    /// A round completed while an action runs: the engine sees it now
    /// (under the chain's state lock). With the action in flight it only
    /// updates the verdicts, so the outcome is decided on the latest
    /// rounds: a peer seen again during a listing or while the quorum gate
    /// is taken stops a promotion that has not begun
    /// (`no-promotion-beside-a-live-source`).
    pub(super) fn feed_round_while_running(&mut self, round: &crate::model::Round) {
        let mut fed = Fed::default();
        match self.session.decide(Input::Round(round.clone()), &mut fed) {
            Ok(None) => {}
            Ok(Some(a)) => tracing::error!(
                "the engine handed out {} while an action runs (a bug, please report); not \
                 running it",
                a.kind.describe()
            ),
            Err(e) => tracing::error!("this round is not recorded: {e}"),
        }
    }
}

/// `fut`, with a panic in it turned into `Err(message)`: the executor
/// it borrows comes back to the driver whatever happens, so that its
/// quorum gates are given back.
async fn catching<F: std::future::Future>(fut: F) -> Result<F::Output, String> {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::task::Poll;
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(
        move |cx| match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(p) => Poll::Ready(Err(p
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".to_owned()))),
        },
    )
    .await
}
