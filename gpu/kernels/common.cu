// anneal-gpu: definitions shared by every kernel. The kernels are compiled at run time by NVRTC
// (one module: common.cu, noise.cu, direct.cu, mixture.cu, step.cu, concatenated in that order)
// and include no header; noise.cu and direct.cu are also compiled on the host by a C++ compiler
// for the emulation tests (gpu/tests/emu/prelude.hpp defines the few CUDA names they use).

typedef unsigned int u32;
typedef unsigned long long u64;

// No step has failed yet. Otherwise the status is 4 * step + what (0 score, 1 state, 2 auxiliary
// state) of the earliest non-finite value, written with atomicMin so the smallest code wins.
#define STATUS_OK 0xFFFFFFFFu
#define WHAT_SCORE 0u
#define WHAT_STATE 1u
#define WHAT_AUX 2u

// The noise streams' tags (anneal_core::noise::Stream::index_and_tag; the emulation test checks
// that these are the core's).
#define STREAM_TAG_STEP 0u
#define STREAM_TAG_INIT 1u
#define STREAM_TAG_INPAINT 2u
#define STREAM_TAG_AUX_INIT 3u

// One plan step, as gpu/src/table.rs writes it (#[repr(C)], same field order). Coefficients are
// computed in f64 by the core and rounded to f32 once per step, as the CPU executor does.
struct StepRec {
    double sigma;       // σ of the score evaluation
    double half_inv_v;  // 1 / (2 v), v = τ² + σ²
    double err_factor;  // D · 2⁻²⁴ · max‖μ‖ / v: the f32 logit error bound per unit ‖y‖
    double inv_v;       // 1 / v
    float point_aux;    // y = x + point_aux · a + point_noise · ξ
    float point_noise;
    float xx, xa, xs, xn;  // x ← xx·x + xa·a + xs·s + xn·ξ
    float ax, aa, as_, an; // a ← ax·x + aa·a + as_·s + an·ξ
    float snr;          // kind == 1: x ← x + α s + √(2α) ξ, α = 2 (snr ‖ξ‖/‖s‖)²
    u32 step;           // the global step number k (the noise stream index)
    u32 noise;          // 1: draw ξ, 0: ξ = 0
    u32 kind;           // 0 linear, 1 snr (per-sample norms)
    u32 trivial_point;  // 1: y = x (point_aux = point_noise = 0)
    u32 active;         // 1: a plan step; 0: padding after the plan's end (kernels skip it)
};

__device__ __forceinline__ bool finite_f(float v) {
    return (__float_as_uint(v) & 0x7f800000u) != 0x7f800000u;
}

// exp(t) for t <= 0, 0 below -40 and exactly 1 at 0 (the CPU's `weight`).
__device__ __forceinline__ double weight_of(double t) {
    if (t < -40.0) return 0.0;
    if (t == 0.0) return 1.0;
    return exp(t);
}

// The signal-to-noise corrector's α = 2 (snr ‖ξ‖/‖s‖)² (0 when ‖s‖ = 0).
__device__ __forceinline__ double snr_alpha(double snr, double score_norm, double noise_norm) {
    if (score_norm > 0.0) {
        double r = snr * noise_norm / score_norm;
        return 2.0 * r * r;
    }
    return 0.0;
}

// Where a step's score comes from: the mixture's second product (s = (S'/z − y)/v, from
// S' = R' M and the row sums z), or a network's output o at the score point y, by what the
// network returns (host/src/score/network/conventions.rs, OutputKind::score: f64, rounded once).
#define SCORE_MIXTURE 0u
#define SCORE_NET 1u
#define SCORE_NET_SIGMA 2u
#define SCORE_NET_EPS 3u
#define SCORE_NET_DENOISER 4u

__device__ __forceinline__ float net_score(u32 mode, double sigma, float o, float y) {
    double od = (double)o;
    switch (mode) {
        case SCORE_NET_SIGMA: return (float)(od / sigma);
        case SCORE_NET_EPS: return (float)(-od / sigma);
        case SCORE_NET_DENOISER: return (float)((od - (double)y) / (sigma * sigma));
        default: return o;
    }
}

// s of step r at element i: `sp` is S' (mixture) or the network's output.
__device__ __forceinline__ float finish_score(u32 mode, const StepRec* r, float sp, float y, float inv_z,
                                              float inv_v) {
    return mode == SCORE_MIXTURE ? (sp * inv_z - y) * inv_v : net_score(mode, r->sigma, sp, y);
}

// The score point y = x + point_aux·a + point_noise·ξ of step r (x itself when trivial).
__device__ __forceinline__ float score_point(const StepRec* r, float x, float a, float xi) {
    return r->trivial_point ? x : x + r->point_aux * a + r->point_noise * xi;
}

// One element's update by step r, in the CPU executor's operation order: an snr update
// x ← x + ca·s + cn·ξ (ca = α, cn = √(2α), per sample), else the linear update of x and, with an
// auxiliary state, of a. The direct and the GEMM-path kernels both apply it.
__device__ __forceinline__ void update_element(const StepRec* r, u32 has_aux, float ca, float cn, float s,
                                               float xi, float* x, float* a) {
    float x0 = *x, a0 = *a;
    if (r->kind == 1u) {
        *x = x0 + ca * s + cn * xi;
    } else if (has_aux) {
        *x = r->xx * x0 + r->xa * a0 + r->xs * s + r->xn * xi;
        *a = r->ax * x0 + r->aa * a0 + r->as_ * s + r->an * xi;
    } else {
        *x = r->xx * x0 + r->xs * s + r->xn * xi;
    }
}

__device__ __forceinline__ void report(u32* status, u32 step, u32 what) {
    atomicMin(status, 4u * step + what);
}
