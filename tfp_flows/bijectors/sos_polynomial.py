"""Sum-of-squares (SOS) polynomial flow (Jaini, Selby & Yu 2019), elementwise and autoregressive.

Jaini, Selby & Yu (2019), "Sum-of-Squares Polynomial Flow", ICML (arXiv:1905.02325).
"""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import (
    assert_util,
    dtype_util,
    parameter_properties,
    tensor_util,
)

from tfp_flows.bijectors.box_preserving import BoxPreserving
from tfp_flows.nets.made import MADE
from tfp_flows.variable_discovery import underlying_tf_variable

tfb = tfp.bijectors


def _antidiagonal_matrix(num_coefficients):
    """S [(r+1)^2, 2r+1] with S[l * (r+1) + l', l + l'] = 1: sums a_l a_l' by degree l + l'."""
    n = num_coefficients
    s = np.zeros((n * n, 2 * n - 1))
    for i in range(n):
        for j in range(n):
            s[i * n + j, i + j] = 1.0
    return s


def _horner(coeffs, z):
    """sum_m coeffs[..., m] z^m, with the static degree unrolled (a handful of terms)."""
    n = coeffs.shape[-1]
    out = coeffs[..., n - 1]
    for m in range(n - 2, -1, -1):
        out = coeffs[..., m] + z * out
    return out


