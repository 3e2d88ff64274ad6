// One fused kernel per plan step, whatever the sampler: it finishes the score of step `upd`
// (s = (S'/z − y)/v from the second SGEMM's S' = R' M and the row sums z), applies that step's
// update to x and a, checks them, then draws the noise of step `nxt` and writes its score point
// y = x + point_aux a + point_noise ξ for the next SGEMM. Thread t owns the four elements of noise
// block t % ⌈D/4⌉ of row t / ⌈D/4⌉, so one Philox call gives all its normals. ξ is recomputed
// from its key where it is needed instead of being stored.

__device__ __forceinline__ float step_noise(const StepRec* r, u64 seed, u64 sample, u32 block, u32 e,
                                            Words* w, bool* have) {
    if (!r->noise) return 0.0f;
    if (!*have) {
        *w = noise_block(seed, sample, r->step, STREAM_TAG_STEP, block);
        *have = true;
    }
    return normal_of(*w, e);
}

// upd / nxt: indices into `table`, or -1 for none (the prologue has no update); a record that is
// not `active` (padding after the plan's last step) is skipped the same way. alpha: per-row α of
// an snr update (from snr_norms). y64, when given, receives the score point widened to f64 too
// (the DGEMM's operand). mode: where the score comes from (SCORE_*): the mixture's S' and z, or
// a network's output in `sp` (z is then not read).
extern "C" __global__ void plan_step(const StepRec* __restrict__ table, int upd, int nxt,
                                     float* __restrict__ x, float* __restrict__ a, u32 has_aux,
                                     float* __restrict__ y, double* __restrict__ y64, const float* __restrict__ sp,
                                     const double* __restrict__ z, const double* __restrict__ alpha, u32 mode,
                                     u32 B, u32 D, u64 seed, u64 first, u32* status) {
    u32 per_row = (D + 3u) / 4u;
    u64 t = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= (u64)per_row * B) return;
    if (*(volatile u32*)status != STATUS_OK) return;
    u32 b = (u32)(t / per_row), block = (u32)(t % per_row);
    u64 sample = first + b;
    u64 base = (u64)b * D + 4u * block;
    u32 n = D - 4u * block < 4u ? D - 4u * block : 4u;
    float xv[4], av[4];
    for (u32 e = 0; e < 4u; ++e) {
        xv[e] = e < n ? x[base + e] : 0.0f;
        av[e] = (e < n && has_aux) ? a[base + e] : 0.0f;
    }
    if (upd >= 0 && table[upd].active) {
        const StepRec* r = table + upd;
        const float inv_v = (float)r->inv_v;
        const float inv_z = mode == SCORE_MIXTURE ? (float)(1.0 / z[b]) : 1.0f;
        Words w;
        bool have = false;
        bool ok_s = true, ok_x = true, ok_a = true;
        float ca = 0.0f, cn = 0.0f;
        if (r->kind == 1u) {
            ca = (float)alpha[b];
            cn = (float)sqrt(2.0 * alpha[b]);
        }
        for (u32 e = 0; e < n; ++e) {
            float s = finish_score(mode, r, sp[base + e], y[base + e], inv_z, inv_v);
            ok_s = ok_s && finite_f(s);
            float xi = step_noise(r, seed, sample, block, e, &w, &have);
            update_element(r, has_aux, ca, cn, s, xi, &xv[e], &av[e]);
            ok_x = ok_x && finite_f(xv[e]);
            ok_a = ok_a && finite_f(av[e]);
        }
        if (!ok_s) report(status, r->step, WHAT_SCORE);
        else if (!ok_x) report(status, r->step, WHAT_STATE);
        else if (has_aux && !ok_a) report(status, r->step, WHAT_AUX);
        for (u32 e = 0; e < n; ++e) {
            x[base + e] = xv[e];
            if (has_aux) a[base + e] = av[e];
        }
    }
    if (nxt >= 0 && table[nxt].active) {
        const StepRec* r = table + nxt;
        Words w;
        bool have = false;
        for (u32 e = 0; e < n; ++e) {
            float xi = step_noise(r, seed, sample, block, e, &w, &have);
            float yv = score_point(r, xv[e], av[e], xi);
            y[base + e] = yv;
            if (y64) y64[base + e] = (double)yv;
        }
    }
}

// α of an snr update for every row: one thread per row takes ‖s‖ and ‖ξ‖ in f64 (s finished as
// in plan_step, ξ recomputed), in element order as the CPU does. Returns at once for a step that
// is not an active snr update (a captured chunk launches it at every step).
extern "C" __global__ void snr_norms(const StepRec* __restrict__ table, int upd, const float* __restrict__ y,
                                     const float* __restrict__ sp, const double* __restrict__ z,
                                     double* __restrict__ alpha, u32 mode, u32 B, u32 D, u64 seed,
                                     u64 first) {
    u32 b = blockIdx.x * blockDim.x + threadIdx.x;
    if (b >= B) return;
    const StepRec* r = table + upd;
    if (r->kind != 1u || !r->active) return;
    const float inv_v = (float)r->inv_v;
    const float inv_z = mode == SCORE_MIXTURE ? (float)(1.0 / z[b]) : 1.0f;
    u64 sample = first + b;
    double ns = 0.0, nx = 0.0;
    for (u32 block = 0; 4u * block < D; ++block) {
        Words w;
        bool have = false;
        for (u32 e = 0; e < 4u && 4u * block + e < D; ++e) {
            u64 i = (u64)b * D + 4u * block + e;
            float s = finish_score(mode, r, sp[i], y[i], inv_z, inv_v);
            float xi = step_noise(r, seed, sample, block, e, &w, &have);
            ns += (double)s * (double)s;
            nx += (double)xi * (double)xi;
        }
    }
    alpha[b] = snr_alpha((double)r->snr, sqrt(ns), sqrt(nx));
}
