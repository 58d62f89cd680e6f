//! `state_dir/events.jsonl`: append-only journal, one JSON event per line,
//! rotated by size into `events.jsonl.1` (the newest rotated file) up to
//! `events.jsonl.<keep>` (the oldest).
//!
//! Each append is fsync'd, so an event that was reported is on disk. A
//! crash can leave a truncated last line: reading tolerates it, and the
//! next append starts on a new line so it never glues onto the fragment.
//!
//! **Rotation** happens inside an append, before the batch that would take
//! the file past `max_size`: `.keep-1` → `.keep` (the oldest is dropped),
//! ..., `.1` → `.2`, then `events.jsonl` → `.1`, each a `rename`, then a new
//! `events.jsonl`. A rename moves a whole file or nothing, and every file
//! only ever moves one number up, so a crash between two renames leaves a
//! gap in the numbers (one file missing), never an event lost or a file
//! twice; the next rotation skips the gap, so it drops nothing that was
//! meant to be kept. (The only difference a crash makes: the file that had
//! not been renamed yet grows past `max_size` until the next rotation.)
//!
//! **Readers** take no lock: they open every file first, newest first
//! ([`Journal::snapshot`]), and then read from those descriptors, which a
//! rotation does not change. A rotation between two opens may show the
//! same file under two names; it is recognised by its inode and read once.
//! [`Snapshot::newest_first`] reads backwards in bounded memory (one chunk
//! plus the longest line), so `history` on a journal of any size costs the
//! same few MiB; [`Follower`] follows the journal across rotations.

use super::StateError;
use super::atomic::{NOFOLLOW, open_error, parent_dir, sync_dir};
use crate::engine::Event;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// How much is read at a time, backwards or forwards.
const CHUNK: usize = 64 * 1024;

/// The longest line read: an event longer than this (none is: the largest,
/// a promotion intent, names every account, some 3 MB for 100k accounts) is
/// skipped without being held in memory.
pub const MAX_LINE: usize = 64 * 1024 * 1024;

/// When the journal is rotated and how many rotated files stay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// An append that would take `events.jsonl` past this many bytes
    /// rotates it first.
    pub max_size: u64,
    /// Rotated files kept (`events.jsonl.1` ..= `events.jsonl.<keep>`).
    pub keep: u32,
}

impl Default for Rotation {
    fn default() -> Self {
        let d = crate::config::Journal::default();
        Rotation {
            max_size: d.max_size,
            keep: d.keep,
        }
    }
}

impl From<&crate::config::Journal> for Rotation {
    fn from(j: &crate::config::Journal) -> Self {
        Rotation {
            max_size: j.max_size,
            keep: j.keep,
        }
    }
}

/// The journal's name in `state_dir`: named here only; everything else
/// asks [`Journal::in_dir`] or [`Journal::of`].
pub const FILE: &str = "events.jsonl";

/// The event journal file.
#[derive(Debug, Clone)]
pub struct Journal {
    path: PathBuf,
    rotation: Rotation,
}

/// What [`Journal::read`] found.
#[derive(Debug, Clone, Default)]
pub struct JournalRead {
    /// Events in the order they were written.
    pub events: Vec<Event>,
    /// Complete lines that were not events (hand edits): skipped.
    pub skipped: usize,
    /// The last line was cut short (a crash while appending): ignored.
    pub truncated_tail: bool,
}

impl Journal {
    /// `state_dir/events.jsonl` as `cfg` rotates it.
    pub fn of(cfg: &crate::config::Config) -> Journal {
        Journal::with_rotation(
            &Journal::in_dir(&cfg.local.state_dir),
            (&cfg.journal).into(),
        )
    }

    /// Where the journal of the state directory `dir` is.
    pub fn in_dir(dir: &Path) -> PathBuf {
        dir.join(FILE)
    }

    /// The journal at `path` (normally [`Journal::in_dir`]) with the
    /// default rotation.
    pub fn new(path: &Path) -> Journal {
        Journal::with_rotation(path, Rotation::default())
    }

