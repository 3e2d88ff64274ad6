// The mixture score's middle stage for a batch (MATH.md, "Analytic scores"): from the products
// G = Y Mᵀ (B × K, cuBLAS SGEMM) to unnormalised responsibilities in place of G and their row sums
// z, so that the second SGEMM gives S' = R' M and the step kernel finishes s = (S'/z − y)/v.
//
// Per row (one block): logits l_k = ln w_k − (‖y‖² − 2 g_k + ‖μ_k‖²)/(2v) in f64. An f32 dot
// product errs by at most D·2⁻²⁴·‖y‖‖μ_k‖ whatever the summation order, so a logit by
// err = err_factor·‖y‖; where err > 1e-4 (MATH.md's precision warning) every logit within
// 36 + 2·err nats of the row's maximum is recomputed exactly in f64 from ‖y − μ_k‖² — the others
// cannot reach a weight of e⁻³⁶. Then e_k = exp(l_k − max) (0 below e⁻⁴⁰). As the CPU does.

#define SOFTMAX_THREADS 256

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

extern "C" __global__ void mixture_softmax(float* __restrict__ g, double* __restrict__ logits,
                                           const float* __restrict__ y, const float* __restrict__ means,
                                           const double* __restrict__ ln_w, const double* __restrict__ norms2,
                                           const StepRec* __restrict__ rec, u32 B, u32 K, u32 D,
                                           double* __restrict__ z, u32* __restrict__ refined,
                                           const u32* __restrict__ status) {
    __shared__ double scratch[32];
    u32 b = blockIdx.x;
    if (b >= B) return;
    if (*(volatile const u32*)status != STATUS_OK) return;
    const double hv = rec->half_inv_v;
    const float* yr = y + (u64)b * D;
    float* gr = g + (u64)b * K;
    double* lr = logits + (u64)b * K;

    double y2 = 0.0;
    for (u32 j = threadIdx.x; j < D; j += blockDim.x) y2 += (double)yr[j] * (double)yr[j];
    y2 = block_reduce(y2, false, scratch);

    double m = -1.0 / 0.0;
    for (u32 k = threadIdx.x; k < K; k += blockDim.x) {
        double l = ln_w[k] - (y2 - 2.0 * (double)gr[k] + norms2[k]) * hv;
        lr[k] = l;
        m = l > m ? l : m;
    }
    m = block_reduce(m, true, scratch);

    const double err = rec->err_factor * sqrt(y2);
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

    double zs = 0.0;
    for (u32 k = threadIdx.x; k < K; k += blockDim.x) {
        double e = weight_of(lr[k] - m);
        zs += e;
        gr[k] = (float)e;
    }
    zs = block_reduce(zs, false, scratch);
    if (threadIdx.x == 0) z[b] = zs;
}
