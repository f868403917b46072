"""Invertible dense layer with an LU parametrisation (Kingma & Dhariwal, 2018, "Glow",
section 3.2, "LU decomposition").

    y = W x + c,     W = P L (U + diag(sign ⊙ exp(log_abs_diag))),

P a fixed permutation, L unit lower triangular, U strictly upper triangular (both free),
sign ∈ {±1}^C fixed. Then log|det W| = Σ_i log_abs_diag_i: an O(C) log-det instead of
O(C³), and W is invertible for every value of the free parameters. The inverse is two
triangular solves: x = U'⁻¹ L⁻¹ Pᵀ (y - c).

Acts on the last axis (`forward_min_event_ndims=1`). Applied to images [H, W, C] with
event_ndims=3 it is exactly Glow's invertible 1×1 convolution (TFP adds the per-pixel
log-det over the H·W positions); `Invertible1x1Conv` is that use with Glow's defaults.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import (
    assert_util,
    dtype_util,
    parameter_properties,
    tensor_util,
)

from tfp_flows.types import DTypeLike, Seed, TensorLike

tfb = tfp.bijectors


def lu_with_pivoting(a):
    """(p, lower, upper) with a = p @ lower @ upper: LU with partial pivoting, NumPy.

    Runs once at initialisation on a C x C matrix, so a plain loop is fine here.
    """
    n = a.shape[0]
    upper, lower, perm = np.array(a, np.float64), np.eye(n), np.arange(n)
    for k in range(n - 1):
        i = k + int(np.argmax(np.abs(upper[k:, k])))
        upper[[k, i]], perm[[k, i]] = upper[[i, k]], perm[[i, k]]
        lower[[k, i], :k] = lower[[i, k], :k]
        lower[k + 1:, k] = upper[k + 1:, k] / upper[k, k]
        upper[k + 1:] -= lower[k + 1:, k, None] * upper[k]
    upper = np.triu(upper)
    return np.eye(n)[perm].T, lower, upper  # a[perm] = lower @ upper


def lu_init(channels, init, rng, np_dtype):
    """(lower_upper, log_abs_diag, sign, permutation) for W = I or a random rotation."""
    if init == "identity":
        return (np.zeros([channels, channels], np_dtype), np.zeros([channels], np_dtype),
                np.ones([channels], np_dtype), np.arange(channels))
    if init != "rotation":
        raise ValueError(f"init must be 'identity' or 'rotation'; got {init!r}.")
    w = np.linalg.qr(rng.standard_normal([channels, channels]))[0]
    p, lower, upper = lu_with_pivoting(w)          # w = p @ lower @ upper
    d = np.diag(upper)
    lower_upper = np.tril(lower, -1) + np.triu(upper, 1)
    # (p @ v)[i] = v[perm[i]] with perm[i] = argmax_j p[i, j]
    return (lower_upper.astype(np_dtype), np.log(np.abs(d)).astype(np_dtype),
            np.sign(d).astype(np_dtype), np.argmax(p, axis=1))


class InvertibleDense(tfb.Bijector):
    """y = P L U' x + bias on the last axis (see the module docstring).

    Args:
      lower_upper: [..., C, C]; strict lower triangle = L - I, strict upper triangle = U.
        Its diagonal is ignored.
      log_abs_diag: [..., C], log|diag U'|.
      sign_diag: [C] of ±1 (fixed), signs of diag U'. Default: ones.
      permutation: [C] integer permutation (fixed), (P v)_i = v[permutation[i]].
        Default: identity.
      bias: optional [..., C].
      validate_args: check that `permutation` is a permutation and signs are ±1.
      name: name of the bijector.

    Accurate for (float64; tests/bijectors/test_properties.py: finite, round trip within 1e-7
    relative, log-det = autodiff within 1e-6) entries of lower_upper in [-2, 2], |log_abs_diag|
    <= 3, |bias| <= 10 and |x_i| <= 100 (C = 3). Domain: all of R^C; W is invertible for every
    parameter value.
    """

    def __init__(self, lower_upper: TensorLike, log_abs_diag: TensorLike,
                 sign_diag: TensorLike | None = None, permutation: TensorLike | None = None,
                 bias: TensorLike | None = None, validate_args: bool = False,
                 name: str = "invertible_dense") -> None:
        parameters = dict(locals())
        with tf.name_scope(name) as name:
            dtype = dtype_util.common_dtype([lower_upper, log_abs_diag, bias],
                                            dtype_hint=tf.float32)
            self._lower_upper = tensor_util.convert_nonref_to_tensor(
                lower_upper, dtype=dtype, name="lower_upper")
            self._log_abs_diag = tensor_util.convert_nonref_to_tensor(
                log_abs_diag, dtype=dtype, name="log_abs_diag")
            c = self._lower_upper.shape[-1]
            if self._lower_upper.shape[-2] != c or self._log_abs_diag.shape[-1] != c:
                raise ValueError(f"{type(self).__name__}: lower_upper must be [..., C, C] and "
                                 f"log_abs_diag [..., C]; got {self._lower_upper.shape} and "
                                 f"{self._log_abs_diag.shape}.")
            self._sign_diag = tensor_util.convert_nonref_to_tensor(
                np.ones([c]) if sign_diag is None else sign_diag, dtype=dtype, name="sign_diag")
            self._permutation = tensor_util.convert_nonref_to_tensor(
                np.arange(c) if permutation is None else permutation, dtype=tf.int32,
                name="permutation")
            self._bias = (None if bias is None else
                          tensor_util.convert_nonref_to_tensor(bias, dtype=dtype, name="bias"))
            super().__init__(forward_min_event_ndims=1, is_constant_jacobian=True,
                             validate_args=validate_args, dtype=dtype,
                             parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return dict(
            lower_upper=parameter_properties.ParameterProperties(event_ndims=2),
            log_abs_diag=parameter_properties.ParameterProperties(event_ndims=1),
            sign_diag=parameter_properties.ParameterProperties(event_ndims=1),
            permutation=parameter_properties.ParameterProperties(event_ndims=1),
            bias=parameter_properties.ParameterProperties(event_ndims=1))

    @classmethod
    def trainable(cls, event_size: int, *, seed: Seed = None, dtype: DTypeLike = tf.float32,
                  init: str = "identity", bias: bool = True,
                  name: str | None = None) -> InvertibleDense:
        """Fresh tf.Variables for C = event_size channels.

        init: "identity" (W = I, the default) or "rotation" (a random rotation, log-det 0,
        as in Glow; P and the signs are then fixed by its LU decomposition).
        bias: include a trainable bias (starts at 0).
        """
        dtype = tf.as_dtype(dtype)
        np_dtype = dtype.as_numpy_dtype
        lu, log_d, sign, perm = lu_init(int(event_size), init, np.random.default_rng(seed),
                                        np_dtype)
        b = tf.Variable(np.zeros([int(event_size)], np_dtype), name="bias") if bias else None
        kwargs = {} if name is None else {"name": name}
        return cls(tf.Variable(lu, name="lower_upper"), tf.Variable(log_d, name="log_abs_diag"),
                   sign_diag=sign, permutation=perm, bias=b, **kwargs)

    def _factors(self):
        lu = tf.convert_to_tensor(self._lower_upper)
        eye = tf.eye(lu.shape[-1], dtype=lu.dtype)
        lower = tf.linalg.band_part(lu, -1, 0) - tf.linalg.band_part(lu, 0, 0) + eye
        diag = self._sign_diag * tf.exp(tf.convert_to_tensor(self._log_abs_diag))
        upper = tf.linalg.band_part(lu, 0, -1) - tf.linalg.band_part(lu, 0, 0) + \
            tf.linalg.diag(diag)
        return lower, upper

    def weight(self):
        """W = P L U' as a dense [..., C, C] matrix."""
        lower, upper = self._factors()
        return tf.gather(tf.matmul(lower, upper), self._permutation, axis=-2)

    def inverse_weight(self):
        """W⁻¹ = U'⁻¹ L⁻¹ Pᵀ by triangular solves (O(C³) once, not per example)."""
        lower, upper = self._factors()
        eye = tf.broadcast_to(tf.eye(lower.shape[-1], dtype=lower.dtype), tf.shape(lower))
        l_inv = tf.linalg.triangular_solve(lower, eye, lower=True)
        lu_inv = tf.linalg.triangular_solve(upper, l_inv, lower=False)
        # (L U')⁻¹ Pᵀ: column j of the result is column permutation[j] of (L U')⁻¹
        return tf.gather(lu_inv, self._permutation, axis=-1)

    def _forward(self, x):
        y = tf.linalg.matvec(self.weight(), x)
        return y if self._bias is None else y + self._bias

    def _inverse(self, y):
        if self._bias is not None:
            y = y - self._bias
        return tf.linalg.matvec(self.inverse_weight(), y)

    def _forward_log_det_jacobian(self, x):
        return tf.reduce_sum(tf.convert_to_tensor(self._log_abs_diag), axis=-1)

    def _parameter_control_dependencies(self, is_init):
        if not self.validate_args or not is_init:
            return []
        c = self._lower_upper.shape[-1]
        return [
            assert_util.assert_equal(tf.sort(self._permutation), tf.range(c, dtype=tf.int32),
                                     message=f"{type(self).__name__}: `permutation` must be "
                                             f"a permutation of 0..C-1."),
            assert_util.assert_equal(tf.abs(self._sign_diag),
                                     tf.ones_like(self._sign_diag),
                                     message=f"{type(self).__name__}: `sign_diag` must be ±1.")]
