// The mixture score's middle stage for a batch (MATH.md, "Analytic scores"): from the products
// G = Y Mᵀ (B × K, cuBLAS SGEMM) to unnormalised responsibilities in place of G and their row sums
// z, so that the second SGEMM gives S' = R' M and the step kernel finishes s = (S'/z − y)/v.
//
// Per row (one block): logits l_k = ln w_k − (‖y‖² − 2 g_k + ‖μ_k‖²)/(2v) in f64. G comes from an
// SGEMM (g32) or, on GPUs whose FP64 tensor cores run DGEMM about as fast as SGEMM, a DGEMM of the
// same f32 values widened to f64 (g64). A dot product in precision u errs by at most
// D·u·‖y‖‖μ_k‖ whatever the summation order, so a logit by err = err_factor·err_scale·‖y‖
// (err_scale 1 for f32, 2⁻²⁹ for f64); where err > 1e-4 (MATH.md's precision warning) every logit
// within 36 + 2·err nats of the row's maximum is recomputed exactly in f64 from ‖y − μ_k‖² — the
// others cannot reach a weight of e⁻³⁶. Then e_k = exp(l_k − max) (0 below e⁻⁴⁰), as the CPU does,
// written as f32 into r for the second product S' = R' M.
//
// Sparse rows: when `sparse` is given, a row with at most SPARSE_MAX non-zero e_k stores their
// indices in ascending order (sparse[b·SPARSE_MAX…], count in nnz[b]) so that `sparse_rm` can form
// S' from those means alone; a row with more counts itself in *dense.

#define SOFTMAX_THREADS 256
#define SPARSE_MAX 16
// Rows of at most this many components keep their logits in shared memory (K doubles, 32 KiB).
#define SHARED_LOGITS_MAX 4096

// Lane 0 gets the warp's sum (max). The host emulation (ANNEAL_EMULATION) runs this kernel with
// one thread per block, where both are the identity.
__device__ __forceinline__ double warp_sum(double v) {
#ifndef ANNEAL_EMULATION
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
#endif
    return v;
}

__device__ __forceinline__ double warp_max(double v) {
#ifndef ANNEAL_EMULATION
    for (int off = 16; off > 0; off >>= 1) {
        double o = __shfl_down_sync(0xffffffffu, v, off);
        v = o > v ? o : v;
    }
#endif
    return v;
}

// The block's sum (max when is_max) of v, returned to every thread. `scratch` holds 32 doubles.
__device__ double block_reduce(double v, bool is_max, double* scratch) {
    u32 lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    u32 warps = (blockDim.x + 31u) >> 5;
    v = is_max ? warp_max(v) : warp_sum(v);
    __syncthreads();  // scratch may still be read from the previous reduction
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    if (warp == 0) {
        double w = lane < warps ? scratch[lane] : (is_max ? -1.0 / 0.0 : 0.0);
        w = is_max ? warp_max(w) : warp_sum(w);
        if (lane == 0) scratch[0] = w;
    }
    __syncthreads();
    return scratch[0];
}

