"""Pooling over images: max, average and global average, on (n, channels, height, width) batches.

Notation for the 2-D pools: kernel (kh, kw), stride (sh, sw), padding (ph, pw); x_pad is the
input with ph rows above and below and pw columns left and right (−inf for max, 0 for
average); the output has H' = ⌊(H + 2·ph − kh) / sh⌋ + 1 rows and W' = ⌊(W + 2·pw − kw) / sw⌋ + 1
columns, as in PyTorch's max_pool2d / avg_pool2d (ceil_mode=False).

How the windows are read: each window offset (u, v) is one strided view of the input,
x_pad[:, :, u::sh, v::sw] cut to H'×W', so a pool is kh·kw whole-array maximum/equal/add calls
(a loop over the window, never over pixels). When stride == kernel and there is no padding
(windows that tile the image) the views come from x reshaped to (n·C·H', kh, W', kw): two axes
each, which NumPy walks faster.

Measured (float32 on (64, 6, 28, 28) unless said, one thread, best of 7+ timeit repeats; the
machine was shared, so only figures from the same run, on one line here, compare):

- MaxPool2D(2) forward: 1.35 ms through the reshaped views, 4.9 ms through
  sliding_window_view + argmax over the flattened window axis, 2.9 ms transposing the windows
  together and taking argmax. MaxPool2D(3, 2, 1): 4.6 ms through the strided views, 9.9 ms
  through sliding_window_view + argmax. AvgPool2D(2): 0.45 ms through the views, 7.2 ms for
  np.add.reduce over the window axes of the reshape; AvgPool2D(3, 2, 1): 0.93 ms against 8.5 ms
  for np.add.reduce over sliding_window_view's window axes.
- MaxPool2D keeps one boolean mask per window offset, True where that offset holds its window's
  first maximum (kh·kw bytes per output), and its backward is one masked multiply per offset
  into the gradient's strided view (added up where windows overlap). Tiled, forward + backward:
  1.8 ms (0.67 ms on (64, 16, 10, 10)) against 5.8 ms (1.7 ms) keeping the arg-max offset and
  comparing it with each offset again in the backward. Otherwise the masks beat a scatter of
  each gradient to the flat index of its arg-max with np.add.at: forward + backward 3.8 ms
  against 5.4 ms for MaxPool2D(3, 2, 1), 6.5 ms against 10.9 ms for MaxPool2D(3, 1, 1), 2.0 ms
  against 3.9 ms for MaxPool2D(2, 3, 1). np.add.at itself beat a np.bincount scatter (0.37 ms
  against 0.83 ms with kernel 3 stride 2, 1.5 ms against 2.4 ms with kernel 3 stride 1).

With numba (the ``fast`` extra) MaxPool2D with 2×2 windows and stride 2 (padded or not) runs
compiled instead (chainrule/kernels/pooling.py): each window read once, the offset of its
first maximum kept as one int32 instead of four masks; the same numbers to the bit.

Forward + backward of MaxPool2D(2) against torch.nn.functional.max_pool2d (PyTorch 2.13 CPU,
float32, one thread each, interleaved, best of 7 × 50 calls, six runs on a shared 2-core machine):
chainrule takes 0.26-0.38 of PyTorch's time on (64, 6, 28, 28) (0.74-1.40 ms against 2.9-6.9 ms)
and 0.26-0.67 on (64, 16, 10, 10) (0.35-0.99 ms against 1.35-2.5 ms).
"""

from __future__ import annotations

import numpy as np

from .. import kernels
from .._checks import check_number, check_positive_int
from .._threads import parallel
from ..errors import ConfigError, ShapeError
from .base import Layer

#: below this many input values MaxPool2D runs on the calling thread whatever
#: chainrule.set_num_threads says: (64, 16, 8, 8) (65,536 values) gained nothing from a split on 2
#: cores (0.194 ms either way), (64, 6, 24, 24) (221,184) did (docs/speed.md, "Threads")
POOL_MIN_WORK = 1 << 17


