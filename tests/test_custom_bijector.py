"""Writing your own trainable bijector: the documented example runs as written (checked,
trained, saved), and each usual mistake gets one clear message."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import tfp_flows
from tfp_flows.bijectors import as_parameter, trainable_parameter
from tfp_flows.serialization import NotSerializableError

tfb, tfd = tfp.bijectors, tfp.distributions

# ---------------------------------------------------------------------------- the example
# (the docs' snippet, verbatim from here to the end marker)
EXAMPLE = '''
import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

import tfp_flows
from tfp_flows.bijectors import as_parameter, trainable_parameter

tfb, tfd = tfp.bijectors, tfp.distributions


@tfp_flows.serialization.register_serializable(name="my_flows.MySinhArcsinh")
class MySinhArcsinh(tfb.Bijector):
    """y = sinh(skew + tailweight * asinh(x)), elementwise (Jones & Pewsey 2009)."""

    def __init__(self, skew, tailweight, validate_args=False, name="my_sinh_arcsinh"):
        parameters = dict(locals())              # (1) lets a .keras file save the bijector
        self._skew = as_parameter(skew)          # (2) keeps a variable as a variable
        self._tailweight = as_parameter(tailweight)
        super().__init__(forward_min_event_ndims=0, dtype=self._skew.dtype,
                         validate_args=validate_args, parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype):       # both act elementwise (batch shapes)
        return {"skew": tfp.util.ParameterProperties(),
                "tailweight": tfp.util.ParameterProperties()}

    def _params(self):                           # (3) read the values where they are used
        return tf.convert_to_tensor(self._skew), tf.convert_to_tensor(self._tailweight)

    def _forward(self, x):
        skew, tailweight = self._params()
        return tf.sinh(skew + tailweight * tf.asinh(x))

    def _inverse(self, y):
        skew, tailweight = self._params()
        return tf.sinh((tf.asinh(y) - skew) / tailweight)

    def _forward_log_det_jacobian(self, x):
        skew, tailweight = self._params()
        u = tf.abs(skew + tailweight * tf.asinh(x))
        log_cosh = u + tf.math.softplus(-2.0 * u) - np.log(2.0).astype(x.dtype.as_numpy_dtype)
        return log_cosh + tf.math.log(tailweight) - 0.5 * tf.math.log1p(tf.square(x))


# Check the maths: inverse, log-det against autodiff, shapes, dtypes, SavedModel.
rng = np.random.default_rng(0)
report = tfp_flows.testing.check_bijector(
    lambda dtype: MySinhArcsinh(tf.constant([0.3, -0.2], dtype), tf.constant([1.5, 0.7], dtype)),
    rng.normal(size=(64, 2)))
print(report)

# Trainable parameters: skew anywhere, tailweight > 0 (softplus), one per dimension.
bijector = MySinhArcsinh(trainable_parameter([0.0, 0.0], name="skew"),
                       trainable_parameter([1.0, 1.0], constraint="positive",
                                           name="tailweight"))
flow = tfd.TransformedDistribution(tfd.Sample(tfd.Normal(0.0, 1.0), [2]), bijector)
model = tfp_flows.FlowModel(flow)
model.compile(optimizer=keras.optimizers.Adam(0.05))

truth = MySinhArcsinh(tf.constant([0.5, -0.5]), tf.constant([1.5, 0.8]))
data = truth(rng.normal(size=(4000, 2)).astype("float32")).numpy()
model.fit(data, epochs=40, batch_size=250, verbose=0)
print("skew", bijector._skew.numpy(), "tailweight", bijector._tailweight.numpy())

model.save("sinh_arcsinh.keras")
loaded = keras.saving.load_model("sinh_arcsinh.keras")
np.testing.assert_allclose(loaded.log_prob(data[:5]), model.log_prob(data[:5]), rtol=1e-6)
'''
# (end of the docs' snippet)


def test_documented_example_checks_trains_and_saves(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "docs_example"}
    exec(compile(EXAMPLE, "custom_bijector_example", "exec"), namespace)  # noqa: S102
    report, bijector, model = namespace["report"], namespace["bijector"], namespace["model"]
    assert set(report.errors) == {"float32", "float64"}
    # Trained: the maximum-likelihood parameters of the data's own transform.
    np.testing.assert_allclose(bijector._skew.numpy(), [0.5, -0.5], atol=0.15)
    np.testing.assert_allclose(bijector._tailweight.numpy(), [1.5, 0.8], atol=0.15)
    assert len(model.trainable_variables) == 2
    # Its fit is as good as the truth's own density on the data.
    data = namespace["data"]
    truth = tfd.TransformedDistribution(tfd.Sample(tfd.Normal(0.0, 1.0), [2]),
                                        namespace["truth"])
    gap = float(np.mean(truth.log_prob(data)) - np.mean(model.log_prob(data)))
    assert gap < 0.01
    assert (tmp_path / "sinh_arcsinh.keras").exists()


# ---------------------------------------------------------------------------- mistakes
BASE = tfd.Sample(tfd.Normal(0.0, 1.0), [2])


class Scale(tfb.Bijector):
    """A scaling bijector written the right way; subclasses make one usual mistake each."""

    read_once = False
    with_parameters = True

    def __init__(self, scale, validate_args=False, name="my_scale"):
        parameters = dict(locals()) if self.with_parameters else None
        self._scale = tf.convert_to_tensor(scale) if self.read_once else as_parameter(scale)
        super().__init__(forward_min_event_ndims=0, dtype=tf.float32,
                         validate_args=validate_args, parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype):
        return {"scale": tfp.util.ParameterProperties()}

    def get_config(self):
        return self.parameters

    def _forward(self, x):
        return tf.convert_to_tensor(self._scale) * x

    def _inverse(self, y):
        return y / tf.convert_to_tensor(self._scale)

    def _forward_log_det_jacobian(self, x):
        return tf.math.log(tf.abs(tf.convert_to_tensor(self._scale))) + tf.zeros_like(x)


class ScaleReadOnce(Scale):
    read_once = True


class ScaleWithoutParameters(Scale):
    with_parameters = False


def test_keras_registered_bijector_saves_and_loads(tmp_path):
    cls = keras.saving.register_keras_serializable(package="test_custom_bijector")(Scale)
    model = tfp_flows.FlowModel(tfd.TransformedDistribution(
        BASE, cls(trainable_parameter([0.5, 2.0], constraint="positive", name="scale"))))
    config = model.get_config()
    assert config["distribution"]["parameters"]["bijector"]["class"] == \
        "keras:test_custom_bijector>Scale"
    model.distribution.bijector._scale.assign([0.7, 3.0])
    model.save(str(tmp_path / "scale.keras"))
    loaded = keras.saving.load_model(str(tmp_path / "scale.keras"))
    x = np.array([[0.3, -1.2], [2.0, 0.1]], np.float32)
    np.testing.assert_allclose(loaded.log_prob(x), model.log_prob(x), rtol=1e-6)
    np.testing.assert_allclose(loaded.distribution.bijector._scale.numpy(), [0.7, 3.0],
                               rtol=1e-6)


def test_bijector_without_parameters_says_how_to_pass_them(tmp_path):
    cls = tfp_flows.serialization.register_serializable(ScaleWithoutParameters)
    model = tfp_flows.FlowModel(tfd.TransformedDistribution(BASE, cls(tf.Variable([1.0, 2.0]))))
    path = tmp_path / "scale.keras"
    with pytest.raises(NotSerializableError,
                       match=r"parameters = dict\(locals\(\)\).*super\(\).__init__"):
        model.save(str(path))
    assert not path.exists()


def test_bijector_reading_its_variable_once_is_refused_with_the_fix():
    cls = ScaleReadOnce
    for scale in (tf.Variable([1.0, 2.0], name="scale"),
                  trainable_parameter([1.0, 2.0], constraint="positive", name="scale")):
        with pytest.raises(ValueError, match=r"scale:0 \(held by ScaleReadOnce 'my_scale'\).*reads "
                                             r"the variable's value once.*as_parameter"):
            tfp_flows.FlowModel(tfd.TransformedDistribution(BASE, cls(scale)))


def test_trainable_parameter_constraints_and_clear_errors():
    unconstrained = trainable_parameter([-1.0, 2.0], name="shift")
    assert isinstance(unconstrained, tf.Variable) and unconstrained.dtype == tf.float32
    positive = trainable_parameter(np.array([1e-3, 5.0]), constraint="positive")
    assert positive.dtype == tf.float64  # the array's own dtype
    np.testing.assert_allclose(positive.numpy(), [1e-3, 5.0], rtol=1e-10)
    positive.pretransformed_input.assign([-50.0, 50.0])  # any update stays in the domain
    assert np.all(positive.numpy() > 0)
    unit = trainable_parameter(0.25, constraint="unit_interval", dtype="float32")
    np.testing.assert_allclose(unit.numpy(), 0.25, rtol=1e-6)
    custom = trainable_parameter(3.0, constraint=tfb.Exp())
    np.testing.assert_allclose(custom.numpy(), 3.0, rtol=1e-6)
    with pytest.raises(ValueError, match="must be > 0 for constraint='positive'"):
        trainable_parameter([1.0, 0.0], constraint="positive", name="scale")
    with pytest.raises(ValueError, match="must be in \\(0, 1\\)"):
        trainable_parameter(1.5, constraint="unit_interval")
    with pytest.raises(ValueError, match="constraint must be None, 'positive'"):
        trainable_parameter(1.0, constraint="softplus")
    with pytest.raises(ValueError, match="cannot reach the initial value"):
        trainable_parameter(-1.0, constraint=tfb.Exp())
    # as_parameter keeps variables, converts the rest.
    assert as_parameter(unconstrained) is unconstrained and as_parameter(positive) is positive
    assert as_parameter([1, 2]).dtype == tf.float32
    with pytest.raises(TypeError, match="is float64 but the bijector needs float32"):
        as_parameter(positive, dtype=tf.float32)
