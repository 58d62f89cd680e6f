//! No test passes without doing its work. A test that lacks something of
//! the machine goes through `support::require` (a failure on CI, a loud
//! `SKIPPED` line elsewhere) and nothing else: these tests run that helper
//! in a child process both ways, and read the sources of every test for
//! another way to return early, print a skip or read `CI`, and `.ci/` for
//! the packages and the `CI=true` that make CI skip nothing.

use crate::support::Need;
use std::path::{Path, PathBuf};
use std::process::Command;

const ABSENT: Need = Need::Program {
    name: "/nonexistent/habeat-test-absent-program",
    package: "habeat-test-absent-package",
};

#[test]
#[ignore = "run by a_missing_need_fails_on_ci_and_skips_loudly_elsewhere in a child"]
fn child_lacks_a_program() {
    if !crate::support::require(&[Need::Root, ABSENT]) {
        return;
    }
    panic!("require found {ABSENT:?}");
}

/// The child test above, in this test binary, with `CI` set to `ci` (or
/// unset): its exit status and what it wrote.
fn run_child(ci: Option<&str>) -> (bool, String) {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut cmd = Command::new(exe);
    // Not --nocapture: the SKIPPED line must show through libtest's
    // capture of a passing test.
    cmd.args([
        "--exact",
        "test_guards::child_lacks_a_program",
        "--ignored",
        "--test-threads=1",
    ]);
    match ci {
        Some(v) => cmd.env("CI", v),
        None => cmd.env_remove("CI"),
    };
    let out = cmd.output().expect("run the test binary");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn a_missing_need_fails_on_ci_and_skips_loudly_elsewhere() {
    for ci in ["true", "1", "yes"] {
        let (passed, text) = run_child(Some(ci));
        assert!(!passed, "CI={ci}: a test lacking a program passed:\n{text}");
        assert!(
            text.contains("test_guards::child_lacks_a_program cannot run here and CI must not skip it")
                && text.contains("/nonexistent/habeat-test-absent-program is not installed (install the habeat-test-absent-package package)"),
            "CI={ci}: the failure names the test, the program and its package:\n{text}"
        );
        assert!(!text.contains("SKIPPED"), "CI={ci}:\n{text}");
    }
    for ci in [None, Some(""), Some("false"), Some("0")] {
        let (passed, text) = run_child(ci);
        assert!(passed, "CI={ci:?}: a skip is not a failure:\n{text}");
        assert!(
            text.contains("SKIPPED test_guards::child_lacks_a_program: ")
                && text.contains("/nonexistent/habeat-test-absent-program is not installed"),
            "CI={ci:?}: the skip is said, past the capture of a passing test:\n{text}"
        );
    }
}

/// Every `.rs` file under `tests/`.
fn test_sources() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).expect("read a tests directory") {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests"),
        &mut out,
    );
    out.sort();
    assert!(out.len() > 50, "found only {} test sources", out.len());
    out
}

