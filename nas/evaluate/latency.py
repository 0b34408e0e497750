"""Measured forward latency on the current device: warm-up, then the median of k timed runs.

    measure_latency(genotype, input_shape=(3, 224, 224), batch_size=1)   # seconds
"""
from __future__ import annotations

import statistics
import time

from nas.errors import NasError


def measure_latency(genotype_or_module, *, input_shape: tuple[int, ...], batch_size: int = 1,
                    device: str = "cpu", warmup: int = 3, runs: int = 10,
                    channels_last: bool | None = None, seed: int = 0) -> float:
    """Median seconds of one inference forward pass of a batch of ``batch_size`` inputs.

    A genotype is compiled first (retargeted to ``input_shape``'s channels); a module is
    used as is. ``channels_last`` defaults to on for CUDA. On CUDA each run is timed between
    device synchronisations.
    """
    import torch

    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise NasError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if not (isinstance(runs, int) and runs >= 1 and isinstance(warmup, int) and warmup >= 0):
        raise NasError(f"runs must be >= 1 and warmup >= 0, got runs={runs!r}, warmup={warmup!r}")
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    layout = torch.channels_last if (cuda if channels_last is None else channels_last) \
        else torch.contiguous_format
    model = _module(genotype_or_module, input_shape, seed).to(dev, memory_format=layout).eval()
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, *input_shape, generator=gen).to(dev)
    x = x.contiguous(memory_format=layout) if x.dim() == 4 else x
    sync = (lambda: torch.cuda.synchronize(dev)) if cuda else (lambda: None)
    times = []
    with torch.inference_mode():
        for i in range(warmup + runs):
            sync()
            t0 = time.perf_counter()
            model(x)
            sync()
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _module(obj, input_shape, seed: int):
    import torch

    from nas.genotype import Genotype

    if isinstance(obj, torch.nn.Module):
        return obj
    if not isinstance(obj, Genotype):
        raise NasError(f"expected a Genotype or a torch module, got {type(obj).__name__}")
    from nas.compiler import compile as compile_genotype

    g = obj.retarget(in_channels=input_shape[0])
    g.graph.nodes[g.input]["attrs"] = {**g.attrs(g.input), "shape": list(input_shape)}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return compile_genotype(g.validate())
