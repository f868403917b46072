"""The `tfp-flows` command line (also `python -m tfp_flows`).

    tfp-flows list                                  # the zoo's models, the built-in data
    tfp-flows train    [--model maf] [--data two-moons] [--epochs 40] ...
    tfp-flows evaluate --run-dir runs/maf-two-moons [--data other.csv]
    tfp-flows score    --run-dir runs/maf-two-moons --data points.csv --out logp.csv
    tfp-flows sample   --run-dir runs/maf-two-moons -n 1000 --out samples.csv
    tfp-flows export   --run-dir runs/maf-two-moons [--export-dir saved_models]
    tfp-flows plot     --run-dir runs/maf-two-moons

`train` fits a zoo recipe on a built-in data set or a .npy/.csv file (rows are examples),
keeps the best weights (by validation NLL), reports the test NLL and writes a run folder:
config.json (every setting, the data file's absolute path and sha256), history.json,
best.weights.h5 and figures. The other commands rebuild the model from config.json and load
best.weights.h5, and warn (one line) when the data file changed since training.

Run folders are never overwritten silently: without --run-dir a run goes to
runs/<model>-<data>, or runs/<model>-<data>-2, -3, ... when that holds a run (the command
says which); an explicit --run-dir that holds a run is refused unless --overwrite.

Exports: a SavedModel goes to <export-dir>/<model>-<data>/<next version>/ (e.g.
saved_models/maf-two-moons/1), so that versions of one model name, which TF Serving swaps
between, are the same model of the same data. A run whose signature (input names, shapes,
dtypes; conditional or not) differs from the newest version already under that name is not
exported there: the command refuses and names a free --export-name.

The data are standardised by default: the flow is fitted to (x - mean) / std of the training
data, and its densities, samples and exports are in the data's own units
(--no-standardize: off; image recipes and the digits' integer levels keep their own data
end). --bounds maps the flow onto bounded coordinates, e.g. --bounds positive or 0:1,0:inf.

A mistake on the command line or in a data file is reported as one line on stderr with exit
status 2. --help, --version and list answer without importing TensorFlow.
"""

import argparse
import hashlib
import importlib.util
import json
import math
import os
import re
import sys

EXIT_USAGE = 2
TRAINING_DEFAULTS = {"epochs": 40, "batch_size": 256, "learning_rate": 2e-3}
# The fewest rows a data set may have (datasets.MIN_SPLIT_ROWS, for the 80/10/10 split).
MIN_ROWS = 10
RUN_FILES = ("config.json", "history.json", "best.weights.h5", "history.png", "density.png",
             "corner.png", "samples.png", "posterior.png", "samples.npy", "samples.csv")
EXTRAS = {"tensorboard": 'pip install "tfp-flows[tensorboard]"',
          "sklearn": 'pip install "tfp-flows[data]"'}


class UsageError(Exception):
    """A mistake on the command line (printed as one line, exit status 2)."""


# ---------------------------------------------------------------------------------------
# Parsing: checks every value before anything heavy is imported.


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage block
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see: {self.prog} --help)\n")


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Appends each flag's default to its help (unless the help already names it)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default is argparse.SUPPRESS or not action.option_strings:
            return text
        if action.default is None:
            return text
        if action.default is False and action.nargs == 0:
            return f"{text} (default: off)"
        return f"{text} (default: %(default)s)"