def _pair(value, name: str, low: int) -> tuple[int, int]:
    """An int or a pair of ints -> (rows, columns), each checked to be an int >= low."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ConfigError(f"{name} must be an int or a pair of ints (rows, columns),"
                              f" got {value!r}")
        items = tuple(value)
    else:
        items = (value, value)
    for item in items:
        if low == 1:
            check_positive_int(item, name)
        else:
            check_number(item, name, low=low, integer=True)
    return int(items[0]), int(items[1])


def _one_or_pair(pair: tuple[int, int]):
    """What get_config writes: an int when both sides agree, else [rows, columns]."""
    return pair[0] if pair[0] == pair[1] else list(pair)


class _Pool2D:
    """What MaxPool2D and AvgPool2D share: arguments, shapes and checks (a mixin, not a Layer of
    its own, so that no model file can name it)."""

    # No parameters: no constructor argument sizes an allocation when a file is loaded.
    size_args: tuple[str, ...] = ()
    _pad_value = 0.0

    def __init__(self, kernel_size: int | tuple[int, int], stride: int | tuple[int, int] | None = None,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        name = type(self).__name__
        self.kernel_size = _pair(kernel_size, f"{name} kernel_size", 1)
        self.stride = self.kernel_size if stride is None else _pair(stride, f"{name} stride", 1)
        self.padding = _pair(padding, f"{name} padding", 0)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size, strict=True)):
            raise ConfigError(f"{name} padding must be at most half of kernel_size"
                              f" {_one_or_pair(self.kernel_size)} on each side (as PyTorch requires),"
                              f" got {padding!r}")
        # stride == kernel without padding: windows tile the image (see the module docstring)
        self._tiles = self.stride == self.kernel_size and self.padding == (0, 0)
        self._input_shape: tuple | None = None

    # --- shapes --------------------------------------------------------------------------
    def _out_hw(self, h: int, w: int, shape: tuple) -> tuple[int, int]:
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        hp, wp = h + 2 * ph, w + 2 * pw
        if hp < kh or wp < kw:
            raise ShapeError(f"{self!r}: the {kh}x{kw} window is larger than the padded input"
                             f" {hp}x{wp} (input of shape {shape})")
        return (hp - kh) // sh + 1, (wp - kw) // sw + 1

    def check_input(self, x: np.ndarray) -> None:
        """Raise ShapeError unless ``x`` is (n, C, H, W) with the window fitting the padded image."""
        if x.ndim != 4:
            raise ShapeError(f"{self!r} expects input of shape (n, channels, height, width),"
                             f" got an array of shape {x.shape}")
        self._out_hw(x.shape[2], x.shape[3], x.shape)

    def output_shape(self, input_shape: tuple) -> tuple:
        if len(input_shape) != 3:
            raise ShapeError(f"{self!r} expects samples of shape (channels, height, width),"
                             f" got {tuple(input_shape)}")
        c, h, w = input_shape
        return (c, *self._out_hw(h, w, (None, *input_shape)))

    def _padded(self, x: np.ndarray) -> np.ndarray:
        ph, pw = self.padding
        if not (ph or pw):
            return x
        n, c, h, w = x.shape
        xp = np.full((n, c, h + 2 * ph, w + 2 * pw), self._pad_value, dtype=x.dtype)
        xp[:, :, ph:ph + h, pw:pw + w] = x
        return xp

    def _unpadded(self, grad_pad: np.ndarray) -> np.ndarray:
        ph, pw = self.padding
        if not (ph or pw):
            return grad_pad
        h, w = self._input_shape[2:]
        return np.ascontiguousarray(grad_pad[:, :, ph:ph + h, pw:pw + w])

    def _window_views(self, x: np.ndarray) -> list[np.ndarray]:
        """The kh·kw views x_pad[:, :, u::sh, v::sw] (each of the output's size), u then v.

        Windows that tile the image read them from x reshaped to (n·C·H', kh, W', kw), as
        (n·C·H', W') arrays; the rows and columns past the last whole window are cut off first.
        """
        (kh, kw), (n, c, h, w) = self.kernel_size, x.shape
        if self._tiles:
            ho, wo = h // kh, w // kw
            if h != ho * kh or w != wo * kw:
                x = x[:, :, :ho * kh, :wo * kw]
            tiles = x.reshape(n * c * ho, kh, wo, kw)
            return [tiles[:, u, :, v] for u in range(kh) for v in range(kw)]
        xp = self._padded(x)
        return [xp[:, :, rows, cols] for rows, cols in self._offsets(*self._out_hw(h, w, x.shape))]

    def _offsets(self, ho: int, wo: int) -> list[tuple[slice, slice]]:
        """(rows, columns) of x_pad that offset (u, v) of every window reads, u then v."""
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        return [(slice(u, u + sh * (ho - 1) + 1, sh), slice(v, v + sw * (wo - 1) + 1, sw))
                for u in range(kh) for v in range(kw)]

    def _tile_grad(self, tiles_grad: np.ndarray, dtype) -> np.ndarray:
        """The (n·C·H', kh, W', kw) gradient back to (n, C, H, W), zero past the last window."""
        n, c, h, w = self._input_shape
        (kh, kw), ho, wo = self.kernel_size, h // self.kernel_size[0], w // self.kernel_size[1]
        if h == ho * kh and w == wo * kw:
            return tiles_grad.reshape(self._input_shape)
        grad_in = np.zeros(self._input_shape, dtype=dtype)
        grad_in[:, :, :ho * kh, :wo * kw] = tiles_grad.reshape(n, c, ho * kh, wo * kw)
        return grad_in

    def backward_params(self, delta: np.ndarray) -> None:
        """No parameters: nothing to fill when this is the first layer of a network."""

    def get_config(self) -> dict:
        return {"kernel_size": _one_or_pair(self.kernel_size), "stride": _one_or_pair(self.stride),
                "padding": _one_or_pair(self.padding)}


class MaxPool2D(_Pool2D, Layer):
    """Max pooling over kh×kw windows; no parameters.

    forward:  x (n, C, H, W) -> y (n, C, H', W')
              y[n,c,i,j] = max_{u<kh, v<kw} x_pad[n, c, i·sh + u, j·sw + v]
              (x_pad padded with −inf; the arg-max (u*, v*) of each window, the first in
              row-major window order on ties as PyTorch picks it, is cached as one mask per (u, v))
    backward: dL/dx[n,c,p,q] = Σ_{(i,j): (i·sh + u*, j·sw + v*) = (p + ph, q + pw)} dL/dy[n,c,i,j]
              each output's gradient goes to its window's arg-max, summed where windows overlap
              (stride < kernel); positions that are no window's maximum get 0.

    Parameters
    ----------
    kernel_size : int or (int, int)
        Window rows and columns.
    stride : int or (int, int), optional
        Step between windows; kernel_size when None (windows that tile the image).
    padding : int or (int, int)
        −inf rows/columns added on each side, at most half the kernel (as in PyTorch).
    """

    _pad_value = -np.inf
    _arg: np.ndarray | None = None  # the compiled forward's offsets of the maxima (None: the masks)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if x.ndim != 4:
            self.check_input(x)
        self._input_shape = x.shape
        (n, c, h, w), (kh, kw) = x.shape, self.kernel_size
        if h < kh or w < kw:
            self.check_input(x)
        if self._compiled(x):
            return self._forward_compiled(x, training)
        self._arg = None
        views = self._window_views(x)
        out = np.empty(views[0].shape, dtype=x.dtype)
        # one mask per window offset: where that offset holds its window's first maximum
        masks = [np.empty(out.shape, dtype=bool) for _ in views]
        per = len(out) // max(n, 1)  # rows of the views per sample (C·H' when tiled, else 1)

        def samples(a: int, b: int) -> None:
            rows = slice(a * per, b * per)
            part = out[rows]
            np.copyto(part, views[0][rows])
            for view in views[1:]:
                np.maximum(part, view[rows], out=part)
            self._first_max_masks([view[rows] for view in views], part, [mask[rows] for mask in masks])

        # Speed. With chainrule.set_num_threads(2), each thread takes its own run of samples:
        # forward + backward on (64, 6, 24, 24) float32, alone, 0.42 -> 0.34-0.38 ms with
        # OPENBLAS_NUM_THREADS=1 (0.48 ms with OpenBLAS's threads spinning on the other core)
        parallel(samples, n, x.size, POOL_MIN_WORK)
        self._masks = masks
        return out.reshape(n, c, h // kh, out.shape[-1]) if self._tiles else out

    def _compiled(self, x: np.ndarray) -> bool:
        """Whether chainrule/kernels/pooling.py takes this call: 2×2 windows with stride 2,
        float32 or float64, numba active."""
        return self.kernel_size == (2, 2) and self.stride == (2, 2) and kernels.ready(x, x)

    def _forward_compiled(self, x: np.ndarray, training: bool) -> np.ndarray:
        """The same maximum by the compiled kernel, which keeps the offset of each window's first
        maximum (``_arg``, int32) instead of one mask per offset.

        Speed. Float32, inside a LeNet training step (batch 64, one thread, the two paths taking
        turns in one process, median of 7 epochs): forward + backward on (64, 6, 24, 24)
        0.55 -> 0.18 ms, on (64, 16, 8, 8) 0.25 -> 0.10 ms (docs/speed.md, "Convolution and
        pooling").
        """
        xp = np.ascontiguousarray(self._padded(x))  # (−inf around it when padded)
        n, c, h, w = x.shape
        out = np.empty((n, c, *self._out_hw(h, w, x.shape)), dtype=x.dtype)
        # training repeats the batch shape: the same offsets array every step (Layer._scratch)
        arg = self._work(training, "arg", out.shape, np.int32)
        kernel = kernels.compiled("pooling", "max_pool_2x2")

        def samples(a: int, b: int) -> None:
            kernel(xp[a:b], out[a:b], arg[a:b])

        parallel(samples, n, x.size, POOL_MIN_WORK)
        self._masks, self._arg = None, arg
        return out

    def _backward_compiled(self, grad: np.ndarray) -> np.ndarray:
        """dL/dx by the compiled kernel from the offsets the compiled forward kept."""
        (ph, pw), (n, c, h, w) = self.padding, self._input_shape
        grad = np.ascontiguousarray(grad)
        grad_pad = np.empty((n, c, h + 2 * ph, w + 2 * pw), dtype=grad.dtype)
        kernel = kernels.compiled("pooling", "max_pool_2x2_backward")

        def samples(a: int, b: int) -> None:
            kernel(grad[a:b], self._arg[a:b], grad_pad[a:b])

        parallel(samples, n, grad_pad.size, POOL_MIN_WORK)
        return self._unpadded(grad_pad)

    @staticmethod
    def _first_max_masks(views: list[np.ndarray], out: np.ndarray, masks: list[np.ndarray]) -> None:
        """Set masks[a] True where view a holds its window's maximum and no earlier view does."""
        if len(views) == 1:
            masks[0][...] = True
            return
        taken = None
        for view, mask in zip(views[:-1], masks, strict=False):
            np.equal(view, out, out=mask)
            if taken is None:
                taken = mask.copy()
            else:
                np.greater(mask, taken, out=mask)  # mask and not taken
                taken |= mask
        np.logical_not(taken, out=masks[-1])

    def backward(self, grad: np.ndarray) -> np.ndarray:
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        n, c, h, w = self._input_shape
        if self._arg is not None:
            if kernels.ready(grad, grad):
                return self._backward_compiled(grad)
            # the kernels were switched off since the forward: its offsets made into the masks
            arg = self._arg.reshape(-1, self._arg.shape[-1]) if self._tiles else self._arg
            self._masks = [arg == k for k in range(kh * kw)]
        masks = self._masks
        if self._tiles:  # one masked copy per window offset
            rows, wo = masks[0].shape
            per = rows // max(n, 1)
            tiles_grad = np.empty((rows, kh, wo, kw), dtype=grad.dtype)
            grad2 = grad.reshape(rows, wo)

            def tile_samples(a: int, b: int) -> None:
                part = slice(a * per, b * per)
                for i, mask in enumerate(masks):
                    np.multiply(grad2[part], mask[part], out=tiles_grad[part, i // kw, :, i % kw])

            # Speed. As the forward: each thread routes its own run of samples.
            parallel(tile_samples, n, n * c * h * w, POOL_MIN_WORK)
            return self._tile_grad(tiles_grad, grad.dtype)
        ph, pw = self.padding
        grad_pad = np.empty((n, c, h + 2 * ph, w + 2 * pw), dtype=grad.dtype)
        offsets = self._offsets(*grad.shape[2:])
        apart = sh >= kh and sw >= kw  # windows apart: each position gets at most one gradient

        def samples(a: int, b: int) -> None:
            part, g = grad_pad[a:b], grad[a:b]
            part[...] = 0
            if apart:
                for (rows, cols), mask in zip(offsets, masks, strict=True):
                    np.multiply(g, mask[a:b], out=part[:, :, rows, cols])
                return
            # overlapping windows: a position that is the maximum of several sums their gradients
            routed = np.empty(g.shape, dtype=grad.dtype)
            for (rows, cols), mask in zip(offsets, masks, strict=True):
                np.multiply(g, mask[a:b], out=routed)
                part[:, :, rows, cols] += routed

        parallel(samples, n, n * c * h * w, POOL_MIN_WORK)
        return self._unpadded(grad_pad)


class AvgPool2D(_Pool2D, Layer):
    """Average pooling over kh×kw windows (zero padding counted, PyTorch's count_include_pad=True).

    forward:  x (n, C, H, W) -> y (n, C, H', W')
              y[n,c,i,j] = 1/(kh·kw) · Σ_{u<kh, v<kw} x_pad[n, c, i·sh + u, j·sw + v]
    backward: dL/dx[n,c,p,q] = 1/(kh·kw) · Σ_{(i,j): window (i,j) covers (p + ph, q + pw)} dL/dy[n,c,i,j]

    Parameters
    ----------
    kernel_size : int or (int, int)
        Window rows and columns.
    stride : int or (int, int), optional
        Step between windows; kernel_size when None.
    padding : int or (int, int)
        Zero rows/columns added on each side, at most half the kernel (as in PyTorch).
    """

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if x.ndim != 4:
            self.check_input(x)
        self._input_shape = x.shape
        kh, kw = self.kernel_size
        if x.shape[2] < kh or x.shape[3] < kw:
            self.check_input(x)
        views = self._window_views(x)
        out = views[0] + views[1] if len(views) > 1 else views[0].copy()
        for view in views[2:]:
            out += view
        out *= 1.0 / (kh * kw)  # a Python float keeps float32 float32
        n, c, h, _ = x.shape
        return out.reshape(n, c, h // kh, out.shape[-1]) if self._tiles else out

    def backward(self, grad: np.ndarray) -> np.ndarray:
        kh, kw = self.kernel_size
        share = grad / (kh * kw)
        n, c, h, w = self._input_shape
        if self._tiles:
            ho, wo = grad.shape[2:]
            tiles_grad = np.empty((n * c * ho, kh, wo, kw), dtype=grad.dtype)
            tiles_grad[...] = share.reshape(n * c * ho, 1, wo, 1)
            return self._tile_grad(tiles_grad, grad.dtype)
        ph, pw = self.padding
        grad_pad = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=grad.dtype)
        for rows, cols in self._offsets(*grad.shape[2:]):  # one strided add per window offset
            grad_pad[:, :, rows, cols] += share
        return self._unpadded(grad_pad)


class GlobalAvgPool2D(Layer):
    """The mean of each channel over the whole image; no parameters.

    forward:  x (n, C, H, W) -> y (n, C),  y[n,c] = 1/(H·W) · Σ_{p,q} x[n,c,p,q]
    backward: dL/dx[n,c,p,q] = dL/dy[n,c] / (H·W)
    """

    def __init__(self) -> None:
        super().__init__()
        self._input_shape: tuple | None = None

    def check_input(self, x: np.ndarray) -> None:
        """Raise ShapeError unless ``x`` is (n, C, H, W)."""
        if x.ndim != 4:
            raise ShapeError(f"{self!r} expects input of shape (n, channels, height, width),"
                             f" got an array of shape {x.shape}")

    def output_shape(self, input_shape: tuple) -> tuple:
        if len(input_shape) != 3:
            raise ShapeError(f"{self!r} expects samples of shape (channels, height, width),"
                             f" got {tuple(input_shape)}")
        return (input_shape[0],)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if x.ndim != 4:
            self.check_input(x)
        self._input_shape = x.shape
        return x.mean(axis=(2, 3))

    def backward(self, grad: np.ndarray) -> np.ndarray:
        n, c, h, w = self._input_shape
        grad_in = np.empty(self._input_shape, dtype=grad.dtype)
        grad_in[...] = (grad / (h * w))[:, :, None, None]
        return grad_in

    def backward_params(self, delta: np.ndarray) -> None:
        """No parameters: nothing to fill when this is the first layer of a network."""
