"""Benchmark (c): compile time of ResNet-152 (genotype -> nn.Module), vs constructing the same
net by hand-written eager code in the same run.

    python experiments/benchmarks/bench_compile_time.py
Goal: < 1 s.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import median_seconds  # noqa: E402
from handwritten_resnet import HandResNet  # noqa: E402

import torch  # noqa: E402

from nas.compiler import compile  # noqa: E402
from nas.zoo.resnet import BOTTLENECK, resnet  # noqa: E402


def main() -> None:
    torch.set_num_threads(1)
    g = resnet(BOTTLENECK, (3, 8, 36, 3), name="resnet152")
    ours = median_seconds(lambda: compile(g), repeat=5)
    hand = median_seconds(lambda: HandResNet((3, 8, 36, 3)), repeat=5)
    build = median_seconds(lambda: resnet(BOTTLENECK, (3, 8, 36, 3)), repeat=5)
    print(f"ResNet-152: {len(g)} genotype nodes")
    print(f"  build genotype               {build * 1e3:8.1f} ms")
    print(f"  compile(genotype)            {ours * 1e3:8.1f} ms   (goal < 1000 ms)")
    print(f"  hand-written nn.Module init  {hand * 1e3:8.1f} ms")
    print(f"  ratio compile / hand init    {ours / hand:8.2f}x")


if __name__ == "__main__":
    main()