def _number(kind, low=None, *, above=False, high=None):
    """An argparse type: a finite `kind` number >= low (> low when `above`), < high."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"needs a finite number; got {text}")
        if low is not None and (value <= low if above else value < low):
            raise argparse.ArgumentTypeError(f"must be {'>' if above else '>='} {low}; "
                                             f"got {text}")
        if high is not None and value >= high:
            raise argparse.ArgumentTypeError(f"must be < {high}; got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse's "invalid <name> value" fallback
    return parse


def _parser():
    from tfp_flows import __version__

    fmt = _HelpFormatter
    parser = _Parser(prog="tfp-flows", description=__doc__, formatter_class=fmt)
    parser.add_argument("--version", action="version", version=f"tfp-flows {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("list", help="list the zoo's models and the built-in data sets",
                   formatter_class=fmt)
    train = sub.add_parser("train", help="train a zoo model", formatter_class=fmt,
                           description="Train a zoo model and write a run folder.")
    train.add_argument("--model", default="maf", help="zoo recipe (see: tfp-flows list)")
    train.add_argument("--data", default=None,
                       help="built-in data set, or a .npy / .csv file (rows are examples, at "
                            f"least {MIN_ROWS}); default: the model's own (two-moons for most)")
    train.add_argument("--num-points", type=_number(int, MIN_ROWS), default=10000,
                       help="size of a generated data set (two-moons, sbi-gaussian-mean, ...)")
    # None: the recipe's default for the data set, else TRAINING_DEFAULTS
    train.add_argument("--epochs", type=_number(int, 1), default=None,
                       help=f"default: {TRAINING_DEFAULTS['epochs']} or the recipe's")
    train.add_argument("--batch-size", type=_number(int, 1), default=None,
                       help=f"default: {TRAINING_DEFAULTS['batch_size']} or the recipe's")
    train.add_argument("--learning-rate", type=_number(float, 0, above=True), default=None,
                       help=f"Adam's; default: {TRAINING_DEFAULTS['learning_rate']} or the "
                            "recipe's")
    train.add_argument("--clip-norm", type=_number(float, 0), default=5.0,
                       help="Adam's global_clipnorm: rescale each step's gradients to this "
                            "global norm at most (0: off); it keeps a rare large gradient "
                            "from undoing a run (an unclipped MAF on two moons once spiked "
                            "to a loss of 4666)")
    train.add_argument("--num-layers", type=_number(int, 1), default=None,
                       help="number of flow layers; default: the recipe's")
    train.add_argument("--hidden-units", type=_number(int, 1), nargs="+", default=None,
                       help="widths of the conditioner's hidden layers; default: the recipe's")
    train.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                       help="any keyword argument of the recipe's builder, e.g. --option "
                            "num_steps=8 for glow (VALUE is read as JSON, else as a string); "
                            "repeatable; default: none")
    train.add_argument("--no-standardize", action="store_true",
                       help="fit the flow to the raw data; by default it sees the training "
                            "data standardised to mean 0 and standard deviation 1 per "
                            "coordinate (its densities stay in the data's units)")
    train.add_argument("--bounds", default=None, type=_bounds_type,
                       help="the data's support, mapped onto the flow: 'positive' (every "
                            "coordinate > 0), 'unit' (every coordinate in (0, 1)), 'LO:HI' for "
                            "every coordinate, or one LO:HI per coordinate separated by commas "
                            "(inf, -inf or an empty side: unbounded), e.g. 0:1,0:inf,: ; "
                            "default: unbounded")
    train.add_argument("--seed", type=_number(int, 0, high=2**32), default=0,
                       help="seeds the weights, the data split and the batches")
    train.add_argument("--jit-compile", choices=["auto", "true", "false"], default="auto",
                       help="XLA for the train step ('auto': Keras decides; on with a GPU)")
    train.add_argument("--tensorboard", action="store_true",
                       help="write TensorBoard logs to <run-dir>/tensorboard (needs "
                            f"{EXTRAS['tensorboard']})")
    train.add_argument("--run-dir", default=None,
                       help="default: runs/<model>-<data>, or the first free "
                            "runs/<model>-<data>-<k>")
    train.add_argument("--overwrite", action="store_true",
                       help="replace the run in --run-dir (otherwise refused)")
    _export_flags(train)
    train.add_argument("--no-export", action="store_true", help="skip the SavedModel")
    train.add_argument("--verbose", choices=["auto", "0", "1", "2"], default="auto",
                       help="Keras' progress output: 0 none, 1 a progress bar, 2 a line per "
                            "epoch; auto: 1 on a terminal, else 2")

    def run_command(name, text, description):
        cmd = sub.add_parser(name, help=text, description=description, formatter_class=fmt)
        cmd.add_argument("--run-dir", required=True, help="a folder written by train")
        return cmd

    evaluate = run_command("evaluate", "test NLL of a trained run",
                           "Report the test NLL of a run (and the posterior KL of a "
                           "simulator with a known posterior).")
    evaluate.add_argument("--data", default=None,
                          help="a .npy / .csv file to score instead: the NLL of all its rows; "
                               "default: the run's own test split")
    score = run_command("score", "write the log-density of each row of a data file",
                        "Write log p(x) of each row of a data file, in nats, one per row. "
                        "Rows of a conditional run hold the context first, then x.")
    score.add_argument("--data", required=True, help="a .npy or .csv file")
    score.add_argument("--out", required=True,
                       help="output file: .npy (float array) or .csv (one number a line)")
    sample = run_command("sample", "draw samples from a trained run",
                         "Draw samples from a trained run.")
    sample.add_argument("-n", "--num-samples", type=_number(int, 1), default=1000,
                        help="number of samples")
    sample.add_argument("--seed", type=_number(int, 0, high=2**31), default=0,
                        help="sampling seed")
    sample.add_argument("--out", default=None,
                        help="output file, .npy or .csv (rows are samples); "
                             "default: <run-dir>/samples.npy")
    sample.add_argument("--context", type=_number(float), nargs="+", default=None,
                        help="conditional runs: the context (observation) to sample at; "
                             "default: the first test row's")
    export = run_command("export", "export a trained run as a SavedModel",
                         "Export a trained run as a TF SavedModel to "
                         "<export-dir>/<export-name>/<next version>/.")
    _export_flags(export)
    run_command("plot", "redraw a trained run's figures", "Redraw a trained run's figures.")
    return parser


def _export_flags(cmd):
    cmd.add_argument("--export-dir", default="saved_models",
                     help="the SavedModel folder for TF Serving")
    cmd.add_argument("--export-name", default=None,
                     help="the model name (folder) inside --export-dir; default: "
                          "<model>-<data>. Versions of one name must share the signature")


def _bounds_type(text):
    """--bounds text -> the builders' bounds=: "positive", one [low, high] for every
    coordinate, or a list of them, one per coordinate (None: that side unbounded)."""
    text = text.strip()
    if text == "positive":
        return text
    if text == "unit":
        return [0.0, 1.0]
    pairs = []
    for part in text.split(","):
        low, sep, high = part.partition(":")
        if not sep:
            raise argparse.ArgumentTypeError(
                f"{part!r} is not LO:HI; use e.g. 0:1, 0:inf, : or 'positive' / 'unit'")
        try:
            low = float(low) if low.strip() not in ("", "-inf") else None
            high = float(high) if high.strip() not in ("", "inf", "+inf") else None
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r}: LO and HI must be numbers") from None
        for value in (low, high):
            if value is not None and not math.isfinite(value):
                raise argparse.ArgumentTypeError(f"{part!r}: -inf only as LO, inf only as HI")
        if low is not None and high is not None and not low < high:
            raise argparse.ArgumentTypeError(f"{part!r}: LO must be below HI")
        pairs.append([low, high])
    return pairs[0] if len(pairs) == 1 else pairs  # one pair: every coordinate


# ---------------------------------------------------------------------------------------
# Checks that need no TensorFlow: names, files, extras, run folders.


def _is_file_data(name):
    return os.path.splitext(name)[1].lower() in (".npy", ".csv")


def _check_data_name(name):
    from tfp_flows import catalog

    if _is_file_data(name):
        if not os.path.isfile(name):
            raise UsageError(f"{name}: no such file.")
        return
    if name in catalog.DATASETS or name in catalog.CONDITIONAL_DATASETS:
        if name in catalog.SKLEARN_DATASETS and importlib.util.find_spec("sklearn") is None:
            raise UsageError(f"data set {name!r} comes with scikit-learn, which is not "
                             f"installed: {EXTRAS['sklearn']}")
        return
    if os.path.exists(name):
        raise UsageError(f"{name}: unsupported file type; use a .npy or .csv file.")
    known = ", ".join(sorted([*catalog.DATASETS, *catalog.CONDITIONAL_DATASETS]))
    raise UsageError(f"unknown data set {name!r}: not a built-in one ({known}) nor a "
                     f".npy / .csv file.")


def _holds_run(folder):
    return os.path.isfile(os.path.join(folder, "config.json"))


def _choose_run_dir(args, data_name):
    """The run folder for `train`: never one that holds a run, unless --overwrite."""
    if args.run_dir is not None:
        if _holds_run(args.run_dir) and not args.overwrite:
            raise UsageError(f"{args.run_dir} already holds a run; pass --overwrite to replace "
                             f"it, or another --run-dir ({_free_folder(args.run_dir)} is free).")
        if os.path.exists(args.run_dir) and not os.path.isdir(args.run_dir):
            raise UsageError(f"--run-dir {args.run_dir} is a file, not a folder.")
        return args.run_dir, None
    default = os.path.join("runs", f"{args.model}-{data_name}")
    if not _holds_run(default) or args.overwrite:
        return default, None
    return _free_folder(default), default


def _free_folder(path):
    k = 2
    while os.path.exists(f"{path}-{k}"):
        k += 1
    return f"{path}-{k}"


def _check_run_dir(run_dir):
    if not _holds_run(run_dir):
        what = "no such folder" if not os.path.isdir(run_dir) else "no config.json in it"
        raise UsageError(f"--run-dir {run_dir}: {what}; point it at a folder written by "
                         f"tfp-flows train.")
    if not os.path.isfile(os.path.join(run_dir, "best.weights.h5")):
        raise UsageError(f"--run-dir {run_dir}: no best.weights.h5 in it (did its training "
                         f"finish?).")


def _check_out(path, flag="--out"):
    if path is not None and os.path.splitext(path)[1].lower() not in (".npy", ".csv"):
        raise UsageError(f"{flag} {path}: name a .npy or .csv file.")


def _check_args(args):
    """Every check that needs no TensorFlow, so that these mistakes fail fast."""
    from tfp_flows import catalog

    if args.command == "list":
        return
    if args.command == "train":
        if args.model not in catalog.MODELS:
            raise UsageError(f"unknown model {args.model!r}; the zoo has: "
                             f"{', '.join(catalog.MODELS)}.")
        if args.data is None:
            args.data = catalog.MODELS[args.model].default_data
        _check_data_name(args.data)
        if args.tensorboard and importlib.util.find_spec("tensorboard") is None:
            raise UsageError(f"--tensorboard needs the tensorboard package: "
                             f"{EXTRAS['tensorboard']}")
        _parse_options(args.option)
        args.run_dir, taken = _choose_run_dir(args, _data_stem(args.data))
        args.taken_run_dir = taken
        return
    _check_run_dir(args.run_dir)
    if getattr(args, "data", None) is not None:
        if not _is_file_data(args.data):
            raise UsageError(f"--data {args.data}: name a .npy or .csv file.")
        _check_data_name(args.data)
    _check_out(getattr(args, "out", None))


def _data_stem(name):
    return os.path.splitext(os.path.basename(name))[0]


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _list():
    from tfp_flows import catalog

    print("models:")
    for name, entry in catalog.MODELS.items():
        print(f"  {name:14s} {entry.description} [default data: {entry.default_data}]")
    print("data sets (or pass a .npy / .csv file):")
    data = {**catalog.DATASETS, **catalog.CONDITIONAL_DATASETS}
    width = max(14, *map(len, data))
    for name, description in sorted(data.items()):
        print(f"  {name:{width}s} {description}")
    return 0


# ---------------------------------------------------------------------------------------
# TensorFlow, imported once and quietly.

# C++ start-up lines TensorFlow writes to stderr before its logging is set up (the
# TF_CPP_MIN_LOG_LEVEL variable does not reach them), and CUDA probing on machines without
# a GPU driver.
_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|[IW]\d{4} \S+ +\d+ \S+:\d+\] "
    r"|E\d{4} \S+ +\d+ \S+:\d+\] .*(cuInit|Unable to register|cuda)"
    r"|To enable the following instructions:)")


def _import_tensorflow():
    """Import TensorFlow, Keras and TFP with their start-up chatter hidden.

    Unless TF_CPP_MIN_LOG_LEVEL is set (then it is honoured as given), C++ log lines are
    limited to fatal ones; the lines printed while the libraries load are filtered;
    TensorFlow's Python warnings and deprecation notices (e.g. TFP's graph_parents) are off.
    """
    import logging
    import warnings

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    asked_for_logs = os.environ["TF_CPP_MIN_LOG_LEVEL"] in ("0", "1")
    if "tensorflow" not in sys.modules and not asked_for_logs:
        _quietly(lambda: [importlib.import_module(name) for name in (
            "tensorflow", "keras", "tensorflow_probability", "tfp_flows.flow_model")])
    import keras  # noqa: F401
    import tensorflow as tf

    tf.get_logger().setLevel(logging.ERROR)
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # pragma: no cover (absl comes with TensorFlow)
        pass
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*graph_parents.*")
    return tf


def _quietly(load):
    """Run `load()` with file descriptor 2 captured; replay what is not start-up noise."""
    import tempfile

    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (embedded use): nothing to filter
        return load()
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            return load()
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode(errors="replace").splitlines()
                    if line.strip() and not _NOISE.match(line)]
            if kept:
                print("\n".join(kept), file=sys.stderr)


# ---------------------------------------------------------------------------------------
# Data, models and run folders.


def _load_data(config):
    """(train, validation, test) for a run's config, shaped for its model."""
    from tfp_flows import datasets

    path = config.get("data_path") or config["data"]
    if _is_file_data(config["data"]):
        parts = datasets.train_val_test(datasets.load_file(path, min_rows=MIN_ROWS),
                                        seed=config["seed"])
    else:  # dequantizing recipes (and vector ones on the digits) take integer levels
        parts = datasets.load(config["data"], config["num_points"], seed=config["seed"],
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
    options, training = recipe.defaults(_data_stem(config["data"]))
    for key, value in {**TRAINING_DEFAULTS, **training}.items():
        if config.get(key) is None:
            config[key] = value
    config["recipe_options"] = options
    return config


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
    if config.get("bounds") is not None and "bounds" not in given:
        if "bounds" not in accepted:
            raise UsageError(f"Model {config['model']!r} does not take --bounds (its data "
                             f"end is fixed); drop it or pick another model.")
        given["bounds"] = config["bounds"]
    if "standardize" in accepted and "standardize" not in given:
        # runs of versions without this setting had no standardisation
        given["standardize"] = bool(config.get("standardize", False))
    return {**options, **given}


def _build_model(config, event_shape):
    from tfp_flows import models
    from tfp_flows.models.building_blocks import on_discrete_levels

    options = _builder_options(config)
    image = config["model"] in models.IMAGE_RECIPES
    event = tuple(event_shape) if image else int(event_shape[0])
    try:
        model = models.build(config["model"], event, **options)
    except (ValueError, TypeError) as e:  # raised by a builder on the options it was given
        raise UsageError(f"model {config['model']!r} with options {_short(options)}: "
                         f"{e}") from None
    levels = _levels_dequantized_per_step(config)
    if levels is not None and not models.RECIPES[config["model"]].discrete:
        model = on_discrete_levels(model, levels, seed=config["seed"])
    return model


def _short(options):
    return ", ".join(f"{k}={v!r}" for k, v in options.items() if k != "seed")


def _check_data_file_unchanged(config, *, needed=True):
    """A one-line warning when the run's data file changed since training; a missing file
    is an error when the command needs it (evaluate, plot), else a warning too."""
    path = config.get("data_path")
    if not path or not config.get("data_sha256"):
        return
    if not os.path.isfile(path):
        if needed:
            raise UsageError(f"the run's data file {path} is gone; evaluate another file "
                             f"with --data FILE.")
        print(f"tfp-flows: warning: the run's data file {path} is gone.", file=sys.stderr)
    elif _sha256(path) != config["data_sha256"]:
        print(f"tfp-flows: warning: {path} changed since this run was trained (its sha256 "
              f"differs){'; the numbers below use the file as it is now' if needed else ''}.",
              file=sys.stderr)


def _restore(run_dir, *, need_data=True):
    """(config, model with its best weights, (train, val, test) or None) of a run folder."""
    with open(os.path.join(run_dir, "config.json")) as f:
        config = json.load(f)
    parts = None
    need_data = need_data or "event_shape" not in config  # older runs lack event_shape
    _check_data_file_unchanged(config, needed=need_data)
    if need_data:
        parts = _load_data(config)
    event_shape = config.get("event_shape") or _events(parts[0]).shape[1:]
    model = _build_model(config, event_shape)
    model.load_weights(os.path.join(run_dir, "best.weights.h5"))
    return config, model, parts


def _nll_line(nll, dims, what="test NLL"):
    import numpy as np

    return f"{what}: {nll:.4f} nats ({nll / (dims * np.log(2)):.4f} bits/dim)"


def _report_nll(model, test, config):
    import numpy as np

    from tfp_flows import datasets

    nll = float(-np.mean(model.predict(test, batch_size=4096, verbose=0)))
    dims = int(np.prod(_events(test).shape[1:]))
    line = _nll_line(nll, dims)
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
    """The run's figures, written to run_dir; returns their paths."""
    from tfp_flows import datasets, plotting

    figures = []  # (file name, draw(path))
    if history:
        figures.append(("history.png", lambda p: plotting.plot_history(history, p)))
    title = f"{config['model']} on {os.path.basename(config['data'])}"
    if isinstance(train, tuple):  # conditional: the flow at the first held-out context
        if train[1].shape[1] == 2:
            figures.append(("posterior.png", lambda p: plotting.plot_posterior_2d(
                model, test[0][0], p,
                reference=datasets.ANALYTIC_POSTERIORS.get(config["data"]))))
    elif train.ndim == 2 and train.shape[1] == 2:
        figures.append(("density.png",
                        lambda p: plotting.plot_density_2d(model, train, p, title=title)))
    elif train.ndim == 4 or (train.ndim == 2 and train.shape[1] == 64):
        figures.append(("samples.png",
                        lambda p: plotting.plot_image_samples(model, train, p, title=title)))
    elif train.ndim == 2 and train.shape[1] > 2:  # pairwise marginals, data vs samples
        figures.append(("corner.png",
                        lambda p: plotting.plot_corner(model, train, p, title=title)))
    paths = []
    for name, draw in figures:
        path = os.path.join(run_dir, name)
        draw(path)
        print(f"figure: {path}")
        paths.append(path)
    return paths


# ---------------------------------------------------------------------------------------
# Exports: one model name, one signature.


def _model_signature(model):
    """{input name: (dtype, shape)} of the export's log_prob signature for `model`."""
    dtype = model.distribution.dtype.name
    inputs = {"x": (dtype, [-1, *model.event_shape.as_list()])}
    context = getattr(model, "context_shape", None)
    if context is not None:
        inputs["context"] = (dtype, [-1, *context.as_list()])
    return inputs


def _export_signature(version_dir):
    """The same for an existing SavedModel folder (read from saved_model.pb), or None."""
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    path = os.path.join(version_dir, "saved_model.pb")
    if not os.path.isfile(path):
        return None
    proto = saved_model_pb2.SavedModel()
    with open(path, "rb") as f:
        proto.ParseFromString(f.read())
    for graph in proto.meta_graphs:
        signature = graph.signature_def.get("log_prob") or graph.signature_def.get(
            "serving_default")
        if signature is not None:
            return {name: (tf.dtypes.as_dtype(info.dtype).name,
                           None if info.tensor_shape.unknown_rank else
                           [d.size for d in info.tensor_shape.dim])
                    for name, info in signature.inputs.items()}
    return None


def _describe_signature(inputs):
    return ", ".join(f"{name}: {dtype}{shape}".replace("-1", "None")
                     for name, (dtype, shape) in sorted(inputs.items()))


def _export(model, config, export_dir, name=None, *, check_only=False):
    """Export to <export_dir>/<name>/<next version> (name: <model>-<data> by default),
    refusing a signature that differs from the newest version's there."""
    name = name or f"{config['model']}-{_data_stem(config['data'])}"
    model_dir = os.path.join(export_dir, name)
    versions = sorted((int(d) for d in os.listdir(model_dir) if d.isdigit()),
                      reverse=True) if os.path.isdir(model_dir) else []
    newest = next((v for v in versions if os.path.isfile(
        os.path.join(model_dir, str(v), "saved_model.pb"))), None)
    if newest is not None:
        existing = _export_signature(os.path.join(model_dir, str(newest)))
        wanted = _model_signature(model)
        if existing is not None and existing != wanted:
            free = _free_folder(model_dir)
            raise UsageError(
                f"{model_dir}/{newest} takes {_describe_signature(existing)}, this run "
                f"{_describe_signature(wanted)}: not exported there (a server would swap "
                f"one for the other); pass --export-name {os.path.basename(free)}.")
    if check_only:
        return None
    from tfp_flows.export import export_saved_model

    path = export_saved_model(model, model_dir)
    print(f"SavedModel: {path}")
    return path


# ---------------------------------------------------------------------------------------
# Commands.


def _record_data(config):
    """The data file's absolute path and sha256 in the run's config (built-in data: none)."""
    if _is_file_data(config["data"]):
        config["data_path"] = os.path.abspath(config["data"])
        config["data_sha256"] = _sha256(config["data"])


def _prepare_run_dir(run_dir, overwrite):
    os.makedirs(run_dir, exist_ok=True)
    if overwrite:  # only the files a run writes; anything else in the folder stays
        import shutil

        for name in RUN_FILES:
            if os.path.isfile(os.path.join(run_dir, name)):
                os.remove(os.path.join(run_dir, name))
        shutil.rmtree(os.path.join(run_dir, "tensorboard"), ignore_errors=True)


def _verbosity(value):
    if value == "auto":
        return 1 if sys.stdout.isatty() else 2
    return int(value)


def _standardize(model, train, config):
    """Fit the flow's standardisation to the training data; False when the run has none
    (--no-standardize, image recipes and integer levels: their data ends are fixed)."""
    if not _builder_options(config).get("standardize"):
        return False
    if isinstance(train, tuple):
        model.adapt(train[1], context=train[0])
    else:
        model.adapt(train)
    return True


def _train(args):
    import keras

    keras.utils.set_random_seed(args.seed)
    config = vars(args).copy()
    taken = config.pop("taken_run_dir", None)
    config["standardize"] = not config.pop("no_standardize")
    config = _resolve_defaults(config)
    if _levels_dequantized_per_step(config) is not None:  # integer levels: no standardising
        config["standardize"] = False
    config["standardize"] = bool(_builder_options(config).get("standardize"))  # as applied
    _record_data(config)
    train, val, test = _load_data(config)
    config["context_size"] = _context_size(config, train)
    config["event_shape"] = list(_events(train).shape[1:])
    model = _build_model(config, config["event_shape"])
    if not args.no_export:  # refuse an export clash now, not after training
        _export(model, config, args.export_dir, args.export_name, check_only=True)
    if _standardize(model, train, config):
        print("standardized: the flow sees the training data shifted and scaled to mean 0 "
              "and std 1 per coordinate (densities stay in data units; --no-standardize: off)")
    if not isinstance(train, tuple):  # Glow's data-dependent ActNorm init (no-op without)
        from tfp_flows.bijectors import initialize_actnorms

        initialize_actnorms(model, train[: config["batch_size"]])
    jit = {"auto": "auto", "true": True, "false": False}[args.jit_compile]
    clip = config.get("clip_norm") or None  # 0: off
    model.compile(optimizer=keras.optimizers.Adam(config["learning_rate"], global_clipnorm=clip),
                  jit_compile=jit)

    run_dir = args.run_dir
    if taken:
        print(f"run folder: {run_dir} ({taken} holds an earlier run; --overwrite replaces it)")
    _prepare_run_dir(run_dir, args.overwrite)
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
                        validation_data=val, callbacks=callbacks,
                        verbose=_verbosity(args.verbose))
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
    print(f"run folder: {run_dir}")
    if not args.no_export:
        _export(model, config, args.export_dir, args.export_name)
    return 0


