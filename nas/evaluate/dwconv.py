"""Depthwise-conv weight gradients on the CPU, a small C kernel instead of oneDNN's.

oneDNN (torch 2.13, one thread, channels_last, batch 32) computes the weight gradient of a
depthwise conv with a JIT kernel only for 3x3 kernels on maps of at least 3x3 pixels; for
5x5 and 7x7 kernels, and for 3x3 kernels on 1x1-2x2 maps, it falls back to a kernel that
takes 5-40x the time of the forward conv (measured: 192 channels, 14x14, 7x7 kernel: forward
2.0 ms, input gradient 2.5 ms, weight gradient 15.7 ms). MobileNet-like nets with 5x5/7x7
kernels spend a third of a proxy training step there.

The kernel here is the textbook loop, vectorised by the compiler over channels:
``gw[i, j, c] += x[n, h*s + i*d - p, w*s + j*d - p, c] * gy[n, h, w, c]`` over all
``n, h, w``, with the k*k*C accumulators in cache. It is compiled once per machine with the
system's C compiler (``cc``, ``-O3 -march=native``, well under a second) into a cache folder
(``$NAS_CACHE`` or ``~/.cache/nas``) and loaded with ctypes; without a working compiler,
:func:`available` is False and callers keep oneDNN's path. Forward and input gradient stay
with oneDNN, which is fast for them.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import subprocess
import tempfile
from pathlib import Path

_SOURCE = r"""
#include <stddef.h>
#define DEFINE(NAME, T)                                                                  \
void NAME(const T *x, const T *gy, T *gw, int n, int h, int w, int c, int ho, int wo,    \
          int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw) {               \
    for (int b = 0; b < n; b++)                                                          \
        for (int oy = 0; oy < ho; oy++)                                                  \
            for (int ox = 0; ox < wo; ox++) {                                            \
                const T *g = gy + (((size_t)b * ho + oy) * wo + ox) * c;                 \
                for (int i = 0; i < kh; i++) {                                           \
                    int iy = oy * sh - ph + i * dh;                                      \
                    if (iy < 0 || iy >= h) continue;                                     \
                    for (int j = 0; j < kw; j++) {                                       \
                        int ix = ox * sw - pw + j * dw;                                  \
                        if (ix < 0 || ix >= w) continue;                                 \
                        const T *xr = x + (((size_t)b * h + iy) * w + ix) * c;           \
                        T *acc = gw + ((size_t)i * kw + j) * c;                          \
                        for (int k = 0; k < c; k++) acc[k] += xr[k] * g[k];              \
                    }                                                                    \
                }                                                                        \
            }                                                                            \
}
DEFINE(dw_grad_weight_f32, float)
DEFINE(dw_grad_weight_f64, double)
"""

_FLAGS = ["-O3", "-march=native", "-shared", "-fPIC"]
_LIB: ctypes.CDLL | None | bool = False   # False: not tried yet; None: unavailable


def _cache_dir() -> Path:
    return Path(os.environ.get("NAS_CACHE") or Path.home() / ".cache" / "nas")


def _cpu_id() -> str:
    """The CPU model and instruction-set flags (-march=native code is only valid there)."""
    found = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key = line.partition(":")[0].strip()
                if key in ("model name", "flags") and key not in found:
                    found[key] = line
    except OSError:
        pass
    return "".join(found.values()) or platform.processor()


def _load():
    global _LIB
    if _LIB is not False:
        return _LIB
    _LIB = None
    if platform.system() == "Windows":
        return None
    key = hashlib.sha256("\0".join([_SOURCE, *_FLAGS, platform.machine(), _cpu_id()])
                         .encode()).hexdigest()[:16]
    path = _cache_dir() / f"dwconv-{key}.so"
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
                src = Path(tmp) / "dwconv.c"
                src.write_text(_SOURCE)
                out = Path(tmp) / path.name
                subprocess.run([os.environ.get("CC", "cc"), *_FLAGS, str(src), "-o", str(out)],
                               check=True, capture_output=True, timeout=120)
                os.replace(out, path)   # atomic: concurrent workers never see half a file
        lib = ctypes.CDLL(str(path))
    except (OSError, subprocess.SubprocessError):
        return None
    for name in ("dw_grad_weight_f32", "dw_grad_weight_f64"):
        fn = getattr(lib, name)
        fn.restype = None
        fn.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int] * 14
    _LIB = lib
    return lib


def available() -> bool:
    """Whether the compiled kernel can be used on this machine (compiles it on first call)."""
    return _load() is not None


def grad_weight(x, grad_out, kernel, stride, padding, dilation):
    """The weight gradient ``[C, 1, kh, kw]`` of a depthwise conv (groups = channels, one
    filter per channel) of ``x`` ``[N, C, H, W]`` whose output gradient is ``grad_out``.
    CPU float32/float64 tensors; raises RuntimeError when the kernel is not available."""
    import torch

    lib = _load()
    if lib is None:
        raise RuntimeError("the depthwise weight-gradient kernel could not be compiled")
    cl = torch.channels_last
    x = x.contiguous(memory_format=cl)
    grad_out = grad_out.contiguous(memory_format=cl)
    n, c, h, w = x.shape
    ho, wo = grad_out.shape[-2:]
    kh, kw = kernel
    gw = torch.zeros(kh, kw, c, dtype=x.dtype)
    fn = lib.dw_grad_weight_f64 if x.dtype == torch.float64 else lib.dw_grad_weight_f32
    fn(x.data_ptr(), grad_out.data_ptr(), gw.data_ptr(), n, h, w, c, ho, wo, kh, kw,
       *stride, *padding, *dilation)
    return gw.permute(2, 0, 1).unsqueeze(1)


class DepthwiseConv(object):
    """``apply(x, weight, bias, stride, padding, dilation)``: a depthwise conv whose forward
    and input gradient are torch's and whose weight gradient is :func:`grad_weight`."""

    _fn = None

    @classmethod
    def apply(cls, *args):
        if cls._fn is None:
            cls._fn = _function()
        return cls._fn.apply(*args)


def _function():
    import torch
    import torch.nn.functional as F

    class _DepthwiseConv(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, weight, bias, stride, padding, dilation):
            ctx.save_for_backward(x, weight)
            ctx.conf = (stride, padding, dilation, bias is not None)
            return F.conv2d(x, weight, bias, stride, padding, dilation, weight.shape[0])

        @staticmethod
        def backward(ctx, grad_out):
            x, weight = ctx.saved_tensors
            stride, padding, dilation, has_bias = ctx.conf
            gx = gw = gb = None
            if ctx.needs_input_grad[0]:
                gx = torch.ops.aten.convolution_backward(
                    grad_out, x, weight, None, list(stride), list(padding), list(dilation),
                    False, [0, 0], weight.shape[0], [True, False, False])[0]
            if ctx.needs_input_grad[1]:
                gw = torch.empty_like(weight).copy_(  # the weight's own strides
                    grad_weight(x, grad_out, weight.shape[-2:], stride, padding, dilation))
            if has_bias and ctx.needs_input_grad[2]:
                gb = grad_out.sum((0, 2, 3))
            return gx, gw, gb, None, None, None

    return _DepthwiseConv
