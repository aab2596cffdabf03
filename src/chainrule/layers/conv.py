"""Convolution layers: Conv2D over images (n, C, H, W), Conv1D over sequences (n, C, L).

Both run the same code: Conv1D is a Conv2D whose images are one row high. The convolution is
one matrix product (or one per sample) over an im2col copy of the padded input, so there is no
Python loop over pixels. With stride 1 the columns are runs of the flattened padded planes
(``_forward_flat``: the copy moves long runs and the products run per sample where OpenBLAS is
faster so); other strides use the (C·kh·kw, n·H'·W') layout (``_forward_strided``). With numba (the ``fast``
extra) a stride-1 layer runs the same equations compiled, one sample at a time, its columns kept
in cache (``_forward_samples``, ``_backward_samples``; chainrule/kernels/conv.py): the whole
batch's columns are never written.

Speed, forward + backward (dL/dW, dL/db and dL/dx), float32, batch 64, one thread, best of 30
interleaved rounds on a shared 2-core machine (CPU time), the flat-plane layout against the
(C·kh·kw, n·H'·W') layout this module used for every stride before:

    layer                    before    after
    1x28x28 -> 6 ch, 5x5     2.45 ms   1.94 ms   (the first layer of a network skips dL/dx: ~0.6 ms)
    6x12x12 -> 16 ch, 5x5    2.97 ms   2.13-2.38 ms
    32x8x8 -> 32 ch, 3x3 p1  3.53 ms   2.76-2.80 ms   (batch 32)
    1x8x8 -> 32 ch, 3x3 p1   0.17 ms   0.24 ms        (batch 32: tiny products, per-sample overhead)

Against PyTorch 2.13 eager (torch.nn.Conv2d and autograd, one thread, interleaved in one
process): the first LeNet layer (no dL/dx) 0.95-0.98 of PyTorch's time, the second 1.6-1.9 while
other processes loaded the machine (its im2col copy and col2im adds are memory-bound: about
0.2 and 0.5 ms of its ~1.9 ms when the machine was quiet, against ~2.0 ms for PyTorch).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import kernels
from .._checks import as_rng, check_number, check_positive_int
from .._threads import parallel
from ..errors import ConfigError, ShapeError
from ..init import get_initializer
from ..kernels import blas
from .base import Layer

#: below this many column entries (C·kh·kw · n · L) a stride-1 convolution runs on the calling
#: thread whatever chainrule.set_num_threads says: handing a run to a thread costs about 20 µs
#: on a 2-core machine, what about 35,000 entries take (6x12x12 -> 16, batch 64: 883,200 entries
#: in 0.54 ms forward); the threshold is about four times that, not tuned further (docs/speed.md)
CONV_MIN_WORK = 1 << 17

#: a stride-1 convolution with fewer weights (C_out·C·kh·kw) runs its products per sample, one
#: with more as one product over the batch (measured: _Conv._per_sample)
PER_SAMPLE_WEIGHTS = 1024


def _pair(value, name: str, low: int = 1) -> tuple[int, int]:
    """An int or a pair of ints (each >= low) -> (a, b); ConfigError naming ``name`` otherwise."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ConfigError(f"{name} must be an int or a pair of ints, got {value!r}")
        for v in value:
            check_number(v, name, low=low, integer=True)
        return int(value[0]), int(value[1])
    check_number(value, name, low=low, integer=True)
    return int(value), int(value)


def _plain(pair: tuple[int, int]):
    """(a, a) -> a, (a, b) -> [a, b]: what get_config writes (JSON-able, short when square)."""
    return pair[0] if pair[0] == pair[1] else list(pair)


