"""TF Serving's predict requests, answered locally from an exported SavedModel.

TF Serving (`tensorflow_model_server`) turns a REST or gRPC predict request into one tensor
per input of the named signature, runs the signature and sends the outputs back. These
functions do the same in-process, with the same request and response layouts, so a client's
payloads can be tested against an export without a server:

* REST, `POST /v1/models/<name>[/versions/<v>]:predict` with a JSON body:
  - row format `{"signature_name": ..., "instances": [...]}`: one entry per example; with one
    input, the entries are the examples themselves, with several, objects {input: value}
    (each input then gains a batch axis, so `sample`, whose inputs are a scalar and a
    seed, takes the columnar format);
    answered with `{"predictions": [...]}` (one entry per example; objects {output: value}
    when the signature has several outputs).
  - columnar format `{"signature_name": ..., "inputs": value or {input: value}}`, answered
    with `{"outputs": value or {output: value}}`.
  JSON numbers take the signature's dtype (as TF Serving converts them).
* gRPC, `PredictionService.Predict` with a `tensorflow.serving.PredictRequest` whose
  `inputs` are `TensorProto`s (`tf.make_tensor_proto`); the response's `outputs` are too.

`signature_name` defaults to "serving_default", as in TF Serving.
"""

import numpy as np
import tensorflow as tf

DEFAULT_SIGNATURE = "serving_default"


def _signature(loaded, name):
    name = name or DEFAULT_SIGNATURE
    if name not in loaded.signatures:
        raise ValueError(f"The SavedModel has no signature {name!r}; it has "
                         f"{', '.join(sorted(loaded.signatures))}.")
    return loaded.signatures[name]


def input_specs(signature):
    """{input name: tf.TensorSpec} of a loaded signature function."""
    return dict(signature.structured_input_signature[1])


def _tensor(value, spec, name):
    try:
        array = np.asarray(value, dtype=spec.dtype.as_numpy_dtype)
    except (TypeError, ValueError) as e:
        raise ValueError(f"Input {name!r}: cannot convert {value!r:.80} to "
                         f"{spec.dtype.name}: {e}") from e
    return tf.constant(array)


def _named(values, specs, what):
    missing, extra = set(specs) - set(values), set(values) - set(specs)
    if missing or extra:
        raise ValueError(f"{what}: the signature takes the inputs {sorted(specs)}; "
                         f"got {sorted(values)}.")
    return {name: _tensor(values[name], specs[name], name) for name in specs}


def tensors_from_rest_request(payload, signature):
    """The input tensors TF Serving builds from a REST predict body (a dict or JSON text)."""
    if isinstance(payload, (str, bytes)):
        import json

        payload = json.loads(payload)
    specs = input_specs(signature)
    if ("instances" in payload) == ("inputs" in payload):
        raise ValueError('A predict request holds exactly one of "instances" (row format) '
                         'and "inputs" (columnar format).')
    if "inputs" in payload:
        inputs = payload["inputs"]
        if len(specs) == 1 and not (isinstance(inputs, dict) and set(inputs) == set(specs)):
            inputs = {next(iter(specs)): inputs}
        if not isinstance(inputs, dict):
            raise ValueError(f'"inputs" must be an object naming the inputs {sorted(specs)}.')
        return _named(inputs, specs, '"inputs"')
    instances = payload["instances"]
    if not isinstance(instances, list) or not instances:
        raise ValueError('"instances" must be a non-empty list, one entry per example.')
    if len(specs) == 1:
        name = next(iter(specs))
        if all(isinstance(i, dict) and set(i) == {name} for i in instances):
            instances = [i[name] for i in instances]
        return {name: _tensor(instances, specs[name], name)}
    if not all(isinstance(i, dict) for i in instances):
        raise ValueError(f"This signature has several inputs {sorted(specs)}: each instance "
                         f"must be an object naming them.")
    columns = {name: [i.get(name) for i in instances] for name in specs}
    if any(None in column for column in columns.values()) or any(
            set(i) - set(specs) for i in instances):
        raise ValueError(f"Every instance must name exactly the inputs {sorted(specs)}.")
    return {name: _tensor(column, specs[name], name) for name, column in columns.items()}


def rest_response(outputs, payload):
    """The JSON-able response body TF Serving sends for `outputs` ({name: tensor})."""
    values = {k: np.asarray(v).tolist() for k, v in outputs.items()}
    if "inputs" in payload:
        return {"outputs": next(iter(values.values())) if len(values) == 1 else values}
    if len(values) == 1:
        return {"predictions": next(iter(values.values()))}
    batch = len(next(iter(values.values())))
    return {"predictions": [{k: v[i] for k, v in values.items()} for i in range(batch)]}


def predict_rest(loaded, payload):
    """Answer a REST predict body (dict or JSON text) with `loaded` = tf.saved_model.load(...)."""
    if isinstance(payload, (str, bytes)):
        import json

        payload = json.loads(payload)
    signature = _signature(loaded, payload.get("signature_name"))
    outputs = signature(**tensors_from_rest_request(payload, signature))
    return rest_response(outputs, payload)


def tensors_from_grpc_request(request, signature):
    """The input tensors of a `PredictRequest` (its TensorProtos), checked against names."""
    specs = input_specs(signature)
    values = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
    missing, extra = set(specs) - set(values), set(values) - set(specs)
    if missing or extra:
        raise ValueError(f"PredictRequest.inputs: the signature takes {sorted(specs)}; got "
                         f"{sorted(values)}.")
    return {name: tf.constant(value) for name, value in values.items()}


def predict_grpc(loaded, request):
    """Answer a `tensorflow_serving.apis.predict_pb2.PredictRequest` as TF Serving would;
    returns a `PredictResponse` (needs the `tensorflow-serving-api` package)."""
    from tensorflow_serving.apis import predict_pb2

    signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
    signature = _signature(loaded, signature_name)
    outputs = signature(**tensors_from_grpc_request(request, signature))
    response = predict_pb2.PredictResponse()
    response.model_spec.CopyFrom(request.model_spec)
    response.model_spec.signature_name = signature_name
    for name, value in outputs.items():
        response.outputs[name].CopyFrom(tf.make_tensor_proto(value.numpy()))
    return response