def _file_rows(path, config):
    """A data file's rows for a run's model: x, or (context, x) for a conditional run."""
    import numpy as np

    from tfp_flows import datasets

    data = datasets.load_file(path)
    event = config["event_shape"]
    dims = int(np.prod(event))
    context = config.get("context_size") or 0
    rows = data.reshape(len(data), -1)
    if rows.shape[1] != context + dims:
        need = f"{context} context + {dims} data" if context else f"{dims}"
        raise UsageError(f"{path}: rows of {rows.shape[1]} numbers; this run's model takes "
                         f"{need} numbers a row.")
    x = rows[:, context:].reshape(len(rows), *event)
    return (rows[:, :context], x) if context else x


def _write_array(path, array, header=None):
    import numpy as np

    if os.path.splitext(path)[1].lower() == ".csv":
        np.savetxt(path, np.asarray(array).reshape(len(array), -1), delimiter=",",
                   fmt="%.9g", header=header or "", comments="")
    else:
        np.save(path, array)


def _from_run(args):
    import numpy as np

    need_data = args.command in ("evaluate", "plot") and getattr(args, "data", None) is None
    need_data = need_data or (args.command == "sample" and args.context is None)
    config, model, parts = _restore(args.run_dir, need_data=need_data)
    if parts is not None:
        train, _, test = parts
    if args.command == "evaluate" and args.data is not None:
        rows = _file_rows(args.data, config)
        nll = float(-np.mean(model.predict(rows, batch_size=4096, verbose=0)))
        print(_nll_line(nll, int(np.prod(config["event_shape"])),
                        f"NLL of {args.data} ({len(_events(rows))} rows)"))
    elif args.command == "evaluate":
        _report_nll(model, test, config)
        _report_posterior_kl(model, test, config)
    elif args.command == "score":
        rows = _file_rows(args.data, config)
        log_prob = np.asarray(model.predict(rows, batch_size=4096, verbose=0), np.float64)
        _write_array(args.out, log_prob, header="log_prob")
        print(f"log-densities: {args.out} ({len(log_prob)} rows, nats; mean "
              f"{log_prob.mean():.4f})")
    elif args.command == "sample" and model.is_conditional:  # n samples at one context
        context = test[0][:1] if args.context is None else np.array([args.context], "float32")
        if context.shape[1] != config["context_size"]:
            raise UsageError(f"--context needs {config['context_size']} numbers; got "
                             f"{context.shape[1]}.")
        samples = np.asarray(model.sample(args.num_samples, context, seed=args.seed))[:, 0]
        out = args.out or os.path.join(args.run_dir, "samples.npy")
        _write_array(out, samples)
        print(f"samples: {out} {samples.shape} at context {context[0].tolist()}")
    elif args.command == "sample":
        if args.context is not None:
            raise UsageError("--context is for conditional runs; this run's model is not.")
        samples = np.asarray(model.sample(args.num_samples, seed=args.seed))
        out = args.out or os.path.join(args.run_dir, "samples.npy")
        _write_array(out, samples)
        print(f"samples: {out} {samples.shape}")
    elif args.command == "export":
        _export(model, config, args.export_dir, args.export_name)
    else:
        history_path = os.path.join(args.run_dir, "history.json")
        history = None
        if os.path.exists(history_path):
            with open(history_path) as f:
                history = json.load(f)["history"]
        _figures(model, config, train, history, args.run_dir, test)
    return 0


def _error(message):
    print(f"tfp-flows: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0, or 2 for a user's mistake).

    Mistakes in the arguments, the data files and the run folders, and missing optional
    packages, are one line on stderr. An error inside TensorFlow or the library that the
    input does not explain keeps its traceback: it is a bug to report.
    """
    args = _parser().parse_args(argv)
    try:
        _check_args(args)
        if args.command == "list":
            return _list()
        _import_tensorflow()
        import matplotlib

        if "matplotlib.pyplot" not in sys.modules:
            matplotlib.use("Agg")  # figures go to files; no window, no display needed
        from tfp_flows.data_checks import FlowDataError

        try:
            return _train(args) if args.command == "train" else _from_run(args)
        except FlowDataError as e:
            return _error(e)
    except UsageError as e:
        return _error(e)
    except ModuleNotFoundError as e:
        extra = EXTRAS.get((e.name or "").split(".")[0])
        if extra is None:
            raise
        return _error(f"{e.name} is not installed: {extra}")
    except OSError as e:  # a file or folder that cannot be read or written
        return _error(e)
    except KeyboardInterrupt:
        print("tfp-flows: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
