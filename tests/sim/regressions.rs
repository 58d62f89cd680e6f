//! The minimal histories in which the simulator found defects 1 to 3 of
//! "Safety at the seams" on the main of that day, and defects 4 to 6 (a
//! record of "nothing lives here" from before a failback, an operator's
//! promotion run again after the heal, an operator's promotion beside a
//! primary holding its lease) later, kept as data
//! (not as seeds, so that tuning the schedule's probabilities does not
//! change them). Each test fails while its defect is present.
//!
//! When a fix adds an observation to the lease machine (directory
//! evidence, the fence hook's completion), `keeper.rs` must feed it as
//! the real keeper does, or these cases go on failing.

use super::schedule::{Fails, Fault, Schedule, Setup, Shape};
use super::{run, system::Stats};

fn setup(quorum_gate: bool, fencing: bool) -> Setup {
    Setup {
        lease: true,
        quorum_gate,
        fencing,
        rearm_auto: true,
    }
}

fn case(seed: u64, setup: Setup, secs: u64, faults: Vec<(u64, Fault)>) -> Schedule {
    Schedule {
        seed,
        setup,
        secs,
        faults,
    }
}

fn holds(s: &Schedule) -> Stats {
    let o = run(s, true);
    if let Some(v) = o.violation {
        panic!(
            "{v}\nhistory:\n{s}trace:\n  {}\nreplay: cargo test --test engine sim::regressions:: -- --nocapture",
            o.trace.join("\n  ")
        );
    }
    o.stats
}

/// Defect 1, with `promote --force`: every Consul server alone, the
/// primary fences itself; the operator promotes on the secondary (no
/// quorum gate, so `habeat/failover/<host>` keeps its `LockIndex`); the
/// partition heals, the primary takes its lease again, reads the
/// unchanged index and unfences beside the promoted accounts.
/// Found as seed 22 (the 23rd seed scanned).
#[test]
fn defect_1_unfence_after_a_forced_promotion() {
    let s = case(
        22,
        setup(true, false),
        400,
        vec![
            (
                253,
                Fault::Partition {
                    shape: Shape::AllApart,
                    secs: 68,
                },
            ),
            (268, Fault::Promote { force: true }),
        ],
    );
    let st = holds(&s);
    assert_eq!(st.manual_promotions, 1, "the operator's promotion ran");
}

/// Defect 1, with `safety.quorum_gate: false`: the same partition, an
/// automatic promotion that takes no gate (and cannot read the lease, so
/// goes on without it, as documented); after the heal the primary
/// unfences.
#[test]
fn defect_1_unfence_after_a_promotion_without_the_gate() {
    let s = case(
        12,
        setup(false, false),
        400,
        vec![(
            222,
            Fault::Partition {
                shape: Shape::AllApart,
                secs: 28,
            },
        )],
    );
    let st = holds(&s);
    assert_eq!(st.auto_promotions, 1, "the automatic promotion ran");
}

/// Defect 1, when the directory is the evidence: every server alone, the
/// primary fences, the operator promotes; the primary and the arbiter come
/// back (the lease too) while the link between the DCs stays cut, so the
/// primary DC's directory replica has not seen the promotion yet. An
/// unfence on that replica's word serves beside the promoted accounts.
/// Found as seed 22 against the branch `lease-evidence` (5e80da1) with
/// `keeper.rs` answering its `ReadDirectory` from the primary's replica.
#[test]
fn defect_1_unfence_on_a_stale_directory_replica() {
    let s = case(
        22,
        setup(true, false),
        400,
        vec![
            (
                253,
                Fault::Partition {
                    shape: Shape::AllApart,
                    secs: 68,
                },
            ),
            (
                254,
                Fault::Partition {
                    shape: Shape::InterDc,
                    secs: 81,
                },
            ),
            (268, Fault::Promote { force: true }),
        ],
    );
    let st = holds(&s);
    assert_eq!(st.manual_promotions, 1, "the operator's promotion ran");
}

/// Defect 2, by SIGTERM: the primary, cut from the Consul majority,
/// fences itself; habeat is stopped while `hooks.on_fence` runs (its
/// `lease.json` already says fenced) and restarted: the hook never runs
/// again, the routes stay up, and the secondary promotes once the lease
/// lapsed. Found as seed 47 (the 48th seed scanned; this is its history,
/// made smaller by hand).
#[test]
fn defect_2_stopped_during_the_fence_hook() {
    let st = holds(&fence_hook_cut(true));
    assert!(st.lease_fenced >= 1, "the primary fenced itself");
}

/// Defect 2, by kill -9 (systemd restarts habeat 5 s later): the same.
#[test]
fn defect_2_killed_during_the_fence_hook() {
    let st = holds(&fence_hook_cut(false));
    assert_eq!(st.fence_hooks_interrupted, 1, "the kill hit the fence hook");
    assert!(st.lease_fenced >= 1, "the owed fence ran after the restart");
}

