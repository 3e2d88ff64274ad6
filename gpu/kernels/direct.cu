// Small mixtures (K·D ≤ 64, D ≤ 16; toy2d): one thread runs one sample through a whole chunk of
// plan steps — a persistent loop, one launch per chunk instead of several per step. The score is
// the CPU's direct path (host/src/score/batch_score.rs): exact f64 logits from ‖y − μ_k‖², f64 softmax.

#define DIRECT_MAX_D 16
#define DIRECT_MAX_K 64

// The mixture score at y (D values) into s, in f64 as the CPU computes it, rounded to f32.
__device__ __forceinline__ void direct_score(const float* y, const float* __restrict__ means,
                                             const double* __restrict__ ln_w, u32 K, u32 D,
                                             double half_inv_v, double inv_v, float* s) {
    double logits[DIRECT_MAX_K];
    double max = -1.0 / 0.0;
    for (u32 k = 0; k < K; ++k) {
        double d2 = 0.0;
        for (u32 j = 0; j < D; ++j) {
            double t = (double)y[j] - (double)means[k * D + j];
            d2 += t * t;
        }
        double l = ln_w[k] - d2 * half_inv_v;
        logits[k] = l;
        max = l > max ? l : max;
    }
    double acc[DIRECT_MAX_D];
    for (u32 j = 0; j < D; ++j) acc[j] = 0.0;
    double z = 0.0;
    for (u32 k = 0; k < K; ++k) {
        double e = weight_of(logits[k] - max);
        z += e;
        for (u32 j = 0; j < D; ++j) acc[j] += e * (double)means[k * D + j];
    }
    double inv_z = 1.0 / z;
    for (u32 j = 0; j < D; ++j) s[j] = (float)((acc[j] * inv_z - (double)y[j]) * inv_v);
}

// Steps table[0..count) for rows [0, B) of x (and a when has_aux), sample indices first + row.
extern "C" __global__ void direct_run(const StepRec* __restrict__ table, u32 count, float* __restrict__ x,
                                      float* __restrict__ a, u32 has_aux, const float* __restrict__ means,
                                      const double* __restrict__ ln_w, u32 B, u32 D, u32 K, u64 seed,
                                      u64 first, u32* status) {
    u32 b = blockIdx.x * blockDim.x + threadIdx.x;
    if (b >= B || D > DIRECT_MAX_D || K > DIRECT_MAX_K) return;
    if (*(volatile u32*)status != STATUS_OK) return;
    float xv[DIRECT_MAX_D], av[DIRECT_MAX_D], xi[DIRECT_MAX_D], y[DIRECT_MAX_D], s[DIRECT_MAX_D];
    for (u32 j = 0; j < D; ++j) {
        xv[j] = x[(u64)b * D + j];
        av[j] = has_aux ? a[(u64)b * D + j] : 0.0f;
    }
    u64 sample = first + b;
    for (u32 i = 0; i < count; ++i) {
        StepRec r = table[i];
        // 1. Noise.
        for (u32 j = 0; j < D; j += 4) {
            if (r.noise) {
                Words w = noise_block(seed, sample, r.step, STREAM_TAG_STEP, j / 4u);
                for (u32 e = 0; e < 4u && j + e < D; ++e) xi[j + e] = normal_of(w, e);
            } else {
                for (u32 e = 0; e < 4u && j + e < D; ++e) xi[j + e] = 0.0f;
            }
        }
        // 2. Score at y = x + point_aux a + point_noise ξ (at x itself when trivial).
        for (u32 j = 0; j < D; ++j) y[j] = score_point(&r, xv[j], has_aux ? av[j] : 0.0f, xi[j]);
        direct_score(y, means, ln_w, K, D, r.half_inv_v, r.inv_v, s);
        bool ok = true;
        for (u32 j = 0; j < D; ++j) ok = ok && finite_f(s[j]);
        if (!ok) {
            report(status, r.step, WHAT_SCORE);
            return;
        }
        // 3. Update.
        float ca = 0.0f, cn = 0.0f;
        if (r.kind == 1u) {
            double ns = 0.0, nx = 0.0;
            for (u32 j = 0; j < D; ++j) {
                ns += (double)s[j] * (double)s[j];
                nx += (double)xi[j] * (double)xi[j];
            }
            double alpha = snr_alpha((double)r.snr, sqrt(ns), sqrt(nx));
            ca = (float)alpha;
            cn = (float)sqrt(2.0 * alpha);
        }
        for (u32 j = 0; j < D; ++j) update_element(&r, has_aux, ca, cn, s[j], xi[j], &xv[j], &av[j]);
        // 4. Finite?
        bool okx = true, oka = true;
        for (u32 j = 0; j < D; ++j) {
            okx = okx && finite_f(xv[j]);
            oka = oka && finite_f(av[j]);
        }
        if (!okx || (has_aux && !oka)) {
            report(status, r.step, okx ? WHAT_AUX : WHAT_STATE);
            break;
        }
    }
    for (u32 j = 0; j < D; ++j) {
        x[(u64)b * D + j] = xv[j];
        if (has_aux) a[(u64)b * D + j] = av[j];
    }
}
