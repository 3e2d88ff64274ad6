//! Writing outputs: every file through a temporary file and a rename, so that a reader never
//! sees a half-written file.

use std::path::Path;

/// Writes `bytes` to `dir/name` through a temporary file and a rename.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).map_err(|e| anyhow::anyhow!("writing {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, dir.join(name))
        .map_err(|e| anyhow::anyhow!("renaming {}: {e}", tmp.display()))?;
    Ok(())
}
