//! The sweep's record, `cells.jsonl`: one line per finished cell (a [`Row`]'s JSON), appended,
//! flushed and synced as the cell finishes. It is the only file a sweep's results live in:
//! `sweep.json` and `sweep.csv` are rebuilt from it after every cell, so a crash or a damaged
//! `sweep.json` costs nothing, and a crash in the middle of an append costs at most that cell
//! (the damaged last line is reported, kept in `cells.damaged`, and the cell runs again).
//! Cells of earlier grids stay in the record: a new grid adds to the folder.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::sweep::{Row, Sweep, key};
use crate::error::UsageError;
use crate::io::write::{crash_armed, crash_point, write_atomic};

/// The record's file name.
pub const FILE: &str = "cells.jsonl";

/// The finished cells of a folder, and the open record they are appended to.
pub struct Record {
    file: File,
    path: PathBuf,
    rows: Vec<Row>,
    index: HashMap<String, usize>,
}

impl Record {
    /// Reads `dir`'s record (or imports the rows of a `sweep.json` written before records
    /// existed) and opens it for appending. Returns the record and what was repaired, for the
    /// user. A record or `sweep.json` that cannot be read is refused (exit 2), never overwritten.
    pub fn open(dir: &Path) -> Result<(Record, Vec<String>), UsageError> {
        let path = dir.join(FILE);
        let shown = path.display().to_string();
        let mut notes = Vec::new();
        let rows = match std::fs::read(&path) {
            Ok(bytes) => {
                let (rows, keep) = parse(&bytes, &shown, &mut notes)?;
                if keep == bytes.len() && !bytes.is_empty() && !bytes.ends_with(b"\n") {
                    append_synced(&path, &[b"\n"])?;
                }
                if keep < bytes.len() {
                    // A damaged last line: keep its bytes aside, then cut it off the record.
                    append_synced(&dir.join("cells.damaged"), &[&bytes[keep..], b"\n"])?;
                    let f = std::fs::OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .map_err(|e| io_refusal(&path, e))?;
                    f.set_len(keep as u64)
                        .and_then(|()| f.sync_all())
                        .map_err(|e| io_refusal(&path, e))?;
                }
                rows
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let rows = import_sweep_json(dir, &mut notes)?;
                if !rows.is_empty() {
                    let mut text = String::new();
                    for r in &rows {
                        text.push_str(&line(r).map_err(|e| UsageError::flag(e.to_string()))?);
                    }
                    write_atomic(dir, FILE, text.as_bytes())
                        .map_err(|e| UsageError::flag(format!("{e:#}")))?;
                }
                rows
            }
            Err(e) => return Err(io_refusal(&path, e)),
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io_refusal(&path, e))?;
        // A cell recorded twice (by hand) counts once: the first.
        let mut record = Record { file, path, rows: Vec::new(), index: HashMap::new() };
        for r in rows {
            record.remember(r);
        }
        Ok((record, notes))
    }

    /// The rows of `dir`'s record, read only (none without one): what `tune merge` and `tune
    /// status` read from shard folders that may still be running. A damaged last line (a shard
    /// killed in an append) is left out with a note; its cell runs again when the shard resumes.
    pub fn read(dir: &Path) -> Result<Vec<Row>, UsageError> {
        let path = dir.join(FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let mut notes = Vec::new();
                let (rows, _) = parse(&bytes, &path.display().to_string(), &mut notes)?;
                if !notes.is_empty() {
                    eprintln!(
                        "note: {}: its last line is damaged (a process killed while appending); \
                         that cell is left out here and runs again when the sweep resumes there",
                        path.display()
                    );
                }
                Ok(rows)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io_refusal(&path, e)),
        }
    }

    /// The finished row of the cell with this key.
    pub fn get(&self, key: &str) -> Option<&Row> {
        self.index.get(key).map(|&i| &self.rows[i])
    }

    /// Every finished row, in the order the cells finished.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// Appends a finished cell: one line, written, flushed and synced before this returns.
    pub fn append(&mut self, row: Row) -> anyhow::Result<()> {
        let text = line(&row)?;
        let err = |e: std::io::Error| anyhow::anyhow!("appending to {}: {e}", self.path.display());
        if crash_armed("cell-torn") {
            // The crash tests' torn write: half a line reaches the disk, then the process dies.
            self.file.write_all(&text.as_bytes()[..text.len() / 2]).map_err(err)?;
            self.file.sync_all().map_err(err)?;
            crash_point("cell-torn");
        }
        self.file.write_all(text.as_bytes()).map_err(err)?;
        self.file.sync_data().map_err(err)?;
        crash_point("cell-appended");
        self.remember(row);
        Ok(())
    }

    fn remember(&mut self, row: Row) {
        let k = key(&row.config);
        if !self.index.contains_key(&k) {
            self.index.insert(k, self.rows.len());
            self.rows.push(row);
        }
    }
}

