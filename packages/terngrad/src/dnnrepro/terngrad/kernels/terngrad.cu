// TernGrad fused kernels: ternarize + pack, and unpack + accumulate + decode.
//
// Random numbers are counter-based (splitmix64 of seed + (i + 1) * golden gamma), so element i's
// draw depends only on (seed, i): any launch shape, any chunking and the plain-torch reference in
// dnnrepro/terngrad/gpu.py give the same trits. The uniform is the top 24 bits of the hash times
// 2^-24 (exact in float32); trit = +1 if u*s < g, -1 if -(u*s) > g, else 0 (the CPU rule).
// The seed is stream_seed(seed, rank, step, parameter) and i the element's index within the
// parameter: the one stream of the hook and the emulators, defined in dnnrepro/terngrad/ternarize.py.
// Codecs: per = 4 ("2bit": t+1 in 2 bits, element j of a byte at bits 2j) or per = 5 ("base3":
// sum (t_j + 1) * 3^j). Padding digits beyond n are 0, as in packing.pack_trits.


__device__ __forceinline__ unsigned long long splitmix64(unsigned long long z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

__device__ __forceinline__ int trit_of(float g, float s, unsigned long long seed, long long i) {
    unsigned long long h = splitmix64(seed + (unsigned long long)(i + 1) * 0x9E3779B97F4A7C15ULL);
    float u = (float)(unsigned int)(h >> 40) * 5.9604644775390625e-08f;  // 2^-24
    float thr = __fmul_rn(u, s);
    return (thr < g) ? 1 : ((-thr > g) ? -1 : 0);
}

// One thread per output byte. grad: n float32; out: ceil(n / per) bytes.
extern "C" __global__ void ternarize_pack(const float* __restrict__ grad, long long n,
                                          float scaler, unsigned long long seed, int per,
                                          unsigned char* __restrict__ out) {
    long long nbytes = (n + per - 1) / per;
    for (long long b = blockIdx.x * (long long)blockDim.x + threadIdx.x; b < nbytes;
         b += (long long)gridDim.x * blockDim.x) {
        unsigned int code = 0;
        unsigned int weight = 1;
        for (int j = 0; j < per; ++j) {
            long long i = b * per + j;
            unsigned int v = 0;  // padding digit, as pack_trits writes it
            if (i < n) v = (unsigned int)((scaler > 0.0f ? trit_of(grad[i], scaler, seed, i) : 0) + 1);
            if (per == 4) {
                code |= v << (2 * j);
            } else {
                code += v * weight;
                weight *= 3;
            }
        }
        out[b] = (unsigned char)code;
    }
}

// One thread per element. packed: workers rows of row_bytes bytes (one per rank, same layout);
// out[i] = (sum over ranks of trit_i) * scale, with scale = s / N for the mean gradient.
extern "C" __global__ void unpack_accumulate(const unsigned char* __restrict__ packed,
                                             long long row_bytes, int workers, long long n,
                                             int per, float scale, float* __restrict__ out) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        long long b = i / per;
        int j = (int)(i - b * per);
        int sigma = 0;
        for (int r = 0; r < workers; ++r) {
            unsigned int code = packed[r * row_bytes + b];
            unsigned int v;
            if (per == 4) {
                v = (code >> (2 * j)) & 3u;
            } else {
                for (int k = 0; k < j; ++k) code /= 3u;
                v = code % 3u;
            }
            sigma += (int)v - 1;
        }
        out[i] = __fmul_rn((float)sigma, scale);
    }
}

// One thread per element of a whole bucket's ternarized layers (one launch per bucket). Element i
// of the output belongs to segment l with starts[l] <= i < starts[l + 1] (starts has segments + 1
// entries, starts[0] = 0); it reads grad[src[l] + k], k = i - starts[l], and draws element k of
// stream seeds[l] with scaler scalers[l]. The scalers stay in device memory (the MAX-allreduced
// vector): no host round trip. A scaler <= 0 gives zero trits, as ternarize() does.
extern "C" __global__ void ternarize_segments(const float* __restrict__ grad,
                                              const long long* __restrict__ starts,
                                              const long long* __restrict__ src,
                                              const unsigned long long* __restrict__ seeds,
                                              const float* __restrict__ scalers, int segments,
                                              signed char* __restrict__ out) {
    long long n = starts[segments];
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        int lo = 0, hi = segments - 1;  // the last segment starting at or before i
        while (lo < hi) {
            int mid = (lo + hi + 1) >> 1;
            if (starts[mid] <= i) lo = mid; else hi = mid - 1;
        }
        long long k = i - starts[lo];
        float s = scalers[lo];
        out[i] = (signed char)(s > 0.0f ? trit_of(grad[src[lo] + k], s, seeds[lo], k) : 0);
    }
}
