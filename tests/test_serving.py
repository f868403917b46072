"""TF Serving request formats: the documented REST and gRPC payloads (docs/saving-serving.md),
run through the same JSON/TensorProto -> tensors -> signature path as TF Serving, against a
live model."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tfp_flows import models, serving

README = Path(__file__).resolve().parents[1] / "docs" / "saving-serving.md"


def _readme_section():
    return README.read_text()


def _readme_rest_requests():
    """(model name, version or None, JSON body) of every curl command in the section."""
    pattern = re.compile(r"localhost:8501/v1/models/(\w+)(?:/versions/(\d+))?:predict \\\n"
                         r"\s+-d '(.+?)'\n")
    return [(name, version or None, json.loads(body))
            for name, version, body in pattern.findall(_readme_section())]


def _readme_grpc_code():
    blocks = re.findall(r"```python\n(.*?)```", _readme_section(), re.S)
    return "\n".join(b for b in blocks if "predict_pb2" in b or "stub.Predict" in b)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The README's model: a 2-D MAF exported as saved_models/maf/1."""
    model = models.build("maf", 2, num_layers=2, hidden_units=(8,), seed=0)
    for i, v in enumerate(model.trainable_variables):
        v.assign(v + 0.1 * tf.random.stateless_normal(v.shape, [i, 3]))
    path = model.export(str(tmp_path_factory.mktemp("saved_models") / "maf"))
    assert path.endswith("/maf/1")
    return model, tf.saved_model.load(path)


def _live_answer(model, body):
    """What the signature named in `body` must return, from the live model."""
    name = body.get("signature_name", "serving_default")
    inputs = body.get("inputs", body.get("instances"))
    if name in ("serving_default", "log_prob"):
        x = np.array(inputs["x"] if isinstance(inputs, dict) else inputs, np.float32)
        return {"log_prob": model.log_prob(x).numpy()}
    if name == "sample":
        return {"samples": model.sample(inputs["n"], seed=tf.constant(inputs["seed"])).numpy()}
    x = np.array(inputs["x"] if isinstance(inputs, dict) else inputs, np.float32)
    bijector = model.distribution.bijector
    if name == "forward":
        return {"y": bijector.forward(x).numpy(),
                "log_det": bijector.forward_log_det_jacobian(x, event_ndims=1).numpy()}
    return {"y": bijector.inverse(x).numpy(),
            "log_det": bijector.inverse_log_det_jacobian(x, event_ndims=1).numpy()}


def test_readme_rest_payloads_give_the_live_models_numbers(served):
    model, loaded = served
    requests = _readme_rest_requests()
    names = {body.get("signature_name", "serving_default") for _, _, body in requests}
    assert names == {"serving_default", "log_prob", "sample", "forward", "inverse"}
    assert {(name, version) for name, version, _ in requests} == {("maf", None), ("maf", "1")}
    for _, _, body in requests:
        response = json.loads(json.dumps(serving.predict_rest(loaded, json.dumps(body))))
        want = _live_answer(model, body)
        if "instances" in body:  # row format: one prediction per instance
            predictions = response["predictions"]
            assert len(predictions) == len(body["instances"])
            got = ({k: np.array([p[k] for p in predictions]) for k in want} if len(want) > 1
                   else {next(iter(want)): np.array(predictions)})
        else:
            outputs = response["outputs"]
            got = ({k: np.array(v) for k, v in outputs.items()} if len(want) > 1
                   else {next(iter(want)): np.array(outputs)})
        for key, value in want.items():
            assert got[key].shape == value.shape, (body, key)
            np.testing.assert_allclose(got[key], value, rtol=1e-6, atol=1e-6,
                                       err_msg=json.dumps(body))


def test_readme_grpc_requests_give_the_live_models_numbers(served):
    model, loaded = served
    code = _readme_grpc_code()
    namespace = {}
    exec(code[:code.index("stub = ")], namespace)  # build the requests; no server to call
    assert "stub.Predict(request" in code and "stub.Predict(sample_request" in code
    response = serving.predict_grpc(loaded, namespace["request"])
    x = np.array([[0.5, -0.2], [1.0, 0.3]], np.float32)
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["log_prob"]),
                               model.log_prob(x).numpy(), rtol=1e-6, atol=1e-6)
    response = serving.predict_grpc(loaded, namespace["sample_request"])
    np.testing.assert_array_equal(tf.make_ndarray(response.outputs["samples"]),
                                  model.sample(3, seed=7).numpy())
    assert response.model_spec.signature_name == "sample"


def test_bad_requests_get_clear_errors(served):
    _, loaded = served
    with pytest.raises(ValueError, match="no signature 'density'"):
        serving.predict_rest(loaded, {"signature_name": "density", "instances": [[0.0, 0.0]]})
    with pytest.raises(ValueError, match=r"takes the inputs \['n', 'seed'\]; got \['n'\]"):
        serving.predict_rest(loaded, {"signature_name": "sample", "inputs": {"n": 3}})
    # Row format gives every input a batch axis: n becomes [1] and seed [1, 2].
    with pytest.raises((TypeError, tf.errors.InvalidArgumentError), match="seed|input n"):
        serving.predict_rest(loaded, {"signature_name": "sample",
                                      "instances": [{"n": 3, "seed": [0, 7]}]})
    with pytest.raises(ValueError, match="exactly one of"):
        serving.predict_rest(loaded, {"instances": [[0.0, 0.0]], "inputs": [[0.0, 0.0]]})
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"shape \[batch, 2\]"):
        serving.predict_rest(loaded, {"instances": [[0.0, 0.0, 1.0]]})
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.signature_name = "log_prob"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto([[0.5, -0.2]], tf.float64))
    with pytest.raises(tf.errors.InvalidArgumentError, match="float tensor but is a double"):
        serving.predict_grpc(loaded, request)