/// Appends `parts` to the file `path` (created if missing) and syncs it.
fn append_synced(path: &Path, parts: &[&[u8]]) -> Result<(), UsageError> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io_refusal(path, e))?;
    for p in parts {
        f.write_all(p).map_err(|e| io_refusal(path, e))?;
    }
    f.sync_all().map_err(|e| io_refusal(path, e))
}

/// One row as a line of the record.
pub fn line(row: &Row) -> anyhow::Result<String> {
    Ok(format!("{}\n", serde_json::to_string(row)?))
}

/// A file of the folder that cannot be read or written: exit 2, naming it.
fn io_refusal(path: &Path, e: std::io::Error) -> UsageError {
    UsageError::flag(format!("--out: {}: {e}", path.display()))
}

/// Parses the record's lines: the rows, and how many bytes of the file are sound (less than
/// its length when the last line was cut short by a crash). A damaged line before the last is
/// refused: the file is left as it is, and the message says how to recover.
fn parse(
    bytes: &[u8],
    shown: &str,
    notes: &mut Vec<String>,
) -> Result<(Vec<Row>, usize), UsageError> {
    let mut rows = Vec::new();
    let mut start = 0;
    let mut number = 0;
    while start < bytes.len() {
        number += 1;
        let end = bytes[start..].iter().position(|&b| b == b'\n').map(|p| start + p);
        let text = &bytes[start..end.unwrap_or(bytes.len())];
        let last = end.is_none_or(|e| e + 1 >= bytes.len());
        if text.iter().all(u8::is_ascii_whitespace) {
            start = end.map_or(bytes.len(), |e| e + 1);
            continue;
        }
        match serde_json::from_slice::<Row>(text) {
            // (A sound last row whose newline did not reach the disk gets it in `open`.)
            Ok(row) => rows.push(row),
            Err(_) if last => {
                notes.push(format!(
                    "{shown} line {number} is damaged (a write cut short by a crash or a full \
                     disk): that cell runs again; its bytes are kept in cells.damaged"
                ));
                return Ok((rows, start));
            }
            Err(e) => {
                return Err(UsageError::flag(format!(
                    "--out: {shown} line {number} cannot be read ({e}); the sweep's finished \
                     cells are in that file, so anneal will not touch it: repair or delete that \
                     line (its cell runs again), then rerun"
                )));
            }
        }
        start = end.map_or(bytes.len(), |e| e + 1);
    }
    Ok((rows, bytes.len()))
}

/// The rows of a `sweep.json` from before records existed; none if there is no such file. One
/// that cannot be read is refused, never overwritten.
fn import_sweep_json(dir: &Path, notes: &mut Vec<String>) -> Result<Vec<Row>, UsageError> {
    let path = dir.join("sweep.json");
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_refusal(&path, e)),
    };
    let sweep: Sweep = serde_json::from_slice(&bytes).map_err(|e| {
        UsageError::flag(format!(
            "--out: {} cannot be read ({e}) and there is no {FILE} to rebuild it from; anneal \
             will not overwrite it: repair it, or move it aside to run the sweep from scratch",
            path.display()
        ))
    })?;
    if !sweep.rows.is_empty() {
        notes.push(format!(
            "{} cells imported from {} into {FILE}",
            sweep.rows.len(),
            path.display()
        ));
    }
    Ok(sweep.rows)
}
