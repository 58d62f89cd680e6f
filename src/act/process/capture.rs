//! A child's output streams as habeat keeps them: a bounded head and
//! the real end of each stream ([`Captured`]), read in the background
//! while the child runs ([`Reader`]), with every byte searched for the
//! sentences of [`Spec::watch_for`](super::Spec::watch_for) ([`Watch`]).

use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

/// How much of a stream's end is kept besides its head when it is longer
/// than `output_limit`: the end is where a CLI says how it finished.
pub const TAIL_KEEP: usize = 64 * 1024;

/// What was kept of one output stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captured {
    /// The first `output_limit` bytes: the whole stream when
    /// [`Captured::complete`].
    pub head: Vec<u8>,
    /// When the stream was longer than `output_limit`: its last bytes (at
    /// most [`TAIL_KEEP`]), after [`Captured::omitted`] dropped ones.
    pub tail: Vec<u8>,
    /// Bytes read but kept in neither head nor tail.
    pub omitted: u64,
}

impl Captured {
    /// True when `head` is everything that was read.
    pub fn complete(&self) -> bool {
        self.tail.is_empty() && self.omitted == 0
    }

    /// How many bytes were read.
    pub fn len(&self) -> u64 {
        (self.head.len() + self.tail.len()) as u64 + self.omitted
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What was kept, as text, with a note where bytes were left out.
    pub fn text(&self) -> String {
        let mut t = String::from_utf8_lossy(&self.head).into_owned();
        if !self.complete() {
            if self.omitted > 0 {
                t.push_str(&format!("\n[… {} bytes not kept …]\n", self.omitted));
            }
            t.push_str(&String::from_utf8_lossy(&self.tail));
        }
        t
    }

    pub(super) fn push(&mut self, bytes: &[u8], limit: usize) {
        let room = limit.saturating_sub(self.head.len());
        let (head, rest) = bytes.split_at(bytes.len().min(room));
        self.head.extend_from_slice(head);
        if rest.is_empty() {
            return;
        }
        self.tail.extend_from_slice(rest);
        // Trimmed in batches, so that keeping the end stays linear.
        if self.tail.len() >= 2 * TAIL_KEEP {
            let drop = self.tail.len() - TAIL_KEEP;
            self.tail.drain(..drop);
            self.omitted += drop as u64;
        }
    }

    pub(super) fn finish(&mut self) {
        if self.tail.len() > TAIL_KEEP {
            let drop = self.tail.len() - TAIL_KEEP;
            self.tail.drain(..drop);
            self.omitted += drop as u64;
        }
    }
}

/// The last `n` bytes of `b` as text, not starting inside a UTF-8
/// character; and whether anything was left out before them.
fn end_text(b: &[u8], n: usize) -> (String, bool) {
    let mut from = b.len().saturating_sub(n);
    let cut = from > 0;
    while from < b.len() && from > 0 && b[from] & 0xC0 == 0x80 {
        from += 1;
    }
    (String::from_utf8_lossy(&b[from..]).into_owned(), cut)
}

impl Captured {
    /// At most about the last `n` bytes of [`Captured::text`], and whether
    /// anything was left out before them.
    pub(super) fn last_text(&self, n: usize) -> (String, bool) {
        if self.complete() {
            return end_text(&self.head, n);
        }
        let (tail, tail_cut) = end_text(&self.tail, n);
        if tail_cut || self.tail.len() >= n {
            return (tail, true);
        }
        let (mut t, head_cut) = end_text(&self.head, n - self.tail.len());
        if self.omitted > 0 {
            t.push_str(&format!("\n[… {} bytes not kept …]\n", self.omitted));
        }
        t.push_str(&tail);
        (t, head_cut || self.omitted > 0)
    }
}

/// The sentences of [`Spec::watch_for`], matched over whole streams.
pub(super) struct Watch {
    finders: Vec<memchr::memmem::Finder<'static>>,
    /// Which have been seen (in any stream).
    seen: std::sync::Mutex<Vec<bool>>,
    /// The longest sentence, in bytes.
    longest: usize,
}

impl Watch {
    pub(super) fn new(sentences: &[String]) -> Watch {
        let sentences: Vec<&String> = sentences.iter().filter(|s| !s.is_empty()).collect();
        Watch {
            finders: sentences
                .iter()
                .map(|s| memchr::memmem::Finder::new(s.as_bytes()).into_owned())
                .collect(),
            seen: std::sync::Mutex::new(vec![false; sentences.len()]),
            longest: sentences.iter().map(|s| s.len()).max().unwrap_or(0),
        }
    }

