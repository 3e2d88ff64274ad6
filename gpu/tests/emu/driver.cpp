// Runs the kernels on the host, in the launch order of gpu/src/run.rs, on the problem in the
// input file; writes the samples and the status. The SGEMMs are plain f32 loops.
//
// Input (little-endian): u64 B, D, K, len, has_aux, seed, first, mode (0 direct; GEMM path: 1,
// + 2 for G in f64 (the DGEMM variant), + 4 for sparse rows through sparse_rm, + 8 for logits in
// global memory instead of shared memory (as for K > SHARED_LOGITS_MAX));
// StepRec[len]; f32 x[B*D]; f32 a[B*D]; f32 means[K*D]; f64 ln_w[K]; f64 norms2[K].
// Output: f32 x[B*D]; u32 status; u32 refined; u32 steps whose S' came from sparse_rm; then the layout check: u64 sizeof(StepRec),
// offsetof inv_v, point_aux, xx, ax, snr, step, active; u32 the stream tags (step, init, inpaint,
// aux init).
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include "prelude.hpp"
#include "../../kernels/common.cu"
#include "../../kernels/noise.cu"
#include "../../kernels/direct.cu"
#include "../../kernels/mixture.cu"
#include "../../kernels/step.cu"

template <class T>
static void read(FILE* f, T* p, size_t n) {
    if (fread(p, sizeof(T), n, f) != n) {
        fprintf(stderr, "short input\n");
        std::exit(3);
    }
}

template <class F>
static void launch(u32 blocks, u32 threads, F kernel) {
    blockDim = {threads, 1, 1};
    gridDim = {blocks, 1, 1};
    for (u32 bx = 0; bx < blocks; ++bx)
        for (u32 tx = 0; tx < threads; ++tx) {
            blockIdx = {bx, 0, 0};
            threadIdx = {tx, 0, 0};
            kernel();
        }
}

int main(int argc, char** argv) {
    if (argc != 3) return 2;
    FILE* in = fopen(argv[1], "rb");
    if (!in) return 2;
    u64 h[8];
    read(in, h, 8);
    u32 B = (u32)h[0], D = (u32)h[1], K = (u32)h[2], len = (u32)h[3], has_aux = (u32)h[4];
    u64 seed = h[5], first = h[6];
    bool gemm = (h[7] & 1) != 0, g_f64 = (h[7] & 2) != 0, use_sparse = (h[7] & 4) != 0;
    u32 shared_logits = ((h[7] & 8) == 0 && K <= SHARED_LOGITS_MAX) ? 1u : 0u;
    std::vector<StepRec> table(len);
    std::vector<float> x((size_t)B * D), a((size_t)B * D), means((size_t)K * D);
    std::vector<double> ln_w(K), norms2(K);
    read(in, table.data(), len);
    read(in, x.data(), x.size());
    read(in, a.data(), a.size());
    read(in, means.data(), means.size());
    read(in, ln_w.data(), K);
    read(in, norms2.data(), K);
    fclose(in);
    u32 status = STATUS_OK, refined = 0, sparse_steps = 0;

    if (!gemm) {
        launch((B + 127) / 128, 128, [&] {
            direct_run(table.data(), len, x.data(), a.data(), has_aux, means.data(), ln_w.data(), B, D, K, seed,
                       first, &status);
        });
    } else {
        std::vector<float> y((size_t)B * D), sp((size_t)B * D), g((size_t)B * K);
        std::vector<double> logits((size_t)B * K), z(B), alpha(B);
        std::vector<double> y64(g_f64 ? (size_t)B * D : 0), g64(g_f64 ? (size_t)B * K : 0);
        std::vector<u32> idx((size_t)B * SPARSE_MAX), nnz(B);
        u32 dense = 0;
        u32 per_row = (D + 3) / 4;
        u32 step_blocks = (B * per_row + 255) / 256;
        auto step = [&](int upd, int nxt) {
            launch(step_blocks, 256, [&] {
                plan_step(table.data(), upd, nxt, x.data(), a.data(), has_aux, y.data(),
                          g_f64 ? y64.data() : nullptr, sp.data(), z.data(), alpha.data(), SCORE_MIXTURE, B, D, seed, first,
                          &status);
            });
        };
        if (len > 0) step(-1, 0);
        for (u32 k = 0; k < len && status == STATUS_OK; ++k) {
            for (u32 b = 0; b < B; ++b)  // G = Y Mᵀ (SGEMM, or DGEMM on the widened values)
                for (u32 c = 0; c < K; ++c) {
                    if (g_f64) {
                        double acc = 0.0;
                        for (u32 j = 0; j < D; ++j) acc += y64[(size_t)b * D + j] * (double)means[(size_t)c * D + j];
                        g64[(size_t)b * K + c] = acc;
                    } else {
                        float acc = 0.0f;
                        for (u32 j = 0; j < D; ++j) acc += y[(size_t)b * D + j] * means[(size_t)c * D + j];
                        g[(size_t)b * K + c] = acc;
                    }
                }
            dense = 0;
            launch(B, 1, [&] {
                mixture_softmax(g_f64 ? nullptr : g.data(), g_f64 ? g64.data() : nullptr, g.data(), logits.data(),
                                y.data(), means.data(), ln_w.data(), norms2.data(), &table[k], B, K, D,
                                g_f64 ? 1.0 / 536870912.0 : 1.0, z.data(), &refined, &status,
                                use_sparse ? idx.data() : nullptr, nnz.data(), &dense, shared_logits);
            });
            if (use_sparse && dense == 0) {
                ++sparse_steps;
                launch(B, 1, [&] {
                    sparse_rm(g.data(), idx.data(), nnz.data(), means.data(), sp.data(), B, K, D, &status, &table[k]);
                });
            } else {
                for (u32 b = 0; b < B; ++b)  // S' = R' M
                    for (u32 j = 0; j < D; ++j) {
                        float acc = 0.0f;
                        for (u32 c = 0; c < K; ++c) acc += g[(size_t)b * K + c] * means[(size_t)c * D + j];
                        sp[(size_t)b * D + j] = acc;
                    }
            }
            launch((B + 127) / 128, 128, [&] {
                snr_norms(table.data(), (int)k, y.data(), sp.data(), z.data(), alpha.data(), SCORE_MIXTURE, B, D,
                          seed, first);
            });
            step((int)k, k + 1 < len ? (int)k + 1 : -1);
        }
    }

    FILE* out = fopen(argv[2], "wb");
    if (!out) return 2;
    fwrite(x.data(), sizeof(float), x.size(), out);
    fwrite(&status, 4, 1, out);
    fwrite(&refined, 4, 1, out);
    fwrite(&sparse_steps, 4, 1, out);
    u64 layout[8] = {sizeof(StepRec), offsetof(StepRec, inv_v), offsetof(StepRec, point_aux), offsetof(StepRec, xx),
                     offsetof(StepRec, ax), offsetof(StepRec, snr), offsetof(StepRec, step), offsetof(StepRec, active)};
    fwrite(layout, 8, 8, out);
    u32 tags[4] = {STREAM_TAG_STEP, STREAM_TAG_INIT, STREAM_TAG_INPAINT, STREAM_TAG_AUX_INIT};
    fwrite(tags, 4, 4, out);
    fclose(out);
    return 0;
}
