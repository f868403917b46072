"""Invertible 1×1 convolution (Kingma & Dhariwal, 2018, "Glow", section 3.2).

A 1×1 convolution with a C×C kernel W applies the same matrix to the channel vector of
every pixel: y[h, w, :] = W x[h, w, :]. Its log-det over an [H, W, C] image is
H·W·log|det W|; with the LU parametrisation W = P L (U + diag(s)) (Glow's eq. 10) that is
H·W·Σ log|s|, O(C). This is `InvertibleDense` (the LU algebra lives there) with Glow's
defaults: no bias and a random-rotation initialisation, so that a fresh layer is a
volume-preserving learned generalisation of the channel permutation.

Events: the layer acts on the last (channel) axis (`forward_min_event_ndims=1`); use it
with event_ndims=3 on images (TFP sums the per-pixel log-det over H and W, giving the
H·W factor) or with event_ndims=1 on vectors, where C = D and it is a dense layer.
`trainable(event_size)` takes the channel count.
"""

from __future__ import annotations

import tensorflow as tf

from tfp_flows.bijectors.invertible_dense import InvertibleDense
from tfp_flows.types import DTypeLike, Seed, TensorLike


class Invertible1x1Conv(InvertibleDense):
    """Glow's invertible 1×1 convolution over channels-last images (see module docstring).

    Same arguments as `InvertibleDense`; `bias` defaults to None.

    Accurate for (float64; tests/bijectors/test_properties.py: finite, round trip within 1e-7
    relative, log-det = autodiff within 1e-6) the ranges of `InvertibleDense` (C = 3, on [2, 2,
    3] images). Domain: all of R^{H x W x C}.
    """

    def __init__(self, lower_upper: TensorLike, log_abs_diag: TensorLike,
                 sign_diag: TensorLike | None = None, permutation: TensorLike | None = None,
                 bias: TensorLike | None = None, validate_args: bool = False,
                 name: str = "invertible_1x1_conv") -> None:
        super().__init__(lower_upper, log_abs_diag, sign_diag=sign_diag,
                         permutation=permutation, bias=bias, validate_args=validate_args,
                         name=name)

    @classmethod
    def trainable(cls, event_size: int, *, seed: Seed = None, dtype: DTypeLike = tf.float32,
                  init: str = "rotation", bias: bool = False,
                  name: str = "invertible_1x1_conv") -> Invertible1x1Conv:
        """Fresh tf.Variables for C = event_size channels; Glow's rotation init by default.

        init="identity" starts at W = I instead.
        """
        return super().trainable(event_size, seed=seed, dtype=dtype, init=init, bias=bias,
                                 name=name)
