// TrueNorth deployment simulator kernels (CuPy RawModule; no includes, NVRTC-friendly).
//
// Random numbers are counter based and identical to rng.py: u = (mix32(counter ^ key) >> 8) * 2^-24,
// an exact float32, and a Bernoulli draw is (u < p). Stream keys are computed on the host.
//
//   tn_sample_synapses: crossbar bits of K copies of one layer  -> int8 weights (K, a, m)
//   tn_sample_inputs:   input spikes of T ticks (shared by all copies) -> uint8 (T, N, P)
//   tn_spike_layer:     integrate-and-fire of one layer for K copies and B = T*N rows in one launch:
//                       out[k, b, col0 + j] = (leak[j] + sum_i in[k?, b, src[i]] * w[k, i, j] >= 1)

__device__ __forceinline__ unsigned int tn_mix32(unsigned int x) {
    x ^= x >> 16;
    x *= 0x7FEB352Du;
    x ^= x >> 15;
    x *= 0x846CA68Bu;
    x ^= x >> 16;
    return x;
}

__device__ __forceinline__ float tn_uniform(unsigned int key, unsigned int counter) {
    // 2^-24: the top 24 bits of the hash give an exact float32 in [0, 1)
    return (float)(tn_mix32(counter ^ key) >> 8) * 5.9604644775390625e-08f;
}

// p, s: (a*m) row-major (axon i, neuron j); keys: (K); out: (K, a*m).
extern "C" __global__ void tn_sample_synapses(const float* __restrict__ p,
                                              const signed char* __restrict__ s,
                                              const unsigned int* __restrict__ keys,
                                              signed char* __restrict__ out,
                                              int K, int am) {
    long long total = (long long)K * am;
    long long stride = (long long)gridDim.x * blockDim.x;
    for (long long g = (long long)blockIdx.x * blockDim.x + threadIdx.x; g < total; g += stride) {
        int k = (int)(g / am);
        int e = (int)(g - (long long)k * am);
        float u = tn_uniform(keys[k], (unsigned int)e);
        out[g] = (u < p[e]) ? s[e] : (signed char)0;
    }
}

// x: (N, P) probabilities; keys: (T); out: (T, N, P). Counter of (n, q) is (n_offset + n) * P + q.
extern "C" __global__ void tn_sample_inputs(const float* __restrict__ x,
                                            const unsigned int* __restrict__ keys,
                                            unsigned char* __restrict__ out,
                                            int T, int N, int P, long long n_offset) {
    long long np = (long long)N * P;
    long long total = (long long)T * np;
    long long stride = (long long)gridDim.x * blockDim.x;
    for (long long g = (long long)blockIdx.x * blockDim.x + threadIdx.x; g < total; g += stride) {
        int t = (int)(g / np);
        long long e = g - (long long)t * np;  // n * P + q
        unsigned int counter = (unsigned int)(n_offset * P + e);
        float u = tn_uniform(keys[t], counter);
        out[g] = (u < x[e]) ? 1 : 0;
    }
}

#define TN_TILE 32
#define TN_ROWS 8  // blockDim.y; each thread computes TN_TILE / TN_ROWS = 4 rows of one neuron

// in: (K_in, B, F) uint8 spikes with K_in in {1, K} (1: the same input for every copy);
// src: (a) int32 feature index of each axon; w: (K, a, m) int8; leak: (m) int32;
// out: (K, B, F_out) uint8, this layer fills columns [col0, col0 + m).
// grid: (ceil(m / 32), ceil(B / 32), K); block: (32, 8).
extern "C" __global__ void tn_spike_layer(const unsigned char* __restrict__ in,
                                          const int* __restrict__ src,
                                          const signed char* __restrict__ w,
                                          const int* __restrict__ leak,
                                          unsigned char* __restrict__ out,
                                          int K_in, int B, int F, int a, int m, int F_out,
                                          int col0) {
    __shared__ int xs[TN_TILE][TN_TILE + 1];  // [row][axon]; +1 keeps column reads conflict free
    __shared__ int ws[TN_TILE][TN_TILE + 1];  // [axon][neuron]
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int k = blockIdx.z;
    const int j = blockIdx.x * TN_TILE + tx;
    const int row0 = blockIdx.y * TN_TILE;
    const unsigned char* in_k = in + (K_in == 1 ? 0LL : (long long)k * B * F);
    const signed char* w_k = w + (long long)k * a * m;
    int acc[TN_TILE / TN_ROWS];
#pragma unroll
    for (int r = 0; r < TN_TILE / TN_ROWS; ++r) acc[r] = 0;

    for (int i0 = 0; i0 < a; i0 += TN_TILE) {
        for (int r = ty; r < TN_TILE; r += TN_ROWS) {
            const int b = row0 + r, i = i0 + tx;
            xs[r][tx] = (b < B && i < a) ? (int)in_k[(long long)b * F + src[i]] : 0;
            const int ii = i0 + r;
            ws[r][tx] = (ii < a && j < m) ? (int)w_k[(long long)ii * m + j] : 0;
        }
        __syncthreads();
#pragma unroll 8
        for (int q = 0; q < TN_TILE; ++q) {
            const int wv = ws[q][tx];
#pragma unroll
            for (int r = 0; r < TN_TILE / TN_ROWS; ++r) acc[r] += xs[ty + r * TN_ROWS][q] * wv;
        }
        __syncthreads();
    }
    if (j < m) {
        const int lj = leak[j];
#pragma unroll
        for (int r = 0; r < TN_TILE / TN_ROWS; ++r) {
            const int b = row0 + ty + r * TN_ROWS;
            if (b < B) out[((long long)k * B + b) * F_out + col0 + j] = (acc[r] + lj >= 1) ? 1 : 0;
        }
    }
}
