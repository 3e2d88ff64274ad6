//! What sharded `tune` and `sample` share: the `--shard I/N` flag, the flags that identify a run
//! across its shards, and the checks every merge makes of the shards' folders (one run, one
//! anneal, each shard once). The partitions themselves differ: `tune` splits the grid's cells by
//! their keys ([`super::tune::shard`]), `sample` the samples by whole batches
//! ([`super::sample::shard`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::UsageError;

/// The most shards a run may be split into.
pub const MAX_SHARDS: usize = 100_000;

/// Shard `index` (1-based) of `of`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 1 ≤ index ≤ of.
    pub index: usize,
    /// The number of shards.
    pub of: usize,
}

impl Shard {
    /// The whole run.
    pub const ALL: Shard = Shard { index: 1, of: 1 };

    /// Parses `--shard I/N`.
    pub fn parse(s: &str) -> Result<Shard, UsageError> {
        let bad = |why: &str| {
            UsageError::flag(format!(
                "--shard = {s}: {why} (use I/N with 1 ≤ I ≤ N ≤ {MAX_SHARDS}, e.g. 3/8, or \
                 $SLURM_ARRAY_TASK_ID/N with --array=1-N)"
            ))
        };
        let (i, n) = s.split_once('/').ok_or_else(|| bad("no '/'"))?;
        let index: usize = i.trim().parse().map_err(|_| bad("I is not a whole number"))?;
        let of: usize = n.trim().parse().map_err(|_| bad("N is not a whole number"))?;
        if of == 0 || of > MAX_SHARDS {
            return Err(bad(&format!("N = {of} is outside 1..={MAX_SHARDS}")));
        }
        if index == 0 || index > of {
            return Err(bad(&format!("I = {index} is outside 1..={of}")));
        }
        Ok(Shard { index, of })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.of)
    }
}

/// 64-bit FNV-1a.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

/// The flags after `command` in this process's arguments, without the flags `valued` (with their
/// values, as `--flag V` or `--flag=V`) and the switches `switches`: what the shards of one run
/// share.
pub fn shared_args(command: &str, valued: &[&str], switches: &[&str]) -> Vec<String> {
    let argv: Vec<String> = std::env::args().collect();
    let after = argv.iter().position(|a| a == command).map_or(argv.len(), |p| p + 1);
    let mut out = Vec::new();
    let mut skip = false;
    for a in &argv[after..] {
        if std::mem::take(&mut skip) {
            continue;
        }
        if valued.contains(&a.as_str()) {
            skip = true;
        } else if !switches.contains(&a.as_str())
            && !valued.iter().any(|v| a.strip_prefix(v).is_some_and(|r| r.starts_with('=')))
        {
            out.push(a.clone());
        }
    }
    out
}

/// What names a shard's run in its folder's file (`tune.json`, `shard.json`: flattened there,
/// its first fields): the anneal that wrote it, the run's flags and which shard.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunId {
    /// anneal's version.
    pub version: String,
    /// The run's flags without the per-shard ones ([`shared_args`]).
    pub args: Vec<String>,
    /// The shard, 1-based.
    pub shard: usize,
    /// The number of shards.
    pub of: usize,
}

impl RunId {
    /// Shard `shard` of the run of `args`, by this anneal.
    pub fn new(args: Vec<String>, shard: Shard) -> Self {
        RunId {
            version: env!("CARGO_PKG_VERSION").to_string(),
            args,
            shard: shard.index,
            of: shard.of,
        }
    }

    /// Which shard.
    pub fn shard(&self) -> Shard {
        Shard { index: self.shard, of: self.of }
    }
}

/// The first flag at which two argument lists differ, for a message.
fn first_difference(a: &[String], b: &[String]) -> String {
    let i = a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
    let show = |v: &[String]| {
        let rest: Vec<&str> =
            v.iter().skip(i.saturating_sub(1)).take(3).map(String::as_str).collect();
        if rest.is_empty() { "(nothing)".to_string() } else { rest.join(" ") }
    };
    format!("`{}` against `{}`", show(a), show(b))
}

/// Reads the descriptor of every folder of `dirs` with `read`, refusing (exit 2, naming both
/// folders) folders of different anneal versions, flags or shard counts, what `differ` finds
/// between two descriptors, and a shard given twice. Returns them in the order given.
pub fn collect<T: AsRef<RunId>>(
    dirs: &[PathBuf],
    read: impl Fn(&Path) -> Result<T, UsageError>,
    differ: impl Fn(&T, &T) -> Option<String>,
) -> Result<Vec<(PathBuf, T)>, UsageError> {
    let mut shards: Vec<(PathBuf, T)> = Vec::new();
    for dir in dirs {
        let f = read(dir)?;
        if let Some((d0, f0)) = shards.first() {
            let (id, id0) = (f.as_ref(), f0.as_ref());
            let why = if id.version != id0.version {
                Some(format!(
                    "were written by different versions of anneal ({} and {}): rerun the shards \
                     with one version",
                    id0.version, id.version
                ))
            } else if id.args != id0.args {
                Some(format!(
                    "are shards of different runs: their flags differ at {}",
                    first_difference(&id0.args, &id.args)
                ))
            } else if id.of != id0.of {
                Some(format!("split the run differently (into {} and {} shards)", id0.of, id.of))
            } else {
                differ(f0, &f)
            };
            if let Some(why) = why {
                return Err(UsageError::flag(format!(
                    "{} and {} {why}",
                    d0.display(),
                    dir.display()
                )));
            }
        }
        if let Some((d, _)) = shards.iter().find(|(_, g)| g.as_ref().shard() == f.as_ref().shard())
        {
            return Err(UsageError::flag(format!(
                "{} and {} are both shard {}: give each shard's folder once",
                d.display(),
                dir.display(),
                f.as_ref().shard()
            )));
        }
        shards.push((dir.clone(), f));
    }
    if shards.is_empty() {
        return Err(UsageError::flag("merge: no shard folders given"));
    }
    Ok(shards)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_flags_are_checked() {
        assert_eq!(Shard::parse("3/8").unwrap(), Shard { index: 3, of: 8 });
        assert_eq!(Shard::parse("1/1").unwrap(), Shard::ALL);
        for bad in ["0/4", "5/4", "1/0", "x/4", "3", "1/100001", "-1/4"] {
            let e = Shard::parse(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("--shard = {bad}")), "{e}");
        }
    }

    #[test]
    fn fnv1a_known_answers() {
        // The published FNV-1a 64 test vectors.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