    /// The journal at `path`, rotated as `rotation` says.
    pub fn with_rotation(path: &Path, rotation: Rotation) -> Journal {
        Journal {
            path: path.to_owned(),
            rotation: Rotation {
                keep: rotation.keep.max(1),
                ..rotation
            },
        }
    }

    /// Where it is (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The `n`th rotated file (`events.jsonl.<n>`; 1 is the newest).
    pub fn rotated_path(&self, n: u32) -> PathBuf {
        let mut s = self.path.as_os_str().to_owned();
        s.push(format!(".{n}"));
        PathBuf::from(s)
    }

    /// Append events (one line each) and fsync, rotating first when they
    /// would take the file past `max_size`. habeat itself appends only
    /// through [`crate::sink::EventSink`], which hands each event to the
    /// `on_event` hooks too.
    pub fn append(&self, events: &[Event]) -> Result<(), StateError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for e in events {
            let line = serde_json::to_vec(e).map_err(|e| StateError::Encode {
                path: self.path.clone(),
                message: e.to_string(),
            })?;
            buf.extend_from_slice(&line);
            buf.push(b'\n');
        }
        let existing = match std::fs::symlink_metadata(&self.path) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(StateError::Symlink {
                    path: self.path.clone(),
                });
            }
            Ok(m) => Some(m.len()),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(StateError::io("inspect", &self.path, e)),
        };
        let mut created = existing.is_none();
        if let Some(len) = existing
            && len > 0
            && len.saturating_add(buf.len() as u64) > self.rotation.max_size
        {
            self.rotate()?;
            created = true;
        }
        // Never through a symlink: appending to whatever a planted link
        // names would be a write anywhere, as root.
        let mut f = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .custom_flags(NOFOLLOW)
            .mode(0o600)
            .open(&self.path)
            .map_err(|e| open_error("open", &self.path, e))?;
        if ends_without_newline(&f).map_err(|e| StateError::io("read", &self.path, e))? {
            buf.insert(0, b'\n');
        }
        f.write_all(&buf)
            .map_err(|e| StateError::io("append to", &self.path, e))?;
        f.sync_data()
            .map_err(|e| StateError::io("fsync", &self.path, e))?;
        if created {
            // The new file's name must survive a crash as its events do.
            sync_dir(parent_dir(&self.path))?;
        }
        Ok(())
    }

    /// Move `events.jsonl` to `.1`, each `.n` to `.n+1`, dropping what
    /// goes past `.keep` (and any file numbered beyond `keep`, left from a
    /// larger `keep`). Oldest first, so that each rename frees the name the
    /// next one takes; a name missing (a crash in an earlier rotation) is
    /// skipped.
    fn rotate(&self) -> Result<(), StateError> {
        let keep = self.rotation.keep;
        for n in (1..keep).rev() {
            let from = self.rotated_path(n);
            match std::fs::rename(&from, self.rotated_path(n + 1)) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(StateError::io("rotate", &from, e)),
            }
        }
        std::fs::rename(&self.path, self.rotated_path(1))
            .map_err(|e| StateError::io("rotate", &self.path, e))?;
        for (n, p) in self.rotated_files() {
            if n > keep {
                let _ = std::fs::remove_file(p);
            }
        }
        sync_dir(parent_dir(&self.path))
    }

    /// The rotated files present, by number.
    fn rotated_files(&self) -> Vec<(u32, PathBuf)> {
        let (Some(name), dir) = (self.path.file_name(), parent_dir(&self.path)) else {
            return Vec::new();
        };
        let prefix = format!("{}.", name.to_string_lossy());
        let mut out: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let file = e.file_name().to_string_lossy().into_owned();
                let n = file.strip_prefix(&prefix)?;
                if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || n.starts_with('0') {
                    return None;
                }
                Some((n.parse().ok()?, e.path()))
            })
            .collect();
        out.sort();
        out
    }

    /// Open every file of the journal, newest first (`events.jsonl`, then
    /// `.1`, `.2`, ...), without following a symlink; a file seen twice
    /// (moved by a rotation between two opens) is kept once.
    pub fn snapshot(&self) -> Result<Snapshot, StateError> {
        let mut files: Vec<JournalFile> = Vec::new();
        let mut add = |path: PathBuf| -> Result<(), StateError> {
            let file = match super::atomic::open_read(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(open_error("read", &path, e)),
            };
            let meta = file
                .metadata()
                .map_err(|e| StateError::io("inspect", &path, e))?;
            let id = (meta.dev(), meta.ino());
            if !files.iter().any(|f| f.id == id) {
                files.push(JournalFile {
                    path,
                    file,
                    id,
                    len: meta.len(),
                });
            }
            Ok(())
        };
        add(self.path.clone())?;
        // Numbers as far as any file goes, and one more: a file that moved
        // up while we opened the others is then still found.
        let highest = self
            .rotated_files()
            .last()
            .map_or(0, |(n, _)| *n)
            .max(self.rotation.keep);
        for n in 1..=highest.saturating_add(1) {
            add(self.rotated_path(n))?;
        }
        Ok(Snapshot {
            current_open: files.first().is_some_and(|f| f.path == self.path),
            files,
            path: self.path.clone(),
        })
    }

    /// Every event, oldest first, in memory: for tests and small journals.
    /// `habeat history` reads [`Snapshot::newest_first`] instead.
    pub fn read(&self) -> Result<JournalRead, StateError> {
        let snap = self.snapshot()?;
        let mut out = JournalRead::default();
        let mut back = snap.newest_first();
        for located in back.by_ref() {
            out.events.push(located?.event);
        }
        out.events.reverse();
        out.skipped = back.skipped;
        out.truncated_tail = back.truncated_tail;
        Ok(out)
    }
}