/// `src` without comments, its string and char literals replaced by
/// `""`/`' '` (their text kept aside, in order), line breaks kept: what
/// is left is code, to look for `return` and braces in.
fn code_of(src: &str) -> (String, Vec<String>) {
    let c: Vec<char> = src.chars().collect();
    let (mut code, mut strings) = (String::new(), Vec::new());
    let mut i = 0;
    // Only the line breaks of what is left out: line numbers stay true.
    let blank = |s: &[char], code: &mut String| {
        code.extend(s.iter().filter(|ch| **ch == '\n'));
    };
    while i < c.len() {
        let rest = &c[i..];
        if rest.starts_with(&['/', '/']) {
            let end = rest.iter().position(|ch| *ch == '\n').unwrap_or(rest.len());
            blank(&rest[..end], &mut code);
            i += end;
        } else if rest.starts_with(&['/', '*']) {
            let end = (2..rest.len())
                .find(|&k| rest[k - 1] == '*' && rest[k] == '/')
                .map_or(rest.len(), |k| k + 1);
            blank(&rest[..end], &mut code);
            i += end;
        } else if rest[0] == '"'
            || (rest[0] == 'r' && matches!(rest.get(1), Some('"' | '#')))
            || (rest[0] == 'b' && rest.get(1) == Some(&'"'))
        {
            // Plain, byte or raw string (with its hashes).
            let start = rest.iter().position(|ch| *ch == '"').expect("a quote");
            let hashes = rest[..start].iter().filter(|ch| **ch == '#').count();
            let raw = rest[0] == 'r';
            let mut k = start + 1;
            while k < rest.len() {
                if !raw && rest[k] == '\\' {
                    k += 2;
                    continue;
                }
                if rest[k] == '"'
                    && rest[k + 1..]
                        .iter()
                        .take(hashes)
                        .filter(|h| **h == '#')
                        .count()
                        == hashes
                {
                    break;
                }
                k += 1;
            }
            let end = (k + 1 + hashes).min(rest.len());
            strings.push(rest[start + 1..k.min(rest.len())].iter().collect());
            code.push_str("\"\"");
            blank(&rest[2.min(end)..end], &mut code);
            i += end;
        } else if rest[0] == '\'' && (rest.get(1) == Some(&'\\') || rest.get(2) == Some(&'\'')) {
            // A char literal (a lifetime has no closing quote after one char).
            let end = (2..rest.len())
                .find(|&k| rest[k] == '\'')
                .map_or(rest.len(), |k| k + 1);
            code.push_str("' '");
            blank(&rest[3.min(end)..end], &mut code);
            i += end;
        } else if c[i].is_alphanumeric() || c[i] == '_' {
            // A whole word, so that the `r` or `b` ending an identifier is
            // never read as a raw or byte string's prefix.
            let end = rest
                .iter()
                .position(|ch| !(ch.is_alphanumeric() || *ch == '_'))
                .unwrap_or(rest.len());
            code.extend(&rest[..end]);
            i += end;
        } else {
            code.push(c[i]);
            i += 1;
        }
    }
    (code, strings)
}

/// The bodies of the test functions of `code` that run by default (not
/// `#[ignore]`d): (name, byte offset of the body's `{`, of its `}`).
fn test_bodies(code: &str) -> Vec<(String, usize, usize)> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = ["#[test]", "#[tokio::test"]
        .iter()
        .filter_map(|m| code[from..].find(m).map(|k| from + k))
        .min()
    {
        let fn_at = at
            + code[at..]
                .find("fn ")
                .expect("a test attribute before a fn");
        let ignored = code[at..fn_at].contains("#[ignore");
        let name: String = code[fn_at + 3..]
            .chars()
            .take_while(|ch| ch.is_alphanumeric() || *ch == '_')
            .collect();
        let open = fn_at + code[fn_at..].find('{').expect("a fn body");
        let mut depth = 0;
        let mut close = open;
        for (k, ch) in b.iter().enumerate().skip(open) {
            match ch {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        close = k;
                        break;
                    }
                }
                _ => {}
            }
        }
        if !ignored {
            out.push((name, open, close));
        }
        from = close.max(at + 1);
    }
    out
}

/// The head of the block that holds byte `at`: the code between the end
/// of the statement before it and the `{` that opens it.
fn block_head(code: &str, body_open: usize, at: usize) -> &str {
    let b = code.as_bytes();
    let mut depth = 0;
    let mut k = at;
    while k > body_open {
        k -= 1;
        match b[k] {
            b'}' => depth += 1,
            b'{' if depth == 0 => {
                let start = code[body_open..k]
                    .rfind([';', '{', '}'])
                    .map_or(body_open, |s| body_open + s + 1);
                return &code[start..k];
            }
            b'{' => depth -= 1,
            _ => {}
        }
    }
    ""
}

