"""Tools to check flows numerically; public, for users who write their own bijectors."""

import dataclasses

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp


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


# ---------------------------------------------------------------------------- check_bijector
class BijectorCheckError(AssertionError):
    """A bijector failed one of `check_bijector`'s checks; the message says which and where."""


@dataclasses.dataclass
class BijectorCheckReport:
    """What `check_bijector` measured, per dtype: the largest errors and the tolerances.

    `errors[dtype_name][check]` is the largest absolute error of that check (0.0 for exact
    checks that passed); `tolerances[dtype_name]` is the (rtol, atol) used.
    """

    name: str
    event_ndims: int
    errors: dict
    tolerances: dict

    def __str__(self):
        lines = [f"check_bijector({self.name}, event_ndims={self.event_ndims}): all checks passed"]
        for dtype, errs in self.errors.items():
            rtol, atol = self.tolerances[dtype]
            vals = ", ".join(f"{k} {v:.2e}" for k, v in errs.items())
            lines.append(f"  {dtype} (rtol {rtol:g}, atol {atol:g}): {vals}")
        return "\n".join(lines)


_DEFAULT_TOLERANCES = {"float16": (1e-2, 1e-2), "bfloat16": (3e-2, 3e-2),
                       "float32": (1e-4, 1e-4), "float64": (1e-8, 1e-8)}


def _tolerance(value, dtype, default_index):
    if isinstance(value, dict):  # dtypes missing from the dict get the defaults
        value = value.get(dtype.name)
    if value is None:
        return _DEFAULT_TOLERANCES.get(dtype.name, (1e-4, 1e-4))[default_index]
    return float(value)


def _fresh(t):
    # TFP caches forward/inverse pairs keyed by the tensor object: inverse(forward(x)) would
    # return x from the cache without running _inverse. A fresh copy misses the cache.
    return tf.identity(t)


def _compare(check, actual, expected, rtol, atol, dtype, name, where=""):
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if a.shape != e.shape:
        raise BijectorCheckError(f"{name}: {check} [{dtype.name}]: shape {list(a.shape)} where "
                                 f"{list(e.shape)} was expected{where}.")
    err = np.abs(a - e)
    bound = atol + rtol * np.abs(e)
    bad = ~(err <= bound)  # NaN counts as a failure
    if np.any(bad):
        idx = np.unravel_index(int(np.argmax(np.where(bad, np.nan_to_num(err, nan=np.inf)
                                                      / bound, -1.0))), err.shape)
        raise BijectorCheckError(
            f"{name}: {check} [{dtype.name}] failed at index {list(map(int, idx))}{where}: "
            f"got {a[idx]!r}, expected {e[idx]!r} (|error| {err[idx]:.3e} > "
            f"atol {atol:g} + rtol {rtol:g} * |expected|); {int(bad.sum())} of {bad.size} "
            f"entries fail, largest |error| {np.nanmax(np.where(np.isnan(err), np.inf, err)):.3e}.")
    return float(err.max()) if err.size else 0.0


def _check_finite(what, t, dtype, name):
    v = np.asarray(t)
    if not np.all(np.isfinite(v)):
        idx = np.argwhere(~np.isfinite(v))[0].tolist()
        raise BijectorCheckError(f"{name}: {what} [{dtype.name}] is not finite at index {idx} "
                                 f"(value {v[tuple(idx)]!r}).")


def _check_dtype(what, t, dtype, name):
    if t.dtype != dtype:
        raise BijectorCheckError(f"{name}: {what} returned {t.dtype.name} for {dtype.name} "
                                 f"inputs; a bijector must keep its input dtype.")


