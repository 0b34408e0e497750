"""Benchmark (a): analytic count of ResNet-50 vs building the module and running FlopCounterMode.

    python experiments/benchmarks/bench_count.py
Goal: analytic >= 100x faster. Both paths start from the same genotype.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import median_seconds  # noqa: E402

import torch  # noqa: E402

from nas import count, zoo  # noqa: E402
from nas.measure import measured_params_macs  # noqa: E402


def main() -> None:
    torch.set_num_threads(1)
    g = zoo.build("resnet50")
    cost = count(g)
    assert (cost.params, cost.macs) == measured_params_macs(g)
    analytic = median_seconds(lambda: count(g), repeat=50, warmup=3)
    measured = median_seconds(lambda: measured_params_macs(g), repeat=5, warmup=1)
    print(f"ResNet-50 ({cost})")
    print(f"  analytic count          {analytic * 1e3:9.2f} ms")
    print(f"  compile + FlopCounter   {measured * 1e3:9.2f} ms")
    print(f"  speed-up                {measured / analytic:9.1f}x   (goal >= 100x)")


if __name__ == "__main__":
    main()
