"""CouplingMLP: the conditioner of an affine (or additive) coupling layer.

In a coupling layer (Dinh et al. 2015, NICE; 2017, RealNVP) the event splits into x0 and
x1; x0 passes unchanged and x1 is transformed elementwise with parameters computed from x0:
y1 = x1 * exp(log_scale(x0)) + shift(x0). Any function of x0 keeps the layer invertible
with a triangular Jacobian, so the conditioner is an unconstrained MLP. Its output layer
starts at zero, so a fresh coupling layer is the identity.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
from keras import ops

from tfp_flows.nets.dense_stack import build_context_projection, build_in_sequence
from tfp_flows.nets.made import DEFAULT_LOG_SCALE_BOUND, check_context


@keras.saving.register_keras_serializable(package="tfp_flows")
class CouplingMLP(keras.layers.Layer):
    """x0 [..., d0] -> (shift, log_scale), each [..., output_units].

    Usable as `shift_and_log_scale_fn` of `tfb.RealNVP`, which calls it as
    `fn(x0, output_units)`; the number of output units is taken from that first call (or
    fixed in advance with `output_units`).

    Args:
      hidden_units: widths of the hidden layers.
      activation: Keras activation of the hidden layers.
      shift_only: return (shift, None): an additive, volume-preserving coupling (NICE).
      output_units: optional; the size of x1.
      kernel_initializer: initializer of the hidden kernels.
      context_size: size of an optional context vector c (conditional flows); c enters
        the first layer through its own kernel: h1 = act(W x0 + V c + b). Call as
        `fn(x0, output_units, conditional_input=c)`, as tfb.RealNVP does with
        `bijector_kwargs` (see `tfp_flows.conditioning`).
      log_scale_bound: smooth clamp log_scale = b * tanh(raw / b) (identity near 0, bounded
        by b), so scales cannot overflow far from the data; None disables it. Default 6.
      input_bound: smooth clamp of the inputs, x0 -> c * tanh(x0 / c), before the first
        layer (None, the default: no clamp). The outputs are then bounded functions of x0
        that turn constant where |x0| >> c, so far from the data the coupling is a fixed
        affine map of x1 instead of following the linear extrapolation of a ReLU network,
        whose shifts and log-scales grow without bound there and compound over layers into
        log-densities orders of magnitude below the truth. Give c in the units the layer
        sees (a few standard deviations of x0).
    """

    def __init__(self, hidden_units: Sequence[int] = (64, 64), activation: str | Callable = "relu",
                 shift_only: bool = False, output_units: int | None = None,
                 kernel_initializer: str | Callable = "glorot_uniform",
                 log_scale_bound: float | None = DEFAULT_LOG_SCALE_BOUND,
                 context_size: int | None = None, input_bound: float | None = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.hidden_units = [int(u) for u in hidden_units]
        self.activation = keras.activations.get(activation)
        self.shift_only = bool(shift_only)
        self.output_units = None if output_units is None else int(output_units)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        if log_scale_bound is not None and float(log_scale_bound) <= 0:
            raise ValueError(f"log_scale_bound must be > 0 or None; got {log_scale_bound}.")
        self.log_scale_bound = None if log_scale_bound is None else float(log_scale_bound)
        self.context_size = None if context_size is None else int(context_size)
        if input_bound is not None and not float(input_bound) > 0:
            raise ValueError(f"input_bound must be a number > 0 or None; got {input_bound}.")
        self.input_bound = None if input_bound is None else float(input_bound)

    def __call__(self, x, output_units=None, **kwargs):
        if output_units is not None:
            output_units = int(output_units)
            if self.output_units is None:
                self.output_units = output_units
            elif output_units != self.output_units:
                raise ValueError(f"CouplingMLP was built for {self.output_units} output units "
                                 f"but is now asked for {output_units}; use one CouplingMLP "
                                 f"per coupling layer.")
        if self.output_units is None:
            raise ValueError("CouplingMLP does not know its output size: pass output_units "
                             "to the constructor or call it as fn(x0, output_units), as "
                             "tfb.RealNVP does.")
        return super().__call__(x, **kwargs)

    def build(self, input_shape):
        self.hidden_layers = [
            keras.layers.Dense(units, kernel_initializer=self.kernel_initializer,
                               dtype=self.dtype_policy, name=f"hidden_{i}")
            for i, units in enumerate(self.hidden_units)]
        outputs = self.output_units * (1 if self.shift_only else 2)
        self.output_layer = keras.layers.Dense(outputs, kernel_initializer="zeros",
                                               dtype=self.dtype_policy, name="output")
        build_in_sequence([*self.hidden_layers, self.output_layer], input_shape)
        self.context_layer = None
        if self.context_size:
            first = self.hidden_layers[0] if self.hidden_layers else self.output_layer
            init = self.kernel_initializer if self.hidden_layers else "zeros"
            self.context_layer = build_context_projection(self, first.units, init)

    def call(self, x, conditional_input=None):
        context = check_context(self, conditional_input)
        h = x
        if self.input_bound is not None:
            c = self.input_bound
            h = c * ops.tanh(h / c)
        for i, layer in enumerate([*self.hidden_layers, self.output_layer]):
            h = layer(h)
            if i == 0 and context is not None:  # broadcasts against x's batch shape
                h = h + self.context_layer(context)
            if i < len(self.hidden_layers):
                h = self.activation(h)
        if self.shift_only:
            return h, None
        shift, log_scale = ops.split(h, 2, axis=-1)
        if self.log_scale_bound is not None:
            b = self.log_scale_bound
            log_scale = b * ops.tanh(log_scale / b)
        return shift, log_scale

    def get_config(self):
        config = super().get_config()
        config.update(hidden_units=self.hidden_units,
                      activation=keras.activations.serialize(self.activation),
                      shift_only=self.shift_only, output_units=self.output_units,
                      kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
                      log_scale_bound=self.log_scale_bound, context_size=self.context_size,
                      input_bound=self.input_bound)
        return config