class SOSPolynomial(tfb.Bijector):
    """Elementwise SOS polynomial: a strictly increasing polynomial of odd degree 2r+1.

    Transformation (Jaini et al. 2019, eq. 9), for each scalar z:

        T(z) = c + int_0^z sum_{k=1}^{K} ( sum_{l=0}^{r} a_{lk} u^l )^2 du.

    The integrand is a sum of squares, so T' >= 0 and T is strictly increasing (T' vanishes
    at most at finitely many points unless all coefficients are zero, which
    `validate_args` rejects). It is evaluated in closed form: with
    b_m = sum_k sum_{l + l' = m} a_{lk} a_{l'k} (m = 0..2r), the squared polynomials expand
    to sum_m b_m u^m and integrate term by term,

        T(z) = c + sum_{m=0}^{2r} b_m z^{m+1} / (m + 1)        (Horner's scheme),

    Log-det-Jacobian: log T'(z) = log sum_k p_k(z)^2, p_k(z) = sum_l a_{lk} z^l (computed
    from the p_k, which is exact and never negative).

    Inverse: no closed form (degree 2r+1 >= 3 in general); a bracketed root finder solves
    T(z) = y: the bracket [lo, hi] starts at [-1, 1] and doubles until T(lo) <= y <= T(hi)
    (at most `max_bracket_doublings`), then a safeguarded Newton iteration (Newton step
    when it stays inside the bracket and shrinks fast enough, bisection otherwise, as in
    Numerical Recipes' rtsafe) runs in a `tf.while_loop` of at most `max_iterations`
    steps, until the step is below `tolerance * (1 + |z|)`. Default tolerance: 1e-6 for
    float32 and 1e-12 for float64; the achieved error of inverse(forward(x)) is close to
    machine precision because the last step is a Newton step. Gradients of the inverse are
    those of the implicit function (dz/dy = 1 / T'(z), dz/dtheta = -dT/dtheta / T'), attached
    by one extra Newton step, so no gradient flows through the root finder's loop.

    Linear tails (`tail_bound=B`): outside [-B, B] the polynomial is continued by its
    tangent at the bound, T(z) = T(B) + T'(B) (z - B) for z > B (and likewise below -B), as
    the linear tails of rational-quadratic spline flows (Durkan et al. 2019, sec. 3.1). T
    stays strictly increasing and continuously differentiable, log T' is constant in each
    tail, and T grows linearly instead of like z^(2r+1): stacked in a flow, the composition
    no longer multiplies degrees (3^L for L cubic layers), which overflowed float32 and
    turned log-densities NaN a few data ranges from the data. The inverse is explicit in the
    tails, and the root search runs on the bracket [-B, B].

    Parameters: `coefficients` a, shape [..., K, r+1] (a[..., k, l] = a_{lk}), and `shift`
    c, shape [...]; the batch shape is the broadcast of a's leading dimensions and c's
    shape. `trainable(d)` holds one polynomial per dimension, starting near the identity
    (a_{0k} = 1/sqrt(K) plus small noise, so sum_k a_{0k}^2 = 1 and T(z) ~ z).

    In a masked autoregressive flow (`SOSAutoregressive`) the parameters come from MADE.

    Args:
      coefficients: float tensor [..., K, r+1].
      shift: float tensor [...] (default 0).
      tolerance: root finder tolerance (relative step size); default by dtype.
      max_iterations: root finder iterations after bracketing.
      max_bracket_doublings: bracket doublings (a bound of 2^n); unused with tail_bound.
      tail_bound: B > 0, T is linear outside [-B, B] (see above); None (default): the
        polynomial on all of R.
      min_derivative: m in [0, 1): T' = m + (1 - m) sum_k p_k^2 (one more square, the
        constant sqrt(m), with the others scaled so that a fresh T stays the identity), so
        T' >= m everywhere, the linear tails' slope included; without a floor a trained
        flow's tail slope T'(B) can be tiny and the few samples that land there go very far.
      validate_args: check the coefficients are finite and not all zero.
      name: name scope.

    Accurate for (float64; tests/bijectors/test_properties.py: finite, round trip within 1e-7
    relative, log-det = autodiff within 1e-6) coefficients in [-2, 2] with |a_{1,0}| >= 0.1 in
    each dimension, K <= 3, r <= 2, |shift| <= 5 and |x| <= 3; the inverse is accurate to 1e-7
    (1 + |y|) in y, i.e. in x up to that over dT/dx, which vanishes where every polynomial
    does. Domain: all of R; all-zero coefficients (T constant) are no bijection and raise under
    validate_args. Without tail_bound, T(z) ~ b z^(2r+1) overflows float32 (to inf, and the
    log-det to NaN in a flow) once |z|^(2r+1) |b| passes ~3e38; with tail_bound, T is finite
    wherever |T'(B) z| is, and an overflow is +-inf in y, never NaN.
    """

    def __init__(self, coefficients, shift=None, *, tolerance=None, max_iterations=100,
                 max_bracket_doublings=None, tail_bound=None, min_derivative=0.0,
                 validate_args=False, name="sos_polynomial"):
        parameters = dict(locals())
        with tf.name_scope(name) as name:
            dtype = dtype_util.common_dtype([coefficients, shift], dtype_hint=tf.float32)
            self._coefficients = tensor_util.convert_nonref_to_tensor(
                coefficients, dtype=dtype, name="coefficients")
            if shift is None:
                shift = tf.zeros([], dtype)
            self._shift = tensor_util.convert_nonref_to_tensor(shift, dtype=dtype, name="shift")
            if self._coefficients.shape.rank is not None and self._coefficients.shape.rank < 2:
                raise ValueError(f"SOSPolynomial: coefficients need shape [..., K, r+1]; got "
                                 f"{self._coefficients.shape}.")
            n = self._coefficients.shape[-1]
            if n is None:
                raise ValueError("SOSPolynomial: the last dimension of coefficients (r + 1) "
                                 "must be known statically.")
            self._num_coefficients = int(n)
            self._antidiag = _antidiagonal_matrix(self._num_coefficients)
            if tolerance is None:
                tolerance = 1e-12 if dtype == tf.float64 else 1e-6
            self._tolerance = float(tolerance)
            self._max_iterations = int(max_iterations)
            if max_bracket_doublings is None:
                # 2^n must stay where T(2^n) ~ b 2^(n (2r+1)) cannot overflow to NaN.
                max_log2 = 1000.0 if dtype == tf.float64 else 120.0
                max_bracket_doublings = int(max_log2 / (2 * self._num_coefficients - 1))
            self._max_bracket_doublings = int(max_bracket_doublings)
            if tail_bound is not None and not float(tail_bound) > 0:
                raise ValueError(f"SOSPolynomial: tail_bound must be > 0 or None; got "
                                 f"{tail_bound}.")
            self._tail_bound = None if tail_bound is None else float(tail_bound)
            if not 0.0 <= float(min_derivative) < 1.0:
                raise ValueError(f"SOSPolynomial: min_derivative must be in [0, 1); got "
                                 f"{min_derivative}.")
            self._min_derivative = float(min_derivative)
            super().__init__(forward_min_event_ndims=0, validate_args=validate_args,
                             dtype=dtype, parameters=parameters, name=name)

    @classmethod
    def trainable(cls, event_size, *, seed=None, dtype=tf.float32, num_polynomials=3,
                  polynomial_degree=2, init_noise=0.01, name="sos_polynomial", **kwargs):
        """One SOS polynomial per dimension with fresh variables, starting near T(z) = z.

        Args:
          event_size: number of dimensions d.
          seed: int seed of the small initial noise.
          dtype: float dtype.
          num_polynomials: K, the number of squared polynomials.
          polynomial_degree: r; T has degree 2r + 1.
          init_noise: standard deviation of the noise added to the identity start (nonzero,
            so that every coefficient receives a gradient).
        """
        dtype = tf.as_dtype(dtype)
        k, n = int(num_polynomials), int(polynomial_degree) + 1
        base = np.zeros([int(event_size), k, n])
        base[:, :, 0] = 1.0 / np.sqrt(k)
        noise = tf.random.stateless_normal(base.shape, seed=[1, 0 if seed is None else seed],
                                           dtype=dtype)
        coefficients = tf.Variable(tf.constant(base, dtype) + init_noise * noise,
                                   name="coefficients")
        shift = tf.Variable(tf.zeros([int(event_size)], dtype), name="shift")
        return cls(coefficients, shift, name=name, **kwargs)

    @classmethod
    def _parameter_properties(cls, dtype):
        return {
            "coefficients": parameter_properties.ParameterProperties(event_ndims=2),
            "shift": parameter_properties.ParameterProperties(),
        }

    @property
    def coefficients(self):
        return self._coefficients

    @property
    def shift(self):
        return self._shift

    @property
    def tolerance(self):
        return self._tolerance

    @property
    def tail_bound(self):
        return self._tail_bound

    def _is_increasing(self):
        return True

    # ------------------------------------------------------------------ polynomial pieces
    def _integrand_coefficients(self, a):
        """b [..., 2r+1]: coefficients of sum_k p_k(u)^2."""
        outer = a[..., :, :, tf.newaxis] * a[..., :, tf.newaxis, :]  # [..., K, n, n]
        flat = tf.reshape(tf.reduce_sum(outer, axis=-3),
                          tf.concat([tf.shape(a)[:-2], [self._num_coefficients ** 2]], 0))
        return tf.linalg.matvec(tf.constant(self._antidiag.T, a.dtype), flat)

    def _polynomial_coefficients(self, a):
        """t [..., 2r+2]: T(z) - c = sum_j t_j z^j, t_0 = 0, t_{m+1} = b_m / (m + 1) (times
        1 - min_derivative, plus min_derivative for t_1)."""
        b = self._integrand_coefficients(a)
        scale = tf.constant(1.0 / np.arange(1, 2 * self._num_coefficients), a.dtype)
        if self._min_derivative:
            m = self._min_derivative
            b = (1.0 - m) * b + tf.constant(m * np.eye(2 * self._num_coefficients - 1)[0],
                                            a.dtype)
        return tf.concat([tf.zeros_like(b[..., :1]), b * scale], axis=-1)

    def _params(self):
        return tf.convert_to_tensor(self.coefficients), tf.convert_to_tensor(self.shift)

    def _clip(self, z):
        if self._tail_bound is None:
            return z
        return tf.clip_by_value(z, -self._tail_bound, self._tail_bound)

    def _polynomial_derivative(self, z, a):
        p = _horner(a, z[..., tf.newaxis])  # [..., K]: p_k(z)
        d = tf.reduce_sum(tf.square(p), axis=-1)
        if self._min_derivative:
            d = self._min_derivative + (1.0 - self._min_derivative) * d
        return d

    def _value(self, z, t, a):
        """T(z) - c, with the linear tails (if any)."""
        if self._tail_bound is None:
            return _horner(t, z)
        inner = self._clip(z)
        return _horner(t, inner) + self._polynomial_derivative(inner, a) * (z - inner)

    def _derivative(self, z, a):
        return self._polynomial_derivative(self._clip(z), a)

    # ------------------------------------------------------------------ bijector methods
    def _forward(self, x):
        a, c = self._params()
        y = c + self._value(x, self._polynomial_coefficients(a), a)
        if self.validate_args and self._tail_bound is None:
            y = tf.debugging.assert_all_finite(
                y, "SOSPolynomial: T(x) overflowed (the polynomial grows like |x|^(2r+1)); "
                   "build it with tail_bound=B to make it linear outside [-B, B].")
        return y

    def _forward_log_det_jacobian(self, x):
        a, _ = self._params()
        return tf.math.log(self._derivative(x, a))

    def _inverse_log_det_jacobian(self, y):
        return -self._forward_log_det_jacobian(self._inverse(y))

    def _inverse(self, y):
        a, c = self._params()
        t = self._polynomial_coefficients(a)
        target = y - c
        shape = tf.broadcast_dynamic_shape(tf.shape(target), tf.shape(t)[:-1])
        target = tf.broadcast_to(target, shape)
        z = tf.stop_gradient(self._root(tf.stop_gradient(t), tf.stop_gradient(a),
                                        tf.stop_gradient(target)))
        # One Newton step outside the loop: same value (T(z) = target up to the tolerance),
        # and the gradient of the implicit function z(y, a, c).
        residual = self._value(z, t, a) - target
        return z - residual / tf.stop_gradient(self._derivative(z, a))

    def _root(self, t, a, target):
        if self._tail_bound is not None:
            return self._root_with_tails(t, a, target)
        return self._bracketed_root(t, a, target, None)

    def _root_with_tails(self, t, a, target):
        """The explicit inverse in the tails, the root search on [-B, B] in between."""
        bound = self._tail_bound * tf.ones_like(target)
        top, bottom = _horner(t, bound), _horner(t, -bound)
        inner = self._bracketed_root(t, a, tf.clip_by_value(target, bottom, top), bound)
        above = bound + (target - top) / self._polynomial_derivative(bound, a)
        below = -bound + (target - bottom) / self._polynomial_derivative(-bound, a)
        return tf.where(target > top, above, tf.where(target < bottom, below, inner))

    def _bracketed_root(self, t, a, target, bound):
        """Root of the polynomial T(z) - c = target; bracket [-bound, bound] when given
        (target must lie in its image), else found by doubling [-1, 1]."""
        dtype = target.dtype
        one = tf.ones_like(target)
        value = lambda z: _horner(t, z)
        derivative = lambda z: self._polynomial_derivative(z, a)

        def expand_cond(i, lo, hi):
            need = (value(lo) > target) | (value(hi) < target)
            return (i < self._max_bracket_doublings) & tf.reduce_any(need)

        def expand_body(i, lo, hi):
            lo = tf.where(value(lo) > target, 2.0 * lo, lo)
            hi = tf.where(value(hi) < target, 2.0 * hi, hi)
            return i + 1, lo, hi

        if bound is None:
            _, lo, hi = tf.while_loop(expand_cond, expand_body, (tf.constant(0), -one, one),
                                      maximum_iterations=self._max_bracket_doublings)
        else:
            lo, hi = -bound, bound
        tol = tf.constant(self._tolerance, dtype)
        z0 = tf.clip_by_value(target, lo, hi)  # T is the identity at initialisation

        def cond(i, z, lo, hi, dx_old, done):
            return (i < self._max_iterations) & ~tf.reduce_all(done)

        def body(i, z, lo, hi, dx_old, done):
            f = value(z) - target
            d = derivative(z)
            lo = tf.where(f < 0, z, lo)
            hi = tf.where(f > 0, z, hi)
            newton = z - f / d
            bisect = ((~tf.math.is_finite(newton)) | (newton <= lo) | (newton >= hi)
                      | (tf.abs(2.0 * f) > tf.abs(dx_old * d)))
            z_new = tf.where(bisect, 0.5 * (lo + hi), newton)
            z_new = tf.where(done | (f == 0), z, z_new)
            dx = z_new - z
            done = done | (tf.abs(dx) <= tol * (1.0 + tf.abs(z_new)))
            return i + 1, z_new, lo, hi, tf.where(done, dx_old, dx), done

        state = (tf.constant(0), z0, lo, hi, hi - lo, tf.zeros_like(target, tf.bool))
        _, z, *_ = tf.while_loop(cond, body, state, maximum_iterations=self._max_iterations)
        return z

    def _parameter_control_dependencies(self, is_init):
        if not self.validate_args or is_init == tensor_util.is_ref(self.coefficients):
            return []
        a = tf.convert_to_tensor(self.coefficients)
        return [
            assert_util.assert_equal(
                tf.reduce_all(tf.math.is_finite(a)), True,
                message="SOSPolynomial: coefficients must be finite."),
            assert_util.assert_positive(
                tf.reduce_max(tf.abs(a), axis=[-2, -1]),
                message="SOSPolynomial: all coefficients of a polynomial are zero, so T' = 0 "
                        "and T is not invertible."),
        ]


