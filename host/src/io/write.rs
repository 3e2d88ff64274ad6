//! Writing outputs so that nothing finished is lost and nothing a reader sees mixes two runs
//! (README, "What anneal promises about your files"):
//!
//! - [`write_atomic`]: one file, through a temporary file unique to the process, synced, then
//!   renamed over the old one; a reader sees the old file or the new one.
//! - [`OutputSet`]: a whole folder (`sample --out`), built under a hidden name beside its final
//!   place and moved there at the end (on Linux an atomic exchange with the previous set); a
//!   reader sees the previous set or the new one, and a crash leaves only a hidden partial folder.
//! - [`FolderLock`]: a second process on the same folder is refused at start.
//!
//! Every file is synced before it is renamed, and the folder after, so that a finished file
//! survives a power cut as well as a killed process. Tests reach the steps between the writes
//! through [`crash_point`].

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::UsageError;

/// Whether the environment variable `ANNEAL_CRASH_AT` names this point (read once): the crash
/// tests' way to stop a run between two writes.
pub fn crash_armed(name: &str) -> bool {
    static AT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    AT.get_or_init(|| std::env::var("ANNEAL_CRASH_AT").ok()).as_deref() == Some(name)
}

/// Kills the process (as `kill -9` would) when `ANNEAL_CRASH_AT` names this point
/// ([`crash_armed`]).
pub fn crash_point(name: &str) {
    if crash_armed(name) {
        #[cfg(unix)]
        // SAFETY: kill(2) on our own pid with a constant signal; no memory is touched.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
        std::process::abort();
    }
}

/// A name no other process (on this machine or another sharing the folder), and no other call
/// in this one, uses: `.{name}.{tag}-{host}-{pid}-{n}`.
fn unique_hidden(name: &str, tag: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(".{name}.{tag}-{}-{}-{n}", host(), std::process::id())
}

/// This machine's name, with anything but letters, digits and dots replaced by `_` (so that it
/// cannot contain the `-` that separates the fields of a hidden name).
fn host() -> String {
    let mut buf = [0u8; 256];
    #[cfg(unix)]
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    #[cfg(not(unix))]
    let ok = false;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name: String = String::from_utf8_lossy(&buf[..end])
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '_' })
        .collect();
    if ok && !name.is_empty() { name } else { "host".into() }
}

/// Syncs a folder's entries (the renames into it) to the disk.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Writes `bytes` to the new file `path` and syncs it.
fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_synced_with(path, &mut |w| w.write_all(bytes))
}

/// Creates the new file `path`, lets `fill` write it (buffered) and syncs it.
fn write_synced_with(
    path: &Path,
    fill: &mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let f = std::fs::OpenOptions::new().write(true).create_new(true).open(path)?;
    let mut w = std::io::BufWriter::with_capacity(1 << 16, f);
    fill(&mut w)?;
    w.into_inner().map_err(|e| e.into_error())?.sync_all()
}

/// Writes `bytes` to `dir/name` through a temporary file unique to this process, synced, and a
/// rename; on failure the temporary file is removed and the old `dir/name` is untouched.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = dir.join(unique_hidden(name, "tmp"));
    let result = write_synced(&tmp, bytes)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", dir.join(name).display()))
        .and_then(|()| {
            std::fs::rename(&tmp, dir.join(name))
                .map_err(|e| anyhow::anyhow!("renaming {} into place: {e}", tmp.display()))
        });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    sync_dir(dir).map_err(|e| anyhow::anyhow!("syncing {}: {e}", dir.display()))
}

/// The files an output set of `anneal sample` may hold: `--force` replaces only a folder that
/// holds nothing else (it never deletes a file anneal did not write).
pub const SAMPLE_FILES: [&str; 7] = [
    "samples.npy",
    "metrics.json",
    "samples.png",
    "config.json",
    "trace.csv",
    "trace.png",
    "components.csv",
];

/// An output folder under construction: files go into a hidden folder beside `--out`, and
/// [`OutputSet::commit`] moves it into place whole. Dropped without a commit (an error), the
/// partial folder is removed.
pub struct OutputSet {
    out: PathBuf,
    partial: PathBuf,
    kept: bool,
}