fn ends_without_newline(f: &File) -> std::io::Result<bool> {
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(false);
    }
    let mut last = [0u8; 1];
    f.read_exact_at(&mut last, len - 1)?;
    Ok(last[0] != b'\n')
}

/// One opened file of the journal.
#[derive(Debug)]
struct JournalFile {
    path: PathBuf,
    file: File,
    /// (device, inode): the same file under another name is the same file.
    id: (u64, u64),
    /// Its length when opened: what a snapshot reads.
    len: u64,
}

/// Every file of the journal, opened, newest first.
#[derive(Debug)]
pub struct Snapshot {
    files: Vec<JournalFile>,
    /// The journal's path (to follow it).
    path: PathBuf,
    /// Whether `files[0]` is the current `events.jsonl`.
    current_open: bool,
}

/// An event and where its line starts.
#[derive(Debug, Clone)]
pub struct Located {
    pub event: Event,
    /// Index in the snapshot's files (0 is the newest).
    pub file: usize,
    /// Byte offset of its line in that file.
    pub offset: u64,
}

impl Snapshot {
    /// The events, newest first, read backwards in bounded memory.
    pub fn newest_first(&self) -> Backward<'_> {
        Backward {
            snap: self,
            file: 0,
            lines: None,
            skipped: 0,
            truncated_tail: false,
        }
    }

    /// The events from the line at `offset` of file `file` (a
    /// [`Located`]'s) to the end of the newest file, oldest first, each
    /// handed to `each`. The newest file's last line is
    /// left out while it has no newline yet (a write in progress or a
    /// crash's fragment): [`Snapshot::follow`] continues from there.
    pub fn forward_from(
        &self,
        file: usize,
        offset: u64,
        mut each: impl FnMut(Event) -> std::io::Result<()>,
    ) -> std::io::Result<ForwardEnd> {
        let mut end = ForwardEnd::default();
        for i in (0..=file.min(self.files.len().saturating_sub(1))).rev() {
            let Some(f) = self.files.get(i) else {
                break;
            };
            let start = if i == file { offset } else { 0 };
            let mut reader = LineReader::new(start);
            let mut pos = start;
            while pos < f.len {
                let n = CHUNK.min((f.len - pos) as usize);
                let mut chunk = vec![0u8; n];
                f.file.read_exact_at(&mut chunk, pos)?;
                pos += n as u64;
                for line in reader.push(&chunk) {
                    match parse(&line) {
                        Some(e) => each(e)?,
                        None => end.skipped += 1,
                    }
                }
                end.skipped += reader.take_overlong();
            }
            if i == 0 {
                end.offset = reader.consumed();
                end.partial = reader.into_partial();
            }
            // An older file's unterminated last line is a crash's fragment.
        }
        Ok(end)
    }

    /// Where the newest file ends: to read or follow only what comes next.
    pub fn newest_end(&self) -> (usize, u64) {
        (0, self.files.first().map_or(0, |f| f.len))
    }

    /// Follow the journal from where [`Snapshot::forward_from`] ended.
    pub fn follow(mut self, end: ForwardEnd) -> Follower {
        let current = if self.current_open && !self.files.is_empty() {
            let f = self.files.swap_remove(0);
            Some((f.file, f.id))
        } else {
            None
        };
        Follower {
            path: self.path,
            current,
            reader: LineReader::resume(end.offset, end.partial),
            skipped: 0,
        }
    }
}

