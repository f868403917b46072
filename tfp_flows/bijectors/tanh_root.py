"""Bracketed solve of the scalar equation  x + c * tanh(a * x + e) = t,  used to invert
the residual flows `Planar` (along w) and `Sylvester` (by back-substitution).

When c * a > -1 the left side g(x) is strictly increasing (g' = 1 + c a (1 - tanh^2) > 0,
because 1 - tanh^2 lies in (0, 1]), and since |tanh| < 1 the root lies in the bracket
[t - |c|, t + |c|]. The solver runs Newton steps, falling back to bisection whenever a step
leaves the current bracket (safeguarded Newton), elementwise over any batch shape, inside a
`tf.while_loop` with at most `max_iterations` passes, so it runs in graphs and under XLA.
It stops when every element's last step was below `tol * (1 + |x|)`; the default
tolerance is 4 machine epsilons of the dtype. Convergence is global: the bracket at least
halves on every bisection step, and Newton converges quadratically near the root.

Gradients: the loop runs under `stop_gradient`; the result is then passed through one
Newton step written with differentiable `t, c, a, e`, which gives the implicit-function
gradient dx/dθ = -(∂g/∂θ) / g'(x) without differentiating the loop.
"""

import numpy as np
import tensorflow as tf


def solve_linear_plus_tanh(t, c, a, e, *, max_iterations=100, tol=None):
    """Solve x + c tanh(a x + e) = t elementwise (needs c * a > -1); returns x."""
    dtype = tf.convert_to_tensor(t).dtype
    t, c, a, e = (tf.convert_to_tensor(v, dtype) for v in (t, c, a, e))
    shape = tf.broadcast_dynamic_shape(
        tf.broadcast_dynamic_shape(tf.shape(t), tf.shape(c)),
        tf.broadcast_dynamic_shape(tf.shape(a), tf.shape(e)))
    if tol is None:
        tol = 4.0 * float(np.finfo(dtype.as_numpy_dtype).eps)
    ts, cs, as_, es = (tf.broadcast_to(tf.stop_gradient(v), shape) for v in (t, c, a, e))

    def g_and_slope(x):
        th = tf.tanh(as_ * x + es)
        return x + cs * th - ts, 1.0 + cs * as_ * (1.0 - th * th)

    lo, hi = ts - tf.abs(cs), ts + tf.abs(cs)
    x0 = tf.clip_by_value(ts - cs * tf.tanh(as_ * ts + es), lo, hi)
    done0 = tf.zeros(shape, tf.bool)

    def cond(i, x, lo, hi, done):
        return tf.logical_not(tf.reduce_all(done))

    def body(i, x, lo, hi, done):
        g, slope = g_and_slope(x)
        lo = tf.where(g < 0, x, lo)
        hi = tf.where(g > 0, x, hi)
        newton = x - g / slope
        inside = (newton > lo) & (newton < hi)
        new = tf.where(inside, newton, 0.5 * (lo + hi))
        new = tf.where(done | tf.equal(g, 0), x, new)
        done = done | (tf.abs(new - x) <= tol * (1.0 + tf.abs(new)))
        return i + 1, new, lo, hi, done

    _, x, _, _, _ = tf.while_loop(cond, body, (tf.constant(0), x0, lo, hi, done0),
                                  maximum_iterations=max_iterations)
    x = tf.stop_gradient(x)
    # One differentiable Newton step: value x - g(x)/g'(x) (g(x) ~ 0), implicit gradient.
    th = tf.tanh(a * x + e)
    g = x + c * th - t
    slope = tf.stop_gradient(1.0 + c * a * (1.0 - th * th))
    return x - g / slope
