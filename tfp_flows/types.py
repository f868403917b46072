"""Type aliases used in the public API's annotations."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

#: A value TFP accepts as a bijector parameter: a tensor, a variable (trainable parameters
#: are `tf.Variable`s or `tfp.util.TransformedVariable`s), an array or a number.
TensorLike = tf.Tensor | tf.Variable | np.ndarray | float | Sequence[float]

#: A dtype: `tf.float32`, `np.float64`, or a name such as "float32".
DTypeLike = tf.DType | np.dtype | str | type

#: An integer seed (reproducible initialisation), or None for fresh randomness.
Seed = int | None

#: An event shape such as [2] or [8, 8, 1], or an event size for vector flows.
ShapeLike = int | Sequence[int] | tf.TensorShape

__all__ = ["TensorLike", "DTypeLike", "Seed", "ShapeLike", "BoundsLike"]

#: Support of bounded data: "positive", one (low, high) pair for every coordinate, or one
#: entry per coordinate (a pair, "positive" or None); None or an infinite end leaves that
#: side open.
BoundsLike = str | Sequence[object] | None
