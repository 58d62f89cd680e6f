//! The switchover's pure machine (`habeat::switchover::machine`) against a
//! modelled world, on every path proptest finds: operations that fail
//! (whole or half done), replicas that catch up late or never, SIGTERM at
//! any step, kill -9 at any step followed by the restore every habeat runs
//! at start and `--resume`. Two properties (`switchover-never-loses`):
//! no account is promoted unless the last quiesced read showed its replica
//! with everything (and the world agrees), and no path ends with an
//! account in another status than the one it had.

use habeat::switchover::machine::{
    self, End, Input, Op, Position, Record, ReplicaAt, Settings, restored_after_crash, take_up,
    to_restore,
};
use proptest::prelude::*;
use std::collections::BTreeMap;

const FROM: &str = "mbox2.example.com";
const TO: &str = "mbox1.example.com";

/// The world the machine acts on.
struct World {
    status: BTreeMap<String, String>,
    host: BTreeMap<String, String>,
    /// Reads in maintenance before the replica has everything (`None`:
    /// never).
    lag: BTreeMap<String, Option<u8>>,
    /// The last positions read, per account: caught up or not, and
    /// whether it was in maintenance then.
    last_read: BTreeMap<String, (bool, bool)>,
    promoted_behind: Vec<String>,
    promoted_unquiesced_read: Vec<String>,
}

/// Random choices, consumed in order (zeros once used up).
struct Dice(Vec<u8>, usize);

impl Dice {
    fn roll(&mut self) -> u8 {
        let v = self.0.get(self.1).copied().unwrap_or(0);
        self.1 += 1;
        v
    }
    /// True with about `pct` percent (never once the dice are used up).
    fn chance(&mut self, pct: u8) -> bool {
        u16::from(self.roll()) * 100 / 256 >= 100 - u16::from(pct)
    }
}

impl World {
    fn caught_up(&self, a: &str) -> bool {
        self.status[a] == "maintenance" && self.lag[a] == Some(0)
    }

    fn run(&mut self, op: &Op, d: &mut Dice) -> Input {
        match op {
            Op::ReadStatuses { accounts, .. } => {
                if d.chance(10) {
                    return Input::Statuses(Err("zmprov failed".into()));
                }
                Input::Statuses(Ok(accounts
                    .iter()
                    .map(|a| (a.clone(), self.status[a].clone()))
                    .collect()))
            }
            Op::SetMaintenance { accounts, .. } => {
                let fail = d.chance(10);
                for a in accounts {
                    if !fail || d.chance(50) {
                        self.status.insert(a.clone(), "maintenance".into());
                    }
                }
                Input::MaintenanceSet(if fail {
                    Err("half done".into())
                } else {
                    Ok(())
                })
            }
            Op::ReadPositions { accounts, .. } => {
                if d.chance(10) {
                    return Input::Positions(Err("read failed".into()));
                }
                let mut out = Vec::new();
                for a in accounts {
                    let up = self.caught_up(a);
                    let quiet = self.status[a] == "maintenance";
                    self.last_read.insert(a.clone(), (up, quiet));
                    if quiet && let Some(Some(n)) = self.lag.get(a).copied() {
                        self.lag.insert(a.clone(), Some(n.saturating_sub(1)));
                    }
                    out.push(Position {
                        account: a.clone(),
                        mail_host: self.host[a].clone(),
                        source: (Some(100), Some(50)),
                        replica: Some(ReplicaAt {
                            sequence: Some(if up { 100 } else { 98 }),
                            item_id: Some(if up { 50 } else { 49 }),
                            available: true,
                            kafka: true,
                        }),
                    });
                }
                Input::Positions(Ok(out))
            }
            Op::Sleep { .. } => Input::Slept,
            Op::Promote { accounts, .. } => {
                let fail = d.chance(10);
                for a in accounts {
                    if fail && d.chance(50) {
                        continue;
                    }
                    if !self.caught_up(a) {
                        self.promoted_behind.push(a.clone());
                    }
                    if self.last_read.get(a) != Some(&(true, true)) {
                        self.promoted_unquiesced_read.push(a.clone());
                    }
                    self.host.insert(a.clone(), TO.into());
                }
                Input::Promoted(if fail {
                    Err("promotion failed".into())
                } else {
                    Ok(())
                })
            }
            Op::Locate { accounts, .. } => {
                if d.chance(10) {
                    return Input::Located(Err("read failed".into()));
                }
                Input::Located(Ok(accounts
                    .iter()
                    .map(|a| (a.clone(), self.host[a].clone()))
                    .collect()))
            }
            Op::Restore { statuses, .. } => {
                let fail = d.chance(15);
                for (a, s) in statuses {
                    if !fail || d.chance(50) {
                        self.status.insert(a.clone(), s.clone());
                    }
                }
                Input::Restored(if fail {
                    Err("zmprov failed".into())
                } else {
                    Ok(())
                })
            }
            Op::Reprotect { .. } => Input::Reprotected(if d.chance(10) {
                Err("setAccountDestination failed".into())
            } else {
                Ok(())
            }),
            Op::Finish(_) => Input::Start,
        }
    }

