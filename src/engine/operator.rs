//! The reasons addressed to the operator: why a command of theirs was
//! refused for safety (exit 4), and why a pipeline stopped and needs them.
//! Data with one `Display` each, like the rest of [`super::reason`].

use super::kind::serde_kind;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Why the engine refused an operator's command for safety (exit 4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OperatorRefusal {
    /// `promote` while a witness sees the source appserver Up.
    SourceAppserverUp {
        witness: String,
        detail: String,
        host: String,
    },
    /// `recover --peer-dc-lost` while a witness sees a peer Consul server Up.
    PeerConsulUp { witness: String, detail: String },
    /// `recover --peer-dc-lost` with no witness of the peer Consul servers
    /// (`dc`: the peer datacenter's section).
    NoConsulWitness { dc: String },
    /// `recover --peer-dc-lost` while the local Consul agent answers with a
    /// leader: raft still has a quorum, and a one-side peers.json would
    /// drop the voters it counts on (in 1 + 1 + 1, the third site's).
    LocalLeader,
    /// `recover --peer-dc-lost` after raft was recovered (until `rearm`).
    RaftRecovered { pipeline: u64 },
    /// `recover --peer-dc-lost` while a raft recovery is under way.
    RaftUnderWay { pipeline: u64 },
    /// `reprotect` while no witness sees the destination's appserver Up.
    DestinationNotUp { host: String, detail: String },
}

impl OperatorRefusal {
    /// The stable name of the variant (`status --json`'s `refusal.kind`).
    pub fn kind(&self) -> String {
        serde_kind(self)
    }
}

impl fmt::Display for OperatorRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OperatorRefusal::SourceAppserverUp {
                witness,
                detail,
                host,
            } => write!(
                f,
                "refused: witness {witness} sees the source appserver {host} up ({detail}); \
                 promoting now would split mail between two datacenters. Use --force only if \
                 you know it is gone"
            ),
            OperatorRefusal::PeerConsulUp { witness, detail } => write!(
                f,
                "refused: witness {witness} sees a peer Consul server up ({detail}); recovering \
                 raft now would give this side a Consul cluster of its own beside a live one \
                 (split brain). This is a partition, not a lost datacenter"
            ),
            OperatorRefusal::NoConsulWitness { dc } => write!(
                f,
                "refused: no witness observes the peer Consul servers (is {dc}.consul_ips \
                 set?): nothing shows they are gone"
            ),
            OperatorRefusal::LocalLeader => write!(
                f,
                "refused: the local Consul agent reports a raft leader, so Consul still has a \
                 quorum and needs no recovery; writing peers.json now would drop the servers \
                 that quorum counts on. If the failover is stuck, `habeat status` says why"
            ),
            OperatorRefusal::RaftRecovered { pipeline } => write!(
                f,
                "refused: raft recovery was already done (pipeline {pipeline}); run `habeat \
                 rearm` first if it must run again"
            ),
            OperatorRefusal::DestinationNotUp { host, detail } => write!(
                f,
                "refused: no witness sees the appserver of {host} Up ({detail}); a replica can \
                 only be seeded onto a mailstore that is back. Run `habeat reprotect` again \
                 when `habeat status` shows the peer appserver Up"
            ),
            OperatorRefusal::RaftUnderWay { pipeline } => {
                write!(
                    f,
                    "refused: raft recovery (pipeline {pipeline}) is under way"
                )
            }
        }
    }
}

/// Why a step was given up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GiveUp {
    /// It failed as often as it may; `error` is its last failure, as the
    /// command or the executor reported it.
    Failed { error: String },
    /// habeat stopped during it too many times.
    Interrupted,
    /// A promotion record without its source (cannot happen; stop rather
    /// than guess).
    NoSource,
    /// An operator's promotion without `--force`, run again after its
    /// command, judged again as the command was and refused.
    Refused { refusal: OperatorRefusal },
}