fn fence_hook_cut(sigterm: bool) -> Schedule {
    case(
        47,
        setup(true, false),
        300,
        vec![
            (
                61,
                Fault::Partition {
                    shape: Shape::IsolatePrimary,
                    secs: 70,
                },
            ),
            (
                71,
                Fault::KillPrimary {
                    at_io: 0,
                    sigterm,
                    down: if sigterm { 3 } else { 5 },
                },
            ),
        ],
    )
}

/// Defect 3: a promotion pipeline recorded with no fencing configured
/// waits for the primary's lease; a reload adds `fencing.appserver`; the
/// retry promotes with no fence step. Found as seed 65 (the 66th seed
/// scanned).
#[test]
fn defect_3_fencing_added_by_a_reload() {
    let s = case(
        65,
        setup(true, false),
        200,
        vec![
            (
                44,
                Fault::Partition {
                    shape: Shape::IsolatePrimary,
                    secs: 48,
                },
            ),
            (
                77,
                Fault::Reload {
                    quorum_gate: true,
                    fencing: true,
                },
            ),
        ],
    );
    let st = holds(&s);
    assert!(
        st.fenced_off >= 1,
        "the primary is fenced before the promotion"
    );
}

/// Defect 4: the operator promotes with `--force` while the primary
/// serves (the link up), so the record the primary takes while serving
/// says no account lives on its host. The operator fails back and removes
/// `lease.json`; the restarted habeat fences at once (its previous
/// session still holds the key, then its lock-delay) and never serves.
/// Every server alone, a second `promote --force`; at the heal the
/// primary takes its lease back, reads the failover key unchanged (a
/// forced promotion never takes it) and, on the record from before the
/// failback, unfenced within two seconds. Found as seed 870.
#[test]
fn defect_4_unfence_on_a_record_from_before_the_failback() {
    let s = case(
        870,
        setup(true, false),
        560,
        vec![
            (125, Fault::Promote { force: true }),
            (377, Fault::FailBack),
            (
                390,
                Fault::Partition {
                    shape: Shape::AllApart,
                    secs: 125,
                },
            ),
            (504, Fault::Promote { force: true }),
        ],
    );
    let st = holds(&s);
    assert_eq!(st.manual_promotions, 2, "both forced promotions ran");
    assert_eq!(st.stay_fenced, 1, "the second one is seen");
}

/// Defect 4, with the failback and the cut at the same second: the
/// restarted habeat never reaches Consul, so it cannot even renew once
/// before it fences. Found as seed 932.
#[test]
fn defect_4_failback_into_a_partition() {
    let s = case(
        932,
        setup(true, false),
        730,
        vec![
            (58, Fault::Promote { force: true }),
            (601, Fault::FailBack),
            (
                601,
                Fault::Partition {
                    shape: Shape::AllApart,
                    secs: 92,
                },
            ),
            (690, Fault::Promote { force: true }),
        ],
    );
    let st = holds(&s);
    assert_eq!(st.manual_promotions, 2, "both forced promotions ran");
    assert_eq!(st.stay_fenced, 1, "the second one is seen");
}

/// Defect 4, the gate off and a promotion retried by the daemon: after
/// the failback the primary fences at once and unfences on the empty
/// record as soon as its key is free; cut off again, it fences; at the
/// next lease back (through the arbiter, while a cut of the secondary
/// withdrew the primary's sighting of it) it unfenced on the empty record
/// a second before the operator's `promote --force`, retried by the
/// daemon, landed. Found as seed 2318.
#[test]
fn defect_4_unfence_as_a_retried_promotion_lands() {
    let s = case(
        2318,
        Setup {
            lease: true,
            quorum_gate: false,
            fencing: false,
            rearm_auto: false,
        },
        844,
        vec![
            (
                280,
                Fault::Partition {
                    shape: Shape::PrimaryConsul,
                    secs: 68,
                },
            ),
            (
                544,
                Fault::KillPrimary {
                    at_io: 4,
                    sigterm: false,
                    down: 5,
                },
            ),
            (622, Fault::Promote { force: true }),
            (
                699,
                Fault::KillPrimary {
                    at_io: 4,
                    sigterm: true,
                    down: 5,
                },
            ),
            (763, Fault::Fail(Fails::Promote)),
            (783, Fault::FailBack),
            (811, Fault::Promote { force: true }),
            (
                813,
                Fault::Partition {
                    shape: Shape::IsolatePrimary,
                    secs: 18,
                },
            ),
            (
                834,
                Fault::Partition {
                    shape: Shape::IsolateSecondary,
                    secs: 143,
                },
            ),
        ],
    );
    let st = holds(&s);
    assert!(st.manual_promotions >= 2, "the retried promotion ran");
}

