"""The CPU direct sparse convolution, compiled with numba, with an explicit SIMD inner loop.

Unit stride (every AlexNet conv2-5 layer) uses the "padded-width run": with row pitch ``Ws`` of
the padded input, output pixel (y, x) of channel n reads ``colidx[j] + y*Ws + x``, so all outputs
of a channel form one run of ``(Hout-1)*Ws + Wout`` consecutive positions (the ``Ws - Wout``
positions between rows are computed and thrown away). The padded input shares one pad column
between the right edge of a row and the left edge of the next (SkimCaffe's layout,
:func:`shared_pad`: pitch ``W + pad_w``), which makes the run ``pad_w`` shorter per row. The run is cut into tiles of ``nv`` SIMD
vectors. For one tile and one output channel the micro-kernel (:func:`tile_fma`, LLVM vector IR
emitted through a numba intrinsic, so it does not depend on the auto-vectorizer) keeps the tile
in registers, and for each non-zero broadcasts the weight and FMAs it over ``nv`` contiguous
input vectors: the paper's / SkimCaffe's ``sconv_unit_stride`` scheme. Two register sets take
alternate non-zeros so that ``2*nv`` independent FMA chains hide the FMA latency.

Blocking (SkimCaffe's column blocking and ``OC_BLOCK``): one task is (image b, block of output
channels, ``ACC_BYTES`` of accumulators); the input channels are walked in blocks (a padded slab
of about ``L1_BYTES``, widened to ``MIN_BLOCK_NNZ`` non-zeros per output channel) that stay in
cache while every output channel of the task streams its non-zeros of that block over them.
Tasks run in parallel (``numba.prange``).

The SIMD width is the host's (``VL`` floats: 16 with AVX-512, else 8), which is also the target
numba compiles for. Other strides loop over rows and use a strided, auto-vectorized read.
"""

from __future__ import annotations

import math

import llvmlite.binding as llvm
import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.arrayobj import make_array


def _host_vector_floats() -> int:
    """float32 lanes of the widest vector register numba's target (the host CPU) has."""
    if numba.config.CPU_NAME:  # an explicit (portable) target: 256-bit is legal or split
        return 8
    return 16 if llvm.get_host_cpu_features().get("avx512f", False) else 8


VL = _host_vector_floats()
MAXNV = 8 if VL == 16 else 6  # 2*MAXNV accumulators + broadcast fit 32 zmm / 16 ymm registers
L1_BYTES = 32768  # padded input slab of one input-channel block (an L1's worth)
MIN_BLOCK_NNZ = 32  # ...but at least this many non-zeros per output channel and block
ACC_BYTES = 16384  # accumulator (output runs) of one task
OC_BLOCK = 8  # output channels per task of the strided kernel
TILE_OVERHEAD = 1.5  # per-non-zero cost outside the vector FMAs, in vector FMAs (see plan)


def _emit_tile(builder, nv, xdata, xoff, cdata, vdata, start, stop, adata, aoff):
    """IR for acc[aoff : aoff + nv*VL] += sum_{j in [start, stop)} values[j] *
    x[colidx[j] + xoff : ... + nv*VL], with the tile in 2*nv vector registers."""
    i64 = ir.IntType(64)
    vt = ir.VectorType(ir.FloatType(), VL)
    vptr = vt.as_pointer()
    fma = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(vt, [vt, vt, vt]), f"llvm.fma.v{VL}f32"
    )
    zero = ir.Constant(vt, [0.0] * VL)
    undef = ir.Constant(vt, ir.Undefined)
    splat = ir.Constant(ir.VectorType(ir.IntType(32), VL), [0] * VL)

    def vec_at(data, offset, v):
        return builder.bitcast(
            builder.gep(data, [builder.add(offset, ir.Constant(i64, v * VL))]), vptr
        )

    set_a, set_b = [], []
    for v in range(nv):  # allocas in the entry block: promoted to registers
        set_a.append(cgutils.alloca_once_value(builder, zero))
        set_b.append(cgutils.alloca_once_value(builder, zero))
        builder.store(builder.load(vec_at(adata, aoff, v), align=4), set_a[-1])

    def step(j, accs):
        w = builder.load(builder.gep(vdata, [j]))
        wv = builder.shuffle_vector(
            builder.insert_element(undef, w, ir.Constant(ir.IntType(32), 0)), undef, splat
        )
        col = builder.load(builder.gep(cdata, [j]))
        if col.type != i64:
            col = builder.sext(col, i64)
        base = builder.add(col, xoff)
        for v in range(nv):
            xv = builder.load(vec_at(xdata, base, v), align=4)
            builder.store(builder.call(fma, [wv, xv, builder.load(accs[v])]), accs[v])

    two = ir.Constant(i64, 2)
    pairs = builder.sdiv(builder.sub(stop, start), two)
    with cgutils.for_range(builder, pairs) as loop:
        j = builder.add(start, builder.mul(loop.index, two))
        step(j, set_a)
        step(builder.add(j, ir.Constant(i64, 1)), set_b)
    odd = builder.icmp_signed("!=", builder.add(start, builder.mul(pairs, two)), stop)
    with builder.if_then(odd):
        step(builder.sub(stop, ir.Constant(i64, 1)), set_a)
    for v in range(nv):
        total = builder.fadd(builder.load(set_a[v]), builder.load(set_b[v]))
        builder.store(total, vec_at(adata, aoff, v), align=4)


