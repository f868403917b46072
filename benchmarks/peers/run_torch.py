"""PyTorch runners: zuko and nflows (eager PyTorch, CPU).  Run inside /tmp/torchenv.

  --lib zuko   --variant exp     zuko.flows.MAF with an exp(log-scale) affine transformer
  --lib zuko   --variant native  zuko.flows.MAF default (MonotonicAffineTransform:
                                 soft-clipped log-scale, slope >= 1e-3)
  --lib nflows --variant exp     nflows MaskedAffineAutoregressiveTransform with exp(log-scale)
  --lib nflows --variant native  nflows default (scale = softplus(u) + 1e-3)
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import argparse  # noqa: E402

import common  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--lib", choices=["zuko", "nflows"], default="zuko")
ap.add_argument("--config")
ap.add_argument("--out")
ap.add_argument("--variant", default="exp", choices=["exp", "native"])
ap.add_argument("--peak", action="store_true")
args = ap.parse_args()

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(common.THREADS)
torch.set_num_interop_threads(common.THREADS)
# diagnostic knob (off in the recorded run): flush denormals to zero like TF/XLA do
FTZ = os.environ.get("NF_BENCH_TORCH_FTZ") == "1"
if FTZ:
    torch.set_flush_denormal(True)


def versions():
    v = {"torch": torch.__version__, "numpy": np.__version__}
    if args.lib == "zuko":
        import zuko
        v["zuko"] = zuko.__version__
    else:
        import importlib.metadata as md
        v["nflows"] = md.version("nflows")
    return v


def peak():
    n = 2048
    g = torch.Generator().manual_seed(1)
    a = torch.randn(n, n, generator=g)
    b = torch.randn(n, n, generator=g)
    r = common.matmul_gflops(lambda: a @ b, lambda o: o)
    return {"torch.matmul": r, "torch_threads": torch.get_num_threads(),
            "torch_config": torch.__config__.show(), "versions": versions()}


# ---------------------------------------------------------------- zuko
def build_zuko(cfg, xtrain):
    import zuko
    from zuko.transforms import MonotonicAffineTransform, Transform

    class ExpAffineTransform(MonotonicAffineTransform):
        """f(x) = exp(s) x + t with an unconstrained log-scale s (no soft clipping)."""

        def __init__(self, shift, scale, **kwargs):
            Transform.__init__(self, **kwargs)
            self.shift = shift
            self.log_scale = scale
            self.scale = scale.exp()

    torch.manual_seed(common.MODEL_SEED)
    D, H = cfg["D"], cfg["hidden"]
    kw = dict(features=D, context=0, transforms=cfg["layers"],
              hidden_features=[H] * cfg["hidden_layers"], activation=torch.nn.ReLU)
    if args.variant == "exp":
        kw["univariate"] = ExpAffineTransform
    flow = zuko.flows.MAF(**kw)      # randperm=False -> order alternates (reversal)
    return flow, (lambda x: flow().log_prob(x)), (lambda n: flow().sample((n,)))


# ---------------------------------------------------------------- nflows
def build_nflows(cfg, xtrain):
    import torch.nn.functional as F
    from nflows.distributions.normal import StandardNormal
    from nflows.flows.base import Flow
    from nflows.transforms.autoregressive import MaskedAffineAutoregressiveTransform
    from nflows.transforms.base import CompositeTransform
    from nflows.transforms.permutations import ReversePermutation

    class ExpMAT(MaskedAffineAutoregressiveTransform):
        """data->noise: z = x * exp(s) + t, unconstrained log-scale s."""

        def _elementwise_forward(self, inputs, params):
            s, t = self._unconstrained_scale_and_shift(params)
            return inputs * torch.exp(s) + t, s.sum(-1)

        def _elementwise_inverse(self, inputs, params):
            s, t = self._unconstrained_scale_and_shift(params)
            return (inputs - t) * torch.exp(-s), -s.sum(-1)

    torch.manual_seed(common.MODEL_SEED)
    D, H = cfg["D"], cfg["hidden"]
    cls = ExpMAT if args.variant == "exp" else MaskedAffineAutoregressiveTransform
    ts = []
    for i in range(cfg["layers"]):
        # MADE: initial masked layer + num_blocks feed-forward blocks + output layer,
        # so num_blocks = hidden_layers - 1 gives `hidden_layers` hidden layers.
        ts.append(cls(features=D, hidden_features=H, num_blocks=cfg["hidden_layers"] - 1,
                      use_residual_blocks=False, random_mask=False, activation=F.relu,
                      dropout_probability=0.0, use_batch_norm=False))
        if i < cfg["layers"] - 1:
            ts.append(ReversePermutation(features=D))
    flow = Flow(CompositeTransform(ts), StandardNormal([D]))
    return flow, (lambda x: flow.log_prob(x)), (lambda n: flow.sample(n))


def build(cfg, xtrain):
    flow, log_prob, sample = (build_zuko if args.lib == "zuko" else build_nflows)(cfg, xtrain)
    params = [p for p in flow.parameters() if p.requires_grad]
    n_params = sum(p.numel() for p in params)
    opt = torch.optim.Adam(params, lr=cfg["lr"], betas=(0.9, 0.999), eps=1e-8)

    def step(b):
        x = torch.from_numpy(b)
        loss = -log_prob(x).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    def lp(x):
        with torch.no_grad():
            return log_prob(torch.from_numpy(x))

    def sm(n):
        with torch.no_grad():
            return sample(n)

    return {"step": step, "to_float": lambda h: float(h), "log_prob": lp, "sample": sm,
            "to_numpy": lambda t: t.numpy(), "n_params": n_params,
            "extra": {"torch_flush_denormal": FTZ, "torch_threads": torch.get_num_threads(),
                      "torch_interop_threads": torch.get_num_interop_threads()}}


if __name__ == "__main__":
    if args.peak:
        r = peak()
        r["status"] = "ok"
        common.write_json(args.out, r)
        sys.exit(0)
    variant = {"exp": "eager, exp(log-scale) affine",
               "native": "eager, library-default affine"}[args.variant]
    common.run_benchmark(args.lib, variant, args.config, versions(), args.out, build)
