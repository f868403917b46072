"""Sylvester normalizing flow (van den Berg, Hasenclever, Tomczak & Welling, 2018).

    f(z) = z + A h(B z + b),   A = Q R,   B = R̃ Qᵀ,   h = tanh          (seed 002, eq. 27)

with Q ∈ R^{D×M} (M ≤ D) of orthonormal columns, R, R̃ ∈ R^{M×M} upper triangular and
b ∈ R^M. By Sylvester's identity det(I_D + A H B) = det(I_M + H B A) (eq. 28), and with
QᵀQ = I the Jacobian determinant is that of an M×M upper-triangular matrix (eq. 29):

    det ∂f/∂z = det(I_M + diag(h'(R̃Qᵀz + b)) R̃ R) = Π_i (1 + h'_i r̃_ii r_ii),

an O(M) log-det. Invertibility: the diagonals are r_ii = tanh(ρ_ii), r̃_ii = tanh(ρ̃_ii)
(ρ, ρ̃ the free parameters), so r_ii r̃_ii ∈ (-1, 1) and, with h' ∈ (0, 1], every factor
is positive; this is the paper's sufficient condition (its Theorem 2) for f to be a
bijection. The strictly upper triangles of R, R̃ are free.

Three ways to get Q (`q_kind`):

* "orthogonal" (O-SNF): Q from a free D×M matrix V by the iterative orthogonalisation of
  Björck & Bowie (the paper's choice): Q₀ = V / ||V||_F, Q_{k+1} = Q_k (I + ½(I - Q_kᵀQ_k)),
  in a `tf.while_loop` of at most `max_orthogonalization_iterations` (100) passes, stopped
  when max|QᵀQ - I| < 100 machine epsilons (quadratic convergence once near).
* "householder" (H-SNF): Q = the first M columns of H_1 ⋯ H_K, H_k = I - 2 v_k v_kᵀ/||v_k||²,
  from K free vectors v_k ∈ R^D; exactly orthogonal.
* "triangular" (T-SNF): Q = I_D (M = D), or the reversal permutation when `permute=True`
  (the paper alternates the two between layers); no parameters.

Inverse: writing v = Qᵀz, z - y = -Q R h(R̃ v + b) lies in span(Q), so v solves the
M-dimensional upper-triangular system v + R h(R̃ v + b) = Qᵀy. Its i-th row involves v_i
only through v_i + r_ii h(r̃_ii v_i + e_i) plus terms of v_{j>i}, so back-substitution from
i = M-1 down to 0 solves M strictly increasing scalar equations with a bracketed Newton
solver (`tanh_root`, tolerance 4 machine epsilons), then z = y - Q R h(R̃ v + b). The loop
over i runs over the M hidden units (a model dimension, not the data) and unrolls in graphs.
For "orthogonal", the round-trip error is bounded by the orthogonality residual of Q.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import (
    dtype_util,
    parameter_properties,
    tensor_util,
)

from tfp_flows.bijectors.tanh_root import solve_linear_plus_tanh
from tfp_flows.types import DTypeLike, Seed, TensorLike

tfb = tfp.bijectors

Q_KINDS = ("orthogonal", "householder", "triangular")


def bjorck_orthonormalize(v, *, max_iterations=100, tol=None):
    """Orthonormal columns from v [..., D, M] (M ≤ D) by Björck-Bowie iterations.

    Q₀ = v / ||v||_F puts all singular values in (0, 1], where the iteration
    Q ← Q (3/2 I - 1/2 QᵀQ) converges to the orthogonal polar factor of v (full column rank
    needed). Stops when max|QᵀQ - I| < tol (default 100 eps of the dtype) or after
    `max_iterations` passes.
    """
    v = tf.convert_to_tensor(v)
    if tol is None:
        tol = 100.0 * float(np.finfo(v.dtype.as_numpy_dtype).eps)
    m = v.shape[-1]
    eye = tf.eye(m, dtype=v.dtype)
    q0 = v / tf.norm(v, ord="fro", axis=[-2, -1], keepdims=True)

    def residual(q):
        return tf.matmul(q, q, transpose_a=True) - eye

    def cond(q):
        return tf.reduce_max(tf.abs(residual(q))) >= tol

    def body(q):
        return (tf.matmul(q, 1.5 * eye - 0.5 * tf.matmul(q, q, transpose_a=True)),)

    (q,) = tf.while_loop(cond, body, (q0,), maximum_iterations=max_iterations)
    return q


def householder_product(vectors, num_columns):
    """First `num_columns` columns of H_1 ⋯ H_K, H_k = I - 2 v_k v_kᵀ/||v_k||².

    vectors: [..., K, D]. Returns [..., D, num_columns].
    """
    vectors = tf.convert_to_tensor(vectors)
    d = vectors.shape[-1]
    q = tf.eye(d, num_columns, batch_shape=tf.shape(vectors)[:-2], dtype=vectors.dtype)
    unit = tf.math.l2_normalize(vectors, axis=-1)
    # Apply H_K first, H_1 last: Q = H_1 (H_2 (... (H_K E))).
    for k in reversed(range(vectors.shape[-2])):
        u = unit[..., k, :]                                       # [..., D]
        q = q - 2.0 * u[..., :, tf.newaxis] * tf.einsum("...d,...dm->...m", u, q)[
            ..., tf.newaxis, :]
    return q


def upper_with_tanh_diagonal(raw):
    """Strict upper triangle of raw, and tanh of its diagonal on the diagonal."""
    strict = tf.linalg.band_part(raw, 0, -1) - tf.linalg.band_part(raw, 0, 0)
    return strict + tf.linalg.diag(tf.tanh(tf.linalg.diag_part(raw)))


class Sylvester(tfb.Bijector):
    """Sylvester flow f(z) = z + Q R tanh(R̃ Qᵀ z + b) (see the module docstring).

    Args:
      r: [..., M, M] free parameters of R (upper triangle used, diagonal through tanh).
      r_tilde: [..., M, M] free parameters of R̃ (same).
      bias: [..., M], b.
      q_params: for q_kind "orthogonal", V of shape [..., D, M]; for "householder", the
        reflection vectors [..., K, D]; for "triangular", None (D = M).
      q_kind: "orthogonal", "householder" or "triangular".
      permute: "triangular" only: Q = the reversal permutation instead of I.
      max_orthogonalization_iterations: cap on Björck iterations ("orthogonal").
      validate_args: Python bool; shape checks are always static ValueErrors.
      name: name of the bijector.

    Accurate for (float64; tests/bijectors/test_properties.py: finite, round trip within 1e-7
    relative, log-det = autodiff within 1e-6) entries of r, r_tilde, bias and q_params in [-3,
    3] (D = 3, M = 2; M = 3 for 'triangular'), V of condition number < 1e3 ('orthogonal'),
    ||v_k|| > 1e-3 ('householder'), and |x_i| <= 20. Domain: all of R^D; a rank-deficient V or
    a zero v_k has no Q and gives NaN (not checked).
    """

    def __init__(self, r: TensorLike, r_tilde: TensorLike, bias: TensorLike,
                 q_params: TensorLike | None = None, *, q_kind: str = "orthogonal",
                 permute: bool = False, max_orthogonalization_iterations: int = 100,
                 validate_args: bool = False, name: str = "sylvester") -> None:
        parameters = dict(locals())
        if q_kind not in Q_KINDS:
            raise ValueError(f"Sylvester: q_kind must be one of {Q_KINDS}; got {q_kind!r}.")
        with tf.name_scope(name) as name:
            dtype = dtype_util.common_dtype([r, r_tilde, bias, q_params], dtype_hint=tf.float32)
            self._r = tensor_util.convert_nonref_to_tensor(r, dtype=dtype, name="r")
            self._r_tilde = tensor_util.convert_nonref_to_tensor(r_tilde, dtype=dtype,
                                                                 name="r_tilde")
            self._bias = tensor_util.convert_nonref_to_tensor(bias, dtype=dtype, name="bias")
            self._q_params = (None if q_params is None else tensor_util.convert_nonref_to_tensor(
                q_params, dtype=dtype, name="q_params"))
            self._q_kind = q_kind
            self._permute = bool(permute)
            self._max_orth_iterations = int(max_orthogonalization_iterations)
            self._check_shapes()
            super().__init__(forward_min_event_ndims=1, validate_args=validate_args,
                             dtype=dtype, parameters=parameters, name=name)

    def _check_shapes(self):
        m = self._r.shape[-1]
        for what, t in (("r", self._r), ("r_tilde", self._r_tilde)):
            if t.shape.rank is not None and (t.shape.rank < 2 or t.shape[-1] != t.shape[-2]):
                raise ValueError(f"Sylvester: {what} must have shape [..., M, M]; got {t.shape}.")
        if self._r_tilde.shape[-1] != m or self._bias.shape[-1] != m:
            raise ValueError(f"Sylvester: r, r_tilde and bias must share M; got {self._r.shape}, "
                             f"{self._r_tilde.shape}, {self._bias.shape}.")
        if self._q_kind == "triangular":
            if self._q_params is not None:
                raise ValueError("Sylvester: q_kind='triangular' takes no q_params.")
            self._event_size = m
        elif self._q_params is None:
            raise ValueError(f"Sylvester: q_kind={self._q_kind!r} needs q_params.")
        elif self._q_kind == "orthogonal":
            d, mq = self._q_params.shape[-2], self._q_params.shape[-1]
            if mq != m or d < m:
                raise ValueError(f"Sylvester: orthogonal q_params must be [..., D, M] with D >= "
                                 f"M = {m}; got {self._q_params.shape}.")
            self._event_size = d
        else:
            d = self._q_params.shape[-1]
            if d < m:
                raise ValueError(f"Sylvester: householder q_params must be [..., K, D] with D >= "
                                 f"M = {m}; got {self._q_params.shape}.")
            self._event_size = d

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return dict(r=parameter_properties.ParameterProperties(event_ndims=2),
                    r_tilde=parameter_properties.ParameterProperties(event_ndims=2),
                    bias=parameter_properties.ParameterProperties(event_ndims=1),
                    q_params=parameter_properties.ParameterProperties(event_ndims=2))

    @classmethod
    def trainable(cls, event_size: int, *, seed: Seed = None, dtype: DTypeLike = tf.float32,
                  q_kind: str = "orthogonal", num_hidden: int | None = None,
                  num_reflections: int | None = None, permute: bool = False,
                  name: str = "sylvester") -> Sylvester:
        """A Sylvester layer owning fresh tf.Variables, initialised at the identity.

        R = 0 (so f(z) = z exactly); R̃ ~ N(0, 1/M) in the strict upper triangle and on the
        diagonal parameter, b = 0, so gradients with respect to R are not zero.
        num_hidden: M (default: event_size; "triangular" needs M = event_size).
        num_reflections: K for "householder" (default: event_size).
        """
        dtype = tf.as_dtype(dtype)
        np_dtype = dtype.as_numpy_dtype
        d = int(event_size)
        m = d if num_hidden is None else int(num_hidden)
        if q_kind == "triangular" and m != d:
            raise ValueError(f"Sylvester: q_kind='triangular' needs num_hidden = event_size "
                             f"({d}); got {m}.")
        rng = np.random.default_rng(seed)
        r = np.zeros([m, m])
        r_tilde = np.triu(rng.standard_normal([m, m]) / np.sqrt(m))
        if q_kind == "orthogonal":
            q_params = np.linalg.qr(rng.standard_normal([d, m]))[0]
        elif q_kind == "householder":
            q_params = rng.standard_normal([d if num_reflections is None else num_reflections,
                                            d])
        else:
            q_params = None
        var = (lambda a, n: None if a is None else tf.Variable(np.asarray(a, np_dtype), name=n))
        return cls(var(r, "r"), var(r_tilde, "r_tilde"), var(np.zeros(m), "bias"),
                   var(q_params, "q_params"), q_kind=q_kind, permute=permute, name=name)

    @property
    def q_kind(self):
        return self._q_kind

    def q(self):
        """Q [..., D, M] with orthonormal columns."""
        if self._q_kind == "orthogonal":
            return bjorck_orthonormalize(tf.convert_to_tensor(self._q_params),
                                         max_iterations=self._max_orth_iterations)
        m = self._r.shape[-1]
        if self._q_kind == "householder":
            return householder_product(tf.convert_to_tensor(self._q_params), m)
        eye = tf.eye(m, dtype=self.dtype)
        return tf.reverse(eye, axis=[0]) if self._permute else eye

    def _pieces(self):
        r = upper_with_tanh_diagonal(tf.convert_to_tensor(self._r))
        r_tilde = upper_with_tanh_diagonal(tf.convert_to_tensor(self._r_tilde))
        return self.q(), r, r_tilde, tf.convert_to_tensor(self._bias)

    def _forward(self, z):
        q, r, r_tilde, bias = self._pieces()
        v = tf.linalg.matvec(q, z, transpose_a=True)
        hidden = tf.tanh(tf.linalg.matvec(r_tilde, v) + bias)
        return z + tf.linalg.matvec(q, tf.linalg.matvec(r, hidden))

    def _forward_log_det_jacobian(self, z):
        q, r, r_tilde, bias = self._pieces()
        v = tf.linalg.matvec(q, z, transpose_a=True)
        th = tf.tanh(tf.linalg.matvec(r_tilde, v) + bias)
        diag = tf.linalg.diag_part(r) * tf.linalg.diag_part(r_tilde)
        return tf.reduce_sum(tf.math.log1p((1.0 - th * th) * diag), axis=-1)

    def _inverse(self, y):
        q, r, r_tilde, bias = self._pieces()
        t = tf.linalg.matvec(q, y, transpose_a=True)                 # [..., M]
        m = r.shape[-1]
        batch = tf.shape(t)[:-1]
        vs = [None] * m     # solved coordinates v_i
        hs = [None] * m     # tanh(pre-activation_i)
        for i in reversed(range(m)):
            known = tf.zeros(batch, t.dtype) + bias[..., i]          # e_i = Σ_{k>i} r̃_ik v_k + b_i
            rhs = t[..., i]
            for j in range(i + 1, m):
                known = known + r_tilde[..., i, j] * vs[j]
                rhs = rhs - r[..., i, j] * hs[j]
            vs[i] = solve_linear_plus_tanh(rhs, r[..., i, i], r_tilde[..., i, i], known)
            hs[i] = tf.tanh(r_tilde[..., i, i] * vs[i] + known)
        hidden = tf.stack(hs, axis=-1)
        return y - tf.linalg.matvec(q, tf.linalg.matvec(r, hidden))
