"""Saveable pieces for TFP's `tfb.FFJORD`: trace of the Jacobian and ODE solvers.

FFJORD (Grathwohl et al. 2019) is a continuous flow: x(0) = x, dx/dt = f(t, x), y = x(1),
and the log-determinant follows d/dt log|det J| = Tr(df/dx) (the instantaneous change of
variables of Chen et al. 2018), so

    log p(x) = log p_base(y) + integral_0^1 Tr(df/dx)(t, x(t)) dt.

`tfb.FFJORD` takes two functions: `trace_augmentation_fn` (how the trace is computed) and
`ode_solve_fn` (how the ODE is integrated). TFP's are plain functions and bound methods,
which a `.keras` file cannot hold; the classes here are the same choices as objects with a
`get_config()`, registered with `tfp_flows.serialization`, so FFJORD flows save and load.

Trace:
* `ExactTrace()`: the exact trace, D backward passes per evaluation of f (equal to TFP's
  `trace_jacobian_exact`, built without its while loop); for small D (2-D data). log p(x)
  is then deterministic.
* `HutchinsonTrace(num_samples=1, noise="rademacher")`: TFP's `trace_jacobian_hutchinson`,
  Tr(A) = E[e^T A e] with E[e e^T] = I, one vector-Jacobian product per noise vector. The
  noise is drawn once per log_prob call and per row of the batch and held fixed along the
  trajectory, so the integrated estimate is an unbiased estimate of the exact log-det (up to
  the solver's tolerance), but **log_prob is random**: two calls on the same x differ. The
  noise comes from TensorFlow's stateful random ops (TFP passes `seed=None`), which run in
  graph mode and under XLA (`jit_compile=True`); `tf.random.set_seed` makes a program's
  draws repeatable. Average several calls (or tile x) for a lower-variance evaluation.

Solvers (`ode_solve_fn`):
* `DormandPrinceSolver(rtol, atol)`: TFP's adaptive `tfp.math.ode.DormandPrince` (the
  default), gradients by the adjoint method (memory independent of the number of steps).
* `FixedStepSolver(num_steps)`: classical Runge-Kutta 4 with `num_steps` equal steps, 4
  evaluations of f each, gradients by backpropagating through the unrolled steps. A fixed
  cost, no while loop with a data-dependent trip count: faster to compile and run under
  XLA, at the price of a discretisation error of O(num_steps^-4) in x(1) and log-det.
"""

import collections

import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows.serialization import register_serializable

tfb = tfp.bijectors

_NOISE = ("rademacher", "gaussian")


@register_serializable(name="tfp_flows.ffjord.ExactTrace")
class ExactTrace:
    """`trace_augmentation_fn` computing Tr(df/dx) exactly: one evaluation of f and D
    backward passes (row j of the Jacobian from the gradient of output j), for D known
    statically. Same values as TFP's `tfb.ffjord.trace_jacobian_exact` (tested), but it
    builds a plain graph instead of TFP's tf.while_loop of gradient calls, which traced
    several times slower inside a training step and did not compile under XLA (measured:
    see tests/test_ffjord.py).
    """

    def __call__(self, ode_fn, state_shape, dtype):
        del state_shape, dtype

        def augmented_ode_fn(time, state_log_det_jac, **kwargs):
            state, _ = state_log_det_jac
            event_size = state.shape[-1]
            if event_size is None:
                raise ValueError("ExactTrace needs a statically known event size; use "
                                 "HutchinsonTrace for dynamic shapes.")
            with tf.GradientTape(persistent=True, watch_accessed_variables=False) as tape:
                tape.watch(state)
                derivative = ode_fn(time, state, **kwargs)
                outputs = [derivative[..., j] for j in range(event_size)]
            diagonal = [tape.gradient(out, state)[..., j] for j, out in enumerate(outputs)]
            return derivative, tf.stack(diagonal, axis=-1)

        return augmented_ode_fn

    def get_config(self):
        return {}

    def __repr__(self):
        return "ExactTrace()"


def _rademacher(shape, dtype, seed=None):
    """+-1 with probability 1/2 each (the lowest-variance Hutchinson noise)."""
    bits = tf.random.uniform(shape, maxval=2, dtype=tf.int32, seed=seed)
    return tf.cast(2 * bits - 1, dtype)