    /// Look at `chunk`, the bytes of a stream after `carry` (the last
    /// `longest - 1` bytes before it, updated here), so that a sentence
    /// split between two reads is found too.
    pub(super) fn scan(&self, carry: &mut Vec<u8>, chunk: &[u8]) {
        if self.finders.is_empty() {
            return;
        }
        // Only the bytes around the boundary need joining: a sentence that
        // straddles it starts in `carry` and ends in the first
        // `longest - 1` bytes of `chunk`.
        let mut joint = std::mem::take(carry);
        let before = joint.len();
        joint.extend_from_slice(&chunk[..chunk.len().min(self.longest.saturating_sub(1))]);
        {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            for (f, seen) in self.finders.iter().zip(seen.iter_mut()) {
                if !*seen && (f.find(chunk).is_some() || (before > 0 && f.find(&joint).is_some())) {
                    *seen = true;
                }
            }
        }
        // The new carry: the last `longest - 1` bytes of the stream so far.
        let keep = self.longest.saturating_sub(1);
        if chunk.len() >= keep {
            joint.clear();
            joint.extend_from_slice(&chunk[chunk.len() - keep..]);
        } else {
            joint.truncate(before);
            joint.extend_from_slice(chunk);
            let drop = joint.len().saturating_sub(keep);
            joint.drain(..drop);
        }
        *carry = joint;
    }

    pub(super) fn seen(&self) -> Vec<String> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        self.finders
            .iter()
            .zip(seen.iter())
            .filter(|(_, s)| **s)
            .map(|(f, _)| String::from_utf8_lossy(f.needle()).into_owned())
            .collect()
    }
}

/// Where every chunk of a stream goes as it is read, besides the bounded
/// capture: a consumer that reads a listing of any length as it comes
/// ([`super::run_forwarding`]). Dropped at the end of the stream, which is
/// how the consumer learns it ended.
pub type Forward = tokio::sync::mpsc::Sender<Vec<u8>>;

/// Reads one output pipe in the background into a bounded head and tail
/// that outlive the task, so that what was read before a stop is kept,
/// and looks for the watched sentences in every byte it reads.
pub(super) struct Reader {
    task: tokio::task::JoinHandle<()>,
    got: std::sync::Arc<std::sync::Mutex<Captured>>,
}

impl Reader {
    pub(super) fn spawn<R: AsyncRead + Unpin + Send + 'static>(
        mut r: R,
        limit: usize,
        watch: std::sync::Arc<Watch>,
        mut forward: Option<Forward>,
    ) -> Reader {
        let got = std::sync::Arc::new(std::sync::Mutex::new(Captured::default()));
        let sink = got.clone();
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 8192];
            let mut carry = Vec::new();
            loop {
                match r.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        watch.scan(&mut carry, &buf[..n]);
                        // A consumer that stopped reading (it refused the
                        // output) no longer slows the pipe down: the rest
                        // is still read, kept as any output is.
                        if let Some(f) = &forward
                            && f.send(buf[..n].to_vec()).await.is_err()
                        {
                            forward = None;
                        }
                        sink.lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(&buf[..n], limit);
                    }
                }
            }
        });
        Reader { task, got }
    }

    /// True when every reader reached the end of its pipe within `wait`.
    pub(super) async fn all_done(readers: &mut [&mut Reader], wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        for r in readers.iter_mut() {
            if r.task.is_finished() {
                continue;
            }
            if tokio::time::timeout_at(deadline, &mut r.task)
                .await
                .is_err()
            {
                return false;
            }
        }
        true
    }

    /// Stop reading; what was read is kept.
    pub(super) fn stop(&mut self) {
        self.task.abort();
    }

    pub(super) fn take(self) -> Captured {
        self.task.abort();
        let mut c = std::mem::take(&mut *self.got.lock().unwrap_or_else(|p| p.into_inner()));
        c.finish();
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sentence_split_between_reads_is_seen() {
        let sentence = "Unable to communicate with server";
        let text = format!("{}{sentence}{}", "x".repeat(5000), "y".repeat(300));
        let bytes = text.as_bytes();
        // Every way of cutting the stream into reads of 1..=40 bytes, and
        // every single cut inside the sentence.
        for size in 1..=40 {
            let w = Watch::new(&[sentence.to_owned(), "zzz".to_owned()]);
            let mut carry = Vec::new();
            for chunk in bytes.chunks(size) {
                w.scan(&mut carry, chunk);
            }
            assert_eq!(w.seen(), [sentence], "reads of {size} bytes");
        }
        for cut in 5000..5000 + sentence.len() {
            let w = Watch::new(&[sentence.to_owned()]);
            let mut carry = Vec::new();
            w.scan(&mut carry, &bytes[..cut]);
            w.scan(&mut carry, &bytes[cut..]);
            assert_eq!(w.seen(), [sentence], "cut at {cut}");
        }
        let w = Watch::new(&[sentence.to_owned()]);
        let mut carry = Vec::new();
        for chunk in b"Unable to communicate with serve\nr".chunks(7) {
            w.scan(&mut carry, chunk);
        }
        assert!(w.seen().is_empty(), "not the sentence");
    }
}
