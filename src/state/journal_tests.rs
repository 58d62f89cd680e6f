//! The journal's own rules: the backward line reader against every line of a file.

use super::*;
use std::io::Write;

/// Every line of `content`, last first, with its offset, as [`RevLines`]
/// returns them, next to the same computed the plain way.
fn both_ways(content: &[u8]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("f");
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(content))
        .expect("write");
    let f = File::open(&path).expect("open");
    let mut rev = RevLines::new(&f, content.len() as u64);
    let mut got = Vec::new();
    while let Some(l) = rev.next().expect("read") {
        got.push((l.offset, l.bytes, l.unterminated));
    }
    let mut want = Vec::new();
    let body = content.strip_suffix(b"\n").unwrap_or(content);
    let mut offset = 0u64;
    if !content.is_empty() {
        for line in body.split(|b| *b == b'\n') {
            want.push((offset, line.to_vec(), false));
            offset += line.len() as u64 + 1;
        }
    }
    if let Some(last) = want.last_mut() {
        last.2 = !content.ends_with(b"\n");
    }
    want.reverse();
    assert_eq!(got.len(), want.len());
    assert!(got == want, "lines differ");
}

#[test]
fn lines_read_backwards_are_the_lines_across_chunk_boundaries() {
    both_ways(b"");
    both_ways(b"\n");
    both_ways(b"a\nbb\n\nccc\n");
    both_ways(b"a\nbb\nfragment");
    let long = vec![b'x'; 3 * CHUNK + 17];
    let mut content = Vec::new();
    for i in 0..50 {
        content.extend_from_slice(format!("line {i}\n").as_bytes());
        if i % 7 == 0 {
            content.extend_from_slice(&long);
            content.push(b'\n');
        }
    }
    both_ways(&content);
    content.extend_from_slice(&long);
    both_ways(&content);
}

#[test]
fn a_line_reader_resumes_across_pushes() {
    let mut r = LineReader::new(0);
    assert!(r.push(b"ab").is_empty());
    assert_eq!(r.push(b"c\n\nde\nf"), vec![b"abc".to_vec(), b"de".to_vec()]);
    assert_eq!(r.consumed(), 8);
    assert_eq!(r.into_partial(), b"f");
}
