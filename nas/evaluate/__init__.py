"""Evaluation: proxy datasets, the trainer, zero-cost proxies and measured latency.

    from nas.evaluate.data import load_dataset
    from nas.evaluate.train import train, TrialFailure
    from nas.evaluate.proxies import score, PROXIES
    from nas.evaluate.latency import measure_latency

Submodules import torch lazily; importing this package is cheap.
"""