@intrinsic
def tile_fma(typingctx, x, xoff, colidx, values, start, stop, acc, aoff, nv):
    """acc[aoff:aoff+nv*VL] += sum_j values[j] * x[colidx[j]+xoff : ... + nv*VL], j in
    [start, stop); 1 <= nv <= MAXNV (other nv: no-op). x, acc float32 1-D; colidx int32/int64."""
    i64 = types.int64
    sig = types.void(x, i64, colidx, values, i64, i64, acc, i64, i64)

    def codegen(context, builder, signature, args):
        x_, xoff_, col_, val_, start_, stop_, acc_, aoff_, nv_ = args
        tys = signature.args
        xdata = make_array(tys[0])(context, builder, x_).data
        cdata = make_array(tys[2])(context, builder, col_).data
        vdata = make_array(tys[3])(context, builder, val_).data
        adata = make_array(tys[6])(context, builder, acc_).data
        fn = builder.function
        done = fn.append_basic_block("tile_done")
        switch = builder.switch(nv_, done)
        for k in range(1, MAXNV + 1):  # one register-resident variant per tile width
            block = fn.append_basic_block(f"tile_nv{k}")
            switch.add_case(ir.Constant(ir.IntType(64), k), block)
            builder.position_at_end(block)
            _emit_tile(builder, k, xdata, xoff_, cdata, vdata, start_, stop_, adata, aoff_)
            builder.branch(done)
        builder.position_at_end(done)
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True)
def block_pointers(rowptr, kidx, kernel_area, ic_block, n_blocks):
    """(N, n_blocks+1) int64: bp[n, k] = first non-zero of row n whose input channel
    (kidx // kernel_area) is >= k*ic_block (rows sorted by kidx); bp[n, n_blocks] = rowptr[n+1]."""
    n_out = rowptr.shape[0] - 1
    bp = np.empty((n_out, n_blocks + 1), np.int64)
    for n in range(n_out):
        j, stop = rowptr[n], rowptr[n + 1]
        for k in range(n_blocks):
            bp[n, k] = j
            limit = (k + 1) * ic_block * kernel_area
            while j < stop and kidx[j] < limit:
                j += 1
        bp[n, n_blocks] = stop
    return bp


@njit(parallel=True, cache=True, nogil=True)
def sconv_unit_stride(xpad, bp, colidx, values, bias, out, hout, wout, wp, relu, nv, ocb):
    """out[b, n, y, x] = bias[n] + sum_j values[j] * xpad[b, colidx[j] + y*wp + x] (ReLU opt.).

    xpad: (B, L) float32, each row one image in :func:`shared_pad`'s layout (row pitch wp)
    plus a tail of at least ``span - run`` zeros (see :func:`plan`); colidx: offsets in that
    layout (:func:`shared_offsets`); bp: :func:`block_pointers`; out: (B, N, hout, wout).
    """
    nb = xpad.shape[0]
    n_out = bp.shape[0]
    n_icb = bp.shape[1] - 1
    n_blk = (n_out + ocb - 1) // ocb
    tile = nv * VL
    run = (hout - 1) * wp + wout
    ntiles = (run + tile - 1) // tile
    span = ntiles * tile
    for task in prange(nb * n_blk):
        b = task // n_blk
        lo = (task - b * n_blk) * ocb
        hi = min(n_out, lo + ocb)
        xb = xpad[b]
        acc = np.zeros((hi - lo) * span, np.float32)
        for k in range(n_icb):  # input-channel blocks: the block's slab stays in L1
            for n in range(lo, hi):
                start, stop = bp[n, k], bp[n, k + 1]
                if stop > start:
                    base = (n - lo) * span
                    for i in range(ntiles):
                        tile_fma(
                            xb, i * tile, colidx, values, start, stop, acc, base + i * tile, nv
                        )
        for n in range(lo, hi):
            bn = bias[n]
            base = (n - lo) * span
            for y in range(hout):
                for x in range(wout):
                    val = acc[base + y * wp + x] + bn
                    if relu and val < 0.0:
                        val = 0.0
                    out[b, n, y, x] = val
    return out


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def sconv_strided(xpad, rowptr, colidx, values, bias, out, hout, wout, wp, sh, sw, relu):
    """The same sum for any stride: input position colidx[j] + y*sh*wp + x*sw."""
    nb = xpad.shape[0]
    n_out = rowptr.shape[0] - 1
    n_blk = (n_out + OC_BLOCK - 1) // OC_BLOCK
    for task in prange(nb * n_blk):
        b = task // n_blk
        blk = task - b * n_blk
        xb = xpad[b]
        acc = np.empty((hout, wout), np.float32)
        for n in range(blk * OC_BLOCK, min(n_out, (blk + 1) * OC_BLOCK)):
            acc[:, :] = 0.0
            for j in range(rowptr[n], rowptr[n + 1]):
                v = values[j]
                o = colidx[j]
                for y in range(hout):
                    base = np.intp(o) + y * sh * wp
                    xs = xb[base : base + (wout - 1) * sw + 1 : sw]
                    ay = acc[y]
                    for x in range(wout):
                        ay[x] += v * xs[x]
            bn = bias[n]
            for y in range(hout):
                for x in range(wout):
                    val = acc[y, x] + bn
                    if relu and val < 0.0:
                        val = 0.0
                    out[b, n, y, x] = val
    return out