/// Where a forward read stopped in the newest file.
#[derive(Debug, Default)]
pub struct ForwardEnd {
    /// Bytes of the newest file consumed (complete lines).
    offset: u64,
    /// Its unterminated last line, if any.
    partial: Vec<u8>,
    /// Lines that were not events.
    pub skipped: usize,
}

/// [`Snapshot::newest_first`].
pub struct Backward<'a> {
    snap: &'a Snapshot,
    file: usize,
    lines: Option<RevLines<'a>>,
    /// Complete lines that were not events (hand edits, or longer than
    /// [`MAX_LINE`]): skipped.
    pub skipped: usize,
    /// The newest file's last line was cut short (a crash while
    /// appending): ignored.
    pub truncated_tail: bool,
}

impl Iterator for Backward<'_> {
    type Item = Result<Located, StateError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let f = self.snap.files.get(self.file)?;
            let lines = self
                .lines
                .get_or_insert_with(|| RevLines::new(&f.file, f.len));
            match lines.next() {
                Err(e) => return Some(Err(StateError::io("read", &f.path, e))),
                Ok(None) => {
                    self.skipped += lines.overlong;
                    self.lines = None;
                    self.file += 1;
                }
                Ok(Some(line)) => {
                    if line.bytes.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    match parse(&line.bytes) {
                        Some(event) => {
                            return Some(Ok(Located {
                                event,
                                file: self.file,
                                offset: line.offset,
                            }));
                        }
                        None if line.unterminated => {
                            self.truncated_tail |= self.file == 0;
                        }
                        None => self.skipped += 1,
                    }
                }
            }
        }
    }
}

fn parse(line: &[u8]) -> Option<Event> {
    serde_json::from_slice::<Event>(line).ok()
}

/// A line read backwards, and where it starts.
struct RevLine {
    bytes: Vec<u8>,
    offset: u64,
    /// The file's last line, without a newline after it.
    unterminated: bool,
}

/// The lines of the first `len` bytes of a file, last first, reading
/// [`CHUNK`] bytes at a time from the end: at most a chunk plus one line
/// ([`MAX_LINE`]) in memory, and every byte looked at once.
struct RevLines<'a> {
    file: &'a File,
    /// The chunk being scanned, read from file offset `cur_pos`; its bytes
    /// `[0, cur_end)` are not returned yet.
    cur: Vec<u8>,
    cur_pos: u64,
    cur_end: usize,
    /// The end of the line being assembled, in pieces, the last piece
    /// first (each an earlier chunk's start, which had no newline).
    pending: Vec<Vec<u8>>,
    pending_len: usize,
    /// `Some(unterminated)` until the first line is returned: whether the
    /// file's last line has no newline after it. `None` before the file's
    /// last byte was looked at.
    first: Option<bool>,
    /// Inside a line longer than [`MAX_LINE`]: dropping its bytes.
    skipping: bool,
    /// Lines dropped for their length.
    overlong: usize,
    len: u64,
    done: bool,
}

