//! The fake `zmprov`: `fc [-a] account NAME`, `ga ACCOUNT [ATTR...]` and
//! `ma ACCOUNT zimbraAccountStatus VALUE`, one per process from argv or
//! many from standard input (batch mode).

use crate::Reply;
use crate::model;
use crate::state::State;

/// The values zmprov accepts for `zimbraAccountStatus`.
const STATUSES: [&str; 6] = [
    "active",
    "maintenance",
    "locked",
    "closed",
    "lockout",
    "pending",
];

/// Batch input as commands: one a line, words split at blanks, `"..."`
/// keeping blanks, `\` escaping the next character; blank lines and `#`
/// comments skipped.
pub fn lines(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(words)
        .collect()
}

fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut started = false;
    let mut quoted = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                cur.extend(chars.next());
                started = true;
            }
            '"' => {
                quoted = !quoted;
                started = true;
            }
            c if c.is_whitespace() && !quoted => {
                if started {
                    out.push(std::mem::take(&mut cur));
                    started = false;
                }
            }
            c => {
                cur.push(c);
                started = true;
            }
        }
    }
    if started {
        out.push(cur);
    }
    out
}

/// Batch mode: every command runs, in order, whatever the others did (as
/// zmprov does); the exit code is that of the last failure, 0 if none.
pub fn batch(st: &mut State, lines: &[Vec<String>]) -> Reply {
    let mut all = Reply::ok("");
    for l in lines {
        let r = command(st, l);
        all.out.push_str(&r.out);
        all.err.push_str(&r.err);
        if r.code != 0 {
            all.code = r.code;
        }
    }
    all
}

pub fn command(st: &mut State, args: &[String]) -> Reply {
    let rest: Vec<&str> = args.iter().map(String::as_str).collect();
    match rest.as_slice() {
        ["fc", "-a", cache, name] | ["fc", cache, name] => flush(st, cache, name),
        ["ga" | "getAccount", name, attrs @ ..] => get(st, name, attrs),
        ["ma" | "modifyAccount", name, "zimbraAccountStatus", value] => set_status(st, name, value),
        ["ma" | "modifyAccount", _, attr, ..] => Reply::fail(
            1,
            format!("zmprov: the fake sets only zimbraAccountStatus, not {attr}\n"),
        ),
        _ => Reply::fail(1, format!("zmprov: unsupported arguments {args:?}\n")),
    }
}

fn no_such(name: &str) -> Reply {
    Reply::fail(
        2,
        format!("ERROR: account.NO_SUCH_ACCOUNT (no such account: {name})\n"),
    )
}

fn flush(st: &State, cache: &str, name: &str) -> Reply {
    if cache != "account" {
        return Reply::fail(
            1,
            format!("ERROR: service.INVALID_REQUEST (invalid cache type {cache})\n"),
        );
    }
    if !st.accounts.iter().any(|a| a.name == name) {
        return no_such(name);
    }
    Reply::ok("")
}

/// zmprov's text form: a `# name` line, `attr: value` lines, a blank line;
/// attributes the account does not have are left out.
fn get(st: &State, name: &str, attrs: &[&str]) -> Reply {
    let Some(a) = st.accounts.iter().find(|a| a.name == name) else {
        return no_such(name);
    };
    let all = [
        ("zimbraAccountStatus", model::status(a)),
        ("zimbraId", a.id.as_str()),
        ("zimbraMailHost", a.mail_host.as_str()),
    ];
    let mut out = format!("# name {}\n", a.name);
    for (k, v) in all {
        if attrs.is_empty() || attrs.iter().any(|x| x.eq_ignore_ascii_case(k)) {
            out.push_str(&format!("{k}: {v}\n"));
        }
    }
    out.push('\n');
    Reply::ok(out)
}

fn set_status(st: &mut State, name: &str, value: &str) -> Reply {
    if !STATUSES.contains(&value) {
        return Reply::fail(
            1,
            format!(
                "ERROR: account.INVALID_ATTR_VALUE (zimbraAccountStatus must be one of: {})\n",
                STATUSES.join(",")
            ),
        );
    }
    let Some(a) = st.accounts.iter_mut().find(|a| a.name == name) else {
        return no_such(name);
    };
    a.status = Some(value.to_owned());
    Reply::ok("")
}
