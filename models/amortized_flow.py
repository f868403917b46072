"""A conditional `FlowModel` p(x | c) of amortised planar, radial or Sylvester layers.

N(0, I) pushed through a `bijectors.AmortizedFlow`: a network (`nets.AmortizedFlowParameters`)
maps the context c to a diagonal affine map and the parameters of every layer, so each
context row gets its own flow (Rezende & Mohamed 2015; van den Berg et al. 2018, §4.1).
"""

import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows.bijectors.amortized_flow import AmortizedFlow
from tfp_flows.flow_model import FlowModel
from tfp_flows.nets.amortized_flow_params import AmortizedFlowParameters


def amortized_flow_model(event_size: int, context_size: int, flow_kind: str, *,
                         num_layers: int = 4, hidden_units=(64, 64), activation="relu",
                         location_scale: bool = True, num_hidden: int | None = None,
                         num_reflections: int | None = None, dtype="float32",
                         seed: int | None = None, name: str = "amortized_flow") -> FlowModel:
    """A conditional `FlowModel` p(x | c): N(0, I) pushed through an `AmortizedFlow`.

    Train with `fit(c, x)`. `flow_kind`: "planar", "radial", "sylvester-orthogonal",
    "sylvester-householder" or "sylvester-triangular". `hidden_units` is the MLP from c to
    the flow parameters; `location_scale` adds the context-dependent diagonal affine map
    first.
    """
    net = AmortizedFlowParameters(flow_kind, event_size, num_layers, context_size,
                                  hidden_units=hidden_units, activation=activation,
                                  location_scale=location_scale, num_hidden=num_hidden,
                                  num_reflections=num_reflections, seed=seed, dtype=dtype,
                                  name=f"{name}_parameters")
    base = tfp.distributions.MultivariateNormalDiag(loc=tf.zeros([int(event_size)], dtype))
    dist = tfp.distributions.TransformedDistribution(base, AmortizedFlow(net, name=name))
    return FlowModel(dist, context_shape=[int(context_size)], name=name)