impl OutputSet {
    /// Checks `--out` and creates the partial folder beside it, before any work is done: an
    /// `--out` that exists is refused unless `force` (and then only if it holds nothing but
    /// `allowed` files); a parent that cannot be written is refused (exit 2). Partial folders
    /// left by killed runs of this `--out` are removed.
    pub fn begin(out: &Path, force: bool, allowed: &[&str]) -> Result<OutputSet, UsageError> {
        let shown = out.display();
        let bad = |why: String| UsageError::flag(format!("--out = {shown}: {why}"));
        let name = out
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| *n != "." && *n != "..")
            .ok_or_else(|| bad("not a folder name (give a path such as runs/first)".into()))?;
        if let Ok(meta) = std::fs::symlink_metadata(out) {
            if !force {
                return Err(bad(
                    "exists: choose another folder or add --force to replace it with this run"
                        .into(),
                ));
            }
            if !meta.is_dir() {
                return Err(bad("exists and is not a folder".into()));
            }
            let foreign: Vec<String> = std::fs::read_dir(out)
                .map_err(|e| bad(format!("cannot be read ({e})")))?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|f| !allowed.contains(&f.as_str()))
                .collect();
            if let Some(f) = foreign.first() {
                return Err(bad(format!(
                    "holds {f}{}, which anneal did not write; --force replaces only a folder of \
                     anneal's outputs: choose another folder",
                    if foreign.len() > 1 {
                        format!(" and {} more", foreign.len() - 1)
                    } else {
                        String::new()
                    }
                )));
            }
        }
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent)
            .map_err(|e| bad(format!("its folder {} cannot be created ({e})", parent.display())))?;
        remove_stale_partials(&parent, name);
        let partial = parent.join(unique_hidden(name, "partial"));
        std::fs::create_dir(&partial).map_err(|e| {
            bad(format!(
                "its folder {} cannot be written ({e}); choose another --out",
                parent.display()
            ))
        })?;
        Ok(OutputSet { out: out.to_path_buf(), partial, kept: false })
    }

    /// Writes one file of the set (synced).
    pub fn write(&self, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
        self.write_with(name, |w| w.write_all(bytes))
    }

    /// Writes one file of the set as `fill` streams it (buffered, synced): a large file is never
    /// held in memory whole.
    pub fn write_with(
        &self,
        name: &str,
        mut fill: impl FnMut(&mut dyn Write) -> std::io::Result<()>,
    ) -> anyhow::Result<()> {
        write_synced_with(&self.partial.join(name), &mut fill).map_err(|e| {
            anyhow::anyhow!("writing {name} of {} (nothing was replaced): {e}", self.out.display())
        })?;
        crash_point(&format!("wrote:{name}"));
        Ok(())
    }

    /// Moves the finished set into place: onto a missing (or empty) `--out` by a rename; over a
    /// previous set (`--force`) by an atomic exchange, then the previous set is deleted. If
    /// `--out` appeared meanwhile and `--force` was not given, the set is kept under its hidden
    /// name and the error says where.
    pub fn commit(mut self, force: bool) -> anyhow::Result<()> {
        sync_dir(&self.partial)?;
        crash_point("commit");
        let out = self.out.clone();
        let out = &out;
        match std::fs::rename(&self.partial, out) {
            Ok(()) => {}
            Err(_) if std::fs::symlink_metadata(out).is_ok() => {
                if !force {
                    self.kept = true;
                    anyhow::bail!(
                        "--out = {} appeared while this run was sampling (another process?); this \
                         run's complete set is kept in {}",
                        out.display(),
                        self.partial.display()
                    );
                }
                // From here the new set is never deleted on an error: the message says where
                // it is.
                self.kept = true;
                self.replace()?;
            }
            Err(e) => {
                self.kept = true;
                anyhow::bail!(
                    "moving the finished set into {}: {e}; it is kept in {}",
                    out.display(),
                    self.partial.display()
                );
            }
        }
        self.kept = true;
        if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
        Ok(())
    }

    /// `--force` over a previous set: exchange the two folders atomically (Linux), then delete
    /// the previous one (now under the hidden name). Where the exchange is not supported, the
    /// previous set is renamed aside first: a reader may briefly find no `--out`, never a mix.
    fn replace(&self) -> anyhow::Result<()> {
        let out = self.out.clone();
        let exchanged = exchange(&self.partial, &out).map_err(|e| {
            anyhow::anyhow!("{e}; this run's complete set is kept in {}", self.partial.display())
        })?;
        if exchanged {
            crash_point("exchanged");
            std::fs::remove_dir_all(&self.partial).map_err(|e| {
                anyhow::anyhow!("deleting the previous set (now {}): {e}", self.partial.display())
            })?;
            return Ok(());
        }
        let name = out.file_name().and_then(|n| n.to_str()).unwrap_or("out");
        let aside = self.partial.with_file_name(unique_hidden(name, "previous"));
        std::fs::rename(&out, &aside).map_err(|e| {
            anyhow::anyhow!(
                "moving the previous {} aside: {e}; this run's complete set is kept in {}",
                out.display(),
                self.partial.display()
            )
        })?;
        std::fs::rename(&self.partial, &out).map_err(|e| {
            anyhow::anyhow!(
                "moving the finished set into {}: {e}; it is kept in {} and the previous set in {}",
                out.display(),
                self.partial.display(),
                aside.display()
            )
        })?;
        std::fs::remove_dir_all(&aside)
            .map_err(|e| anyhow::anyhow!("deleting the previous set {}: {e}", aside.display()))
    }
}

