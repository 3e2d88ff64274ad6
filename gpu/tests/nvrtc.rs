//! Every kernel compiles with NVRTC (no GPU needed). Skips with the reason when NVRTC cannot be
//! loaded, unless `ANNEAL_REQUIRE_NVRTC=1` (CI sets it: a kernel that does not compile fails CI).

mod common;
use common::skipped;

fn nvrtc_or_skip() -> bool {
    if anneal_gpu::kernels::nvrtc_present() {
        return true;
    }
    let why = "libnvrtc.so.13 not found (pip install \"nvidia-cuda-nvrtc==13.0.*\" and put its nvidia/cu13/lib on LD_LIBRARY_PATH)";
    assert!(
        std::env::var("ANNEAL_REQUIRE_NVRTC").as_deref() != Ok("1"),
        "ANNEAL_REQUIRE_NVRTC=1 but {why}"
    );
    skipped(&format!("SKIPPED: {why}"));
    false
}

/// Hopper (the lent GPUs) and Ampere: the PTX has every entry point the backend loads.
#[test]
fn kernels_compile_for_hopper_and_ampere() {
    if !nvrtc_or_skip() {
        return;
    }
    for arch in ["compute_90", "compute_80"] {
        let ptx = match anneal_gpu::kernels::ptx(arch) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        for entry in anneal_gpu::kernels::ENTRY_POINTS {
            assert!(
                ptx.contains(&format!(".entry {entry}(")),
                "{arch}: no entry {entry} in the PTX"
            );
        }
        assert!(ptx.contains(&format!(".target sm_{}", &arch[8..])), "{arch}: wrong target");
    }
}

/// A kernel that does not compile is an error carrying NVRTC's log with the file and line.
#[test]
fn a_compile_error_keeps_the_log() {
    if !nvrtc_or_skip() {
        return;
    }
    let opts = cudarc::nvrtc::CompileOptions { arch: Some("compute_90"), ..Default::default() };
    let bad = "#line 7 \"broken.cu\"\nextern \"C\" __global__ void k() { undefined_thing(); }";
    match cudarc::nvrtc::compile_ptx_with_opts(bad, opts) {
        Ok(_) => panic!("an undefined identifier compiled"),
        Err(cudarc::nvrtc::CompileError::CompileError { log, .. }) => {
            let log = log.to_string_lossy();
            assert!(log.contains("broken.cu(7)") && log.contains("undefined_thing"), "{log}");
        }
        Err(e) => panic!("unexpected error {e:?}"),
    }
}