/// The failback the stays-fenced message asks for, after an automatic
/// promotion (which took `habeat/failover/<host>`): the restarted habeat
/// fences at once (its previous session holds the key) and, with no index
/// in the new `lease.json`, read the key's index as a promotion when its
/// lease came back: fenced for good again after every failback. Seen in
/// the traces, not a rule the simulation checks: the case asserts it.
#[test]
fn a_failback_after_an_automatic_promotion_unfences_once_its_lease_is_back() {
    let s = case(
        1,
        setup(true, false),
        420,
        vec![
            (
                40,
                Fault::Partition {
                    shape: Shape::IsolatePrimary,
                    secs: 100,
                },
            ),
            (300, Fault::FailBack),
        ],
    );
    let st = holds(&s);
    assert_eq!(st.auto_promotions, 1, "the automatic promotion ran");
    assert_eq!(
        st.stay_fenced, 1,
        "fenced for good once, before the failback"
    );
    assert_eq!(st.unfenced, 1, "unfenced after the failback");
}

/// Defect 5, the gate off: every Consul server alone; the operator's
/// `habeat promote` (without `--force`, the primary Down then) fails on its
/// listing; the daemon runs it again after the heal, when the witnesses see
/// the primary Up and the primary holds its lease again, and promoted the
/// accounts just as the primary unfenced. Run again, the operator's
/// promotion is judged again as its command was: refused, and dropped
/// (nothing was promoted). Found as seed 4277.
#[test]
fn defect_5_an_operators_promotion_run_again_after_the_heal() {
    let s = case(
        4277,
        setup(false, false),
        591,
        vec![
            (
                36,
                Fault::Partition {
                    shape: Shape::IsolateSecondary,
                    secs: 50,
                },
            ),
            (173, Fault::Fail(Fails::Listing)),
            (255, Fault::FailBack),
            (
                427,
                Fault::Partition {
                    shape: Shape::AllApart,
                    secs: 149,
                },
            ),
            (557, Fault::Promote { force: false }),
        ],
    );
    let st = holds(&s);
    assert_eq!(st.manual_promotions, 0, "the retry was refused");
}

/// Defect 5, the gate on: the operator's promotion fails in
/// promoteAccounts during a cut of every server and is run again after the
/// heal (the primary's lease held again, its witnesses Up): refused, and
/// stopped for the operator (an attempt had run). Found as seed 8322.
#[test]
fn defect_5_an_operators_promotion_failed_in_promote_accounts_run_again() {
    let s = case(
        8322,
        Setup {
            lease: true,
            quorum_gate: true,
            fencing: false,
            rearm_auto: false,
        },
        338,
        vec![
            (216, Fault::Fail(Fails::Promote)),
            (
                265,
                Fault::Partition {
                    shape: Shape::AllApart,
                    secs: 58,
                },
            ),
            (301, Fault::Promote { force: false }),
        ],
    );
    let st = holds(&s);
    assert_eq!(st.manual_promotions, 0, "the retry was refused");
}

/// Defect 6, the gate on: the link between the DCs cut, both still
/// reaching the arbiter. Every witness sees the primary Down, so the
/// operator's `habeat promote` (without `--force`) passes its command's
/// judgement, but the primary is alive and holds its serving lease through
/// the arbiter. Its first attempt carried no lease check and promoted
/// beside the serving primary. It now waits for the lease, and after the
/// heal the daemon's retry is judged again (the primary seen Up) and
/// refused. Found as seed 14.
#[test]
fn defect_6_an_operators_promotion_beside_a_primary_holding_its_lease() {
    let s = case(
        14,
        Setup {
            lease: true,
            quorum_gate: true,
            fencing: false,
            rearm_auto: false,
        },
        300,
        vec![
            (
                198,
                Fault::Partition {
                    shape: Shape::InterDc,
                    secs: 24,
                },
            ),
            (203, Fault::Promote { force: false }),
        ],
    );
    let st = holds(&s);
    assert_eq!(st.manual_promotions, 0, "nothing promoted beside the lease");
}

/// Defect 6, the gate off: the primary DC cut off from the rest, the
/// operator promotes a second later, before the primary's lease lapses.
/// The secondary still reaches the Consul majority, so the lease can be
/// read and the promotion must wait for it even without the gate; its
/// first attempt promoted at once. Now it lands once the primary has
/// fenced itself and its lease lapsed. Found as seed 2.
#[test]
fn defect_6_an_operators_promotion_before_the_lease_lapses_without_the_gate() {
    let s = case(
        2,
        Setup {
            lease: true,
            quorum_gate: false,
            fencing: true,
            rearm_auto: true,
        },
        300,
        vec![
            (
                113,
                Fault::Partition {
                    shape: Shape::IsolatePrimary,
                    secs: 139,
                },
            ),
            (114, Fault::Promote { force: false }),
        ],
    );
    let st = holds(&s);
    assert_eq!(st.manual_promotions, 1, "promoted once the lease lapsed");
    assert!(st.lease_fenced >= 1, "the primary fenced itself first");
}
