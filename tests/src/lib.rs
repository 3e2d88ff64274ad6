//! anneal-core's test suite, in `tests/tests/`: property tests of the bound invariants
//! (`cas_bounds`), coefficients against high-precision references (`coefficients`,
//! `stable_forms`), NCSNv2's techniques (`ncsnv2_techniques`), scores and noise
//! (`scores_noise`), statistical checks of every sampler and the papers' figures (`sampling`),
//! and the Cortex-M4F runs under QEMU (`bare_metal`, driving `bare-metal/`, which stays outside
//! the workspace). The command line's end-to-end tests are `host/tests/`; the CUDA backend's are
//! `gpu/tests/`. This library holds nothing but this page.