class SOSAutoregressive(tfb.MaskedAutoregressiveFlow):
    """SOS polynomial flow as a masked autoregressive flow (Jaini et al. 2019, sec. 3).

    Each dimension is transformed by its own SOS polynomial whose coefficients and shift
    are computed by MADE from the preceding dimensions:

        z_i = T(x_i; a(x_<i), c(x_<i)),   T as in `SOSPolynomial`.

    In TFP's convention the MAF's `inverse` is the density direction (data x -> base z)
    and `forward` the sampling direction. The inner bijector is `Invert(SOSPolynomial)`,
    so the density direction (log_prob, training) evaluates the closed-form polynomial
    T and its derivative in one MADE pass, and only sampling uses the root finder
    (d sequential MADE passes, each followed by a root solve). log|det| of the density
    direction = sum_i log T'(x_i).

    The MADE output layer starts at zero and a fixed offset a_{0k} = 1/sqrt(K) is added to
    the coefficients, so a fresh flow is exactly the identity and every coefficient gets a
    gradient.

    Args:
      made: `nets.MADE` with params = 1 + K (r + 1) (the shift, then the coefficients).
        A conditional MADE (`context_size=k`) makes a conditional SOS flow p(x | c): the
        context reaches it as `forward(z, conditional_input=c)` (TFP's MAF passes its
        keyword arguments to the conditioner; `tfp_flows.conditioning` routes them).
      num_polynomials: K.
      polynomial_degree: r (T has degree 2r + 1).
      unroll_loop: passed to `tfb.MaskedAutoregressiveFlow` (sampling loop unrolled).
      box: wrap each polynomial in `BoxPreserving(T, tail_bound, min_derivative=m)`, so
        that it maps [-B, B] onto itself (B = the `tail_bound` of sos_kwargs, required) and
        is linear outside; the shift c then cancels. A point of the box never leaves it,
        however far a trained polynomial would have moved it (see `BoxPreserving`).
      validate_args, name: as for any bijector.
      **sos_kwargs: passed to each inner `SOSPolynomial` (tolerance, max_iterations,
        tail_bound, min_derivative; with `box`, the last two go to `BoxPreserving`).

    Accurate for (float64; tests/bijectors/test_properties.py: finite, round trip within 1e-7
    relative, log-det = autodiff within 1e-6) MADE weights N(0, s^2) with s in [0.05, 0.5] and
    |x_i| <= 3 (D = 2, K = 3, r = 2). Domain: all of R^D.
    """

    def __init__(self, made, num_polynomials=3, polynomial_degree=2, *, unroll_loop=False,
                 box=False, validate_args=False, name="sos_autoregressive", **sos_kwargs):
        parameters = dict(locals())
        k, n = int(num_polynomials), int(polynomial_degree) + 1
        if made.params != 1 + k * n:
            raise ValueError(f"SOSAutoregressive: MADE must produce 1 + K (r + 1) = {1 + k * n} "
                             f"parameters per dimension (K={k}, r={n - 1}); it produces "
                             f"{made.params}.")
        self._made = made
        self._num_polynomials, self._num_coefficients = k, n
        self._sos_kwargs = dict(sos_kwargs)
        box_kwargs = None
        if box:
            bound = self._sos_kwargs.pop("tail_bound", None)
            if bound is None:
                raise ValueError("SOSAutoregressive: box=True needs tail_bound=B, the box "
                                 "[-B, B] each polynomial is rescaled to.")
            box_kwargs = {"bound": bound,
                          "min_derivative": self._sos_kwargs.pop("min_derivative", 0.0)}
        offset = np.zeros([k, n])
        offset[:, 0] = 1.0 / np.sqrt(k)
        self._offset = offset

        def bijector_fn(x, conditional_input=None):
            # a conditional MADE (context_size=k) gets the context; see tfp_flows.conditioning
            out = self._made(x, conditional_input=conditional_input)  # [..., d, 1 + K n]
            shift = out[..., 0]
            coeffs = tf.reshape(out[..., 1:], tf.concat([tf.shape(out)[:-1], [k, n]], 0))
            coeffs = coeffs + tf.constant(self._offset, coeffs.dtype)
            polynomial = SOSPolynomial(coeffs, shift, validate_args=validate_args,
                                       **self._sos_kwargs)
            if box_kwargs is not None:
                polynomial = BoxPreserving(polynomial, validate_args=validate_args,
                                           **box_kwargs)
            return tfb.Invert(polynomial)

        super().__init__(bijector_fn=bijector_fn, unroll_loop=unroll_loop,
                         validate_args=validate_args, name=name)
        parameters.pop("self", None)
        parameters.pop("__class__", None)
        self._parameters = parameters

    @classmethod
    def trainable(cls, event_size, *, seed=None, dtype=tf.float32, num_polynomials=3,
                  polynomial_degree=2, hidden_units=(32, 32), activation="relu",
                  input_order="left-to-right", context_size=None, input_bound=None,
                  name="sos_autoregressive", **kwargs):
        """An SOS MAF with a fresh `nets.MADE`, starting at the identity.

        context_size: k for a conditional flow (the MADE takes a context of that size).
        input_bound: the MADE's input clamp c tanh(x / c) (see `nets.MADE`): with it the
        coefficients are bounded functions of x, so together with `tail_bound` (passed on to
        each `SOSPolynomial`) the layer grows at most linearly far from the data.
        """
        k, n = int(num_polynomials), int(polynomial_degree) + 1
        init = "glorot_uniform" if seed is None else keras.initializers.GlorotUniform(seed)
        made = MADE(int(event_size), params=1 + k * n, hidden_units=hidden_units,
                    activation=activation, input_order=input_order,
                    kernel_initializer=init, context_size=context_size,
                    input_bound=input_bound, dtype=tf.as_dtype(dtype).name)
        made.build((None, int(event_size)))
        return cls(made, k, n - 1, name=name, **kwargs)

    @property
    def made(self):
        return self._made

    @property
    def trainable_variables(self):
        """The tf.Variables behind MADE's trainable weights (Keras 3 layers hide them)."""
        return tuple(underlying_tf_variable(w) for w in self._made.trainable_weights)


def sos_maf(event_size, *, num_polynomials=3, polynomial_degree=2, hidden_units=(32, 32),
            activation="relu", context_size=None, dtype=tf.float32, seed=None, **kwargs):
    """Build an SOS masked autoregressive flow with a fresh MADE (see `SOSAutoregressive`).

    context_size: k for a conditional SOS flow p(x | c), c in R^k.
    """
    return SOSAutoregressive.trainable(event_size, seed=seed, dtype=dtype,
                                       context_size=context_size,
                                       num_polynomials=num_polynomials,
                                       polynomial_degree=polynomial_degree,
                                       hidden_units=hidden_units, activation=activation,
                                       **kwargs)
