"""The `tfp-flows` command line (also `python -m tfp_flows`).

    tfp-flows list                                  # the zoo's models, the built-in data
    tfp-flows train [--model maf] [--data two-moons] [--epochs 40] ...
    tfp-flows evaluate --run-dir runs/maf-two-moons
    tfp-flows sample   --run-dir runs/maf-two-moons -n 1000 --out samples.npy
    tfp-flows export   --run-dir runs/maf-two-moons [--export-dir saved_models]
    tfp-flows plot     --run-dir runs/maf-two-moons

`train` fits a zoo recipe on a built-in data set or a .npy/.csv file with a Keras progress
bar, keeps the best weights (by validation NLL), reports the test NLL, and writes a run
folder (config.json, history.json, best.weights.h5, figures) and, unless --no-export, a
SavedModel to <export-dir>/<model>/<next version>/. The other commands work from a run
folder: they rebuild the model from config.json and load best.weights.h5.
"""

import argparse
import json
import os
import sys


class UsageError(Exception):
    """A command line that names something that does not exist (printed, exit status 2)."""


def _parser():
    parser = argparse.ArgumentParser(prog="tfp-flows", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the zoo's models and the built-in data sets")
    train = sub.add_parser("train", help="train a zoo model")
    train.add_argument("--model", default="maf", help="zoo recipe (see `tfp-flows list`)")
    train.add_argument("--data", default=None,
                       help="built-in data set, or a .npy / .csv file (rows are examples); "
                            "default: the model's own (two-moons for most)")
    train.add_argument("--num-points", type=int, default=10000,
                       help="size of a generated 2-D data set")
    # None: the recipe's default for the data set, else TRAINING_DEFAULTS
    train.add_argument("--epochs", type=int, default=None, help="default: 40 or the recipe's")
    train.add_argument("--batch-size", type=int, default=None,
                       help="default: 256 or the recipe's")
    train.add_argument("--learning-rate", type=float, default=None,
                       help="default: 2e-3 or the recipe's")
    train.add_argument("--clip-norm", type=float, default=5.0,
                       help="Adam's global_clipnorm: rescale each step's gradients to this "
                            "global norm at most (0: off). Default 5: the default MAF on two "
                            "moons reached test NLL 1.74 / 1.82 with it, 2.05 / 1.92 without "
                            "(seeds 0 / 1; a loss spike to 4666 in the first)")
    train.add_argument("--num-layers", type=int, default=None)
    train.add_argument("--hidden-units", type=int, nargs="+", default=None)
    train.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                       help="any keyword argument of the recipe's builder, e.g. --option "
                            "num_steps=8 for glow (VALUE is read as JSON, else as a string); "
                            "repeatable")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--jit-compile", choices=["auto", "true", "false"], default="auto",
                       help="XLA for the train step ('auto': Keras decides; on with a GPU)")
    train.add_argument("--tensorboard", action="store_true",
                       help="write TensorBoard logs to <run-dir>/tensorboard")
    train.add_argument("--run-dir", default=None, help="default: runs/<model>-<data>")
    train.add_argument("--export-dir", default="saved_models")
    train.add_argument("--no-export", action="store_true")
    train.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2])
    for name, text in (("evaluate", "test NLL of a trained run"),
                       ("sample", "draw samples from a trained run"),
                       ("export", "export a trained run as a SavedModel"),
                       ("plot", "redraw a trained run's figures")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--run-dir", required=True)
        if name == "sample":
            cmd.add_argument("-n", "--num-samples", type=int, default=1000)
            cmd.add_argument("--seed", type=int, default=0)
            cmd.add_argument("--out", default=None, help="default: <run-dir>/samples.npy")
            cmd.add_argument("--context", type=float, nargs="+", default=None,
                             help="conditional runs: the context (observation) to sample "
                                  "at; default: the first test row's")
        if name == "export":
            cmd.add_argument("--export-dir", default="saved_models")
    return parser


def _list():
    from tfp_flows import datasets, models

    print("models:")
    for name, recipe in models.RECIPES.items():
        print(f"  {name:14s} {recipe.description} [default data: {recipe.default_data}]")
    print("data sets (or pass a .npy / .csv file):")
    for name, (_, description) in sorted({**datasets.DATASETS,
                                          **datasets.CONDITIONAL_DATASETS}.items()):
        print(f"  {name:14s} {description}")
    return 0


def _load_data(config):
    """(train, validation, test) for a run's config, shaped for its model."""
    from tfp_flows import datasets

    name = config["data"]
    if os.path.splitext(name)[1] in (".npy", ".csv"):
        parts = datasets.train_val_test(datasets.load_file(name), seed=config["seed"])
    else:  # dequantizing recipes (and vector ones on the digits) take integer levels
        parts = datasets.load(name, config["num_points"], seed=config["seed"],
                              dequantize=_levels_dequantized_per_step(config) is None)
    from tfp_flows.models import IMAGE_RECIPES

    if config["model"] not in IMAGE_RECIPES:  # vector recipes see flattened events
        parts = tuple(_flat_rows(p) for p in parts)
    return parts


# Conditional data sets (datasets.CONDITIONAL_DATASETS) give each part as a pair
# (context, x): the model learns p(x | context) with fit(context, x).
def _flat_rows(part):
    if isinstance(part, tuple):
        return tuple(_flat_rows(p) for p in part)
    return part.reshape(len(part), -1)


def _events(part):
    """The modelled data of a part: x of a (context, x) pair, else the part itself."""
    return part[1] if isinstance(part, tuple) else part


def _context_size(config, train):
    """The context size of a conditional data set (None otherwise), checking that the
    recipe has a conditional form."""
    import inspect

    from tfp_flows import models

    if not isinstance(train, tuple):
        return None
    if "context_size" not in inspect.signature(models.RECIPES[config["model"]].build).parameters:
        conditional = [n for n, r in models.RECIPES.items()
                       if "context_size" in inspect.signature(r.build).parameters]
        raise UsageError(f"{config['data']} is a conditional data set (context, x), but "
                         f"model {config['model']!r} has no conditional form; use one of: "
                         f"{', '.join(conditional)}.")
    return int(train[0].shape[1])


def _resolve_defaults(config):
    """Fill the settings left unset on the command line: the recipe's defaults for the data
    set first, then TRAINING_DEFAULTS. The resolved values are what config.json records."""
    from tfp_flows import models

    if config["model"] not in models.RECIPES:
        raise UsageError(f"Unknown model {config['model']!r}; the zoo has: "
                         f"{', '.join(models.RECIPES)}.")
    recipe = models.RECIPES[config["model"]]
    if config.get("data") is None:
        config["data"] = recipe.default_data
    data_name = os.path.splitext(os.path.basename(config["data"]))[0]
    options, training = recipe.defaults(data_name)
    for key, value in {**TRAINING_DEFAULTS, **training}.items():
        if config.get(key) is None:
            config[key] = value
    config["recipe_options"] = options
    return config


TRAINING_DEFAULTS = {"epochs": 40, "batch_size": 256, "learning_rate": 2e-3}


def _levels_dequantized_per_step(config):
    """The number of levels when the run models integer data through a dequantization
    bound with fresh noise every step (recipes that dequantize themselves, and vector
    recipes on the digits, see `_build_model`), else None (continuous data; the digits are
    then dequantized once, for image recipes that take [0, 1] pixels)."""
    from tfp_flows import datasets, models

    recipe = models.RECIPES[config["model"]]
    if config["data"] == "digits" and (recipe.discrete or not recipe.image):
        return datasets.DIGIT_LEVELS
    return None


def _parse_options(pairs):
    """{name: value} of --option NAME=VALUE arguments (VALUE read as JSON, else a string)."""
    options = {}
    for pair in pairs or []:
        name, sep, text = pair.partition("=")
        if not sep or not name.isidentifier():
            raise UsageError(f"--option needs NAME=VALUE with NAME a keyword argument of the "
                             f"recipe's builder; got {pair!r}.")
        try:
            options[name] = json.loads(text)
        except json.JSONDecodeError:
            options[name] = text
    return options


def _builder_options(config):
    """The builder's keyword arguments for a run: the recipe's defaults for the data set,
    then the command line's; an option the builder does not take is a UsageError that
    lists the ones it does."""
    import inspect

    from tfp_flows import models

    options = {**config.get("recipe_options", {}), "seed": config["seed"]}
    given = {key: config[key] for key in ("num_layers", "hidden_units", "context_size")
             if config.get(key) is not None}
    given.update(_parse_options(config.get("option")))
    accepted = [name for name, p in inspect.signature(
        models.RECIPES[config["model"]].build).parameters.items()
        if p.kind == p.KEYWORD_ONLY]
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        flags = ", ".join(f"--{u.replace('_', '-')}" if u in ("num_layers", "hidden_units")
                          else u for u in unknown)
        raise UsageError(f"Model {config['model']!r} does not take {flags}; its builder's "
                         f"options are: {', '.join(accepted)} (set them with --option "
                         f"NAME=VALUE).")
    return {**options, **given}


def _build_model(config, event_shape):
    from tfp_flows import models
    from tfp_flows.models.building_blocks import on_discrete_levels

    options = _builder_options(config)
    image = config["model"] in models.IMAGE_RECIPES
    event = tuple(event_shape) if image else int(event_shape[0])
    model = models.build(config["model"], event, **options)
    levels = _levels_dequantized_per_step(config)
    if levels is not None and not models.RECIPES[config["model"]].discrete:
        model = on_discrete_levels(model, levels, seed=config["seed"])
    return model


def _restore(run_dir):
    """(config, model with its best weights, (train, val, test)) of a run folder."""
    with open(os.path.join(run_dir, "config.json")) as f:
        config = json.load(f)
    parts = _load_data(config)
    model = _build_model(config, _events(parts[0]).shape[1:])
    model.load_weights(os.path.join(run_dir, "best.weights.h5"))
    return config, model, parts


def _report_nll(model, test, config):
    import numpy as np

    from tfp_flows import datasets

    nll = float(-np.mean(model.predict(test, batch_size=4096, verbose=0)))
    dims = int(np.prod(_events(test).shape[1:]))
    line = f"test NLL: {nll:.4f} nats ({nll / (dims * np.log(2)):.4f} bits/dim)"
    if hasattr(model.distribution, "num_levels"):  # log_prob is the dequantization bound
        line += " = bits/dim of the discrete data (dequantization bound, one noise draw)"
    elif config["data"] == "digits":  # dequantised pixels: bound for the discrete data
        line += f"; discrete data: {datasets.discrete_bits_per_dim(nll, dims):.4f} bits/dim"
    print(line)
    return nll


def _report_posterior_kl(model, test, config, num_observations=20):
    """For a simulator with an analytic posterior: the mean KL(true || flow) over the first
    `num_observations` held-out observations (test contexts), or None."""
    from tfp_flows import datasets

    task = datasets.ANALYTIC_POSTERIORS.get(config["data"])
    if task is None:
        return None
    kl, stderr = task.kl_to_model(model, test[0][:num_observations], num_samples=2000)
    print(f"posterior KL(analytic || flow): {kl:.4f} +- {stderr:.4f} nats (mean over "
          f"{min(num_observations, len(test[0]))} held-out observations)")
    return kl


def _figures(model, config, train, history, run_dir, test=None):
    from tfp_flows import datasets
    from tfp_flows.plotting import (
        plot_density_2d,
        plot_history,
        plot_image_samples,
        plot_posterior_2d,
    )

    paths = []
    if history:
        paths.append(plot_history(history, os.path.join(run_dir, "history.png")))
    title = f"{config['model']} on {os.path.basename(config['data'])}"
    if isinstance(train, tuple):  # conditional: the flow at the first held-out context
        if train[1].shape[1] == 2:
            paths.append(plot_posterior_2d(
                model, test[0][0], os.path.join(run_dir, "posterior.png"),
                reference=datasets.ANALYTIC_POSTERIORS.get(config["data"])))
    elif train.ndim == 2 and train.shape[1] == 2:
        paths.append(plot_density_2d(model, train, os.path.join(run_dir, "density.png"),
                                     title=title))
    elif train.ndim == 4 or (train.ndim == 2 and train.shape[1] == 64):
        paths.append(plot_image_samples(model, train, os.path.join(run_dir, "samples.png"),
                                        title=title))
    for path in paths:
        print(f"figure: {path}")
    return paths


def _export(model, config, export_dir):
    from tfp_flows import export_saved_model, next_version_dir

    path = export_saved_model(model, next_version_dir(os.path.join(export_dir,
                                                                   config["model"])))
    print(f"SavedModel: {path}")
    return path


def _train(args):
    import keras

    keras.utils.set_random_seed(args.seed)
    config = _resolve_defaults(vars(args).copy())
    train, val, test = _load_data(config)
    config["context_size"] = _context_size(config, train)
    model = _build_model(config, _events(train).shape[1:])
    if not isinstance(train, tuple):  # Glow's data-dependent ActNorm init (no-op without)
        from tfp_flows.bijectors import initialize_actnorms

        initialize_actnorms(model, train[: config["batch_size"]])
    jit = {"auto": "auto", "true": True, "false": False}[args.jit_compile]
    clip = config.get("clip_norm") or None  # 0: off
    model.compile(optimizer=keras.optimizers.Adam(config["learning_rate"], global_clipnorm=clip),
                  jit_compile=jit)

    data_name = os.path.splitext(os.path.basename(config["data"]))[0]
    run_dir = args.run_dir or os.path.join("runs", f"{args.model}-{data_name}")
    os.makedirs(run_dir, exist_ok=True)
    config["run_dir"] = run_dir
    with open(os.path.join(run_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    best = os.path.join(run_dir, "best.weights.h5")
    callbacks = [keras.callbacks.ModelCheckpoint(best, monitor="val_loss", save_best_only=True,
                                                 save_weights_only=True)]
    if args.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(os.path.join(run_dir, "tensorboard")))
    inputs = train if isinstance(train, tuple) else (train,)  # (context, x) or (x,)
    history = model.fit(*inputs, epochs=config["epochs"], batch_size=config["batch_size"],
                        validation_data=val, callbacks=callbacks, verbose=args.verbose)
    if os.path.exists(best):
        model.load_weights(best)
    else:  # no finite validation loss ever: keep the final weights as "best"
        model.save_weights(best)
    test_nll = _report_nll(model, test, config)
    results = {"history": history.history, "test_nll": test_nll}
    posterior_kl = _report_posterior_kl(model, test, config)
    if posterior_kl is not None:
        results["posterior_kl"] = posterior_kl
    with open(os.path.join(run_dir, "history.json"), "w") as f:
        json.dump(results, f, indent=2)
    _figures(model, config, train, history.history, run_dir, test)
    if not args.no_export:
        _export(model, config, args.export_dir)
    return 0


def _from_run(args):
    import numpy as np

    config, model, (train, _, test) = _restore(args.run_dir)
    if args.command == "evaluate":
        _report_nll(model, test, config)
        _report_posterior_kl(model, test, config)
    elif args.command == "sample" and model.is_conditional:  # n samples at one context
        context = test[0][:1] if args.context is None else np.array([args.context], "float32")
        if context.shape[1] != config["context_size"]:
            raise UsageError(f"--context needs {config['context_size']} numbers; got "
                             f"{context.shape[1]}.")
        samples = np.asarray(model.sample(args.num_samples, context, seed=args.seed))[:, 0]
        out = args.out or os.path.join(args.run_dir, "samples.npy")
        np.save(out, samples)
        print(f"samples: {out} {samples.shape} at context {context[0].tolist()}")
    elif args.command == "sample":
        samples = np.asarray(model.sample(args.num_samples, seed=args.seed))
        out = args.out or os.path.join(args.run_dir, "samples.npy")
        np.save(out, samples)
        print(f"samples: {out} {samples.shape}")
    elif args.command == "export":
        _export(model, config, args.export_dir)
    else:
        history_path = os.path.join(args.run_dir, "history.json")
        history = None
        if os.path.exists(history_path):
            with open(history_path) as f:
                history = json.load(f)["history"]
        _figures(model, config, train, history, args.run_dir, test)
    return 0


def main(argv=None):
    args = _parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tfp_flows.data_checks import FlowDataError

    try:
        if args.command == "list":
            return _list()
        if args.command == "train":
            return _train(args)
        return _from_run(args)
    except (FlowDataError, FileNotFoundError, UsageError) as e:
        print(f"tfp-flows: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
