"""The `tfp-flows` command line: list the zoo, train a flow, export it.

    tfp-flows list
    tfp-flows train [--model maf] [--data two-moons] [--epochs 40] ...

`train` fits a zoo recipe on a built-in data set with a Keras progress bar, keeps the
best weights (by validation NLL), reports the test NLL, writes a run folder
(config.json, history.json, best.weights.h5, density.png, history.png) and exports a
SavedModel to <export-dir>/<model>/<next version>/.
"""

import argparse
import json
import os
import sys


def _parser():
    parser = argparse.ArgumentParser(prog="tfp-flows", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the zoo's models and the built-in data sets")
    train = sub.add_parser("train", help="train a zoo model on a built-in data set")
    train.add_argument("--model", default="maf", help="zoo recipe (see `tfp-flows list`)")
    train.add_argument("--data", default="two-moons", help="built-in data set")
    train.add_argument("--num-points", type=int, default=10000)
    train.add_argument("--epochs", type=int, default=40)
    train.add_argument("--batch-size", type=int, default=256)
    train.add_argument("--learning-rate", type=float, default=2e-3)
    train.add_argument("--num-layers", type=int, default=None)
    train.add_argument("--hidden-units", type=int, nargs="+", default=None)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--jit-compile", choices=["auto", "true", "false"], default="auto",
                       help="XLA for the train step ('auto': Keras decides; on by GPU)")
    train.add_argument("--run-dir", default=None, help="default: runs/<model>-<data>")
    train.add_argument("--export-dir", default="saved_models")
    train.add_argument("--no-export", action="store_true")
    train.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2])
    return parser


def _list():
    from tfp_flows import datasets, models

    print("models:")
    for name, (_, description) in sorted(models.RECIPES.items()):
        print(f"  {name:10s} {description}")
    print("data sets:")
    for name in sorted(datasets.DATASETS):
        print(f"  {name}")
    return 0


def _train(args):
    import keras
    import numpy as np

    from tfp_flows import datasets, export_saved_model, models, next_version_dir
    from tfp_flows.plotting import plot_density_2d, plot_history

    keras.utils.set_random_seed(args.seed)
    train, val, test = datasets.load(args.data, args.num_points, seed=args.seed)
    options = {"seed": args.seed}
    if args.num_layers is not None:
        options["num_layers"] = args.num_layers
    if args.hidden_units is not None:
        options["hidden_units"] = args.hidden_units
    model = models.build(args.model, train.shape[1], **options)
    jit = {"auto": "auto", "true": True, "false": False}[args.jit_compile]
    model.compile(optimizer=keras.optimizers.Adam(args.learning_rate), jit_compile=jit)

    run_dir = args.run_dir or os.path.join("runs", f"{args.model}-{args.data}")
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "config.json"), "w") as f:
        json.dump(vars(args), f, indent=2)
    best = os.path.join(run_dir, "best.weights.h5")
    callbacks = [keras.callbacks.ModelCheckpoint(best, monitor="val_loss", save_best_only=True,
                                                 save_weights_only=True)]
    history = model.fit(train, epochs=args.epochs, batch_size=args.batch_size,
                        validation_data=val, callbacks=callbacks, verbose=args.verbose)
    if os.path.exists(best):
        model.load_weights(best)
    test_nll = float(-np.mean(model.predict(test, batch_size=4096, verbose=0)))
    with open(os.path.join(run_dir, "history.json"), "w") as f:
        json.dump({"history": history.history, "test_nll": test_nll}, f, indent=2)
    print(f"test NLL: {test_nll:.4f} nats")
    figure = plot_density_2d(model, train, os.path.join(run_dir, "density.png"),
                             title=f"{args.model} on {args.data}")
    plot_history(history, os.path.join(run_dir, "history.png"))
    print(f"figure: {figure}")
    if not args.no_export:
        path = export_saved_model(model, next_version_dir(os.path.join(args.export_dir,
                                                                       args.model)))
        print(f"SavedModel: {path}")
    return 0


def main(argv=None):
    args = _parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.command == "list":
        return _list()
    return _train(args)


if __name__ == "__main__":
    sys.exit(main())
