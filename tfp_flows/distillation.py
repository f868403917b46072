"""Probability distillation: a fast-sampling student flow trained to match a teacher flow.

A MAF evaluates densities in one pass but samples in D sequential passes; an IAF samples
in one pass but needs D passes for the density of a new point. Probability distillation
(van den Oord et al. 2018, Parallel WaveNet; seeds 001/003) trains an IAF student q to
imitate a trained MAF teacher p by minimising the reverse KL divergence with the student's
own samples, which needs only the fast direction of each:

    KL(q || p) = E_{x ~ q}[log q(x) - log p(x)],   x = f(z), z ~ q_0 (the student's base),
    log q(x) = log q_0(z) - log|det df/dz|   (the student's sampling pass gives both),
    log p(x): one teacher density pass.

The gradient goes through the reparametrised samples x = f(z); the teacher stays frozen.
The loss is a Monte Carlo estimate of KL(q || p) >= 0, in nats (reported as `kl`); it is 0
only when q = p. After training the student samples like the teacher, in one pass.

    teacher = models.build_maf(D); teacher.compile(...); teacher.fit(x_train, ...)
    distilled = DistilledFlow(models.build_iaf(D), teacher, batch_size=256)
    distilled.compile(optimizer=keras.optimizers.Adam(1e-3))
    distilled.fit(epochs=10, steps_per_epoch=200)      # no data: samples come from q
    distilled.student.sample(10000)                    # one pass per layer
"""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows.flow_model import FlowModel

tfd = tfp.distributions


def _flow_parts(model, role):
    """(base distribution, bijector) of an unconditional FlowModel of a transformed
    distribution, or a clear error."""
    if not isinstance(model, FlowModel):
        raise TypeError(f"The {role} must be a tfp_flows.FlowModel; got {type(model).__name__}.")
    if model.is_conditional:
        raise ValueError(f"The {role} is a conditional flow; DistilledFlow distils "
                         f"unconditional flows only.")
    dist = model.distribution
    if not hasattr(dist, "bijector") or not hasattr(dist, "distribution"):
        raise TypeError(f"The {role}'s distribution must be a TransformedDistribution (base "
                        f"plus bijector); got {type(dist).__name__}.")
    return dist.distribution, dist.bijector


def _is_fixed_standard_normal(base):
    """True for a base that is N(0, I) with nothing to train (the zoo's Gaussian base)."""
    return (isinstance(base, tfd.MultivariateNormalDiag) and not base.trainable_variables
            and np.all(base.mean().numpy() == 0) and np.all(base.stddev().numpy() == 1))


class DistilledFlow(keras.Model):
    """Trains `student` (a FlowModel; an IAF for one-pass sampling) to match the frozen
    `teacher` (a FlowModel; e.g. a trained MAF) by reverse KL with the student's samples.

    fit() takes no data: `fit(epochs=..., steps_per_epoch=...)`; every step draws
    `batch_size` samples from the student. Metrics: `loss` = `kl`, the Monte Carlo estimate
    of KL(student || teacher) in nats over the step's samples. Only the student's variables
    train. `kl_divergence(n)` estimates the KL with fresh samples after training.
    """

    def __init__(self, student, teacher, *, batch_size=256, seed=None, name="distilled_flow",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self._student_base, self._student_bijector = _flow_parts(student, "student")
        _flow_parts(teacher, "teacher")
        if student.event_shape != teacher.event_shape:
            raise ValueError(f"Student and teacher model different event shapes: "
                             f"{student.event_shape} vs {teacher.event_shape}.")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
        self.student = student
        self.teacher = teacher
        self.teacher.trainable = False
        self.batch_size = int(batch_size)
        self._seed_generator = keras.random.SeedGenerator(seed)
        self._standard_normal_base = _is_fixed_standard_normal(self._student_base)
        self._kl_tracker = keras.metrics.Mean(name="kl")

    @property
    def metrics(self):
        return [self._kl_tracker]

    def reverse_kl(self, n, seed=None):
        """Per-sample log q(x) - log p(x) for n student samples x (mean: KL(q || p) estimate).

        `seed`: a Keras SeedGenerator or int; None uses this model's generator.
        """
        dtype = self.student.distribution.dtype
        shape = [n, *self.student.event_shape.as_list()]
        seed = seed or self._seed_generator
        if self._standard_normal_base:
            z = keras.random.normal(shape, dtype=dtype, seed=seed)
        else:  # any other base (the Student-t of the zoo's iaf): its own reparametrised draw
            if not isinstance(seed, keras.random.SeedGenerator):
                seed = keras.random.SeedGenerator(seed)
            z = self._student_base.sample(n, seed=tf.cast(seed.next(), tf.int32))
        x = self._student_bijector.forward(z)
        event_ndims = len(self.student.event_shape)
        log_q = (self._student_base.log_prob(z)
                 - self._student_bijector.forward_log_det_jacobian(z, event_ndims=event_ndims))
        log_p = self.teacher.distribution.log_prob(x)
        return log_q - log_p

    def kl_divergence(self, n=10000, seed=0):
        """(estimate, standard error) of KL(student || teacher) from n fresh samples, nats."""
        gaps = self.reverse_kl(n, seed=keras.random.SeedGenerator(seed)).numpy()
        return float(gaps.mean()), float(gaps.std(ddof=1) / len(gaps) ** 0.5)

    def train_step(self, data):
        variables = self.student.trainable_variables
        with tf.GradientTape() as tape:
            kl = tf.reduce_mean(self.reverse_kl(self.batch_size))
        kept = self.student._apply_or_undo(tape.gradient(kl, variables), variables,
                                           tf.math.is_finite(kl), self.optimizer)
        self._kl_tracker.update_state(tf.where(kept, kl, tf.constant(float("nan"), kl.dtype)))
        return {"loss": self._kl_tracker.result(), "kl": self._kl_tracker.result()}

    def test_step(self, data):
        self._kl_tracker.update_state(tf.reduce_mean(self.reverse_kl(self.batch_size)))
        return {"loss": self._kl_tracker.result(), "kl": self._kl_tracker.result()}

    def _steps(self, steps):
        return tf.data.Dataset.from_tensors(tf.zeros([1])).repeat(steps)

    def fit(self, x=None, y=None, *, epochs=1, steps_per_epoch=100, **kwargs):
        """Train the student; no data (pass x=None): each step samples from the student."""
        if x is not None or y is not None:
            raise ValueError("DistilledFlow.fit takes no data: the student's own samples "
                             "are the training batches. Use fit(epochs=..., "
                             "steps_per_epoch=...).")
        return super().fit(self._steps(epochs * steps_per_epoch), epochs=epochs,
                           steps_per_epoch=steps_per_epoch, **kwargs)

    def evaluate(self, x=None, y=None, *, steps=10, **kwargs):
        """Mean KL estimate over `steps` batches of student samples."""
        return super().evaluate(self._steps(steps), steps=steps, **kwargs)
