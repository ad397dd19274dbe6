// Transposing copy for MN-major GEMM operands: the Hopper FP8 wgmma reads K-major operands
// only, so the plugin turns an operand stored [K, MN] (rows of MN elements, row stride
// `in_row`) into [MN, K] K-major (row stride `out_row`) before the GEMM. One 64 x 64 tile per
// CTA, batched over blockIdx.z: 16-byte loads of input rows into shared memory, then each
// thread gathers 16 bytes of one output row from a tile column and stores them at once.
// Rows of the tile are padded by 16 bytes so that the vector stores stay aligned.
//
// The including source defines ELEM_BYTES (1 or 2) and KERNEL_NAME.
#pragma once
#include <stdint.h>

namespace dgreg_sm90 {

#if ELEM_BYTES == 1
typedef uint8_t elem_t;
#else
typedef uint16_t elem_t;
#endif
constexpr int T = 64;                  // tile edge, in elements
constexpr int V = 16 / ELEM_BYTES;     // elements per 16-byte vector
constexpr int P = T + V;               // padded tile row, in elements
constexpr int THREADS = 256;

union Vec {
    uint4 u;
    elem_t e[V];
};

extern "C" __global__ void __launch_bounds__(THREADS)
KERNEL_NAME(const elem_t* __restrict__ in, elem_t* __restrict__ out, int rows, int cols,
            long long in_row, long long in_batch, long long out_row, long long out_batch) {
    __shared__ __align__(16) elem_t tile[T * P];
    const int c0 = blockIdx.x * T, r0 = blockIdx.y * T;
    in += blockIdx.z * in_batch;
    out += blockIdx.z * out_batch;
    for (int idx = threadIdx.x; idx < T * (T / V); idx += THREADS) {
        const int r = idx / (T / V), cv = idx % (T / V) * V;
        const int gr = r0 + r, gc = c0 + cv;
        Vec v;
        if (gr < rows && gc + V <= cols) {
            v.u = *reinterpret_cast<const uint4*>(in + gr * in_row + gc);
        } else {  // the ragged edge: element by element, zeros outside
            #pragma unroll
            for (int i = 0; i < V; ++i) v.e[i] = gr < rows && gc + i < cols ? in[gr * in_row + gc + i] : elem_t(0);
        }
        *reinterpret_cast<uint4*>(tile + r * P + cv) = v.u;
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < T * (T / V); idx += THREADS) {
        const int c = idx / (T / V), rv = idx % (T / V) * V;
        const int gc = c0 + c, gr = r0 + rv;
        if (gc >= cols) continue;
        Vec v;
        #pragma unroll
        for (int i = 0; i < V; ++i) v.e[i] = tile[(rv + i) * P + c];
        elem_t* dst = out + gc * out_row + gr;
        if (gr + V <= rows) {
            *reinterpret_cast<uint4*>(dst) = v.u;
        } else {
            #pragma unroll
            for (int i = 0; i < V; ++i)
                if (gr + i < rows) dst[i] = v.e[i];
        }
    }
}

}  // namespace dgreg_sm90