class _Conv(Layer):
    """The shared 2-D engine; Conv2D and Conv1D set the shapes users see.

    Internally an input is (n, C, H, W) and ``weight`` is read as the matrix
    (C_out, C·kh·kw); Conv1D views its (n, C, L) input as (n, C, 1, L).
    """

    _ndim = 2  # spatial axes users see

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation,
                 use_bias, init, seed, dtype) -> None:
        super().__init__()
        name = type(self).__name__
        check_positive_int(in_channels, f"{name} in_channels")
        check_positive_int(out_channels, f"{name} out_channels")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        if self._ndim == 1:
            self.kernel_size = (1, _pair(_one(kernel_size, f"{name} kernel_size"), f"{name} kernel_size")[1])
            self.stride = (1, _pair(_one(stride, f"{name} stride"), f"{name} stride")[1])
            self.dilation = (1, _pair(_one(dilation, f"{name} dilation"), f"{name} dilation")[1])
        else:
            self.kernel_size = _pair(kernel_size, f"{name} kernel_size")
            self.stride = _pair(stride, f"{name} stride")
            self.dilation = _pair(dilation, f"{name} dilation")
        self.same = isinstance(padding, str)
        if self.same:
            if padding != "same":
                raise ConfigError(f"{name} padding must be an int, a pair of ints or 'same', got {padding!r}")
            if self.stride != (1, 1):
                raise ConfigError(f"{name} padding='same' needs stride 1, got stride={stride!r}")
            # PyTorch's convention: total d·(k-1) zeros, total // 2 before, the rest after
            total = [d * (k - 1) for d, k in zip(self.dilation, self.kernel_size, strict=True)]
            self.pad = ((total[0] // 2, total[0] - total[0] // 2), (total[1] // 2, total[1] - total[1] // 2))
        else:
            if self._ndim == 1:
                p = _pair(_one(padding, f"{name} padding"), f"{name} padding", low=0)[1]
                self.pad = ((0, 0), (p, p))
            else:
                ph, pw = _pair(padding, f"{name} padding", low=0)
                self.pad = ((ph, ph), (pw, pw))
        self.use_bias = bool(use_bias)
        self.dtype = np.dtype(dtype)
        kh, kw = self.kernel_size
        shape = (self.out_channels, self.in_channels, kh, kw)
        w_init = get_initializer(init)
        rng = as_rng(seed, f"{name} seed")
        if isinstance(init, (np.ndarray, list, tuple)):
            weight = w_init(self._user_shape(shape), np.float64, rng=rng).reshape(shape)
        else:  # drawn as (C_in, C_out, kh, kw): fan_in = C_in·kh·kw, fan_out = C_out·kh·kw as in PyTorch
            weight = w_init((self.in_channels, self.out_channels, kh, kw), np.float64, rng=rng)
            weight = np.ascontiguousarray(weight.transpose(1, 0, 2, 3))
        # float64 draws kept until the layer joins a network, so a float64 Sequential gets them exactly
        self._initial = {"weight": weight.reshape(self._user_shape(shape))}
        if self.use_bias:
            self._initial["bias"] = np.zeros(self.out_channels)
        self.params = {k: v.astype(self.dtype) for k, v in self._initial.items()}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._cols: np.ndarray | None = None
        self._padded_shape: tuple | None = None

    def _user_shape(self, shape4: tuple) -> tuple:
        return shape4 if self._ndim == 2 else (shape4[0], shape4[1], shape4[3])

    # --- shapes -----------------------------------------------------------------------
    def _out_hw(self, h: int, w: int) -> tuple[int, int]:
        (pt, pb), (pl, pr) = self.pad
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        return (h + pt + pb - dh * (kh - 1) - 1) // sh + 1, (w + pl + pr - dw * (kw - 1) - 1) // sw + 1

    def __repr__(self) -> str:
        """Channels, kernel, and the settings that differ from their defaults."""
        c = self.get_config()
        default = {"stride": 1, "padding": 0, "dilation": 1, "use_bias": True}
        extra = "".join(f", {k}={c[k]!r}" for k, v in default.items() if c[k] != v)
        channels = f"{c['in_channels']}, {c['out_channels']}"
        return f"{type(self).__name__}({channels}, kernel_size={c['kernel_size']!r}{extra})"

    def _describe_input(self) -> str:
        return "(n, C, L)" if self._ndim == 1 else "(n, C, H, W)"

    def check_input(self, x: np.ndarray) -> None:
        """Raise ShapeError, naming this layer, for a wrong rank, channel count or too small an image."""
        want = self._ndim + 2
        if x.ndim != want:
            raise ShapeError(f"{self!r} expects {want}-D input {self._describe_input()},"
                             f" got array of shape {x.shape}")
        if x.shape[1] != self.in_channels:
            raise ShapeError(f"{self!r} expects {self.in_channels} input channels (axis 1),"
                             f" got {x.shape[1]} in an array of shape {x.shape}")
        h, w = (1, x.shape[2]) if self._ndim == 1 else x.shape[2:]
        (pt, pb), (pl, pr) = self.pad
        kh = self.dilation[0] * (self.kernel_size[0] - 1) + 1
        kw = self.dilation[1] * (self.kernel_size[1] - 1) + 1
        if h + pt + pb < kh or w + pl + pr < kw:
            size = f"length {w} + padding {pl + pr}" if self._ndim == 1 else \
                f"{h}x{w} + padding ({pt + pb}, {pl + pr})"
            kernel = f"{kw}" if self._ndim == 1 else f"{kh}x{kw}"
            raise ShapeError(f"{self!r}: the input ({size}) is smaller than the dilated kernel"
                             f" ({kernel}), got array of shape {x.shape}")

    def output_shape(self, input_shape: tuple) -> tuple:
        if self._ndim == 1:
            return (self.out_channels, self._out_hw(1, input_shape[-1])[1])
        return (self.out_channels, *self._out_hw(*input_shape[-2:]))

    # --- forward ----------------------------------------------------------------------
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if x.ndim != self._ndim + 2 or x.shape[1] != self.in_channels:
            self.check_input(x)
        x_in = x
        if self._ndim == 1:
            x = x[:, :, None, :]
        n, c, h, w = x.shape
        ho, wo = self._out_hw(h, w)
        if ho < 1 or wo < 1:
            self.check_input(x_in)
        (pt, pb), (pl, pr) = self.pad
        if pt or pb or pl or pr:
            xp = np.zeros((n, c, h + pt + pb, w + pl + pr), dtype=x.dtype)
            xp[:, :, pt:pt + h, pl:pl + w] = x
        else:
            xp = np.ascontiguousarray(x)  # the strided views below read its memory directly
        self._padded_shape = xp.shape
        out = self._forward_flat(xp, ho, wo, training) if self.stride == (1, 1) else self._forward_strided(xp, ho, wo)
        return out[:, :, 0, :] if self._ndim == 1 else out

    def _forward_flat(self, xp: np.ndarray, ho: int, wo: int, training: bool) -> np.ndarray:
        """Stride 1: the columns are whole runs of the flattened padded planes.

        Output pixel (i, j) and kernel offset (u, v) read the flat plane at (i + u·dh)·W_p + j + v·dw,
        so with l = i·W_p + j the columns of offset (u, v) are the flat plane from u·dh·W_p + v·dw on,
        l = 0 .. L − 1, L = (H' − 1)·W_p + W'. The l with j >= W' (k − 1 per row of the output) are
        wasted columns that wrap into the next row; the output drops them and backward gives them a
        zero delta. cols is (C·kh·kw, n, L); each product runs either per sample (np.matmul over
        a strided view of the stack) or as one product over n·L columns, whichever measured faster
        for the layer's size (``_per_sample``).

        Speed. Against the (C·kh·kw, n·H'·W') layout (kept for strides above 1), float32,
        batch 64, one thread, best of 40 on a shared 2-core machine: the copy moves runs of L
        floats instead of runs of W' (0.22 against 0.37 ms for 6x12x12 -> 16, 5x5), and
        OpenBLAS runs a product with 6 or 16 rows and n·H'·W' columns at a third to a half of
        the speed of 64 per-sample products (W·cols for 1x28x28 -> 6: 0.13 against 0.33 ms;
        6x12x12 -> 16: 0.28 against 0.35 ms). With many channels one product wins (32x8x8 -> 64,
        3x3, batch 32: 0.92 against 1.1 ms), and for dL/dW = Σ δ·colsᵀ already at 16 channels
        (0.39 against 0.72 ms), where the per-sample products have 150-long rows.
        """
        n, c, hp, wp = xp.shape
        (kh, kw), (dh, dw) = self.kernel_size, self.dilation
        length = (ho - 1) * wp + wo
        size = xp.itemsize
        k = c * kh * kw
        gemm = self._sample_gemm(xp)
        if gemm is not None:  # compiled, sample by sample (see _forward_samples)
            return self._forward_samples(gemm, xp, ho, wo, training)
        # windows[c, u, v, n, l] = x_pad_flat[n, c, u·dh·W_p + v·dw + l]  (a view, nothing copied)
        windows = as_strided(xp, (c, kh, kw, n, length), (xp.strides[1], dh * wp * size, dw * size,
                                                          xp.strides[0], size), writeable=False)
        # training: the same columns array every step (Layer._scratch; a fresh one faulted in its pages)
        cols = self._work(training, "cols", (k, n, length), xp.dtype)
        cols5 = cols.reshape(c, kh, kw, n, length)
        self._cols = cols
        out = np.empty((n, self.out_channels, ho, wo), dtype=xp.dtype)
        w_mat = self.params["weight"].reshape(self.out_channels, -1)
        bias = self.params["bias"][:, None] if self.use_bias else None
        per_sample = self._per_sample(k)

        def samples(a: int, b: int) -> None:
            cols5[:, :, :, a:b] = windows[:, :, :, a:b]  # the one copy
            if per_sample:
                z = np.matmul(w_mat, cols[:, a:b].transpose(1, 0, 2))  # (b − a, C_out, L)
                z_strides = z.strides[:2]
            else:
                z = np.dot(w_mat, cols[:, a:b].reshape(k, -1))  # (C_out, (b − a)·L)
                z_strides = (length * size, (b - a) * length * size)
            if bias is not None:
                z += bias
            # z at (n, o, i·W_p + j) for j < W': the output without the wasted columns
            out[a:b] = as_strided(z, (b - a, self.out_channels, ho, wo), (*z_strides, wp * size, size),
                                  writeable=False)

        # Speed. With chainrule.set_num_threads(2), each thread takes its own run of samples
        # (the copy, the products, the output): float32, batch 64, 2 cores, alone, 6x12x12 -> 16
        # 0.54 -> 0.38-0.41 ms; inside a whole LeNet step it did not pay (docs/speed.md, "Threads")
        parallel(samples, n, k * n * length, CONV_MIN_WORK)
        return out

    def _sample_gemm(self, xp: np.ndarray):
        """NumPy's BLAS gemm (kernels/blas.py) when the compiled sample-by-sample path runs this
        stride-1 layer: numba active, float32 or float64, the weight and its gradient
        C-contiguous and NumPy's BLAS found; else None (the NumPy column path)."""
        weight, grad = self.params["weight"], self.grads["weight"]
        if not kernels.ready(xp, weight) or grad.dtype != xp.dtype or not (
                weight.flags.c_contiguous and grad.flags.c_contiguous):
            return None
        return blas.gemm(xp.dtype)

    def _forward_samples(self, gemm, xp: np.ndarray, ho: int, wo: int, training: bool) -> np.ndarray:
        """Stride 1, compiled (kernels/conv.py, ``conv_forward``): the equations of
        ``_forward_flat`` sample by sample, each sample's columns in one (C·kh·kw, L) work array
        that stays in cache, its product by NumPy's BLAS, the bias added while the wasted columns
        are cut. Nothing of the batch's size is kept for the backward but the input.

        Speed. The column path writes the whole batch's columns (LeNet at batch 64, float32:
        4.3 MB for the first layer, 3.5 MB for the second) and reads them back for the products
        and again for dL/dW; in a training step that traffic cost more than the copies and
        products themselves. Forward + backward inside a LeNet training step (float32, batch 64,
        one thread, the two paths taking turns in one process, median of 7 epochs): the first
        convolution 1.21 -> 0.59 ms, the second 1.80 -> 1.40 ms; the whole epoch 1.31 times
        faster (``python benchmarks/conv_paths.py``; docs/speed.md, "Convolution and pooling").
        """
        n, c, hp, wp = xp.shape
        (kh, kw), (dh, dw), co = self.kernel_size, self.dilation, self.out_channels
        k, length = c * kh * kw, (ho - 1) * wp + wo
        out = np.empty((n, co, ho, wo), dtype=xp.dtype)
        bias = self.params["bias"] if self.use_bias else np.empty(0, xp.dtype)
        planes = xp.reshape(n, c, hp * wp)
        w_mat = self.params["weight"].reshape(co, k)
        forward = kernels.compiled("conv", "conv_forward")

        def samples(a: int, b: int) -> None:
            # per run of samples its own work arrays (the runs are fixed for a batch size and thread count)
            cols = self._work(training, f"cols{a}", (k, length), xp.dtype)
            z = self._work(training, f"z{a}", (co, length), xp.dtype)
            forward(gemm, planes, a, b, kh, kw, dh, dw, wp, w_mat, bias, cols, z, out)

        parallel(samples, n, k * n * length, CONV_MIN_WORK)
        self._cols, self._planes = None, planes
        return out

    def _backward_samples(self, delta: np.ndarray, need_grad_x: bool) -> np.ndarray | None:
        """Stride 1, compiled (kernels/conv.py, ``conv_backward``), after ``_forward_samples``:
        per sample, δ in the columns' layout, the columns copied again, its dL/dW term
        colsₛ·δₛᵀ and (when asked) dL/dcols = W_matᵀ·δₛ added back onto its padded planes. The
        dL/dW terms are summed over the samples in order afterwards (np.add.reduce), so a split
        over threads does not change a bit; dL/db = Σ δ by NumPy.

        Speed. dL/dW as its transpose colsₛ·δₛᵀ: 64 products of LeNet's second layer took
        0.38 ms against 0.68 ms for δₛ·colsₛᵀ (OpenBLAS, float32, one thread)."""
        n, c, hp, wp = self._padded_shape
        (kh, kw), (dh, dw), co = self.kernel_size, self.dilation, self.out_channels
        (pt, pb), (pl, pr) = self.pad
        dtype = self._planes.dtype
        k, length = c * kh * kw, (delta.shape[2] - 1) * wp + delta.shape[3]
        delta = np.ascontiguousarray(delta, dtype=dtype)
        terms = self._scratch("dw_terms", (n, k, co), dtype)  # dL/dW per sample, transposed
        padded = pt or pb or pl or pr
        if not need_grad_x:
            grad_xp = np.empty((0, 0, 0), dtype)  # (the kernel leaves it alone)
        elif padded:  # dL/dx is a copy of its interior: dL/dx_pad stays inside the layer
            grad_xp = self._scratch("dx_pad", (n, c, hp * wp), dtype)
        else:  # returned as dL/dx itself: a new array
            grad_xp = np.empty((n, c, hp * wp), dtype)
        w_mat = self.params["weight"].reshape(co, k)
        backward, gemm = kernels.compiled("conv", "conv_backward"), blas.gemm(dtype)

        def samples(a: int, b: int) -> None:
            cols, d2 = self._scratch(f"cols{a}", (k, length), dtype), self._scratch(f"d2{a}", (co, length), dtype)
            dcols = self._scratch(f"dcols{a}", (k, length), dtype) if need_grad_x else cols
            backward(gemm, self._planes, delta, a, b, kh, kw, dh, dw, wp, w_mat, need_grad_x, cols, d2,
                     dcols, terms, grad_xp)

        parallel(samples, n, k * n * length, CONV_MIN_WORK)
        self.grads["weight"].reshape(co, k)[...] = np.add.reduce(terms, axis=0).T
        if self.use_bias:
            np.add.reduce(delta.reshape(n, co, -1), axis=(0, 2), out=self.grads["bias"])
        if not need_grad_x:
            return None
        grad_x = grad_xp.reshape(n, c, hp, wp)
        if padded:
            grad_x = np.ascontiguousarray(grad_x[:, :, pt:hp - pb, pl:wp - pr])
        return grad_x[:, :, 0, :] if self._ndim == 1 else grad_x

    def _per_sample(self, k: int) -> bool:
        """Whether the products with the (C_out, k) weight matrix run per sample: below
        PER_SAMPLE_WEIGHTS weights (the crossover measured with OpenBLAS, see _forward_flat).

        Speed. The threshold was 8192, measured layer by layer on one thread, where 6x12x12 -> 16
        (2,400 weights) ran faster per sample. Inside a whole LeNet step with OpenBLAS's own
        threads (NumPy's default, 2 cores) one product over the batch won: 5.41 against 6.25 ms
        per step (median of 7 epochs taking turns in one process, 1.04-1.21 per epoch), and with
        OPENBLAS_NUM_THREADS=1 the two were even (5.76 against 5.98 ms, 0.88-1.19)."""
        return self.out_channels * k < PER_SAMPLE_WEIGHTS

    def _forward_strided(self, xp: np.ndarray, ho: int, wo: int) -> np.ndarray:
        n, c, _, _ = xp.shape
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        bn, bc, bh, bw = xp.strides
        # windows[c, u, v, n, i, j] = x_pad[n, c, i·s + u·d, j·s + v·d]  (a view, nothing copied)
        windows = as_strided(xp, (c, kh, kw, n, ho, wo), (bc, bh * dh, bw * dw, bn, bh * sh, bw * sw),
                             writeable=False)
        # The one copy: cols (C·kh·kw, n·H'·W'). This layout copies runs of W' pixels; the
        # transposed one, rows (n·H'·W', C·kh·kw), copies runs of kw and took 2 to 5 times longer
        # (LeNet layers, float32, batch 64: 1.1 ms against 0.23 ms for 1x28x28, 1.0 against 0.49
        # for 6x14x14).
        cols = windows.reshape(c * kh * kw, n * ho * wo)
        self._cols = cols
        z = self.params["weight"].reshape(self.out_channels, -1) @ cols  # (C_out, n·H'·W')
        if self.use_bias:
            z += self.params["bias"][:, None]
        return np.ascontiguousarray(z.reshape(self.out_channels, n, ho, wo).transpose(1, 0, 2, 3))

    # --- backward ---------------------------------------------------------------------
    def backward_params(self, delta: np.ndarray) -> None:
        """Fill ``grads`` only; the first layer of a network needs no dL/dx."""
        if self.stride == (1, 1):
            self._backward_flat(delta, need_grad_x=False)
        else:
            self._params_from(delta.transpose(1, 0, 2, 3).reshape(self.out_channels, -1)
                              if self._ndim == 2 else delta.transpose(1, 0, 2).reshape(self.out_channels, -1))

    def _backward_flat(self, delta: np.ndarray, need_grad_x: bool) -> np.ndarray | None:
        """Stride 1: fill ``grads`` and return dL/dx (when asked), in the forward's column layout.

        δ becomes d2 (C_out, n, L), the layout of the columns with zeros on the wasted columns.
        dL/dW = Σ_n δ_n · cols_nᵀ: per sample then summed over the samples in order (small
        weight matrices), or one product over the n·L columns. dL/dcols = W_matᵀ · δ
        (C·kh·kw, n, L) viewed as (n, C, kh, kw, L); col2im adds the columns of offset (u, v)
        back onto the flat plane from u·dh·W_p + v·dw on: kh·kw adds of runs of L floats.
        """
        if self._ndim == 1:
            delta = delta[:, :, None, :]
        if self._cols is None:  # the forward ran sample by sample (_forward_samples keeps no columns)
            return self._backward_samples(delta, need_grad_x)
        n, co, ho, wo = delta.shape
        cols = self._cols
        k, _, length = cols.shape
        _, c, hp, wp = self._padded_shape
        (kh, kw), (dh, dw) = self.kernel_size, self.dilation
        (pt, pb), (pl, pr) = self.pad
        size = delta.itemsize
        w_mat = self.params["weight"].reshape(co, -1)
        grad_w = self.grads["weight"].reshape(co, -1)  # a view: written in place
        d2 = self._scratch("delta", (co, n, length), delta.dtype)
        # dL/dW per sample for 1x28x28 -> 6 (batch 64, float32, one thread): 0.14 ms against
        # 0.45 for one product over the n·L columns; dL/dcols follows the forward's choice
        per_sample = self._per_sample(k)
        products = self._scratch("dw", (n, co, k), np.result_type(d2, cols)) if per_sample else None
        padded = pt or pb or pl or pr
        # dL/dx_pad stays inside the layer only when padded (dL/dx is then a copy of its interior)
        grad_xp = None if not need_grad_x else self._scratch("dx_pad", (n, c, hp * wp), np.result_type(w_mat, d2)) \
            if padded else np.empty((n, c, hp * wp), np.result_type(w_mat, d2))
        grad_x = np.empty((n, c, hp - pt - pb, wp - pl - pr), dtype=grad_xp.dtype) \
            if need_grad_x and padded else None

        dcols_all = self._scratch("dcols", (n, k, length), grad_xp.dtype) if need_grad_x and per_sample else None

        def samples(a: int, b: int) -> None:
            part = d2[:, a:b]
            part[...] = 0
            as_strided(part, (b - a, co, ho, wo), (length * size, n * length * size, wp * size, size))[...] = \
                delta[a:b]
            if per_sample:
                np.matmul(part.transpose(1, 0, 2), cols[:, a:b].transpose(1, 2, 0), out=products[a:b])
            if not need_grad_x:
                return
            if per_sample:
                dcols = np.matmul(w_mat.T, part.transpose(1, 0, 2), out=dcols_all[a:b])
                dcols = dcols.reshape(b - a, c, kh, kw, length)
            else:
                dcols = np.dot(w_mat.T, part.reshape(co, -1)).reshape(c, kh, kw, b - a, length)
            g = grad_xp[a:b]
            if kernels.ready(g, dcols) and dcols.flags.c_contiguous:  # the same adds, plane by plane
                kernels.compiled("conv", "col2im")(dcols, per_sample, g, wp, dh, dw)
            else:
                if not per_sample:
                    dcols = dcols.transpose(3, 0, 1, 2, 4)
                g[...] = 0
                for u in range(kh):
                    for v in range(kw):
                        start = u * dh * wp + v * dw
                        g[:, :, start:start + length] += dcols[:, :, u, v]  # (the wasted columns carry zeros)
            if grad_x is not None:
                grad_x[a:b] = g.reshape(b - a, c, hp, wp)[:, :, pt:hp - pb, pl:wp - pr]

        # Speed. Each thread takes its own run of samples (δ's layout, the per-sample products,
        # dL/dcols and col2im); with the split of dL/dW below, forward + backward of 6x12x12 -> 16
        # (float32, batch 64, 2 cores, alone) took 1.86-1.93 -> 1.39-1.48 ms with
        # OPENBLAS_NUM_THREADS=1, but 1.70 -> 2.04-2.10 ms with OpenBLAS's own threads on
        parallel(samples, n, k * n * length, CONV_MIN_WORK)
        if per_sample:
            np.add.reduce(products, axis=0, out=grad_w)  # the sum over samples: one thread, in order
        else:
            cols2, d2t = cols.reshape(k, -1), d2.reshape(co, -1).T

            def rows(a: int, b: int) -> None:
                # dL/dW = δ_mat · colsᵀ, computed as its transpose cols · δ_matᵀ: OpenBLAS took
                # 0.75 ms for δ_mat · colsᵀ and 0.39 ms for cols · δ_matᵀ (either LeNet layer, 1 thread)
                grad_w[:, a:b] = (cols2[a:b] @ d2t).T

            # Speed. Each thread takes its own run of dL/dW's rows, not of samples: each entry
            # stays one sum over all n·L columns, and no partial sums per run are added up.
            parallel(rows, k, k * n * length, CONV_MIN_WORK)
        if self.use_bias:  # (the wasted columns hold zeros)
            np.add.reduce(d2.reshape(co, -1), axis=1, out=self.grads["bias"])
        if not need_grad_x:
            return None
        if grad_x is None:
            grad_x = grad_xp.reshape(n, c, hp, wp)
        return grad_x[:, :, 0, :] if self._ndim == 1 else grad_x

    def _params_from(self, d2: np.ndarray) -> None:
        """dL/dW and dL/db from δ as the (C_out, n·H'·W') matrix of the strided layout."""
        grad_w = self.grads["weight"].reshape(self.out_channels, -1)  # a view: written in place
        # dL/dW = δ_mat · colsᵀ computed as its transpose cols · δ_matᵀ (faster in OpenBLAS)
        grad_w[...] = (self._cols @ d2.T).T
        if self.use_bias:
            np.add.reduce(d2, axis=1, out=self.grads["bias"])

    def backward(self, delta: np.ndarray) -> np.ndarray:
        if self.stride == (1, 1):
            return self._backward_flat(delta, need_grad_x=True)
        d2 = delta.transpose(1, 0, 2, 3) if self._ndim == 2 else delta[:, :, None, :].transpose(1, 0, 2, 3)
        d2 = d2.reshape(self.out_channels, -1)
        self._params_from(d2)
        n, c, hp, wp = self._padded_shape
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        w_mat = self.params["weight"].reshape(self.out_channels, -1)
        ho, wo = (delta.shape[2], delta.shape[3]) if self._ndim == 2 else (1, delta.shape[2])
        # dL/dcols = W_matᵀ · δ_mat (C·kh·kw, n·H'·W'); col2im adds each entry back where it was read.
        # kh·kw whole-array adds, not one per pixel. The other route, dL/dx as the full convolution
        # of delta with the flipped kernel (an im2col of the zero-padded delta), made the whole
        # backward 2 to 3 times slower for the LeNet layers (float32, batch 64, 1 thread: 5.1 ms
        # against 2.3 ms for 1x28x28 -> 6, 7.3 ms against 2.2 ms for 6x14x14 -> 16): its columns
        # copy C_out·kh·kw rows of the padded delta, where col2im adds C·kh·kw·n·H'·W' numbers once.
        dcols = (w_mat.T @ d2).reshape(c, kh, kw, n, ho, wo)
        grad_xp = np.zeros((c, n, hp, wp), dtype=dcols.dtype)  # (C, n, ...): the layout of dcols
        for u in range(kh):
            rows = slice(u * dh, u * dh + sh * (ho - 1) + 1, sh)
            for v in range(kw):
                grad_xp[:, :, rows, v * dw:v * dw + sw * (wo - 1) + 1:sw] += dcols[:, u, v]
        (pt, pb), (pl, pr) = self.pad
        grad_x = np.ascontiguousarray(grad_xp[:, :, pt:hp - pb, pl:wp - pr].transpose(1, 0, 2, 3))
        return grad_x[:, :, 0, :] if self._ndim == 1 else grad_x

    def get_config(self) -> dict:
        one = self._ndim == 1
        pick = (lambda p: p[1]) if one else _plain
        if self.same:
            padding = "same"
        else:
            padding = self.pad[1][0] if one else _plain((self.pad[0][0], self.pad[1][0]))
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": pick(self.kernel_size), "stride": pick(self.stride),
                "padding": padding, "dilation": pick(self.dilation), "use_bias": self.use_bias}


def _one(value, name: str):
    """Conv1D's sizes are single ints (a one-element sequence is accepted)."""
    if isinstance(value, (list, tuple)):
        return _single(value, name)
    return value


def _single(value, name: str):
    if len(value) != 1:
        raise ConfigError(f"{name} must be an int (Conv1D has one spatial axis), got {value!r}")
    return value[0]


class Conv2D(_Conv):
    """2-D convolution (cross-correlation, as in PyTorch): images (n, C, H, W) -> (n, C_out, H', W').

    forward:  x (n, C, H, W), x_pad: x with zeros around (p before and after each axis)
              z[n, o, i, j] = b[o] + Σ_c Σ_u Σ_v W[o, c, u, v] · x_pad[n, c, i·s + u·d, j·s + v·d]
              H' = ⌊(H + 2p - d·(k-1) - 1) / s⌋ + 1   (and W' likewise)
              computed as  cols (n·H'·W', C·kh·kw),  cols[(n,i,j), (c,u,v)] = x_pad[n, c, i·s+u·d, j·s+v·d]
                           z = cols · W_matᵀ + b,     W_mat = W reshaped (C_out, C·kh·kw)
    backward: delta = dL/dz (n, C_out, H', W'), δ_cols its (n·H'·W', C_out) matrix
              dL/dW[o, c, u, v] = Σ_n Σ_i Σ_j delta[n, o, i, j] · x_pad[n, c, i·s + u·d, j·s + v·d]
                                = (δ_colsᵀ · cols) reshaped (C_out, C, kh, kw)
              dL/db[o]          = Σ_n Σ_i Σ_j delta[n, o, i, j]                       (C_out,)
              dL/dx_pad[n, c, i·s + u·d, j·s + v·d] += (δ_cols · W_mat)[(n,i,j), (c,u,v)]   (col2im)
              dL/dx = dL/dx_pad without its padding                                  (n, C, H, W)

    Parameters
    ----------
    in_channels, out_channels : int
        C and C_out. ``weight`` has shape (C_out, C, kh, kw) and ``bias`` (C_out,), PyTorch's layout.
    kernel_size, stride, dilation : int or (int, int)
        k, s and d, for (height, width) when a pair; each >= 1.
    padding : int, (int, int) or "same"
        Zeros added on both sides of (height, width). "same" (stride 1 only) keeps H' = H and
        W' = W: d·(k-1) zeros in total per axis, the smaller half before (PyTorch's convention).
    use_bias : bool
        Whether the layer has a bias (initialized to zeros).
    init : str, Initializer, callable or array
        Weight initializer ("he_uniform" by default; fan_in = C·kh·kw, fan_out = C_out·kh·kw).
    seed : int or numpy.random.Generator, optional
        Seed of the weight draw.
    dtype : numpy dtype
        Parameter dtype (a Sequential casts its layers to its own dtype).
    """

    # kernel_size counts twice (kh·kw); the load-time size guard reads a [kh, kw] pair as its two sizes
    size_args = ("in_channels", "out_channels", "kernel_size", "kernel_size")

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] | str = 0,
                 dilation: int | tuple[int, int] = 1, use_bias: bool = True, init="he_uniform",
                 seed=None, dtype=np.float32) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         use_bias, init, seed, dtype)