def _saved_model_roundtrip(bij, x, y, event_ndims, dtype, name):
    """Save forward/inverse/log-dets in a tf.Module; outputs before and after must agree."""
    import tempfile

    from tfp_flows.variable_discovery import find_trainables, underlying_tf_variable

    found = find_trainables(bij)
    module = tf.Module(name="checked_bijector")
    module.bijector = bij
    module.layers = list(found.keras_layers)
    module.variables_ = [underlying_tf_variable(v) for v in
                         found.tf_variables + found.keras_variables
                         + [w for layer in found.keras_layers for w in layer.weights]]
    spec = tf.TensorSpec([None, *x.shape[1:]], dtype)
    module.forward = tf.function(lambda t: bij.forward(t), input_signature=[spec])
    module.inverse = tf.function(lambda t: bij.inverse(t), input_signature=[spec])
    module.fldj = tf.function(lambda t: bij.forward_log_det_jacobian(t, event_ndims),
                              input_signature=[spec])
    module.ildj = tf.function(lambda t: bij.inverse_log_det_jacobian(t, event_ndims),
                              input_signature=[spec])
    before = {k: getattr(module, k)(_fresh(v)).numpy()
              for k, v in (("forward", x), ("inverse", y), ("fldj", x), ("ildj", y))}
    with tempfile.TemporaryDirectory() as path:
        try:
            tf.saved_model.save(module, path)
            loaded = tf.saved_model.load(path)
            after = {k: getattr(loaded, k)(_fresh(v)).numpy()
                     for k, v in (("forward", x), ("inverse", y), ("fldj", x), ("ildj", y))}
        except Exception as e:  # report which check broke, keep the cause
            raise BijectorCheckError(
                f"{name}: SavedModel round trip [{dtype.name}] failed: {type(e).__name__}: "
                f"{str(e)[:500]}") from e
    worst = 0.0
    for k in before:
        if not np.array_equal(before[k], after[k], equal_nan=True):
            diff = float(np.max(np.abs(before[k].astype(np.float64) - after[k])))
            raise BijectorCheckError(
                f"{name}: SavedModel round trip [{dtype.name}]: {k} differs after "
                f"tf.saved_model.save/load (largest |difference| {diff:.3e}); the bijector "
                f"depends on state the SavedModel does not capture.")
    return worst


def _own_dtype(bijector):
    """The bijector's dtype, or the one float dtype of the variables it holds, or None."""
    if bijector.dtype is not None:
        return tf.as_dtype(bijector.dtype)
    from tfp_flows.variable_discovery import find_trainables

    found = find_trainables(bijector)
    weights = (found.tf_variables + found.keras_variables
               + [w for layer in found.keras_layers for w in layer.weights])
    kinds = {tf.as_dtype(w.dtype) for w in weights if tf.as_dtype(w.dtype).is_floating}
    return kinds.pop() if len(kinds) == 1 else None


def check_bijector(bijector, x, *, rtol=None, atol=None, y=None, event_ndims=None,
                   dtypes=None, saved_model=True):
    """Check a bijector numerically; returns a `BijectorCheckReport` or raises.

    Meant for users who write their own `tfb.Bijector` subclass (and used on every bijector
    of this package). For each dtype it checks, raising `BijectorCheckError` (an
    `AssertionError`) with the check, dtype, index and values of the first failure:

    1. forward(x), inverse(y) and both log-dets keep the dtype, have the batched shapes
       TFP promises (batch = broadcast of x's batch shape and the bijector's batch shape at
       `event_ndims`; log-dets have the batch shape) and are finite;
    2. inverse(forward(x)) == x and forward(inverse(y)) == y;
    3. forward_log_det_jacobian(x) == log|det J| with J the autodiff Jacobian of forward;
    4. inverse_log_det_jacobian(forward(x)) == -forward_log_det_jacobian(x);
    5. every example is transformed on its own: forward of one example, and of x reshaped
       to two batch axes, match the batched result;
    6. a tf.Module holding the bijector survives tf.saved_model.save/load with identical
       forward, inverse and log-det outputs (`saved_model=False` skips this).

    TFP caches forward/inverse pairs, so a naive inverse(forward(x)) would just return x
    from the cache; every check here feeds fresh tensors to bypass that cache.

    Args:
      bijector: a `tfb.Bijector`, or a callable `dtype -> Bijector` to check several dtypes
        (each dtype gets its own bijector, so parameters can be built in that dtype).
      x: points in the domain, shape [batch, *event] with `event_ndims` event axes
        (a NumPy array or tensor; cast to each dtype).
      rtol, atol: tolerances |a - b| <= atol + rtol |b|; a float for all dtypes, a dict
        {dtype name: float} (missing dtypes get the defaults), or None for the defaults
        (float32: 1e-4, 1e-4; float64: 1e-8, 1e-8).
      y: points in the range for the forward(inverse(y)) check; default: `x` (fine for
        bijectors onto R^n; pass `y` when the range is smaller).
      event_ndims: event rank of x; default max(1, forward_min_event_ndims).
      dtypes: dtypes to check. Default: the bijector's dtype if it has one (or the one
        float dtype of the variables it holds, e.g. a MAF's MADE), otherwise (float32,
        float64); for a factory, (float32, float64).
      saved_model: include the SavedModel round trip.

    Returns:
      A `BijectorCheckReport` with the largest errors per check and dtype.

    Example:
      ```python
      report = tfp_flows.testing.check_bijector(MyBijector(...), np.random.randn(64, 2))
      print(report)
      ```
    """
    factory = None if isinstance(bijector, tfp.bijectors.Bijector) else bijector
    if factory is not None and not callable(factory):
        raise TypeError(f"check_bijector needs a tfb.Bijector or a callable dtype -> Bijector; "
                        f"got {type(bijector).__name__}.")
    if dtypes is None:
        own = None if factory is not None else _own_dtype(bijector)
        dtypes = (own,) if own is not None else (tf.float32, tf.float64)
    dtypes = [tf.as_dtype(d) for d in dtypes]
    x_np = np.asarray(x, dtype=np.float64)
    y_np = x_np if y is None else np.asarray(y, dtype=np.float64)
    errors, tolerances = {}, {}
    name, nd = None, event_ndims
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")  # batch_jacobian and the SavedModel functions retrace on purpose
    try:
        _check_all(bijector, factory, dtypes, x_np, y_np, nd, rtol, atol, saved_model,
                   errors, tolerances)
    finally:
        logger.setLevel(level)
    name, nd = errors.pop("__name__"), errors.pop("__event_ndims__")
    return BijectorCheckReport(name=name, event_ndims=nd, errors=errors, tolerances=tolerances)


