"""Radial flow (Rezende & Mohamed 2015) with a closed-form inverse."""

import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import (
    assert_util,
    dtype_util,
    parameter_properties,
    tensor_util,
)

tfb = tfp.bijectors


def _safe_norm(d):
    """Euclidean norm over the last axis with a finite gradient at 0."""
    sq = tf.reduce_sum(tf.square(d), axis=-1)
    positive = sq > 0
    return tf.where(positive, tf.sqrt(tf.where(positive, sq, tf.ones_like(sq))),
                    tf.zeros_like(sq))


class Radial(tfb.Bijector):
    """Radial flow: contracts or expands space around a centre z0.

    Rezende & Mohamed (2015), "Variational inference with normalizing flows", ICML, eq. 14;
    log-det as in seed 002, eq. 18. For z in R^d:

        y = z + beta * h(alpha, r) * (z - z0),   h = 1 / (alpha + r),   r = ||z - z0||,

    with alpha > 0 and beta >= -alpha (this makes r -> ||y - z0|| strictly increasing, so the
    map is a bijection of R^d).

    Log-det-Jacobian (matrix determinant lemma; h' = -h^2):

        log|det J| = (d - 1) log(1 + beta h) + log(1 + beta h + beta h' r)
                   = (d - 1) log(1 + beta h) + log(1 + alpha beta h^2).

    Inverse in closed form: y - z0 = (z - z0)(1 + beta h), and 1 + beta h > 0, so taking norms
    s = ||y - z0|| = r (alpha + beta + r) / (alpha + r), i.e. r solves the quadratic
    r^2 + (alpha + beta - s) r - alpha s = 0, whose one non-negative root is
    r = (-(alpha + beta - s) + sqrt((alpha + beta - s)^2 + 4 alpha s)) / 2 (computed in the
    cancellation-free form); then z = z0 + (y - z0) (alpha + r) / (alpha + beta + r).

    Parameters: `center` z0 of shape [..., d], `alpha` and `beta` of shape [...]; the batch
    shape is their broadcast. Instead of `beta`, `beta_unconstrained` = b may be given:
    then beta = -alpha + softplus(b), so beta > -alpha for every value of b.
    `trainable(d)` does that with alpha = softplus(a), so the map is invertible for every
    value of the free variables (a, b); it starts at beta = 0, the identity.

    Args:
      center: float tensor [..., d] (tensor, `tf.Variable` or deferred tensor).
      alpha: positive float tensor [...].
      beta: float tensor [...] with beta >= -alpha.
      beta_unconstrained: float tensor [...], the alternative to `beta` (exactly one).
      validate_args: check alpha > 0 and beta >= -alpha (raises `InvalidArgumentError`).
      name: name scope.

    Accurate for (float64; tests/bijectors/test_properties.py: finite, round trip within 1e-7
    relative, log-det = autodiff within 1e-6) alpha in [1e-3, 1e2], |beta_unconstrained| <= 20,
    |center_i| <= 10 and |x_i| <= 50 (d = 3). Domain: all of R^d; alpha <= 0 or beta < -alpha
    is no bijection and raises under validate_args.
    """

    def __init__(self, center, alpha, beta=None, validate_args=False, name="radial", *,
                 beta_unconstrained=None):
        parameters = dict(locals())
        with tf.name_scope(name) as name:
            if (beta is None) == (beta_unconstrained is None):
                raise ValueError("Radial takes exactly one of `beta` and `beta_unconstrained`.")
            dtype = dtype_util.common_dtype([center, alpha, beta, beta_unconstrained],
                                            dtype_hint=tf.float32)
            self._center = tensor_util.convert_nonref_to_tensor(center, dtype=dtype,
                                                                name="center")
            self._alpha = tensor_util.convert_nonref_to_tensor(alpha, dtype=dtype, name="alpha")
            self._beta = tensor_util.convert_nonref_to_tensor(beta, dtype=dtype, name="beta")
            self._beta_unconstrained = tensor_util.convert_nonref_to_tensor(
                beta_unconstrained, dtype=dtype, name="beta_unconstrained")
            super().__init__(forward_min_event_ndims=1, validate_args=validate_args,
                             dtype=dtype, parameters=parameters, name=name)

    @classmethod
    def trainable(cls, event_size, *, seed=None, dtype=tf.float32, init_alpha=1.0,
                  center_scale=1.0, validate_args=False, name="radial"):
        """A radial flow owning fresh variables; starts at the identity (beta = 0).

        The centre starts at `center_scale` * N(0, I) drawn from `seed` (so stacked radial
        flows do not all share one centre); alpha starts at `init_alpha`.
        """
        dtype = tf.as_dtype(dtype)
        seed = [0, 0] if seed is None else [0, int(seed)]
        center = tf.Variable(center_scale * tf.random.stateless_normal(
            [int(event_size)], seed=seed, dtype=dtype), name="center")
        alpha = tfp.util.TransformedVariable(tf.constant(init_alpha, dtype), tfb.Softplus(),
                                             name="alpha")
        beta_free = tf.Variable(tfp.math.softplus_inverse(tf.constant(init_alpha, dtype)),
                                name="beta_free")
        return cls(center, alpha, validate_args=validate_args, name=name,
                   beta_unconstrained=beta_free)

    @classmethod
    def _parameter_properties(cls, dtype):
        return {
            "center": parameter_properties.ParameterProperties(event_ndims=1),
            "alpha": parameter_properties.ParameterProperties(
                default_constraining_bijector_fn=(
                    lambda: tfb.Softplus(low=dtype_util.eps(dtype)))),
            # beta >= -alpha couples two parameters; no single constraining bijector.
            "beta": parameter_properties.ParameterProperties(
                default_constraining_bijector_fn=parameter_properties
                .BIJECTOR_NOT_IMPLEMENTED),
            "beta_unconstrained": parameter_properties.ParameterProperties(),
        }

    @property
    def center(self):
        return self._center

    @property
    def alpha(self):
        return self._alpha

    @property
    def beta(self):
        """beta, as given or as -alpha + softplus(beta_unconstrained)."""
        if self._beta_unconstrained is None:
            return self._beta
        return (tf.math.softplus(tf.convert_to_tensor(self._beta_unconstrained))
                - tf.convert_to_tensor(self.alpha))

    @property
    def beta_unconstrained(self):
        return self._beta_unconstrained

    def _params(self):
        z0 = tf.convert_to_tensor(self.center)
        alpha = tf.convert_to_tensor(self.alpha)
        beta = tf.convert_to_tensor(self.beta)
        return z0, alpha, beta

    def _forward(self, x):
        z0, alpha, beta = self._params()
        d = x - z0
        r = _safe_norm(d)
        h = 1.0 / (alpha + r)
        return x + (beta * h)[..., tf.newaxis] * d

    def _log_det_from_r(self, r, alpha, beta, event_size):
        h = 1.0 / (alpha + r)
        return ((event_size - 1.0) * tf.math.log1p(beta * h)
                + tf.math.log1p(alpha * beta * tf.square(h)))

    def _event_size(self, x):
        return tf.cast(tf.shape(x)[-1], x.dtype)

    def _forward_log_det_jacobian(self, x):
        z0, alpha, beta = self._params()
        r = _safe_norm(x - z0)
        return self._log_det_from_r(r, alpha, beta, self._event_size(x))

    def _radius_from_output(self, s, alpha, beta):
        """The r >= 0 with r (alpha + beta + r) / (alpha + r) = s (stable quadratic root)."""
        b = alpha + beta - s
        disc = tf.sqrt(tf.square(b) + 4.0 * alpha * s)
        denom = b + disc  # > 0 whenever b >= 0 and (s > 0 or alpha + beta > 0)
        safe_denom = tf.where(denom > 0, denom, tf.ones_like(denom))
        root_pos_b = tf.where(denom > 0, 2.0 * alpha * s / safe_denom, tf.zeros_like(denom))
        return tf.where(b >= 0, root_pos_b, 0.5 * (disc - b))

    def _inverse(self, y):
        z0, alpha, beta = self._params()
        d = y - z0
        r = self._radius_from_output(_safe_norm(d), alpha, beta)
        scale = (alpha + r) / (alpha + beta + r)
        return z0 + scale[..., tf.newaxis] * d

    def _inverse_log_det_jacobian(self, y):
        z0, alpha, beta = self._params()
        r = self._radius_from_output(_safe_norm(y - z0), alpha, beta)
        return -self._log_det_from_r(r, alpha, beta, self._event_size(y))

    def _parameter_control_dependencies(self, is_init):
        if not self.validate_args:
            return []
        assertions = []
        alpha_ref = tensor_util.is_ref(self.alpha)
        if self._beta_unconstrained is not None:  # beta > -alpha by construction
            if is_init != alpha_ref:
                assertions.append(assert_util.assert_positive(
                    self.alpha, message="Radial: argument `alpha` must be positive."))
            return assertions
        beta_ref = tensor_util.is_ref(self._beta)
        if is_init != alpha_ref:
            assertions.append(assert_util.assert_positive(
                self.alpha, message="Radial: argument `alpha` must be positive."))
        if is_init != (alpha_ref or beta_ref):
            assertions.append(assert_util.assert_greater_equal(
                tf.convert_to_tensor(self.beta), -tf.convert_to_tensor(self.alpha),
                message="Radial: argument `beta` must satisfy beta >= -alpha, or the map "
                        "is not invertible."))
        return assertions
