//! "Did you mean ...?" for unknown keys and values.
//!
//! Operators edit habeat.yml by hand on a server at 3 a.m.; a typo such as
//! `deactvate` or `check_down_file` must point at the key they meant, not
//! just say "unknown".

/// The candidate closest to `word`, if it is close enough to be a likely
/// typo. Case, `_` and `-` are ignored when comparing, so `check_down_file`
/// finds `checkDownFile`.
pub fn nearest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let w = normalize(word);
    let mut best: Option<(usize, &'a str)> = None;
    for &c in candidates {
        let d = distance(&w, &normalize(c));
        if best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    let (d, c) = best?;
    let limit = (w.len() / 3).max(2);
    (d <= limit).then_some(c)
}

/// The tail of an "unknown ..." message: a suggestion, or the valid choices.
pub fn hint(word: &str, candidates: &[&str]) -> String {
    match nearest(word, candidates) {
        Some(c) => format!("did you mean `{c}`?"),
        None if candidates.is_empty() => "remove it".to_string(),
        None => format!("valid here: {}", candidates.join(", ")),
    }
}

fn normalize(s: &str) -> Vec<char> {
    s.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Levenshtein distance (inputs are short keys: quadratic is fine).
fn distance(a: &[char], b: &[char]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_their_key() {
        let keys = ["activate", "deactivate", "deativate"];
        assert_eq!(nearest("deactvate", &keys), Some("deactivate"));
        assert_eq!(
            nearest("check_down_file", &["checkDownFile", "threads"]),
            Some("checkDownFile")
        );
        assert_eq!(
            nearest("detecton", &["detection", "local"]),
            Some("detection")
        );
    }

    #[test]
    fn unrelated_words_get_no_suggestion() {
        assert_eq!(nearest("banana", &["local", "consul"]), None);
        assert_eq!(
            hint("banana", &["local", "consul"]),
            "valid here: local, consul"
        );
    }
}