extern "C" __global__ void mixture_softmax(const float* g32, double* g64, float* r, double* logits,
                                           const float* __restrict__ y, const float* __restrict__ means,
                                           const double* __restrict__ ln_w, const double* __restrict__ norms2,
                                           const StepRec* __restrict__ rec, u32 B, u32 K, u32 D, double err_scale,
                                           double* __restrict__ z, u32* __restrict__ refined,
                                           const u32* __restrict__ status, u32* sparse, u32* nnz, u32* dense,
                                           u32 shared_logits) {
    __shared__ double scratch[32];
#ifdef ANNEAL_EMULATION
    static double row_logits[SHARED_LOGITS_MAX];
#else
    extern __shared__ double row_logits[];  // K doubles when shared_logits (launch's dynamic size)
#endif
    __shared__ u32 found[SPARSE_MAX];
    __shared__ u32 found_count;
    u32 b = blockIdx.x;
    if (b >= B) return;
    if (*(volatile const u32*)status != STATUS_OK || !rec->active) return;
    const double hv = rec->half_inv_v;
    const float* yr = y + (u64)b * D;
    float* rr = r + (u64)b * K;
    // The logits stay in shared memory for K ≤ SHARED_LOGITS_MAX; otherwise with a DGEMM they
    // overwrite G in place (each thread reads g_k before writing l_k), else `logits`.
    double* lr = shared_logits ? row_logits : (g64 ? g64 + (u64)b * K : logits + (u64)b * K);

    double y2 = 0.0;
    for (u32 j = threadIdx.x; j < D; j += blockDim.x) y2 += (double)yr[j] * (double)yr[j];
    y2 = block_reduce(y2, false, scratch);

    double m = -1.0 / 0.0;
    for (u32 k = threadIdx.x; k < K; k += blockDim.x) {
        double gk = g64 ? g64[(u64)b * K + k] : (double)g32[(u64)b * K + k];
        double l = ln_w[k] - (y2 - 2.0 * gk + norms2[k]) * hv;
        lr[k] = l;
        m = l > m ? l : m;
    }
    m = block_reduce(m, true, scratch);

    const double err = rec->err_factor * err_scale * sqrt(y2);
    if (err > 1e-4) {
        const double cut = m - 36.0 - 2.0 * err;
        u32 lane = threadIdx.x & 31u, warp = threadIdx.x >> 5, warps = (blockDim.x + 31u) >> 5;
        u32 lanes = blockDim.x < 32u ? blockDim.x : 32u;  // 32, or 1 in the host emulation
        // Each warp takes components warp, warp + warps, ...; its lanes split the D terms.
        for (u32 k = warp; k < K; k += warps) {
            double l = lr[k];
            if (l >= cut) {
                const float* mu = means + (u64)k * D;
                double d2 = 0.0;
                for (u32 j = lane; j < D; j += lanes) {
                    double t = (double)yr[j] - (double)mu[j];
                    d2 += t * t;
                }
                d2 = warp_sum(d2);
                __syncwarp();
                if (lane == 0) lr[k] = ln_w[k] - d2 * hv;
            }
        }
        __syncthreads();
        m = -1.0 / 0.0;
        for (u32 k = threadIdx.x; k < K; k += blockDim.x) m = lr[k] > m ? lr[k] : m;
        m = block_reduce(m, true, scratch);
        if (threadIdx.x == 0) atomicAdd(refined, 1u);
    }

    if (threadIdx.x == 0) found_count = 0;
    __syncthreads();
    double zs = 0.0;
    for (u32 k = threadIdx.x; k < K; k += blockDim.x) {
        double e = weight_of(lr[k] - m);
        zs += e;
        rr[k] = (float)e;
        if (sparse && e > 0.0) {
            u32 slot = atomicAdd(&found_count, 1u);
            if (slot < SPARSE_MAX) found[slot] = k;
        }
    }
    zs = block_reduce(zs, false, scratch);  // its barriers also publish found[] and found_count
    if (threadIdx.x == 0) {
        z[b] = zs;
        if (sparse) {
            u32 n = found_count;
            if (n > SPARSE_MAX) {
                atomicAdd(dense, 1u);
            } else {
                // Ascending component order, whatever order the threads found them in.
                for (u32 i = 1; i < n; ++i) {
                    u32 v = found[i], j = i;
                    while (j > 0 && found[j - 1] > v) {
                        found[j] = found[j - 1];
                        --j;
                    }
                    found[j] = v;
                }
                for (u32 i = 0; i < n; ++i) sparse[(u64)b * SPARSE_MAX + i] = found[i];
            }
            nnz[b] = n;
        }
    }
}

// S' = R' M for a batch whose rows all have at most SPARSE_MAX non-zero responsibilities: row b is
// Σ_i e_{k_i} μ_{k_i} over its recorded components in ascending order, an f32 sum as a GEMM forms
// it. One block per row, threads over D.
extern "C" __global__ void sparse_rm(const float* __restrict__ r, const u32* __restrict__ sparse,
                                     const u32* __restrict__ nnz, const float* __restrict__ means,
                                     float* __restrict__ sp, u32 B, u32 K, u32 D,
                                     const u32* __restrict__ status, const StepRec* __restrict__ rec) {
    u32 b = blockIdx.x;
    if (b >= B) return;
    if (*(volatile const u32*)status != STATUS_OK || !rec->active) return;
    u32 n = nnz[b];
    const u32* idx = sparse + (u64)b * SPARSE_MAX;
    for (u32 j = threadIdx.x; j < D; j += blockDim.x) {
        float acc = 0.0f;
        for (u32 i = 0; i < n; ++i) {
            u32 k = idx[i];
            acc += r[(u64)b * K + k] * means[(u64)k * D + j];
        }
        sp[(u64)b * D + j] = acc;
    }
}

// Once per run, one block per component: ‖μ_k‖² in f64 and, for the DGEMM variant (means64 not
// null), the means widened to f64 — on the device, so that the host neither builds nor uploads
// the K × D f64 copy.
extern "C" __global__ void means_prep(const float* __restrict__ means, u32 K, u32 D, double* __restrict__ means64,
                                      double* __restrict__ norms2) {
    __shared__ double scratch[32];
    u32 k = blockIdx.x;
    if (k >= K) return;
    const float* mu = means + (u64)k * D;
    double s = 0.0;
    for (u32 j = threadIdx.x; j < D; j += blockDim.x) {
        double v = (double)mu[j];
        s += v * v;
        if (means64) means64[(u64)k * D + j] = v;
    }
    s = block_reduce(s, false, scratch);
    if (threadIdx.x == 0) norms2[k] = s;
}
