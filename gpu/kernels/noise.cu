// Keyed noise, bit for bit the core's (core/src/noise/mod.rs, core/src/real.rs): Philox4x32-10 on the
// counter (block, index, sample lo, sample hi | tag << 24) under the key (seed lo, seed hi), and
// normals by Wichura's AS 241 PPND7 in f32 at p = (2k + 1) 2⁻²⁴, k = w >> 9.

struct Words {
    u32 w0, w1, w2, w3;
};

__device__ __forceinline__ Words philox4x32_10(u32 c0, u32 c1, u32 c2, u32 c3, u32 k0, u32 k1) {
#pragma unroll
    for (int round = 0; round < 10; ++round) {
        if (round > 0) {
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        u32 hi0 = __umulhi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
        u32 hi1 = __umulhi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
        u32 n0 = hi1 ^ c1 ^ k0;
        u32 n2 = hi0 ^ c3 ^ k1;
        c0 = n0;
        c1 = lo1;
        c2 = n2;
        c3 = lo0;
    }
    Words out = {c0, c1, c2, c3};
    return out;
}

// Block `block` of sample `sample`'s stream (index, tag): tag 0 step noise, 1 initialisation,
// 2 inpainting level noise, 3 auxiliary initialisation.
__device__ __forceinline__ Words noise_block(u64 seed, u64 sample, u32 index, u32 tag, u32 block) {
    u32 hi = ((u32)(sample >> 32) & 0x00FFFFFFu) | (tag << 24);
    return philox4x32_10(block, index, (u32)sample, hi, (u32)seed, (u32)(seed >> 32));
}

__device__ __forceinline__ u32 word_at(Words w, u32 j) {
    return j == 0 ? w.w0 : j == 1 ? w.w1 : j == 2 ? w.w2 : w.w3;
}

// PPND7 with the operations in the core's order (f32 throughout).
__device__ __forceinline__ float ppnd7(u32 w) {
    const float P_SCALE = 1.0f / 16777216.0f;
    int k = (int)(w >> 9);
    float q = (float)(2 * k + 1 - (1 << 23)) * P_SCALE;
    if (fabsf(q) <= 0.425f) {
        float r = 0.180625f - q * q;
        return q * (((5.9109374720e1f * r + 1.5929113202e2f) * r + 5.0434271938e1f) * r + 3.3871327179e0f) /
               (((6.7187563600e1f * r + 7.8757757664e1f) * r + 1.7895169469e1f) * r + 1.0f);
    }
    int m = (1 << 23) - 1 - k;
    float lower = (float)(2 * (k < m ? k : m) + 1) * P_SCALE;
    float r = sqrtf(-logf(lower));
    float z;
    if (r <= 5.0f) {
        r -= 1.6f;
        z = (((1.7023821103e-1f * r + 1.3067284816e0f) * r + 2.7568153900e0f) * r + 1.4234372777e0f) /
            ((1.2021132975e-1f * r + 7.3700164250e-1f) * r + 1.0f);
    } else {
        r -= 5.0f;
        z = (((1.7337203997e-2f * r + 4.2868294337e-1f) * r + 3.0812263860e0f) * r + 6.6579051150e0f) /
            ((1.2258202635e-2f * r + 2.4197894225e-1f) * r + 1.0f);
    }
    return q < 0.0f ? -z : z;
}

// Element j of sample `sample`'s step-k noise ξ (the words of its block must be `w`).
__device__ __forceinline__ float normal_of(Words w, u32 j) {
    return ppnd7(word_at(w, j & 3u));
}

// The raw words and the normals of rows [first, first + rows) of one stream, `dim` per row:
// thread t computes block t % blocks_per_row of row t / blocks_per_row. For the tests that
// compare the device's noise with the core's.
extern "C" __global__ void noise_rows(u64 seed, u64 first, u32 index, u32 tag, u32 dim, u32 rows,
                                      u32* __restrict__ words, float* __restrict__ normals) {
    u32 per_row = (dim + 3u) / 4u;
    u64 t = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= (u64)per_row * rows) return;
    u32 row = (u32)(t / per_row), block = (u32)(t % per_row);
    Words w = noise_block(seed, first + row, index, tag, block);
    for (u32 e = 0; e < 4u; ++e) {
        u32 j = 4u * block + e;
        if (j < dim) {
            words[(u64)row * dim + j] = word_at(w, e);
            normals[(u64)row * dim + j] = ppnd7(word_at(w, e));
        }
    }
}

// `sample`'s default start for rows [first, first + rows): x = σ_1 z + centre (z from the stream
// Init), rounded as the core's init_normal then the host's mean shift round it: the product and
// the sum each in f32 (__fmul_rn keeps them from being contracted into one FMA).
extern "C" __global__ void init_normal_rows(u64 seed, u64 first, u32 dim, u32 rows, float sigma,
                                            const float* __restrict__ center, float* __restrict__ x) {
    u32 per_row = (dim + 3u) / 4u;
    u64 t = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= (u64)per_row * rows) return;
    u32 row = (u32)(t / per_row), block = (u32)(t % per_row);
    Words w = noise_block(seed, first + row, 0u, STREAM_TAG_INIT, block);
    for (u32 e = 0; e < 4u; ++e) {
        u32 j = 4u * block + e;
        if (j < dim) x[(u64)row * dim + j] = __fmul_rn(ppnd7(word_at(w, e)), sigma) + center[j];
    }
}
