//! `journal:`: the size and rotation of `events.jsonl`.

use super::super::Journal;
use super::super::out::{self};
use super::{Field, Key, Kind, Table};

pub const JOURNAL: Table<Journal> = Table {
    name: "journal",
    keys: &[
        Key {
            name: "max_size",
            kind: Kind::Custom {
                ty: "size (`64KiB`-`1TiB`)",
                read: |w, s, key, j| j.max_size = w.size(s, key, j.max_size),
                show: |j| Some(out::s(out::format_size(j.max_size))),
            },
            doc: "largest `events.jsonl` before it is rotated. A round's events are a few hundred bytes, a failover's a few KiB (more with many accounts: the promotion intent names each).",
        },
        Key {
            name: "keep",
            kind: Kind::Count {
                field: field!(keep),
                min: 1,
                max: Journal::MAX_KEEP,
            },
            doc: "rotated files kept: with the defaults at most 60 MiB in all. A lower value removes the files beyond it at the next rotation.",
        },
    ],
};