impl Drop for OutputSet {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_dir_all(&self.partial);
        }
    }
}

/// Swaps two paths atomically (Linux `renameat2(RENAME_EXCHANGE)`); false where the system or
/// the file system does not support it.
fn exchange(a: &Path, b: &Path) -> anyhow::Result<bool> {
    #[cfg(target_os = "linux")]
    {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let c = |p: &Path| CString::new(p.as_os_str().as_bytes());
        let (ca, cb) = (c(a)?, c(b)?);
        // SAFETY: two NUL-terminated paths that outlive the call; renameat2 reads them only.
        let r = unsafe {
            libc::syscall(
                libc::SYS_renameat2,
                libc::AT_FDCWD,
                ca.as_ptr(),
                libc::AT_FDCWD,
                cb.as_ptr(),
                libc::RENAME_EXCHANGE,
            )
        };
        if r == 0 {
            return Ok(true);
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EPERM) => Ok(false),
            _ => Err(anyhow::anyhow!("replacing {} with {}: {e}", b.display(), a.display())),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (a, b);
        Ok(false)
    }
}

/// Removes `.{name}.partial-HOST-PID-N` and `.{name}.previous-HOST-PID-N` folders in `parent`
/// left by a killed run of this machine (Linux, where /proc tells which processes live); those
/// of other machines sharing the folder are never touched.
fn remove_stale_partials(parent: &Path, name: &str) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for e in entries.filter_map(|e| e.ok()) {
        let f = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = f
            .strip_prefix(&format!(".{name}.partial-"))
            .or_else(|| f.strip_prefix(&format!(".{name}.previous-")))
        else {
            continue;
        };
        let fields: Vec<&str> = rest.rsplitn(3, '-').collect();
        let [_, pid, from] = fields[..] else { continue };
        let Ok(pid) = pid.parse::<u32>() else { continue };
        if from != host() {
            continue;
        }
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// An exclusive lock on a folder, held while the process runs (released by the system when it
/// ends, however it ends): a second process is refused at start.
pub struct FolderLock {
    _file: File,
}

impl FolderLock {
    /// Locks `dir` (creating it) through `dir/.anneal.lock`, or refuses naming the folder.
    pub fn acquire(dir: &Path, flag: &str) -> Result<FolderLock, UsageError> {
        let bad = |why: String| UsageError::flag(format!("{flag} = {}: {why}", dir.display()));
        std::fs::create_dir_all(dir).map_err(|e| bad(format!("cannot be created ({e})")))?;
        let path = dir.join(".anneal.lock");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| bad(format!("cannot be written ({e}); choose another folder")))?;
        match file.try_lock() {
            Ok(()) => Ok(FolderLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(bad(
                "another anneal process is working in this folder; wait for it to finish or \
                 choose another folder"
                    .into(),
            )),
            Err(std::fs::TryLockError::Error(e)) => Err(bad(format!("cannot be locked ({e})"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("anneal-write-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A set replaces the previous one whole; an unfinished set leaves nothing behind.
    #[test]
    fn a_set_replaces_the_previous_whole() {
        let d = scratch("set");
        let out = d.join("run");
        let s = OutputSet::begin(&out, false, &SAMPLE_FILES).unwrap();
        s.write("config.json", b"1").unwrap();
        s.write("samples.npy", b"1").unwrap();
        s.commit(false).unwrap();
        assert!(OutputSet::begin(&out, false, &SAMPLE_FILES).is_err(), "exists, no --force");
        let s = OutputSet::begin(&out, true, &SAMPLE_FILES).unwrap();
        s.write("config.json", b"2").unwrap();
        drop(s); // an error before the commit
        assert_eq!(std::fs::read(out.join("config.json")).unwrap(), b"1");
        let s = OutputSet::begin(&out, true, &SAMPLE_FILES).unwrap();
        s.write("config.json", b"3").unwrap();
        s.commit(true).unwrap();
        assert_eq!(std::fs::read(out.join("config.json")).unwrap(), b"3");
        assert!(!out.join("samples.npy").exists(), "nothing of the previous set stays");
        let left: Vec<_> = std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, [std::ffi::OsString::from("run")], "no partial folders left");
        // A folder with a file anneal did not write is not replaced.
        std::fs::write(out.join("notes.txt"), b"mine").unwrap();
        let e = OutputSet::begin(&out, true, &SAMPLE_FILES).err().unwrap().to_string();
        assert!(e.contains("notes.txt") && e.contains("did not write"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// Temporary names differ between calls (and carry the process id).
    #[test]
    fn temporary_names_are_unique() {
        let (a, b) = (unique_hidden("x", "tmp"), unique_hidden("x", "tmp"));
        assert_ne!(a, b);
        assert!(a.starts_with(&format!(".x.tmp-{}-{}-", host(), std::process::id())), "{a}");
        assert!(!host().contains('-') && !host().is_empty());
    }
}