#[test]
fn no_test_returns_early_prints_a_skip_or_reads_ci_except_through_require() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut wrong = Vec::new();
    for path in test_sources() {
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .display()
            .to_string();
        if rel == "tests/support/need.rs" || rel == "tests/it/test_guards.rs" {
            continue;
        }
        let src = std::fs::read_to_string(&path).expect("read a test source");
        let (code, strings) = code_of(&src);
        let line = |at: usize| code[..at].matches('\n').count() + 1;
        for (name, open, close) in test_bodies(&code) {
            let body = &code[open..close];
            let mut from = 0;
            while let Some(k) = body[from..].find("return") {
                let at = open + from + k;
                from += k + 6;
                let word_before = code[..at]
                    .chars()
                    .next_back()
                    .is_some_and(|ch| ch.is_alphanumeric() || ch == '_');
                let after = code[at + 6..].trim_start();
                if word_before || !after.starts_with(';') {
                    continue;
                }
                let head = block_head(&code, open, at);
                if !head.contains("require(") {
                    wrong.push(format!(
                        "{rel}:{}: test {name} returns early without `support::require` (in `{}`)",
                        line(at),
                        head.split_whitespace().collect::<Vec<_>>().join(" ")
                    ));
                }
            }
        }
        // The text a print macro starts with (its literal is blanked in
        // `code`: the n-th `""` is the n-th string).
        for (k, _) in code
            .match_indices("print!(")
            .chain(code.match_indices("println!("))
        {
            let Some(lit) = code[k..].find("\"\"") else {
                continue;
            };
            let s = &strings[code[..k + lit].matches("\"\"").count()];
            if s.to_lowercase().contains("skip") {
                wrong.push(format!(
                    "{rel}:{}: prints a skip of its own: \"{s}\"",
                    line(k)
                ));
            }
        }
        for m in ["var(\"CI\")", "var_os(\"CI\")"] {
            if src.contains(m) {
                wrong.push(format!("{rel}: reads CI itself ({m})"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "a test may go without what it needs only through support::require \
         (tests/support/need.rs), which fails on CI and says SKIPPED elsewhere:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_guard_finder_sees_a_silent_skip() {
    let src = r##"
#[test]
fn silent() {
    if !std::path::Path::new("/usr/sbin/x").exists() {
        eprintln!("skipped: x is missing {}", '}');
        return;
    }
}
#[tokio::test(flavor = "multi_thread")]
async fn loud() {
    if !require(&[Need::Netns]) {
        return;
    }
    let f = |x: u8| -> u8 { x };
    let _ = r#"return;"#;
}
#[test]
#[ignore = "a helper"]
fn helper() {
    let Ok(_) = std::env::var("HELPER") else {
        return;
    };
}
"##;
    let (code, strings) = code_of(src);
    let bodies = test_bodies(&code);
    let names: Vec<&str> = bodies.iter().map(|(n, ..)| n.as_str()).collect();
    assert_eq!(names, ["silent", "loud"]);
    let heads: Vec<(String, String)> = bodies
        .iter()
        .flat_map(|(name, open, close)| {
            let code = &code;
            code[*open..*close]
                .match_indices("return;")
                .map(move |(k, _)| {
                    (
                        name.clone(),
                        block_head(code, *open, open + k).trim().to_owned(),
                    )
                })
        })
        .collect();
    assert_eq!(
        heads,
        [
            (
                "silent".to_owned(),
                "if !std::path::Path::new(\"\").exists()".to_owned()
            ),
            ("loud".to_owned(), "if !require(&[Need::Netns])".to_owned()),
        ]
    );
    let print = code.find("eprintln!(").expect("the print");
    let lit = print + code[print..].find("\"\"").expect("its text");
    assert_eq!(
        strings[code[..lit].matches("\"\"").count()],
        "skipped: x is missing {}"
    );
}

/// `.ci/run` runs the tests with `CI=true` (sudo drops the runner's own),
/// and `.ci/deps` installs the package of every need a test may name.
#[test]
fn ci_sets_ci_and_installs_every_need() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let run = std::fs::read_to_string(root.join(".ci/run")).expect("read .ci/run");
    let export = run
        .lines()
        .position(|l| l.trim() == "export CI=true")
        .expect(".ci/run has a line `export CI=true`");
    let test = run
        .lines()
        .position(|l| l.trim_start().starts_with("cargo test"))
        .expect(".ci/run runs cargo test");
    assert!(
        export < test,
        ".ci/run exports CI=true after its cargo test"
    );

    let deps = std::fs::read_to_string(root.join(".ci/deps")).expect("read .ci/deps");
    for n in Need::ALL {
        for p in n.packages() {
            assert!(
                deps.contains(&format!("need+=({p})")),
                ".ci/deps does not install {p}, which {n:?} needs"
            );
        }
    }
}