def _check_all(bijector, factory, dtypes, x_np, y_np, nd, rtol, atol, saved_model, errors,
               tolerances):
    name = None
    for dtype in dtypes:
        bij = factory(dtype) if factory is not None else bijector
        name = f"{type(bij).__name__}({bij.name!r})"
        if nd is None:
            nd = max(1, int(tf.get_static_value(
                tf.convert_to_tensor(bij.forward_min_event_ndims))))
        if x_np.ndim < nd + 1:
            raise ValueError(f"check_bijector: x needs a batch axis and {nd} event axes; got "
                             f"shape {list(x_np.shape)}.")
        r_tol, a_tol = _tolerance(rtol, dtype, 0), _tolerance(atol, dtype, 1)
        tolerances[dtype.name] = (r_tol, a_tol)
        errors[dtype.name] = _check_one_dtype(bij, x_np, y_np, nd, dtype, r_tol, a_tol, name,
                                              saved_model)
    errors["__name__"], errors["__event_ndims__"] = name, nd


def _check_one_dtype(bij, x_np, y_np, nd, dtype, rtol, atol, name, saved_model):
    errs = {}
    event_in = list(x_np.shape[x_np.ndim - nd:])
    try:
        batch_bij = tf.TensorShape(bij.experimental_batch_shape(x_event_ndims=nd))
    except NotImplementedError:  # no _parameter_properties: read it off the log-det's shape
        x_batch = tf.TensorShape(x_np.shape[:x_np.ndim - nd])
        lds = tf.TensorShape(bij.forward_log_det_jacobian(tf.constant(x_np, dtype), nd).shape)
        batch_bij = (tf.TensorShape([]) if tf.broadcast_static_shape(x_batch, lds) == x_batch
                     else lds)
    batch = tf.broadcast_static_shape(tf.TensorShape(x_np.shape[:x_np.ndim - nd]), batch_bij)
    # Broadcast the points to the full batch shape, so that every point has its own Jacobian.
    x = tf.broadcast_to(tf.constant(x_np, dtype), batch.as_list() + event_in)
    y_in = tf.broadcast_to(tf.constant(y_np, dtype), batch.as_list() + list(y_np.shape[-nd:]))
    if bij.dtype is not None and tf.as_dtype(bij.dtype) != dtype:
        raise BijectorCheckError(f"{name}: the bijector's dtype is {tf.as_dtype(bij.dtype).name} "
                                 f"but it is checked in {dtype.name}; pass a factory "
                                 f"dtype -> Bijector to check several dtypes.")

    # 1. shapes, dtypes, finiteness.
    fwd = bij.forward(_fresh(x))
    event_out = tf.TensorShape(bij.forward_event_shape(event_in))
    expected_y = batch.concatenate(event_out)
    _check_dtype("forward", fwd, dtype, name)
    if fwd.shape != expected_y:
        raise BijectorCheckError(f"{name}: forward of x with shape {x.shape.as_list()} gave "
                                 f"shape {fwd.shape.as_list()}, expected "
                                 f"{expected_y.as_list()} (batch {batch.as_list()} + event "
                                 f"{event_out.as_list()}) [{dtype.name}].")
    _check_finite("forward(x)", fwd, dtype, name)
    fldj = bij.forward_log_det_jacobian(_fresh(x), event_ndims=nd)
    _check_dtype("forward_log_det_jacobian", fldj, dtype, name)
    fldj_full = tf.broadcast_to(fldj, batch)  # constant-Jacobian bijectors may return scalars
    if not tf.TensorShape(fldj.shape).is_compatible_with(batch) and fldj.shape.rank != 0:
        raise BijectorCheckError(f"{name}: forward_log_det_jacobian has shape "
                                 f"{fldj.shape.as_list()}, expected the batch shape "
                                 f"{batch.as_list()} [{dtype.name}].")
    _check_finite("forward_log_det_jacobian(x)", fldj, dtype, name)

    # 2. round trips.
    x_back = bij.inverse(_fresh(fwd))
    _check_dtype("inverse", x_back, dtype, name)
    _check_finite("inverse(forward(x))", x_back, dtype, name)
    errs["inverse(forward(x))"] = _compare("inverse(forward(x)) == x", x_back, x, rtol, atol,
                                           dtype, name)
    x_of_y = bij.inverse(_fresh(y_in))
    _check_finite("inverse(y)", x_of_y, dtype, name)
    y_back = bij.forward(_fresh(x_of_y))
    _check_finite("forward(inverse(y))", y_back, dtype, name)
    errs["forward(inverse(y))"] = _compare("forward(inverse(y)) == y", y_back, y_in, rtol,
                                           atol, dtype, name)

    # 3. log-det against the autodiff Jacobian.
    n_in = int(np.prod(event_in)) if event_in else 1
    n_out = int(event_out.num_elements())
    if n_in != n_out:
        raise BijectorCheckError(f"{name}: forward maps {n_in} numbers to {n_out}; the "
                                 f"Jacobian check needs equal sizes.")
    x_flat = tf.reshape(x, [-1, n_in])
    with tf.GradientTape() as tape:
        tape.watch(x_flat)
        y_flat = tf.reshape(bij.forward(tf.reshape(x_flat, x.shape)), [-1, n_out])
    jac = tape.batch_jacobian(y_flat, x_flat)
    if jac is None:
        raise BijectorCheckError(f"{name}: forward is not differentiable by tf.GradientTape.")
    _, logabsdet = tf.linalg.slogdet(tf.cast(jac, tf.float64))
    errs["forward_log_det_jacobian"] = _compare(
        "forward_log_det_jacobian(x) == log|det(autodiff Jacobian)|",
        tf.reshape(fldj_full, [-1]), logabsdet, rtol, atol, dtype, name)

    # 4. inverse log-det at matching points.
    ildj = bij.inverse_log_det_jacobian(_fresh(fwd), event_ndims=nd)
    _check_dtype("inverse_log_det_jacobian", ildj, dtype, name)
    _check_finite("inverse_log_det_jacobian(forward(x))", ildj, dtype, name)
    errs["inverse_log_det_jacobian"] = _compare(
        "inverse_log_det_jacobian(forward(x)) == -forward_log_det_jacobian(x)",
        tf.broadcast_to(ildj, batch), -fldj_full, rtol, atol, dtype, name)

    # 5. examples are independent: one example alone, and two batch axes.
    if batch.rank == 1 and batch_bij.rank == 0 and batch[0] >= 2:
        single = bij.forward(_fresh(x[:1]))
        errs["batch consistency"] = _compare("forward(x[:1]) == forward(x)[:1]", single,
                                             fwd[:1], rtol, atol, dtype, name)
        if batch[0] % 2 == 0:
            x2 = tf.reshape(x, [2, batch[0] // 2, *event_in])
            fwd2 = bij.forward(_fresh(x2))
            fldj2 = bij.forward_log_det_jacobian(_fresh(x2), event_ndims=nd)
            if fwd2.shape != [2, batch[0] // 2, *event_out.as_list()]:
                raise BijectorCheckError(f"{name}: forward of x with two batch axes "
                                         f"{x2.shape.as_list()} gave {fwd2.shape.as_list()} "
                                         f"[{dtype.name}].")
            _compare("forward with two batch axes", tf.reshape(fwd2, fwd.shape), fwd, rtol,
                     atol, dtype, name)
            _compare("forward_log_det_jacobian with two batch axes",
                     tf.reshape(tf.broadcast_to(fldj2, [2, batch[0] // 2]), [-1]),
                     fldj_full, rtol, atol, dtype, name)

    # 6. SavedModel.
    if saved_model:
        if batch_bij.rank == 0:
            errs["saved_model"] = _saved_model_roundtrip(bij, x, y_in, nd, dtype, name)
    return errs
