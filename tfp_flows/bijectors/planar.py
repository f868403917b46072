"""Planar flow (Rezende & Mohamed, 2015, "Variational Inference with Normalizing Flows").

    f(z) = z + û h(wᵀz + b),        h = tanh,            (seed 002, eq. 15)
    det ∂f/∂z = 1 + h'(wᵀz + b) wᵀû                       (seed 002, eqs. 16, 38-39)

with w, u ∈ R^D, b ∈ R. f is invertible iff wᵀû ≥ -1 (for tanh); the paper's
reparametrisation (appendix A.1)

    û = u + (m(wᵀu) - wᵀu) w / ||w||²,     m(x) = -1 + softplus(x),

gives wᵀû = m(wᵀu) > -1 for every value of the free parameters u, w, b, so every planar
layer is a bijection and 1 + h' wᵀû > 0. The log-det is computed, O(D), as
log(tanh² + softplus(wᵀu) (1 - tanh²)), which equals log(1 + h' m(wᵀu)) without the
cancellation of -1 + softplus(wᵀu) when wᵀu << 0.

Inverse (no closed form): y - z is parallel to û, so only the scalar α = wᵀz is unknown.
Projecting y = f(z) on w gives the scalar equation

    α + (wᵀû) tanh(α + b) = wᵀy,

strictly increasing in α, with the root in [wᵀy - |wᵀû|, wᵀy + |wᵀû|]. It is solved with
a bracketed, safeguarded Newton iteration (`tanh_root.solve_linear_plus_tanh`: at most 100
passes of a `tf.while_loop`, tolerance 4 machine epsilons relative), then
z = y - û tanh(α + b) in closed form. Round trips are exact to ~1e-13 in float64.
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

from tfp_flows.bijectors.tanh_root import solve_linear_plus_tanh
from tfp_flows.types import DTypeLike, Seed, TensorLike

tfb = tfp.bijectors

# softplus(_IDENTITY_DOT) = 1, so m(_IDENTITY_DOT) = 0: u = _IDENTITY_DOT w / ||w||² gives û = 0.
_IDENTITY_DOT = float(np.log(np.e - 1.0))


def planar_u_hat(u, w):
    """û = u + (m(wᵀu) - wᵀu) w / ||w||², m(x) = -1 + softplus(x); wᵀû = m(wᵀu) > -1.

    Works on any batch shape [..., D] (also for amortised u, w). For w = 0, û = u.
    """
    wu = tf.reduce_sum(w * u, axis=-1, keepdims=True)
    m = tf.math.softplus(wu) - 1.0
    w_sq = tf.reduce_sum(w * w, axis=-1, keepdims=True)
    return u + tf.math.divide_no_nan((m - wu) * w, w_sq)


class Planar(tfb.Bijector):
    """Planar flow f(z) = z + û tanh(wᵀz + b) on vectors (see the module docstring).

    Args:
      w: float tensor [..., D], the normal of the hyperplane.
      u: float tensor [..., D], the free direction; the bijector uses û (`u_hat`).
      b: float tensor [...], the offset.
      validate_args: check that w and u have the same event size.
      name: name of the bijector.

    Batch shapes of w, u, b broadcast (amortised flows pass per-example parameters).

    Accurate for (float64; tests/bijectors/test_properties.py: finite, round trip within 1e-7
    relative, log-det = autodiff within 1e-6) entries of w, u and b in [-5, 5] (w = 0 included:
    then f is the translation z + u tanh(b)) and |x_i| <= 20. Domain: all of R^D; every
    parameter value gives a bijection.
    """

    def __init__(self, w: TensorLike, u: TensorLike, b: TensorLike, validate_args: bool = False,
                 name: str = "planar") -> None:
        parameters = dict(locals())
        with tf.name_scope(name) as name:
            dtype = dtype_util.common_dtype([w, u, b], dtype_hint=tf.float32)
            self._w = tensor_util.convert_nonref_to_tensor(w, dtype=dtype, name="w")
            self._u = tensor_util.convert_nonref_to_tensor(u, dtype=dtype, name="u")
            self._b = tensor_util.convert_nonref_to_tensor(b, dtype=dtype, name="b")
            dw, du = self._w.shape[-1:], self._u.shape[-1:]
            if dw.is_fully_defined() and du.is_fully_defined() and dw != du:
                raise ValueError(f"Planar: w and u must have the same event size; got "
                                 f"{dw[0]} and {du[0]}.")
            super().__init__(forward_min_event_ndims=1, validate_args=validate_args,
                             dtype=dtype, parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return dict(w=parameter_properties.ParameterProperties(event_ndims=1),
                    u=parameter_properties.ParameterProperties(event_ndims=1),
                    b=parameter_properties.ParameterProperties(event_ndims=0))

    @classmethod
    def trainable(cls, event_size: int, *, seed: Seed = None, dtype: DTypeLike = tf.float32,
                  name: str = "planar") -> Planar:
        """A planar layer owning fresh tf.Variables w, u, b, initialised at the identity.

        w ~ N(0, I/D); u = log(e-1) w/||w||², which makes û = 0 exactly, so f(z) = z, while
        the gradient with respect to u is not zero; b = 0.
        """
        dtype = tf.as_dtype(dtype)
        rng = np.random.default_rng(seed)
        w = rng.standard_normal(int(event_size)) / np.sqrt(event_size)
        u = _IDENTITY_DOT * w / np.sum(w * w)
        np_dtype = dtype.as_numpy_dtype
        return cls(w=tf.Variable(w.astype(np_dtype), name="w"),
                   u=tf.Variable(u.astype(np_dtype), name="u"),
                   b=tf.Variable(np.zeros([], np_dtype), name="b"), name=name)

    @property
    def w(self):
        return self._w

    @property
    def u(self):
        return self._u

    @property
    def b(self):
        return self._b

    def u_hat(self):
        """The reparametrised û with wᵀû > -1."""
        return planar_u_hat(tf.convert_to_tensor(self._u), tf.convert_to_tensor(self._w))

    def _softplus_w_dot_u(self, w):
        """softplus(wᵀu) = 1 + wᵀû; 1 where w = 0 (there û = u, wᵀû = 0: a translation)."""
        sp = tf.math.softplus(tf.reduce_sum(w * tf.convert_to_tensor(self._u), axis=-1))
        return tf.where(tf.reduce_sum(w * w, axis=-1) > 0, sp, tf.ones_like(sp))

    def _forward(self, z):
        w, b = tf.convert_to_tensor(self._w), tf.convert_to_tensor(self._b)
        pre = tf.reduce_sum(w * z, axis=-1) + b
        return z + self.u_hat() * tf.tanh(pre)[..., tf.newaxis]

    def _forward_log_det_jacobian(self, z):
        # 1 + h' wᵀû with wᵀû = -1 + softplus(wᵀu) and h' = 1 - tanh², written without
        # cancellation as tanh² + softplus(wᵀu) (1 - tanh²) > 0, accurate even when wᵀu << 0.
        w, b = tf.convert_to_tensor(self._w), tf.convert_to_tensor(self._b)
        th = tf.tanh(tf.reduce_sum(w * z, axis=-1) + b)
        sp = self._softplus_w_dot_u(w)
        th2 = th * th
        return tf.math.log(th2 + sp * (1.0 - th2))

    def _inverse(self, y):
        w, b = tf.convert_to_tensor(self._w), tf.convert_to_tensor(self._b)
        u_hat = self.u_hat()
        # wᵀû = m(wᵀu) analytically (> -1), not the rounded dot product of w and û.
        w_dot_u_hat = self._softplus_w_dot_u(w) - 1.0
        alpha = solve_linear_plus_tanh(tf.reduce_sum(w * y, axis=-1), w_dot_u_hat,
                                       tf.ones([], y.dtype), b)
        return y - u_hat * tf.tanh(alpha + b)[..., tf.newaxis]

    def _parameter_control_dependencies(self, is_init):
        if not self.validate_args:
            return []
        assertions = []
        if is_init != (tensor_util.is_ref(self._w) or tensor_util.is_ref(self._u)):
            assertions.append(assert_util.assert_equal(
                tf.shape(self._w)[-1], tf.shape(self._u)[-1],
                message="Planar: w and u must have the same event size."))
        return assertions