# The same loops compiled without threads (prange runs as range): below PARALLEL_MIN_FLOPS of
# useful work, waking a second thread costs more than it saves (measured: a 15 MFLOP layer took
# 0.3 ms on one thread and 160 ms on two threads of a heavily loaded 2-core machine).
sconv_unit_stride_serial = njit(cache=True, nogil=True)(sconv_unit_stride.py_func)
sconv_strided_serial = njit(fastmath=True, cache=True, nogil=True)(sconv_strided.py_func)
PARALLEL_MIN_FLOPS = 4e6


def plan(hout: int, wout: int, wp: int) -> tuple[int, int]:
    """(nv, tail) of the unit-stride kernel for one output geometry: the tile width in vectors
    and the zeros the padded input needs after each image (the last tile reads up to
    ``span - run`` floats past the run).

    nv minimises the vectors computed times (1 + TILE_OVERHEAD/nv): each non-zero costs two
    scalar loads (value, offset) besides its nv vector FMAs, and narrow tiles leave too few
    independent FMA chains (so 23 vectors are done as 4 tiles of 6, not 23 tiles of 1).
    """
    run = (hout - 1) * wp + wout
    n_vec = -(-run // VL)
    nv = min(range(MAXNV, 0, -1), key=lambda k: -(-n_vec // k) * k * (1.0 + TILE_OVERHEAD / k))
    span = -(-run // (nv * VL)) * nv * VL
    return nv, span - run


def set_threads(n: int) -> int:
    """Use ``n`` numba threads (capped at numba's pool size); returns the count in effect."""
    n = max(1, min(int(n), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(n)
    return n


@njit(parallel=True, cache=True, nogil=True)
def _fill_shared(x, buf, ph, pw, ws, chan):
    """Write every (image, channel) slab of :func:`shared_pad`'s buffer, zeros included, in
    parallel (one pass over the buffer instead of a zero fill and a strided copy)."""
    nb, nc, h, w = x.shape
    for task in prange(nb * nc):
        b = task // nc
        c = task - b * nc
        slab = buf[b, c * chan : (c + 1) * chan]
        slab[:] = 0.0
        for i in range(h):
            row = (i + ph) * ws + pw
            for j in range(w):
                slab[row + j] = x[b, c, i, j]
    return buf


def shared_pad(x: np.ndarray, padding, tail: int) -> tuple[np.ndarray, int, int]:
    """SkimCaffe's padded layout for unit stride: (B, C, H, W) -> (B, C*chan + tail) zeros
    around the images, where rows have pitch ``ws = W + pw`` (the ``pw`` zeros between two rows
    are the right pad of one and the left pad of the next, so a run wastes ``pw`` instead of
    ``2*pw`` positions per row) and each channel takes ``chan = (H + 2*ph)*ws + pw`` floats.
    Returns (buffer, ws, chan); pixel (i, j) of channel c is at c*chan + (i+ph)*ws + pw + j."""
    b, c, h, w = x.shape
    ph, pw = padding
    ws = w + pw
    chan = (h + 2 * ph) * ws + pw
    buf = np.empty((b, c * chan + tail), np.float32)
    buf[:, c * chan :] = 0.0
    _fill_shared(np.ascontiguousarray(x, dtype=np.float32), buf, ph, pw, ws, chan)
    return buf, ws, chan


@njit(cache=True, nogil=True)
def _offsets(kidx, kr, ks, chan, row, col):
    out = np.empty(kidx.shape[0], np.int64)
    for j in range(kidx.shape[0]):
        c, rem = divmod(np.int64(kidx[j]), kr * ks)
        r, s = divmod(rem, ks)
        out[j] = c * chan + r * row + s * col
    return out


def shared_offsets(kidx, weight_shape, chan: int, ws: int, dilation) -> np.ndarray:
    """int64 input offsets c*chan + r*dh*ws + s*dw of flat kernel indices kidx = c*R*S + r*S + s
    in the :func:`shared_pad` layout (output pixel (y, x) adds y*ws + x)."""
    _, _, kr, ks = weight_shape
    return _offsets(kidx, kr, ks, chan, dilation[0] * ws, dilation[1])


def run(x, csr, bias, out, hout, wout, stride, relu) -> np.ndarray:
    """The direct sparse convolution of x (B, C, H, W) float32 (C-contiguous) with the
    :class:`~.csr.CSRWeight` ``csr`` (its padding and dilation), bias (N,) float32, into out
    (B, N, hout, wout) float32 (written in place and returned): unit stride in the
    :func:`shared_pad` layout with the SIMD micro-kernel, other strides by the strided kernel."""
    sh, sw = stride
    batch = x.shape[0]
    flops = 2.0 * csr.nnz * hout * wout * batch
    threads = numba.get_num_threads()
    parallel = flops >= PARALLEL_MIN_FLOPS and threads > 1
    ph, pw = csr.padding
    if sh != 1 or sw != 1:
        xpad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))).reshape(batch, -1)
        fn = sconv_strided if parallel else sconv_strided_serial
        wp = csr.padded_hw[1]
        args = (csr.rowptr, csr.colidx, csr.values, bias, out, hout, wout, wp, sh, sw, relu)
        return fn(xpad, *args)
    n_out, c_in = csr.weight_shape[0], csr.weight_shape[1]
    ws = x.shape[3] + pw
    nv, tail = plan(hout, wout, ws)
    xpad, ws, chan = shared_pad(x, csr.padding, tail + pw)
    colidx = shared_offsets(csr.kidx, csr.weight_shape, chan, ws, csr.dilation)
    # Input-channel block: an L1 slab, widened to about MIN_BLOCK_NNZ non-zeros per output
    # channel (SkimCaffe's column blocking), since each (channel, block) pays one load and store
    # of its accumulator tiles (measured under load, 1 thread, AlexNet conv3/conv4 at x = 0.1:
    # 8-16 KiB blocks of ~8-16 non-zeros ran 1.3-1.6x slower than 32 KiB or wider ones).
    per_channel = csr.nnz / max(1, n_out * c_in)
    wide = math.ceil(MIN_BLOCK_NNZ / per_channel) if per_channel > 0 else c_in
    ic_block = max(1, min(c_in, max(L1_BYTES // (4 * chan), wide)))
    n_blocks = -(-c_in // ic_block)
    kernel_area = csr.weight_shape[2] * csr.weight_shape[3]
    bp = block_pointers(csr.rowptr, csr.kidx, kernel_area, ic_block, n_blocks)
    tile = nv * VL
    span = -(-((hout - 1) * ws + wout) // tile) * tile
    ocb = max(1, min(n_out, ACC_BYTES // (4 * span)))
    args = (bp, colidx, csr.values, bias, out, hout, wout, ws, relu, nv)
    if not parallel:
        return sconv_unit_stride_serial(xpad, *args, ocb)
    ocb = max(1, min(ocb, n_out // math.ceil(2 * threads / batch)))  # >= 2 tasks per thread
    # Dynamic chunks of about 1/8 of a thread's share instead of one static slice per thread:
    # a thread the OS preempts (a busy machine) then delays only its current chunk.
    tasks = batch * -(-n_out // ocb)
    saved = numba.get_parallel_chunksize()
    numba.set_parallel_chunksize(max(1, tasks // (8 * threads)))
    try:
        return sconv_unit_stride(xpad, *args, ocb)
    finally:
        numba.set_parallel_chunksize(saved)


def warmup() -> None:
    """Compile (or load from numba's cache) the kernels and helpers on a tiny problem."""
    shared_pad(np.ones((1, 1, 2, 2), np.float32), (1, 1), 0)
    shared_offsets(np.zeros(1, np.int32), (1, 1, 1, 1), 4, 2, (1, 1))
    x = np.ones((1, 64), np.float32)
    bp = np.array([[0, 1]], np.int64)
    rowptr, idx = np.array([0, 1], np.int32), np.zeros(1, np.int32)
    vals, bias = np.ones(1, np.float32), np.zeros(1, np.float32)
    out = np.empty((1, 1, 2, 2), np.float32)
    nv, _ = plan(2, 2, 4)
    for fn in (sconv_unit_stride, sconv_unit_stride_serial):
        fn(x, bp, idx, vals, bias, out, 2, 2, 4, False, nv, 1)
    for fn in (sconv_strided, sconv_strided_serial):
        fn(x, rowptr, idx, vals, bias, out, 2, 2, 4, 2, 2, False)
