"""Amortised planar / radial / Sylvester flows: parameters produced by a network from a context.

Rezende & Mohamed (2015) and van den Berg et al. (2018, §4.1) amortise the flow
of a VAE posterior: the encoder maps x to a hidden vector h, and a linear map of h gives
the parameters of every flow layer, so each x gets its own flow q(z | x). The same
construction gives a conditional density p(x | c) with h = c.

`AmortizedFlow(parameter_network)` is a conditional bijector (`is_conditional = True`,
context keyword `conditional_input`, routed by `tfp_flows.conditioning` and `FlowModel`):

    f_c = g_L ∘ ... ∘ g_1 ∘ a,   a(z) = loc(c) + exp(log_scale(c)) ⊙ z (optional),

with g_l a `Planar`, `Radial` or `Sylvester` bijector whose parameters, batch shape [...]
of the context, come from `nets.AmortizedFlowParameters` (free parameters, constrained by
the bijectors' own code: planar û with wᵀû > -1, radial beta > -alpha, Sylvester tanh
diagonals and orthonormal / Householder / permutation Q). log-dets add up over the
layers; the inverse is each layer's inverse (closed form for radial, a bracketed scalar
Newton solve for planar and Sylvester).

`flow(context)` returns the concrete `tfb.Chain` for a batch of contexts (compute the
parameters once and use its forward and log-det, as a VAE does).

The identity start (each layer's parameters from its bijector's own `trainable`
constructor) is kept here and added to the network's zero-initialised outputs, so the
network (below the bijectors) needs no bijector code. A conditional `FlowModel` of this
bijector: `tfp_flows.models.amortized_flow.amortized_flow_model`.
"""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows.bijectors.planar import Planar
from tfp_flows.bijectors.radial import Radial
from tfp_flows.bijectors.sylvester import Sylvester
from tfp_flows.conditioning import CONTEXT_KWARG
from tfp_flows.nets.amortized_flow_params import AmortizedFlowParameters

tfb = tfp.bijectors


def radial_alpha_constraint(dtype):
    """`Radial`'s own constraining bijector for alpha (softplus with a floor of eps)."""
    return Radial.parameter_properties(dtype)["alpha"].default_constraining_bijector_fn()


def _identity_parameters(flow_kind, d, m, k, seed):
    """Free parameters (flat NumPy, the network's output order) that make one layer the
    identity, taken from the bijectors' own `trainable` constructors, so the amortised and
    the unconditional layers start alike."""
    if flow_kind == "planar":
        bij = Planar.trainable(d, seed=seed, dtype=tf.float64)
        parts = [bij.w, bij.u, bij.b]
    elif flow_kind == "radial":
        bij = Radial.trainable(d, seed=seed, dtype=tf.float64)
        alpha_free = radial_alpha_constraint(tf.float64).inverse(tf.convert_to_tensor(bij.alpha))
        parts = [bij.center, alpha_free, bij.beta_unconstrained]
    else:
        q_kind = flow_kind.split("-", 1)[1]
        bij = Sylvester.trainable(d, seed=seed, dtype=tf.float64, q_kind=q_kind,
                                  num_hidden=m, num_reflections=k)
        rows, cols = np.triu_indices(m)
        parts = [np.asarray(bij._r)[rows, cols], np.asarray(bij._r_tilde)[rows, cols],
                 bij._bias]
        if q_kind != "triangular":
            parts.append(bij._q_params)
    return np.concatenate([np.reshape(np.asarray(p, np.float64), [-1]) for p in parts])


def identity_offset(net):
    """The constant [num_outputs] that makes `net`'s (zero-initialised) outputs the identity
    flow: location-scale zeros, then each layer's identity parameters (seeded from
    net.seed, layer by layer)."""
    start = [np.zeros(2 * net.event_size)] if net.location_scale else []
    base_seed = 0 if net.seed is None else int(net.seed) * 1000
    with tf.init_scope():  # `trainable` makes eager tf.Variables
        start += [_identity_parameters(net.flow_kind, net.event_size, net.num_hidden,
                                       net.num_reflections, base_seed + i)
                  for i in range(net.num_layers)]
    return np.concatenate(start) if start else np.zeros([0])


