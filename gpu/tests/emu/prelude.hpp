// The CUDA names the kernels use, for compiling them on the host with a C++ compiler
// (gpu/tests/emulate.rs). Blocks run one thread after another, so only kernels whose threads do
// not communicate — or that are launched with one thread per block (mixture_softmax, where
// ANNEAL_EMULATION turns the warp reductions into the identity) — are emulated faithfully.
#include <cmath>
#include <cstdint>
#include <cstring>

#define ANNEAL_EMULATION 1
#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __shared__ static

struct Dim3 {
    unsigned x, y, z;
};
static Dim3 threadIdx, blockIdx, blockDim, gridDim;

static inline unsigned __umulhi(unsigned a, unsigned b) {
    return (unsigned)(((unsigned long long)a * b) >> 32);
}
static inline unsigned __float_as_uint(float f) {
    unsigned u;
    std::memcpy(&u, &f, 4);
    return u;
}
static inline unsigned atomicMin(unsigned* p, unsigned v) {
    unsigned old = *p;
    if (v < old) *p = v;
    return old;
}
static inline unsigned atomicAdd(unsigned* p, unsigned v) {
    unsigned old = *p;
    *p = old + v;
    return old;
}
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline void __syncthreads() {}
static inline void __syncwarp() {}
using std::exp;
using std::sqrt;
