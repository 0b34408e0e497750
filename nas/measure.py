"""What PyTorch itself measures on a compiled genotype: the reference our counts must equal."""
from __future__ import annotations

from nas.cost import FLOPS_PER_MAC
from nas.genotype import Genotype


def measured_params_macs(genotype: Genotype, *, in_channels: int | None = None,
                         num_classes: int | None = None, device: str = "cpu") -> tuple[int, int]:
    """(sum of parameter numels, FlopCounterMode total / 2) of ``compile(genotype)`` on one
    sample of its input spec, in eval mode. ``device="meta"`` measures shapes only (no weight
    init, no arithmetic): the same counts, fast for the largest nets."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from nas.compiler import compile

    shape = list(genotype.input_shape)
    if in_channels is not None:
        shape[0] = in_channels
    with torch.device(device):
        module = compile(genotype, in_channels=in_channels, num_classes=num_classes).eval()
        params = sum(p.numel() for p in module.parameters())
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            module(torch.zeros(1, *shape))
    return params, counter.get_total_flops() // FLOPS_PER_MAC
