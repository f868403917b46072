"""Exact resume: an interrupted fit() resumed through BackupAndRestore ends where an
uninterrupted one does; ModelCheckpoint(save_best_only=True) keeps the best epoch."""

import keras
import numpy as np
import pytest

from tfp_flows import models

EPOCHS = 4


class Interrupt(keras.callbacks.Callback):
    """Raises, as a killed process would stop, at the start of epoch `epoch` (0-based) or,
    with `batch`, after that batch of that epoch."""

    def __init__(self, epoch, batch=None):
        super().__init__()
        self.epoch, self.batch, self._current = epoch, batch, None

    def on_epoch_begin(self, epoch, logs=None):
        self._current = epoch
        if epoch == self.epoch and self.batch is None:
            raise KeyboardInterrupt(f"interrupted before epoch {epoch}")

    def on_train_batch_end(self, batch, logs=None):
        if self._current == self.epoch and batch == self.batch:
            raise KeyboardInterrupt(f"interrupted after batch {batch} of epoch {self._current}")


def _model():
    keras.utils.set_random_seed(3)
    model = models.build("realnvp", 2, num_layers=2, hidden_units=(16,), seed=3)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=False)
    return model


def _fit(model, data, epochs=EPOCHS, callbacks=()):
    # shuffle=False: Keras draws a fresh shuffle order from the global RNG every epoch, which
    # a restart does not replay; the optimizer and the flow themselves use no randomness.
    return model.fit(data, epochs=epochs, batch_size=128, shuffle=False, verbose=0,
                     callbacks=list(callbacks))


def _state(model):
    return ([np.array(v) for v in model.weights],
            [np.array(v) for v in model.optimizer.variables])


def _max_relative_difference(a, b):
    return max(float(np.max(np.abs(x - y) / np.maximum(np.abs(y), 1e-30))) if x.size else 0.0
               for x, y in zip(a, b, strict=True))


def test_interrupted_fit_resumes_to_the_uninterrupted_result(moons, tmp_path):
    train = moons[0][:1024]  # 8 batches of 128 per epoch
    reference = _model()
    _fit(reference, train)
    weights, optimizer_state = _state(reference)
    assert int(reference.optimizer.iterations.numpy()) == EPOCHS * 8

    # Each run is a new model object ("the process died") resuming from the backup files.
    backup_dir = str(tmp_path / "backup")
    # Killed after batch 3 of epoch 1: the backup holds epoch 0, batches of epoch 1 are redone.
    first = _model()
    with pytest.raises(KeyboardInterrupt):
        _fit(first, train, callbacks=[keras.callbacks.BackupAndRestore(backup_dir),
                                      Interrupt(1, batch=3)])
    assert int(first.optimizer.iterations.numpy()) == 8 + 4
    # Killed between epochs, before epoch 3: the backup holds epochs 0 to 2.
    second = _model()
    with pytest.raises(KeyboardInterrupt):
        _fit(second, train, callbacks=[keras.callbacks.BackupAndRestore(backup_dir),
                                       Interrupt(3)])
    assert int(second.optimizer.iterations.numpy()) == 3 * 8
    resumed = _model()
    history = _fit(resumed, train, callbacks=[keras.callbacks.BackupAndRestore(backup_dir)])
    assert len(history.history["loss"]) == 1  # epoch 3 only

    resumed_weights, resumed_optimizer = _state(resumed)
    assert len(resumed_weights) == len(weights) and len(resumed_optimizer) == len(
        optimizer_state)
    weight_diff = _max_relative_difference(resumed_weights, weights)
    optimizer_diff = _max_relative_difference(resumed_optimizer, optimizer_state)
    print(f"resume after two interruptions: max relative difference weights {weight_diff:.3g}, "
          f"optimizer {optimizer_diff:.3g}")
    assert weight_diff == 0.0 and optimizer_diff == 0.0
    # The comparison can fail: training moved the weights away from their initial values.
    assert _max_relative_difference(_state(_model())[0], weights) > 1e-3


def test_model_checkpoint_save_best_only_keeps_the_best_epoch(moons, tmp_path):
    # Validation points far from the training data: fitting the training data makes the
    # validation loss worse, so the best epoch is an early one, not the last.
    train, val = moons[0][:512], moons[1][:256] + 3.0
    model = _model()
    per_epoch = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: per_epoch.append(
            (logs["val_loss"], [np.array(v) for v in model.weights])))
    best_path = str(tmp_path / "best.keras")
    checkpoint = keras.callbacks.ModelCheckpoint(best_path, monitor="val_loss",
                                                 save_best_only=True)
    model.fit(train, epochs=3, batch_size=128, shuffle=False, verbose=0,
              validation_data=val, callbacks=[checkpoint, record])
    losses = [loss for loss, _ in per_epoch]
    best = int(np.argmin(losses))
    assert best != len(losses) - 1, f"the last epoch was the best: {losses}"
    restored = keras.saving.load_model(best_path, safe_mode=True)
    for got, want in zip(restored.weights, per_epoch[best][1], strict=True):
        np.testing.assert_array_equal(np.array(got), want)
    assert restored.evaluate(val, verbose=0, return_dict=True)["loss"] == pytest.approx(
        losses[best], rel=1e-5)
