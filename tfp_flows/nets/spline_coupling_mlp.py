"""SplineCouplingMLP: the conditioner of a rational-quadratic spline coupling layer.

Neural spline flows (Durkan, Bekasov, Murray & Papamakarios, 2019) replace the affine map
of a coupling layer by a monotone rational-quadratic spline with K bins on [-B, B] and
identity tails outside (TFP's `tfb.RationalQuadraticSpline`). For every coordinate of x1
this MLP of x0 outputs K bin widths, K bin heights and K - 1 interior knot slopes:

    widths  = min_bin_width  + (2B - K min_bin_width)  softmax(raw_w),   (sum 2B)
    heights = min_bin_height + (2B - K min_bin_height) softmax(raw_h),   (sum 2B)
    slopes  = min_slope + softplus(raw_s).

The output layer starts at zero kernel with the slope biases at softplus⁻¹(1 - min_slope),
so every bin has width = height and slope 1: a fresh spline coupling is the identity.

Conditional flows: with `context_size=k` a context c enters the first hidden layer through
its own kernel, h1 = act(W x0 + V c + b), so the spline parameters depend on (x0, c) and
the coupling stays invertible in x for every c.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import keras
import tensorflow_probability as tfp
from keras import ops

from tfp_flows.nets.dense_stack import build_context_projection, build_in_sequence
from tfp_flows.nets.made import check_context

tfb = tfp.bijectors


@keras.saving.register_keras_serializable(package="tfp_flows")
class SplineCouplingMLP(keras.layers.Layer):
    """x0 [..., d0] -> (widths, heights, slopes) [..., d1, K], [..., d1, K], [..., d1, K-1].

    Use `spline` as the `bijector_fn` of `tfb.RealNVP`:
    `tfb.RealNVP(num_masked=d0, bijector_fn=SplineCouplingMLP(...).spline)`.

    Args:
      hidden_units: widths of the hidden layers.
      num_bins: K.
      bound: B; the spline acts on [-B, B], identity outside.
      activation: Keras activation of the hidden layers.
      output_units: optional; d1 (otherwise taken from the first `spline` call).
      min_bin_width, min_bin_height, min_slope: lower bounds that keep the spline stable.
      kernel_initializer: initializer of the hidden kernels.
      context_size: size of an optional context vector c (conditional flows); call as
        `spline(x0, output_units, conditional_input=c)`, as tfb.RealNVP does with
        `bijector_kwargs` (see `tfp_flows.conditioning`).
    """

    def __init__(self, hidden_units: Sequence[int] = (64, 64), num_bins: int = 8,
                 bound: float = 5.0, activation: str | Callable = "relu",
                 output_units: int | None = None, min_bin_width: float = 0.001,
                 min_bin_height: float = 0.001, min_slope: float = 0.001,
                 kernel_initializer: str | Callable = "glorot_uniform",
                 context_size: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.hidden_units = [int(u) for u in hidden_units]
        self.num_bins = int(num_bins)
        self.bound = float(bound)
        self.activation = keras.activations.get(activation)
        self.output_units = None if output_units is None else int(output_units)
        self.min_bin_width = float(min_bin_width)
        self.min_bin_height = float(min_bin_height)
        self.min_slope = float(min_slope)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.context_size = None if context_size is None else int(context_size)
        if self.num_bins < 2 or self.bound <= 0:
            raise ValueError(f"SplineCouplingMLP needs num_bins >= 2 and bound > 0; got "
                             f"{num_bins} and {bound}.")
        if self.num_bins * max(self.min_bin_width, self.min_bin_height) >= 2 * self.bound:
            raise ValueError("num_bins * min_bin_width must be below the interval 2 * bound.")

    def spline(self, x0, output_units, conditional_input=None):
        """The `bijector_fn` for `tfb.RealNVP`: a spline with parameters from x0 (and c)."""
        if self.output_units is None:
            self.output_units = int(output_units)
        elif int(output_units) != self.output_units:
            raise ValueError(f"SplineCouplingMLP was built for {self.output_units} output "
                             f"units but is now asked for {output_units}.")
        widths, heights, slopes = self(x0, conditional_input=conditional_input)
        return tfb.RationalQuadraticSpline(widths, heights, slopes, range_min=-self.bound)

    def build(self, input_shape):
        if self.output_units is None:
            raise ValueError("SplineCouplingMLP does not know its output size: pass "
                             "output_units or call it through `spline(x0, output_units)`.")
        k = self.num_bins
        self.hidden_layers = [
            keras.layers.Dense(units, kernel_initializer=self.kernel_initializer,
                               dtype=self.dtype_policy, name=f"hidden_{i}")
            for i, units in enumerate(self.hidden_units)]
        slope_bias = math.log(math.expm1(1.0 - self.min_slope))
        bias = [0.0] * (2 * k) + [slope_bias] * (k - 1)
        self.output_layer = keras.layers.Dense(
            self.output_units * (3 * k - 1), kernel_initializer="zeros",
            bias_initializer=keras.initializers.Constant(bias * self.output_units),
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
        for i, layer in enumerate([*self.hidden_layers, self.output_layer]):
            h = layer(h)
            if i == 0 and context is not None:  # broadcasts against x's batch shape
                h = h + self.context_layer(context)
            if i < len(self.hidden_layers):
                h = self.activation(h)
        k = self.num_bins
        out = ops.reshape(h, (*ops.shape(h)[:-1], self.output_units, 3 * k - 1))
        raw_w, raw_h, raw_s = out[..., :k], out[..., k:2 * k], out[..., 2 * k:]
        span = 2.0 * self.bound
        widths = self.min_bin_width + (span - k * self.min_bin_width) * ops.softmax(raw_w)
        heights = self.min_bin_height + (span - k * self.min_bin_height) * ops.softmax(raw_h)
        slopes = self.min_slope + ops.softplus(raw_s)
        return widths, heights, slopes

    def get_config(self):
        config = super().get_config()
        config.update(hidden_units=self.hidden_units, num_bins=self.num_bins, bound=self.bound,
                      activation=keras.activations.serialize(self.activation),
                      output_units=self.output_units, min_bin_width=self.min_bin_width,
                      min_bin_height=self.min_bin_height, min_slope=self.min_slope,
                      kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
                      context_size=self.context_size)
        return config
