"""Zero-cost proxies: score an untrained architecture from one batch, higher = better.

    score("naswot", genotype, dataset)   # also "synflow", "grad_norm", "snip", "params", "macs"

- naswot    (Mellor et al. 2021) log|K| where K[i, j] counts the rectified units on which
            inputs i and j agree (both active or both inactive): the Hamming kernel of the
            binary activation codes, summed over every rectifier of the net.
- synflow   (Tanaka et al. 2020) sum |theta * dR/dtheta| with R the sum of the outputs of
            the net with |weights|, in float64, on an all-ones input; batch norm in eval
            mode (identity at initialisation).
- grad_norm (Abdelfattah et al. 2021) sum over weight tensors of ||dL/dW||_2 on one batch.
- snip      (Lee et al. 2019) sum over weight tensors of |W * dL/dW| on one batch.
- params, macs: the trivial baselines, counted on the proxy genotype.

Every proxy runs on the genotype retargeted to the dataset (see
:func:`nas.evaluate.train.proxy_genotype`), with weights initialised under ``seed``.
A proxy earns the default-screen role only where it beats both baselines in rank
correlation with trained accuracy (:func:`default_screen`; measured in
``experiments/results/proxy_correlation.md``).
"""
from __future__ import annotations

import math
from typing import Callable

from nas.cost import count
from nas.evaluate.data import Dataset
from nas.evaluate.train import build_model, proxy_genotype
from nas.genotype import Genotype
from nas.registry import Registry

BASELINES = ("params", "macs")
PROXIES: Registry[Callable] = Registry("proxy")

# Derived from experiments/results/proxy_correlation.json by default_screen(); a test checks
# that it matches the committed results. None: no proxy beat both baselines there.
DEFAULT_SCREEN: str | None = None


def score(name: str, genotype: Genotype, dataset: Dataset, *, batch_size: int = 64,
          seed: int = 0, device: str = "cpu") -> float:
    """The score of proxy ``name`` (one of :data:`PROXIES`) for ``genotype`` on ``dataset``."""
    fn = PROXIES.get(name)
    if name in BASELINES:
        return fn(proxy_genotype(genotype, dataset))
    import torch

    model = build_model(genotype, dataset, seed=seed).to(device)
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(dataset.train_y), generator=gen)[:batch_size]
    x = dataset.train_x[idx].to(device)
    y = dataset.train_y[idx].to(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return float(fn(model, x, y))


def score_all(genotype: Genotype, dataset: Dataset, *, names=None, **kwargs) -> dict[str, float]:
    """Scores of several proxies (all by default) as ``{name: score}``."""
    return {n: score(n, genotype, dataset, **kwargs) for n in (names or PROXIES.names())}


def default_screen(table: list[dict]) -> str | None:
    """The proxy to screen with by default, from a correlation table, or None.

    ``table`` rows are ``{"proxy": name, "spearman": rho}``. The best non-baseline proxy
    is returned only if its rho is strictly above the rho of every baseline present
    (params and MACs must both be in the table).
    """
    rho = {row["proxy"]: row["spearman"] for row in table}
    missing = [b for b in BASELINES if b not in rho]
    if missing:
        raise ValueError(f"the correlation table lacks the baseline(s) {missing}; "
                         "re-run experiments/proxy_correlation.py")
    bar = max(_finite(rho[b]) for b in BASELINES)
    candidates = [(_finite(r), p) for p, r in rho.items() if p not in BASELINES]
    best = max(candidates, default=(-math.inf, None))
    return best[1] if best[0] > bar else None


def _finite(x) -> float:
    return float(x) if x is not None and math.isfinite(x) else -math.inf


# ----------------------------------------------------------------- the proxies
@PROXIES.register("naswot")
def naswot(model, x, y) -> float:
    """log-determinant of the Hamming kernel of the rectifiers' binary codes."""
    import torch

    n = len(x)
    kernel = torch.zeros(n, n, dtype=torch.float64, device=x.device)

    def add(out):
        code = (out.detach().reshape(n, -1) > 0).to(torch.float64)
        kernel.add_(code @ code.T).add_((1 - code) @ (1 - code).T)

    model.train()
    with torch.no_grad(), _Rectifiers(add):
        model(x)
    sign, logdet = torch.linalg.slogdet(kernel)
    return logdet.item() if sign.item() > 0 else -math.inf


@PROXIES.register("synflow")
def synflow(model, x, y) -> float:
    """Synaptic flow of the net with |weights| on an all-ones input (float64)."""
    import torch

    model = model.double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    model.zero_grad(set_to_none=True)
    out = model(torch.ones_like(x[:1], dtype=torch.float64))
    out = out[0] if isinstance(out, (tuple, list)) else out
    out.sum().backward()
    return sum((p * p.grad).abs().sum().item() for p in model.parameters() if p.grad is not None)


@PROXIES.register("grad_norm")
def grad_norm(model, x, y) -> float:
    """Sum of the L2 norms of the loss gradients of the weight tensors."""
    return sum(g.norm().item() for _, g in _weight_grads(model, x, y))


@PROXIES.register("snip")
def snip(model, x, y) -> float:
    """Connection sensitivity: sum of |W * dL/dW| over weight tensors."""
    return sum((w * g).abs().sum().item() for w, g in _weight_grads(model, x, y))


@PROXIES.register("params")
def params(genotype: Genotype) -> float:
    """Learnable parameters of the proxy genotype (baseline)."""
    return float(count(genotype).params)


@PROXIES.register("macs")
def macs(genotype: Genotype) -> float:
    """Multiply-accumulates of the proxy genotype (baseline)."""
    return float(count(genotype).macs)


def _weight_grads(model, x, y):
    import torch.nn.functional as F

    model.train()
    model.zero_grad(set_to_none=True)
    out = model(x)
    out = out[0] if isinstance(out, (tuple, list)) else out
    F.cross_entropy(out, y).backward()
    # weight tensors of conv and linear layers: the ones with 2+ dims (biases and BN are 1-d)
    return [(p.detach(), p.grad) for p in model.parameters() if p.dim() > 1 and p.grad is not None]


class _Rectifiers:
    """Calls ``sink(output)`` for every rectifier evaluated inside the ``with`` block.

    Rectifiers are the piecewise-linear activations whose output is > 0 exactly where the
    unit is active (relu, relu6, leaky_relu, hardswish, silu, gelu); gates such as sigmoid
    are not codes and are skipped.
    """

    def __init__(self, sink):
        import torch
        import torch.nn.functional as F

        self.sink = sink
        fns = {F.relu, F.relu6, F.leaky_relu, F.hardswish, F.silu, F.gelu, torch.relu,
               torch.relu_, F.relu_, F.leaky_relu_}
        sink_ = sink

        class Mode(torch.overrides.TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                if func in fns:
                    sink_(out)
                return out

        self.mode = Mode()

    def __enter__(self):
        self.mode.__enter__()
        return self

    def __exit__(self, *exc):
        return self.mode.__exit__(*exc)
