"""tfp_flows.testing.check_bijector: passes correct bijectors, catches each kind of fault."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402

from tfp_flows.testing import (  # noqa: E402
    BijectorCheckError,
    BijectorCheckReport,
    check_bijector,
)

tfb = tfp.bijectors
X = np.random.default_rng(0).standard_normal((8, 2))
# MixtureCDF maps onto (0, 1)^n: its inverse is checked there (outside it is -inf by design)
INVERSE_DOMAIN_POINTS = {"MixtureCDF": np.random.default_rng(2).uniform(0.05, 0.95, (8, 2))}
_UNTRACKED = []  # a variable reached only through a global, filled by the test below


class _Affine(tfb.Bijector):
    """y = 2 x + 1 elementwise, with switches that plant one fault each."""

    def __init__(self, fault=None, name="affine"):
        self.fault = fault
        super().__init__(forward_min_event_ndims=0, name=name, parameters=dict(fault=fault))

    def _forward(self, x):
        if self.fault == "nan":
            return tf.where(x > 1.0, tf.constant(np.nan, x.dtype), 2.0 * x + 1.0)
        if self.fault == "dtype":
            return tf.cast(2.0 * x + 1.0, tf.float16)
        if self.fault == "mixes_batch":  # each row gets the batch mean added: not per-example
            return 2.0 * x + 1.0 + 0.1 * tf.reduce_mean(x, axis=0)
        if self.fault == "untracked":  # state outside the object graph: SavedModel fails
            return 2.0 * x + tf.cast(_UNTRACKED[0], x.dtype)
        return 2.0 * x + 1.0

    def _inverse(self, y):
        if self.fault == "inverse":
            return (y - 1.0) / 2.0 + 1e-3 * y  # slightly wrong
        if self.fault == "mixes_batch":
            return (y - 1.0) / 2.0
        return (y - 1.0) / 2.0

    def _forward_log_det_jacobian(self, x):
        if self.fault == "fldj":
            return tf.fill(tf.shape(x), tf.constant(np.log(2.0) + 0.01, x.dtype))
        return tf.fill(tf.shape(x), tf.constant(np.log(2.0), x.dtype))

    def _inverse_log_det_jacobian(self, y):
        if self.fault == "ildj":
            return tf.fill(tf.shape(y), tf.constant(np.log(2.0), y.dtype))  # sign wrong
        return tf.fill(tf.shape(y), tf.constant(-np.log(2.0), y.dtype))


def test_correct_bijectors_pass_with_report():
    report = check_bijector(_Affine(), X)
    assert isinstance(report, BijectorCheckReport)
    assert set(report.errors) == {"float32", "float64"}  # dtype-free: both are checked
    assert report.errors["float64"]["inverse(forward(x))"] < 1e-12
    assert report.errors["float64"]["forward_log_det_jacobian"] < 1e-12
    assert "all checks passed" in str(report)
    # TFP's own bijectors, including one with a batch shape and a 2-event-dim one.
    check_bijector(tfb.Exp(), X, y=np.abs(X) + 0.1)
    check_bijector(tfb.Scale(tf.constant([0.5, 3.0], tf.float64)), X)
    report = check_bijector(tfb.Shift(tf.constant([[1.0, 2.0], [3.0, 4.0]], tf.float64)),
                            X.reshape(8, 1, 2), event_ndims=1)  # batch [8, 1] x [2]
    assert report.errors["float64"]["forward(inverse(y))"] < 1e-12
    check_bijector(tfb.ScaleMatvecTriL(tf.constant([[1.0, 0.0], [0.5, 2.0]])), X)
    check_bijector(tfb.Sigmoid(), X, y=0.5 + 0.4 * np.tanh(X), saved_model=False)


@pytest.mark.parametrize("fault, pattern", [
    ("fldj", r"forward_log_det_jacobian\(x\) == log\|det\(autodiff Jacobian\)\|"),
    ("inverse", r"inverse\(forward\(x\)\) == x"),
    ("ildj", r"inverse_log_det_jacobian\(forward\(x\)\) == -forward_log_det_jacobian"),
    ("nan", r"forward\(x\) \[float32\] is not finite"),
    ("dtype", r"forward returned float16 for float32 inputs"),
    ("mixes_batch", r"forward\(x\[:1\]\) == forward\(x\)\[:1\]|inverse\(forward"),
    ("untracked", r"SavedModel round trip \[float32\] failed"),
])
def test_each_fault_is_caught_with_a_precise_message(fault, pattern):
    if not _UNTRACKED:
        _UNTRACKED.append(tf.Variable(1.0))
    with pytest.raises(BijectorCheckError, match=pattern):
        check_bijector(_Affine(fault), X, dtypes=[tf.float32])


def test_error_message_names_index_values_and_tolerance():
    with pytest.raises(BijectorCheckError) as info:
        check_bijector(_Affine("inverse"), X, dtypes=[tf.float64])
    msg = str(info.value)
    assert "_Affine('affine')" in msg and "float64" in msg
    assert "failed at index [" in msg and "atol 1e-08" in msg and "entries fail" in msg


def test_tolerances_are_applied_per_dtype():
    # The 1e-3 relative inverse error passes with a loose tolerance only.
    report = check_bijector(_Affine("inverse"), X, rtol=1e-2, atol=1e-2,
                            dtypes=[tf.float32], saved_model=False)
    assert 1e-4 < report.errors["float32"]["inverse(forward(x))"] < 1e-2
    with pytest.raises(BijectorCheckError):
        check_bijector(_Affine("inverse"), X, rtol={"float64": 1e-2}, atol={"float64": 1e-2},
                       dtypes=[tf.float64, tf.float32], saved_model=False)


def test_cache_is_bypassed():
    # TFP's cache would make inverse(forward(x)) return x for any inverse; the check must
    # call _inverse for real, so a bijector with a wrong inverse fails even on cached pairs.
    b = _Affine("inverse")
    x = tf.constant(X)
    y = b.forward(x)
    assert np.array_equal(b.inverse(y).numpy(), X)  # the cache hides the fault
    with pytest.raises(BijectorCheckError, match="inverse"):
        check_bijector(b, X, dtypes=[tf.float64], saved_model=False)


def test_factory_and_bad_arguments():
    made = []

    def factory(dtype):
        made.append(dtype)
        return tfb.Scale(tf.constant(2.0, dtype))

    check_bijector(factory, X)
    assert made == [tf.float32, tf.float64]
    with pytest.raises(TypeError, match="tfb.Bijector or a callable"):
        check_bijector("not a bijector", X)
    with pytest.raises(ValueError, match="batch axis"):
        check_bijector(tfb.Scale(2.0), np.zeros(2))
    with pytest.raises(BijectorCheckError, match="bijector's dtype is float64"):
        check_bijector(tfb.Scale(tf.constant(2.0, tf.float64)), X, dtypes=[tf.float32])


def _package_bijectors():
    import inspect

    import tfp_flows.bijectors as package

    return sorted(name for name, cls in vars(package).items()
                  if inspect.isclass(cls) and hasattr(cls, "trainable"))


# PReLU, Radial, SOS and Residual get fuller checks (both dtypes, extreme parameters,
# SavedModel) in tests/bijectors/; here every bijector of the package is swept once.
@pytest.mark.parametrize("name", _package_bijectors())
def test_every_package_bijector_passes_at_perturbed_parameters(name):
    import tfp_flows.bijectors as package

    bijector = getattr(package, name).trainable(2, seed=0, dtype=tf.float64)
    rng = np.random.default_rng(1)
    for v in bijector.trainable_variables:  # move away from the identity start
        v.assign(v + 0.3 * rng.standard_normal(v.shape))
    y = INVERSE_DOMAIN_POINTS.get(name)  # bijectors whose range is not all of R^n
    report = check_bijector(bijector, X, y=y, saved_model=False)
    assert report.errors["float64"]["forward_log_det_jacobian"] < 1e-8
