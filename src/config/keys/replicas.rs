//! `replicas:`: the replica survey and what a promotion does with accounts at risk.

use super::super::Replicas;
use super::super::out::{self};
use super::{Key, Kind, Table};

pub const REPLICAS: Table<Replicas> = Table {
    name: "replicas",
    keys: &[
        Key {
            name: "survey_interval",
            kind: Kind::Custom {
                ty: "duration, or `0`",
                read: |w, s, key, r| {
                    r.survey_interval = w.duration_or_zero(s, key, r.survey_interval)
                },
                show: |r| Some(out::d(r.survey_interval)),
            },
            doc: "how often, while the peer appserver is Up, to read `getAccountStatus mailHost <peer>` and classify each account's replica (ok, unavailable, no Kafka, paused, behind, no replica); a `check` surveys when the last survey is older. On the same interval, whatever the peer, `getAccountStatus mailHost <this DC's appserver_vmname>` finds the accounts on this DC's own mailstore with no replica that is available and reaches Kafka (unprotected: after a failover, every promoted account). `0`: never.",
        },
        Key {
            name: "at_risk",
            kind: Kind::Custom {
                ty: "`promote` or `hold`",
                read: |w, s, key, r| {
                    r.at_risk = w.choice(s, key, r.at_risk, super::super::AtRiskPolicy::CHOICES)
                },
                show: |r| Some(out::s(r.at_risk.as_str())),
            },
            doc: "`promote`: an automatic promotion moves every account and names those at risk; `hold`: it moves the others (`promoteAccounts input_file`) and leaves those at risk for the operator, named, with the `habeat promote --accounts ...` that moves them.",
        },
        Key {
            name: "reprotect",
            kind: Kind::Custom {
                ty: "`manual` or `auto`",
                read: |w, s, key, r| {
                    r.reprotect =
                        w.choice(s, key, r.reprotect, crate::model::ReprotectPolicy::CHOICES)
                },
                show: |r| Some(out::s(r.reprotect.as_str())),
            },
            doc: "`manual`: only `habeat reprotect` gives accounts a new replica. `auto`: the daemon does it by itself, once, when the peer appserver is Up again after a promotion (the promoted accounts get a replica on the returned mailstore, diverged accounts left out and named), and once per account the survey first finds without a replica on the peer's mailstore (it gets one on this DC's mailstore). Never while the peer appserver is Down or Unknown; every batch is journaled.",
        },
    ],
};