def _layer_bijector(flow_kind, params, index, dtype):
    """The bijector of layer `index` from its free parameters (batched tensors)."""
    name = f"{flow_kind.replace('-', '_')}_{index}"
    if flow_kind == "planar":
        return Planar(w=params["w"], u=params["u"], b=params["b"], name=name)
    if flow_kind == "radial":
        alpha = radial_alpha_constraint(dtype).forward(params["alpha_free"])
        return Radial(params["center"], alpha, beta_unconstrained=params["beta_free"],
                      name=name)
    q_kind = flow_kind.split("-", 1)[1]
    return Sylvester(params["r"], params["r_tilde"], params["bias"], params.get("q_params"),
                     q_kind=q_kind, permute=(q_kind == "triangular" and index % 2 == 1),
                     name=name)


class AmortizedFlow(tfb.Bijector):
    """A stack of planar, radial or Sylvester layers whose parameters depend on a context.

    Args:
      parameter_network: a `nets.AmortizedFlowParameters` layer (context -> parameters).
      validate_args: Python bool, passed to the bijector.
      name: name of the bijector (and its key in `bijector_kwargs` routing).

    Call with the context as keyword: `forward(z, conditional_input=c)`, c of shape
    [..., context_size] broadcasting against z's batch shape [..., D].

    Accurate for (float64; tests/bijectors/test_properties.py: finite, round trip within 1e-7
    relative, log-det = autodiff within 1e-6) a flow kind drawn from the five (2 examples per
    run), 2 layers, D = 3, context size 2, parameter MLP (8,) with weights N(0, s^2), s in
    [0.1, 1], contexts in [-3, 3], with or without the location-scale part, and |x_i| <= 10.
    Domain: all of R^D for every context; the layers' own limits apply (Planar, Radial,
    Sylvester).
    """

    is_conditional = True

    def __init__(self, parameter_network, validate_args=False, name="amortized_flow"):
        parameters = dict(locals())
        if not isinstance(parameter_network, AmortizedFlowParameters):
            raise TypeError(f"AmortizedFlow needs a nets.AmortizedFlowParameters layer; got "
                            f"{type(parameter_network).__name__}.")
        self._parameter_network = parameter_network
        # The trained output layer is the deviation from this identity start.
        self._identity_offset = identity_offset(parameter_network)
        dtype = tf.as_dtype(parameter_network.compute_dtype)
        with tf.name_scope(name) as name:
            super().__init__(forward_min_event_ndims=1, validate_args=validate_args,
                             dtype=dtype, parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return {}  # the parameters live in the network; batch shape comes from the context

    @property
    def parameter_network(self):
        return self._parameter_network

    @property
    def event_size(self):
        return self._parameter_network.event_size

    def flow(self, context):
        """The concrete chain f_c for `context` [..., context_size]: a `tfb.Chain`."""
        if context is None:
            raise ValueError(f"AmortizedFlow {self.name!r} is conditional but got no context: "
                             f"pass {CONTEXT_KWARG}=c (FlowModel(..., context_shape=...) "
                             f"does it).")
        net = self._parameter_network
        context = tf.convert_to_tensor(context, self.dtype)
        if context.shape.rank is not None and context.shape[-1] is not None \
                and context.shape[-1] != net.context_size:
            raise ValueError(f"AmortizedFlow {self.name!r} expects a context of size "
                             f"{net.context_size}, got shape {context.shape.as_list()}.")
        out = net(context, offset=self._identity_offset)
        parts = []
        if net.location_scale:
            parts += [tfb.Shift(out["loc"], name="loc"),
                      tfb.Scale(log_scale=out["log_scale"], name="scale")]
        for i, params in enumerate(out["layers"]):
            parts.insert(0, _layer_bijector(net.flow_kind, params, i, self.dtype))
        # Chain applies its list from the last element to the first.
        return tfb.Chain(parts, name="amortized_chain")

    def _check_event(self, x):
        d = x.shape[-1]
        if d is not None and d != self.event_size:
            raise ValueError(f"AmortizedFlow {self.name!r} has event size {self.event_size}, "
                             f"got inputs of shape {x.shape.as_list()}.")

    def _forward(self, x, **kwargs):
        self._check_event(x)
        return self.flow(kwargs.get(CONTEXT_KWARG)).forward(x)

    def _inverse(self, y, **kwargs):
        self._check_event(y)
        return self.flow(kwargs.get(CONTEXT_KWARG)).inverse(y)

    def _forward_log_det_jacobian(self, x, **kwargs):
        return self.flow(kwargs.get(CONTEXT_KWARG)).forward_log_det_jacobian(x, event_ndims=1)

    def _inverse_log_det_jacobian(self, y, **kwargs):
        return self.flow(kwargs.get(CONTEXT_KWARG)).inverse_log_det_jacobian(y, event_ndims=1)

