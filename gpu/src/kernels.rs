//! The kernels' CUDA C sources, embedded in the binary and compiled by NVRTC at run time (once per
//! architecture per process; the PTX is cached).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// The kernel files of `gpu/kernels/`, in the order they are concatenated into one module.
pub const SOURCES: [(&str, &str); 5] = [
    ("common.cu", include_str!("../kernels/common.cu")),
    ("noise.cu", include_str!("../kernels/noise.cu")),
    ("direct.cu", include_str!("../kernels/direct.cu")),
    ("mixture.cu", include_str!("../kernels/mixture.cu")),
    ("step.cu", include_str!("../kernels/step.cu")),
];

/// The entry points the backend loads.
pub const ENTRY_POINTS: [&str; 8] = [
    "noise_rows",
    "init_normal_rows",
    "direct_run",
    "means_prep",
    "mixture_softmax",
    "sparse_rm",
    "plan_step",
    "snr_norms",
];

/// The whole module: every file of [`SOURCES`] in order, each after a `#line` directive so that
/// NVRTC's messages name the file and line.
pub fn module_source() -> String {
    let mut s = String::new();
    for (name, text) in SOURCES {
        s.push_str(&format!("#line 1 \"{name}\"\n"));
        s.push_str(text);
        s.push('\n');
    }
    s
}

/// Whether NVRTC (`libnvrtc.so.13`) can be loaded.
pub fn nvrtc_present() -> bool {
    // SAFETY: only probes for the library (dlopen); calls nothing in it.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// The PTX of the module for a virtual architecture such as `compute_90`, compiled on first use
/// and cached. Works without a GPU (NVRTC alone). Errors keep NVRTC's log.
pub fn ptx(arch: &str) -> Result<String, crate::Error> {
    static CACHE: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(p) = cache.lock().ok().and_then(|c| c.get(arch).cloned()) {
        return Ok(p);
    }
    if !nvrtc_present() {
        return Err(crate::Error::MissingLibrary {
            lib: "libnvrtc.so.13",
            hint: "the CUDA 13.0 toolkit, or `pip install nvidia-cuda-nvrtc==13.0.*` with its lib folder on LD_LIBRARY_PATH",
        });
    }
    let opts = cudarc::nvrtc::CompileOptions {
        arch: Some(static_arch(arch)),
        // No fast math: the kernels follow the CPU's operation order; only FMA contraction (the
        // default) separates them, and the parity checks allow for that rounding.
        options: vec!["--std=c++17".into()],
        name: Some("anneal.cu".into()),
        ..Default::default()
    };
    let compiled = cudarc::nvrtc::compile_ptx_with_opts(module_source(), opts).map_err(|e| {
        let log = match &e {
            cudarc::nvrtc::CompileError::CompileError { log, .. } => {
                log.to_string_lossy().into_owned()
            }
            other => format!("{other:?}"),
        };
        crate::Error::Compile { arch: arch.to_string(), log }
    })?;
    let text = compiled.to_src();
    if let Ok(mut c) = cache.lock() {
        c.insert(arch.to_string(), text.clone());
    }
    Ok(text)
}

/// `cudarc::nvrtc::CompileOptions::arch` wants a `&'static str`: one leaked string per distinct
/// architecture of the process (a handful of bytes, once).
fn static_arch(arch: &str) -> &'static str {
    static ARCHES: OnceLock<Mutex<Vec<&'static str>>> = OnceLock::new();
    let arches = ARCHES.get_or_init(|| Mutex::new(Vec::new()));
    let Ok(mut list) = arches.lock() else {
        return "compute_90";
    };
    if let Some(a) = list.iter().find(|a| **a == arch) {
        return a;
    }
    let leaked: &'static str = Box::leak(arch.to_string().into_boxed_str());
    list.push(leaked);
    leaked
}
