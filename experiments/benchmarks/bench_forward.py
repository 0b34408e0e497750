"""Benchmark (b): forward latency of compiled ResNet-50 vs a hand-written eager ResNet-50 with
the same weights, batch 1 and 8 at 3x224x224, CPU, eval mode, no grad.

    python experiments/benchmarks/bench_forward.py [--rounds 20]
Goal: compiled / hand-written <= 1.03x. The two models are timed in alternation.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import interleaved  # noqa: E402
from handwritten_resnet import HandResNet  # noqa: E402

import torch  # noqa: E402

from nas import compile, zoo  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    args = ap.parse_args(argv)
    ours = compile(zoo.build("resnet50")).eval()
    hand = HandResNet().eval()
    hand.load_state_dict(ours.state_dict())  # same names, same shapes: torchvision's layout
    print(f"threads={torch.get_num_threads()}  torch={torch.__version__}")
    for batch in args.batches:
        x = torch.randn(batch, 3, 224, 224)
        with torch.no_grad():
            torch.testing.assert_close(ours(x), hand(x))
            t = interleaved({"compiled": lambda: ours(x), "hand": lambda: hand(x)},
                            rounds=args.rounds)
        print(f"batch {batch}: compiled {t['compiled'] * 1e3:8.1f} ms   hand-written "
              f"{t['hand'] * 1e3:8.1f} ms   ratio {t['compiled'] / t['hand']:.3f}x  (goal <= 1.03x)")


if __name__ == "__main__":
    main()