class Conv1D(_Conv):
    """1-D convolution over sequences: (n, C, L) -> (n, C_out, L'), a Conv2D on images one row high.

    forward:  z[n, o, i] = b[o] + Σ_c Σ_u W[o, c, u] · x_pad[n, c, i·s + u·d]
              L' = ⌊(L + 2p - d·(k-1) - 1) / s⌋ + 1
    backward: delta = dL/dz (n, C_out, L')
              dL/dW[o, c, u] = Σ_n Σ_i delta[n, o, i] · x_pad[n, c, i·s + u·d]     (C_out, C, k)
              dL/db[o]       = Σ_n Σ_i delta[n, o, i]                                (C_out,)
              dL/dx_pad[n, c, i·s + u·d] += Σ_o delta[n, o, i] · W[o, c, u]          (col2im)

    Parameters
    ----------
    in_channels, out_channels : int
        C and C_out. ``weight`` has shape (C_out, C, k), PyTorch's layout, and ``bias`` (C_out,).
    kernel_size, stride, dilation : int
        k, s and d (>= 1).
    padding : int or "same"
        Zeros on both ends; "same" (stride 1 only) as in Conv2D.
    use_bias, init, seed, dtype
        As in Conv2D.
    """

    _ndim = 1
    size_args = ("in_channels", "out_channels", "kernel_size")

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int | str = 0, dilation: int = 1, use_bias: bool = True, init="he_uniform", seed=None,
                 dtype=np.float32) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         use_bias, init, seed, dtype)
