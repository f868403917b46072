"""Routing a context vector to the conditional parts of a flow: p(x | context).

A conditional flow is an ordinary TFP flow whose conditioners take an extra input, the
context c: `nets.MADE(..., context_size=k)`, `nets.CouplingMLP(..., context_size=k)`, TFP's
`tfb.AutoregressiveNetwork(..., conditional=True)`, or a bijector of ours with an
`is_conditional` attribute that is True. TFP's `MaskedAutoregressiveFlow` and `RealNVP`
pass extra keyword arguments to their conditioner, and `tfb.Chain` routes keyword arguments
to its parts by bijector name, so the context reaches a conditioner as

    dist.log_prob(x, bijector_kwargs={"maf_0": {"conditional_input": c},
                                      "maf_1": {"conditional_input": c}})

Writing such dicts by hand is error-prone; `context_kwargs(bijector, c)` builds them for
any nesting of `Chain` and `Invert`:

    dist.log_prob(x, bijector_kwargs=context_kwargs(dist.bijector, c))
    dist.bijector.forward(z, **context_kwargs(dist.bijector, c))

Names inside one Chain should be unique (TFP's rule); two parts with the same name both
receive the same context, which is harmless here since every conditional part takes the
same c.
"""

import tensorflow_probability as tfp

from tfp_flows.variable_discovery import find_trainables

tfb = tfp.bijectors

CONTEXT_KWARG = "conditional_input"


def is_conditional(bijector):
    """Whether a (non-composite) bijector takes the context keyword argument."""
    declared = getattr(bijector, "is_conditional", None)
    if isinstance(declared, bool):
        return declared
    found = find_trainables(bijector)
    if any(getattr(layer, "context_size", None) for layer in found.keras_layers):
        return True
    return _has_conditional_tf_keras_made(bijector)


def _has_conditional_tf_keras_made(bijector):
    nets = [getattr(bijector, "_shift_and_log_scale_fn", None)]
    return any(isinstance(n, tfb.AutoregressiveNetwork) and getattr(n, "_conditional", False)
               for n in nets)


def routing_template(bijector):
    """Nested dict mirroring where the context goes: True at each conditional leaf.

    Returns None when no part of `bijector` is conditional.
    """
    if isinstance(bijector, tfb.Invert):
        return routing_template(bijector.bijector)
    parts = getattr(bijector, "bijectors", None)
    if isinstance(bijector, tfb.Composition) and parts is not None:
        routes = {}
        for part in parts:
            sub = routing_template(part)
            if sub is not None:
                routes[part.name] = sub
        return routes or None
    return True if is_conditional(bijector) else None


def fill_template(template, context):
    """The kwargs dict for `template` (from `routing_template`) with `context` filled in."""
    if template is None:
        return {}
    if template is True:
        return {CONTEXT_KWARG: context}
    return {name: fill_template(sub, context) for name, sub in template.items()}


def context_kwargs(bijector, context):
    """Keyword arguments that deliver `context` to every conditional part of `bijector`."""
    return fill_template(routing_template(bijector), context)
