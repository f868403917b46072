"""Tools to check flows numerically; public, for users who write their own bijectors."""

import numpy as np
import tensorflow as tf


def grid_integral(log_prob, *, low=-6.0, high=6.0, num=401, batch_size=40000,
                  dtype=tf.float32):
    """Integral of exp(log_prob) over the square [low, high]^2 (midpoint rule).

    `log_prob` maps a [n, 2] tensor to [n] log-densities (a distribution's `log_prob`, a
    `FlowModel.log_prob`, ...). A correct normalised density whose mass lies inside the
    square integrates to 1 up to the quadrature error, O(h^2) for a smooth density with
    h = (high - low) / num.
    """
    h = (high - low) / num
    centres = low + h * (np.arange(num) + 0.5)
    gx, gy = np.meshgrid(centres, centres, indexing="ij")
    points = np.stack([gx.ravel(), gy.ravel()], axis=1)
    total = 0.0
    for start in range(0, len(points), batch_size):
        chunk = tf.constant(points[start:start + batch_size], dtype)
        lp = np.asarray(log_prob(chunk), dtype=np.float64)
        total += np.exp(lp).sum()
    return float(total * h * h)
