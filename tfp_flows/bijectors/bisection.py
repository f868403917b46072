"""Bisection for strictly increasing scalar maps, shared by the numerical inverses of `BNAF`,
`UMNN`, `Bernstein` and the mixture CDFs (`mixture_cdf_math.solve_logit_cdf`).

`bisect_increasing(fn, target, lo, hi, num_iterations)` returns, elementwise, the midpoint of
the bracket [lo, hi] after `num_iterations` halvings that keep fn(lo) < target <= fn(hi)
(fn strictly increasing, the root inside the initial bracket). The loop is a `tf.while_loop`
with a fixed trip count, so it runs under XLA with static shapes and no host syncs; the
error in x is at most (hi - lo) 2^-(N+1) or the floating-point resolution at x. The loop
carries no gradient: callers stop gradients into it and add the implicit-function gradient
themselves (x* - (g - stop_gradient(g)) / g'(x*) with g = fn(x*) - target).
"""

import tensorflow as tf


def default_iterations(dtype):
    """Bisection steps used by default: 60 for float32 (and narrower), 100 for float64."""
    return 100 if tf.as_dtype(dtype) == tf.float64 else 60


def bisect_increasing(fn, target, lo, hi, num_iterations):
    """x in [lo, hi] with fn(x) = target, elementwise, by `num_iterations` halvings.

    Args:
      fn: callable, tensor of the shape of `target` -> tensor of that shape, strictly
        increasing elementwise.
      target, lo, hi: float tensors of one shape; fn(lo) <= target <= fn(hi).
      num_iterations: a Python int >= 1.
    """
    if int(num_iterations) < 1:
        raise ValueError(f"num_iterations must be >= 1; got {num_iterations}.")

    def body(i, lo, hi):
        mid = lo + 0.5 * (hi - lo)
        below = fn(mid) < target
        return i + 1, tf.where(below, mid, lo), tf.where(below, hi, mid)

    _, lo, hi = tf.while_loop(lambda i, lo, hi: i < num_iterations, body,
                              (tf.constant(0), lo, hi),
                              maximum_iterations=int(num_iterations))
    return lo + 0.5 * (hi - lo)