impl fmt::Display for GiveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GiveUp::Failed { error } => f.write_str(error),
            GiveUp::Interrupted => f.write_str("it was interrupted too many times"),
            GiveUp::NoSource => f.write_str("the promotion record has no source"),
            GiveUp::Refused { refusal } => write!(f, "run again, it was {refusal}"),
        }
    }
}

/// Why a pipeline stopped and needs an operator: the step given up, why,
/// and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Stall {
    GaveUp {
        /// The step's name.
        step: String,
        cause: GiveUp,
        /// For a promotion, its source: the hint names the command.
        source_mail_host: Option<String>,
    },
    /// Recorded by an earlier build as a sentence, kept as it was.
    Recorded { text: String },
}

impl fmt::Display for Stall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stall::GaveUp {
                step,
                cause,
                source_mail_host,
            } => {
                write!(f, "step \"{step}\" gave up: {cause}; operator needed: ")?;
                match source_mail_host {
                    Some(h) => write!(
                        f,
                        "promote by hand (`habeat promote --source-mail-host {h} --force`) or, \
                         if you handled it, `habeat rearm`"
                    ),
                    None => f.write_str("handle it by hand, then `habeat rearm`"),
                }
            }
            Stall::Recorded { text } => f.write_str(text),
        }
    }
}

impl<'de> Deserialize<'de> for Stall {
    /// The typed record, or the sentence an earlier build of this release
    /// wrote in its place (`state.json` keeps loading).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Stall, D::Error> {
        #[derive(Deserialize)]
        #[serde(tag = "kind", rename_all = "snake_case")]
        enum Typed {
            GaveUp {
                step: String,
                cause: GiveUp,
                #[serde(default)]
                source_mail_host: Option<String>,
            },
            Recorded {
                text: String,
            },
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Sentence(String),
            Typed(Typed),
        }
        Ok(match Repr::deserialize(d)? {
            Repr::Sentence(text) => Stall::Recorded { text },
            Repr::Typed(Typed::GaveUp {
                step,
                cause,
                source_mail_host,
            }) => Stall::GaveUp {
                step,
                cause,
                source_mail_host,
            },
            Repr::Typed(Typed::Recorded { text }) => Stall::Recorded { text },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stall_saved_as_a_sentence_by_an_earlier_build_still_loads_and_reads_the_same() {
        let old = "step \"promote accounts\" gave up: exit 1; operator needed: handle it";
        let s: Stall = serde_json::from_value(serde_json::json!(old)).expect("sentence loads");
        assert_eq!(s, Stall::Recorded { text: old.into() });
        assert_eq!(s.to_string(), old);
    }

    #[test]
    fn a_typed_stall_round_trips_and_says_each_clause_once() {
        let s = Stall::GaveUp {
            step: "promote accounts".into(),
            cause: GiveUp::Failed {
                error: "exit status 1: Unable to communicate with server".into(),
            },
            source_mail_host: Some("mbox1.example.com".into()),
        };
        let v = serde_json::to_value(&s).expect("serializes");
        assert_eq!(v["kind"], "gave_up");
        assert_eq!(v["cause"]["kind"], "failed");
        let back: Stall = serde_json::from_value(v).expect("loads");
        assert_eq!(back, s);
        assert_eq!(
            s.to_string(),
            "step \"promote accounts\" gave up: exit status 1: Unable to communicate with \
             server; operator needed: promote by hand (`habeat promote --source-mail-host \
             mbox1.example.com --force`) or, if you handled it, `habeat rearm`"
        );
    }

    #[test]
    fn an_operator_refusal_has_a_kind_and_its_sentence() {
        let r = OperatorRefusal::RaftUnderWay { pipeline: 4 };
        assert_eq!(r.kind(), "raft_under_way");
        assert_eq!(
            r.to_string(),
            "refused: raft recovery (pipeline 4) is under way"
        );
    }
}
