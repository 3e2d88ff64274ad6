//! anneal's test suite: property tests of the bound invariants, paper reproductions and CLI
//! tests live in `tests/`; `bare-metal/` (outside the workspace) runs the core on a Cortex-M4F
//! under QEMU. This library holds nothing but this page.