impl<'a> RevLines<'a> {
    fn new(file: &'a File, len: u64) -> RevLines<'a> {
        RevLines {
            file,
            cur: Vec::new(),
            cur_pos: len,
            cur_end: 0,
            pending: Vec::new(),
            pending_len: 0,
            first: None,
            skipping: false,
            overlong: 0,
            len,
            done: len == 0,
        }
    }

    fn next(&mut self) -> std::io::Result<Option<RevLine>> {
        if self.done {
            return Ok(None);
        }
        if self.first.is_none() {
            let mut last = [0u8; 1];
            self.file.read_exact_at(&mut last, self.len - 1)?;
            let terminated = last[0] == b'\n';
            if terminated {
                self.cur_pos -= 1;
            }
            self.first = Some(!terminated);
        }
        loop {
            let region = &self.cur[..self.cur_end];
            if let Some(i) = region.iter().rposition(|b| *b == b'\n') {
                let piece = region[i + 1..].to_vec();
                self.cur_end = i;
                let offset = self.cur_pos + i as u64 + 1;
                if std::mem::take(&mut self.skipping) {
                    continue; // the start of an overlong line: dropped
                }
                let bytes = self.assemble(piece);
                return Ok(Some(self.line(bytes, offset)));
            }
            // No newline: all of it belongs to the line being assembled.
            if !self.skipping && self.cur_end > 0 {
                self.pending.push(region.to_vec());
                self.pending_len += self.cur_end;
                if self.pending_len > MAX_LINE {
                    self.pending.clear();
                    self.pending_len = 0;
                    self.skipping = true;
                    self.overlong += 1;
                    self.first = Some(false);
                }
            }
            self.cur_end = 0;
            if self.cur_pos == 0 {
                self.done = true;
                if std::mem::take(&mut self.skipping) {
                    return Ok(None);
                }
                let bytes = self.assemble(Vec::new());
                return Ok(Some(self.line(bytes, 0)));
            }
            let n = CHUNK.min(self.cur_pos as usize);
            self.cur_pos -= n as u64;
            self.cur.resize(n, 0);
            self.file.read_exact_at(&mut self.cur, self.cur_pos)?;
            self.cur_end = n;
        }
    }

    /// The line that starts with `piece`, with the pieces of its end.
    fn assemble(&mut self, mut piece: Vec<u8>) -> Vec<u8> {
        piece.reserve(self.pending_len);
        for p in self.pending.drain(..).rev() {
            piece.extend_from_slice(&p);
        }
        self.pending_len = 0;
        piece
    }

    fn line(&mut self, bytes: Vec<u8>, offset: u64) -> RevLine {
        let unterminated = self.first.replace(false).unwrap_or(false);
        RevLine {
            bytes,
            offset,
            unterminated,
        }
    }
}

/// Complete lines out of a stream of bytes, in order, holding at most one
/// line ([`MAX_LINE`]) of an unfinished one.
#[derive(Debug)]
struct LineReader {
    /// Offset in the file of the first byte of `partial`.
    start: u64,
    partial: Vec<u8>,
    skipping: bool,
    overlong: usize,
}

impl LineReader {
    fn new(start: u64) -> LineReader {
        LineReader::resume(start, Vec::new())
    }

    fn resume(start: u64, partial: Vec<u8>) -> LineReader {
        LineReader {
            start,
            partial,
            skipping: false,
            overlong: 0,
        }
    }