    /// What every habeat does first after a crash.
    fn restore_at_start(&mut self, rec: &mut Record) {
        for (i, statuses) in to_restore(rec) {
            for (a, s) in statuses {
                self.status.insert(a, s);
            }
            restored_after_crash(rec, i);
        }
        rec.pid = None;
    }
}

fn run_path(n: usize, wave: usize, lags: Vec<Option<u8>>, locked: Vec<bool>, dice: Vec<u8>) {
    let names: Vec<String> = (0..n).map(|i| format!("u{i}@example.com")).collect();
    let original: BTreeMap<String, String> = names
        .iter()
        .zip(&locked)
        .map(|(a, l)| (a.clone(), if *l { "locked" } else { "active" }.to_owned()))
        .collect();
    let mut w = World {
        status: original.clone(),
        host: names.iter().map(|a| (a.clone(), FROM.to_owned())).collect(),
        lag: names.iter().cloned().zip(lags).collect(),
        last_read: BTreeMap::new(),
        promoted_behind: Vec::new(),
        promoted_unquiesced_read: Vec::new(),
    };
    let mut d = Dice(dice, 0);
    let mut rec = machine::plan(
        0,
        FROM,
        TO,
        &names,
        Settings {
            wave,
            catch_up_timeout_ms: 5_000,
            reprotect: true,
            threads: 2,
        },
    );
    let mut now = 0u64;
    let mut input = Input::Start;
    let mut crashes = 0;
    let mut runs = 0;
    loop {
        now += 400;
        let mut op = machine::step(&mut rec, input, now);
        if !rec.stop_requested && !matches!(op, Op::Finish(_)) && d.chance(3) {
            op = machine::step(&mut rec, Input::Stop, now);
        }
        if crashes < 3 && !matches!(op, Op::Finish(_)) && d.chance(4) {
            // kill -9 before the operation runs (or after, half the time).
            if d.chance(50) {
                let _ = w.run(&op, &mut d);
            }
            crashes += 1;
            w.restore_at_start(&mut rec);
            take_up(&mut rec);
            input = Input::Start;
            continue;
        }
        if let Op::Finish(end) = &op {
            // The next habeat to start restores what is left.
            w.restore_at_start(&mut rec);
            runs += 1;
            if *end == End::Done || runs > 4 {
                break;
            }
            take_up(&mut rec);
            input = Input::Start;
            continue;
        }
        input = w.run(&op, &mut d);
        assert!(now < 10_000_000, "the switchover never ends");
    }
    assert_eq!(
        w.promoted_behind,
        Vec::<String>::new(),
        "promoted while behind"
    );
    assert_eq!(
        w.promoted_unquiesced_read,
        Vec::<String>::new(),
        "promoted without a quiesced read showing it caught up"
    );
    assert_eq!(w.status, original, "every status back exactly");
    assert!(
        to_restore(&rec).is_empty(),
        "nothing left to restore: {rec:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_promotion_behind_and_no_account_left_in_maintenance(
        n in 1usize..9,
        wave in 1usize..5,
        lags in proptest::collection::vec(proptest::option::weighted(0.9, 0u8..6), 9),
        locked in proptest::collection::vec(any::<bool>(), 9),
        dice in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        run_path(n, wave, lags, locked, dice);
    }
}

/// A replica that never catches up rolls its wave back; the waves before
/// it stay done, nothing of it is promoted.
#[test]
fn a_wave_that_never_catches_up_is_restored_and_not_promoted() {
    let names: Vec<String> = (0..4).map(|i| format!("u{i}@example.com")).collect();
    let mut rec = machine::plan(
        0,
        FROM,
        TO,
        &names,
        Settings {
            wave: 2,
            catch_up_timeout_ms: 3_000,
            reprotect: false,
            threads: 2,
        },
    );
    let mut w = World {
        status: names.iter().map(|a| (a.clone(), "active".into())).collect(),
        host: names.iter().map(|a| (a.clone(), FROM.to_owned())).collect(),
        lag: names
            .iter()
            .enumerate()
            .map(|(i, a)| (a.clone(), (i < 2).then_some(1)))
            .collect(),
        last_read: BTreeMap::new(),
        promoted_behind: Vec::new(),
        promoted_unquiesced_read: Vec::new(),
    };
    let mut d = Dice(Vec::new(), 0);
    let mut input = Input::Start;
    let mut now = 0;
    let end = loop {
        now += 1000;
        match machine::step(&mut rec, input, now) {
            Op::Finish(end) => break end,
            op => input = w.run(&op, &mut d),
        }
    };
    assert!(matches!(end, End::Failed { .. }), "{end:?}");
    assert_eq!(w.host["u0@example.com"], TO);
    assert_eq!(w.host["u1@example.com"], TO);
    assert_eq!(w.host["u2@example.com"], FROM);
    assert_eq!(w.host["u3@example.com"], FROM);
    assert!(w.status.values().all(|s| s == "active"));
}