@register_serializable(name="tfp_flows.ffjord.HutchinsonTrace")
class HutchinsonTrace:
    """`trace_augmentation_fn` estimating Tr(df/dx) by Hutchinson's estimator (TFP's
    `trace_jacobian_hutchinson`): an unbiased, random estimate; see the module docstring.

    Args:
      num_samples: noise vectors per row (the estimate averages them).
      noise: "rademacher" (+-1 entries, lower variance) or "gaussian".
    """

    def __init__(self, num_samples=1, noise="rademacher"):
        if int(num_samples) < 1:
            raise ValueError(f"num_samples must be >= 1; got {num_samples}.")
        if noise not in _NOISE:
            raise ValueError(f"noise must be one of {_NOISE}; got {noise!r}.")
        self.num_samples = int(num_samples)
        self.noise = noise

    def __call__(self, ode_fn, state_shape, dtype):
        sample_fn = _rademacher if self.noise == "rademacher" else tf.random.normal
        return tfb.ffjord.trace_jacobian_hutchinson(
            ode_fn, state_shape, dtype, sample_fn=sample_fn, num_samples=self.num_samples)

    def get_config(self):
        return {"num_samples": self.num_samples, "noise": self.noise}

    def __repr__(self):
        return f"HutchinsonTrace(num_samples={self.num_samples}, noise={self.noise!r})"


@register_serializable(name="tfp_flows.ffjord.DormandPrinceSolver")
class DormandPrinceSolver:
    """`ode_solve_fn`: TFP's adaptive Dormand-Prince (RK45) solver with these tolerances."""

    def __init__(self, rtol=1e-5, atol=1e-5):
        if float(rtol) <= 0 or float(atol) <= 0:
            raise ValueError(f"rtol and atol must be > 0; got rtol={rtol}, atol={atol}.")
        self.rtol, self.atol = float(rtol), float(atol)
        self._solver = tfp.math.ode.DormandPrince(rtol=self.rtol, atol=self.atol)

    def __call__(self, ode_fn, initial_time, initial_state, solution_times, **kwargs):
        return self._solver.solve(ode_fn, initial_time, initial_state,
                                  solution_times=solution_times, **kwargs)

    def get_config(self):
        return {"rtol": self.rtol, "atol": self.atol}

    def __repr__(self):
        return f"DormandPrinceSolver(rtol={self.rtol:g}, atol={self.atol:g})"


FixedStepResults = collections.namedtuple("FixedStepResults", ["times", "states"])


@register_serializable(name="tfp_flows.ffjord.FixedStepSolver")
class FixedStepSolver:
    """`ode_solve_fn`: Runge-Kutta 4 with `num_steps` equal steps (see the module docstring).

    Returns the state at the last of `solution_times` (what `tfb.FFJORD` asks for), with a
    leading time axis of length 1, like `tfp.math.ode.Solver.solve`'s `.states`.
    """

    def __init__(self, num_steps=8):
        if int(num_steps) < 1:
            raise ValueError(f"num_steps must be >= 1; got {num_steps}.")
        self.num_steps = int(num_steps)

    def __call__(self, ode_fn, initial_time, initial_state, solution_times, constants=None):
        constants = constants or {}
        state = tf.nest.map_structure(tf.convert_to_tensor, initial_state)
        dtype = tf.nest.flatten(state)[0].dtype
        t0 = tf.cast(initial_time, dtype)
        t1 = tf.cast(tf.reshape(solution_times, [-1])[-1], dtype)
        h = (t1 - t0) / self.num_steps

        def f(t, s):
            return ode_fn(t, s, **constants)

        def axpy(a, x, y):  # y + a * x over the nest
            return tf.nest.map_structure(lambda xi, yi: yi + a * xi, x, y)

        for i in range(self.num_steps):  # unrolled: a fixed, small number of steps
            t = t0 + i * h
            k1 = f(t, state)
            k2 = f(t + h / 2, axpy(h / 2, k1, state))
            k3 = f(t + h / 2, axpy(h / 2, k2, state))
            k4 = f(t + h, axpy(h, k3, state))
            state = tf.nest.map_structure(
                lambda s, a, b, c, d: s + h / 6 * (a + 2 * b + 2 * c + d),
                state, k1, k2, k3, k4)
        states = tf.nest.map_structure(lambda s: s[tf.newaxis], state)
        return FixedStepResults(times=tf.reshape(t1, [1]), states=states)

    def get_config(self):
        return {"num_steps": self.num_steps}

    def __repr__(self):
        return f"FixedStepSolver(num_steps={self.num_steps})"


__all__ = ["ExactTrace", "HutchinsonTrace", "DormandPrinceSolver", "FixedStepSolver"]