    /// The complete lines `bytes` finishes (blank ones left out).
    fn push(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut rest = bytes;
        while let Some(i) = rest.iter().position(|b| *b == b'\n') {
            let (line, tail) = rest.split_at(i);
            rest = &tail[1..];
            if std::mem::take(&mut self.skipping) {
                self.start += line.len() as u64 + 1;
                continue;
            }
            let mut whole = std::mem::take(&mut self.partial);
            whole.extend_from_slice(line);
            self.start += whole.len() as u64 + 1;
            if !whole.iter().all(u8::is_ascii_whitespace) {
                out.push(whole);
            }
        }
        if self.skipping {
            self.start += rest.len() as u64;
        } else {
            self.partial.extend_from_slice(rest);
            if self.partial.len() > MAX_LINE {
                self.start += self.partial.len() as u64;
                self.partial = Vec::new();
                self.skipping = true;
                self.overlong += 1;
            }
        }
        out
    }

    fn take_overlong(&mut self) -> usize {
        std::mem::take(&mut self.overlong)
    }

    /// Bytes consumed as complete lines (or dropped), from the file's start.
    fn consumed(&self) -> u64 {
        self.start
    }

    fn into_partial(self) -> Vec<u8> {
        self.partial
    }
}

/// Follows `events.jsonl` like `tail -F`: new events as they are appended,
/// across rotations (the old file is read to its end, then the new one from
/// its start) and across a file truncated or replaced by hand.
#[derive(Debug)]
pub struct Follower {
    path: PathBuf,
    /// The file being followed and its (device, inode).
    current: Option<(File, (u64, u64))>,
    reader: LineReader,
    /// Lines that were not events.
    pub skipped: usize,
}

impl Follower {
    /// The events appended since the last call.
    pub fn poll(&mut self) -> Result<Vec<Event>, StateError> {
        let mut out = Vec::new();
        self.drain(&mut out)?;
        // Is the name still our file? (After a rotation it is a new one;
        // a crash between the renames may leave it missing for a while.)
        let now = match std::fs::symlink_metadata(&self.path) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(StateError::Symlink {
                    path: self.path.clone(),
                });
            }
            Ok(m) => Some(((m.dev(), m.ino()), m.len())),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(StateError::io("inspect", &self.path, e)),
        };
        match (&self.current, now) {
            (Some((_, id)), Some((now_id, len))) if *id == now_id => {
                if len < self.reader.consumed() {
                    // Truncated by hand: start again from its beginning.
                    self.reader = LineReader::new(0);
                    self.drain(&mut out)?;
                }
            }
            (_, Some(_)) => {
                // Rotated (or first created): what the old file got before
                // its rename is read above and now once more; then the new
                // file from its start.
                self.drain(&mut out)?;
                match super::atomic::open_read(&self.path) {
                    Ok(f) => {
                        let m = f
                            .metadata()
                            .map_err(|e| StateError::io("inspect", &self.path, e))?;
                        self.current = Some((f, (m.dev(), m.ino())));
                        self.reader = LineReader::new(0);
                        self.drain(&mut out)?;
                    }
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(open_error("read", &self.path, e)),
                }
            }
            (_, None) => {}
        }
        Ok(out)
    }

    /// Read the followed file from where we are to its end.
    fn drain(&mut self, out: &mut Vec<Event>) -> Result<(), StateError> {
        let Some((file, _)) = &self.current else {
            return Ok(());
        };
        let mut pos = self.reader.consumed() + self.reader.partial.len() as u64;
        let mut chunk = vec![0u8; CHUNK];
        loop {
            let n = file
                .read_at(&mut chunk, pos)
                .map_err(|e| StateError::io("read", &self.path, e))?;
            if n == 0 {
                break;
            }
            pos += n as u64;
            for line in self.reader.push(&chunk[..n]) {
                match parse(&line) {
                    Some(e) => out.push(e),
                    None => self.skipped += 1,
                }
            }
            self.skipped += self.reader.take_overlong();
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "journal_tests.rs"]
mod tests;
