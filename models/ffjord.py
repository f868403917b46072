"""FFJORD: free-form continuous dynamics (Grathwohl et al., 2019).

Each block is TFP's `tfb.FFJORD` with a `nets.ODEDynamics` network f(t, x): the flow moves
x along dx/dt = f(t, x) for t in [0, 1] and the log-density changes by the integral of
Tr(df/dx) (see `tfp_flows.ffjord`). Exact trace for small event sizes, Hutchinson's
estimator above (then log_prob is a random, unbiased estimate). Sampling and density
evaluation both cost one ODE solve per block.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import tensorflow as tf
import tensorflow_probability as tfp
from tfp_flows.models.building_blocks import flow_model, kernel_initializer
from tfp_flows.models.recipe import Recipe

from tfp_flows import nets
from tfp_flows.ffjord import DormandPrinceSolver, ExactTrace, FixedStepSolver, HutchinsonTrace
from tfp_flows.types import BoundsLike, DTypeLike, Seed

if TYPE_CHECKING:
    from tfp_flows import FlowModel

tfb = tfp.bijectors

# Largest event size for which trace="auto" computes the trace exactly (D gradient passes).
EXACT_TRACE_MAX_EVENT_SIZE = 2
_TRACES = ("auto", "exact", "hutchinson")
_SOLVERS = ("dopri5", "rk4")


def build_ffjord(event_size: int, *, num_layers: int = 1, hidden_units: Sequence[int] = (64, 64),
                 activation: str | Callable = "tanh", trace: str = "auto", solver: str = "dopri5",
                 rtol: float = 1e-05, atol: float = 1e-05, num_steps: int = 8,
                 dtype: DTypeLike = "float32", seed: Seed = None, name: str = "ffjord",
                 standardize: bool = True, bounds: BoundsLike = None,
                 base: str = "normal") -> FlowModel:
    """A FFJORD `FlowModel`: `num_layers` chained continuous-flow blocks over N(0, I).

    trace: "exact" (TFP's `trace_jacobian_exact`), "hutchinson" (Rademacher noise, one
      vector per row: log_prob becomes stochastic) or "auto" (exact when event_size <=
      EXACT_TRACE_MAX_EVENT_SIZE, else hutchinson).
    solver: "dopri5" (TFP's adaptive Dormand-Prince with `rtol`, `atol`; adjoint gradients)
      or "rk4" (fixed-step Runge-Kutta 4 with `num_steps` steps; cheaper, XLA-friendly,
      discretisation error O(num_steps^-4)).
    standardize, bounds: the data end (`building_blocks.flow_model`): a Standardize fitted by
    `model.adapt(x_train)`, and the data's support, e.g. bounds="positive" or (0, 1).
    base: the base density, "normal" (N(0, I)) or "student-t" (heavy tails learnt
    per coordinate; see `building_blocks.student_t`).
    """
    if trace not in _TRACES:
        raise ValueError(f"trace must be one of {_TRACES}; got {trace!r}.")
    if solver not in _SOLVERS:
        raise ValueError(f"solver must be one of {_SOLVERS}; got {solver!r}.")
    if trace == "auto":
        trace = "exact" if event_size <= EXACT_TRACE_MAX_EVENT_SIZE else "hutchinson"
    blocks = []
    for i in range(num_layers):
        dynamics = nets.ODEDynamics(hidden_units, activation=activation, dtype=dtype,
                                    kernel_initializer=kernel_initializer(seed, i),
                                    name=f"dynamics_{i}")
        blocks.append(tfb.FFJORD(
            state_time_derivative_fn=dynamics,
            ode_solve_fn=(DormandPrinceSolver(rtol, atol) if solver == "dopri5"
                          else FixedStepSolver(num_steps)),
            trace_augmentation_fn=ExactTrace() if trace == "exact" else HutchinsonTrace(),
            dtype=tf.as_dtype(dtype), name=f"ffjord_{i}"))
    return flow_model(event_size, blocks, dtype, name,
                      standardize=standardize, bounds=bounds, base=base)


RECIPES = {
    "ffjord": Recipe(
        build_ffjord, "FFJORD continuous flow: ODE with a time-gated MLP (slow, free-form)",
        data_defaults={"*": {"batch_size": 256, "learning_rate": 3e-3, "epochs": 20},
                       "breast-cancer": {"hidden_units": (128, 128), "epochs": 30}}),
}
