//! Shared by the GPU crate's test binaries.

/// Writes past libtest's output capture, so that a skip and its reason show in `cargo test`.
pub fn skipped(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{message}");
}
