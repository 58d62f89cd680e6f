//! The decision engine: pure functions from (state, input, now, config) to
//! (new state, actions, journal events).
//!
//! Like quinn-proto's connection state machine, it performs no I/O, reads
//! no clock and draws no random number: the daemon, the timer run and the
//! manual `promote` feed it observation rounds, action outcomes and
//! operator commands, persist the state it returns, and run the actions it
//! hands out one at a time. That is what lets the tests replay thousands of
//! failure scenarios in seconds and check the safety invariants named in docs/ARCHITECTURE.md.
//!
//! The rules themselves are written for operators in `docs/decisions.md`.

mod action;
mod check;
mod config;
mod event;
mod gate;
mod ha_module;
mod kind;
mod legacy;
mod machine;
mod operator;
mod outcome;
mod pipeline;
mod plan;
mod promotion;
mod protection;
mod proxy;
mod raft;
mod rearm;
mod reason;
mod record;
mod reprotect;
mod time;
mod witness;

pub use action::{
    Action, ActionId, ActionKind, ActionOutcome, CommandPurpose, LockKind, Origin, OutcomeResult,
    PromoteTarget, StepRef,
};
pub use check::PreStepCheck;
pub use config::{EngineConfig, FencePlan, MAX_ATTEMPTS};
pub use event::{Event, EventKind, Severity};
pub use kind::PipelineKind;
pub use machine::{Input, Transition, step};
pub use plan::{Explanation, Next, Plan, RolePlan, plan, plan_live, plan_round, wants_more_rounds};
pub use promotion::follow_up_commands;
pub use protection::{
    AfterPromotion, DEFAULT_BATCH, DEFAULT_PRIORITY, Discard, Diverged, ReprotectRequest,
};
pub use rearm::promoted_from;
pub use reason::{
    Blocked, GateRefusal, GiveUp, Idle, OperatorRefusal, PEER_DC_LOST_HINT, PeerLeaseWait,
    PeerReturnedWarning, RaftWait, Stall, WaitOver, Waiting,
};
pub use record::Protection;
pub use record::{
    ComponentState, LastPromotion, LeaderWatch, Live, LockFileSeen, OperatorCommand, OperatorMark,
    Pause, Pipeline, PromotionDetails, RaftMemory, RoleState, STATE_VERSION, SafeHold, State, Step,
    StepState, StepStatus, WitnessState,
};
pub use reprotect::{Split, include_command, left_out_sentence, split};
pub use time::{BootId, BootTime, Now, UnixMillis};
pub use witness::next_deadline;
pub use witness::{SourceVote, observe, verdict, votes};
