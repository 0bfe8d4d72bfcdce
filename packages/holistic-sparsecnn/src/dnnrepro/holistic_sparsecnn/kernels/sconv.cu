// Direct sparse convolution on the GPU: CSR weights whose column indices are offsets into the
// padded input (the same layout as the CPU kernel, see csr.py).
//
// Grid: (ceil(Hout*Wout / blockDim.x), N output channels, B images); one thread per output pixel.
// All threads of a block share one output channel n, so they stage its CSR row through shared
// memory in chunks of CHUNK (value, offset) pairs and every thread reuses each pair for its pixel:
// out[b, n, y, x] = bias[n] + sum_j values[j] * xpad[b, colidx[j] + y*sh*wp + x*sw]  (ReLU opt.).

#define CHUNK 256

extern "C" __global__ void sconv_csr(
    const float* __restrict__ xpad,   // (B, L) padded images, flattened CHW
    const int* __restrict__ rowptr,   // (N + 1)
    const int* __restrict__ colidx,   // (nnz) input offsets
    const float* __restrict__ values, // (nnz)
    const float* __restrict__ bias,   // (N)
    float* __restrict__ out,          // (B, N, Hout, Wout)
    int L, int N, int hout, int wout, int wp, int sh, int sw, int relu)
{
    __shared__ float s_val[CHUNK];
    __shared__ int s_off[CHUNK];
    const int n = blockIdx.y;
    const int b = blockIdx.z;
    const int pix = blockIdx.x * blockDim.x + threadIdx.x;
    const int npix = hout * wout;
    const bool active = pix < npix;
    const int y = active ? pix / wout : 0;
    const int x = active ? pix - y * wout : 0;
    const long long base = (long long)b * L + (long long)y * sh * wp + (long long)x * sw;
    const int start = rowptr[n];
    const int stop = rowptr[n + 1];
    float acc = 0.0f;
    for (int c0 = start; c0 < stop; c0 += CHUNK) {
        const int m = min(CHUNK, stop - c0);
        for (int t = threadIdx.x; t < m; t += blockDim.x) {
            s_val[t] = values[c0 + t];
            s_off[t] = colidx[c0 + t];
        }
        __syncthreads();
        if (active) {
            for (int t = 0; t < m; ++t) {
                acc = fmaf(s_val[t], xpad[base + s_off[t]], acc);
            }
        }
        __syncthreads();
    }
    if (active) {
        float v = acc + bias[n];
        if (relu && v < 0.0f) v = 0.0f;
        out[((long long)b * N + n) * npix + pix] = v;
    }
}
