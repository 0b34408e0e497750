"""The CUDA paths on a real GPU: training under AMP (fp16 + GradScaler) in channels_last,
evaluation against the CPU, exact costs, out of memory, the search CLI in-process and on Ray
with two trials sharing one GPU, latency.

Every test here is marked ``cuda``: where torch sees no CUDA device they are skipped with a
reason starting "needs CUDA:" (tests/conftest.py). Run them with ``python -m pytest -m cuda``.
"""
from __future__ import annotations

import copy
import math

import pytest

from nas.cost import count
from nas.evaluate import train as train_module
from nas.evaluate.train import evaluate, proxy_genotype, train

pytestmark = pytest.mark.cuda

#: a tiny search (as in tests/test_search.py): 120 images at 16 px, budget 600 MFLOPs
TINY = ["--space", "resnet_like", "--budget", "600MFLOPs", "--limit", "120", "--resolution", "16",
        "--batch-size", "32"]


@pytest.fixture(scope="module")
def cuda_run(mnist, tiny_resnet):
    """One epoch of ``train`` on cuda (the CPU test's recipe: batch 32, lr 0.1, 37 steps) with
    the trained model, what a conv past the stem saw in training, and the grad scalers made."""
    import torch

    seen, built, scalers = [], [], []
    real_build, real_scaler = train_module.build_model, torch.amp.GradScaler

    def spy_build(*args, **kwargs):
        model = real_build(*args, **kwargs)
        conv = next(m for m in model.modules()
                    if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1)

        def hook(module, inputs, output):
            if module.training:
                seen.append((inputs[0].is_contiguous(memory_format=torch.channels_last),
                             output.dtype, output.device.type))

        conv.register_forward_hook(hook)
        built.append(model)
        return model

    class SpyScaler(real_scaler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.steps = 0
            scalers.append(self)

        def step(self, *args, **kwargs):
            self.steps += 1
            return super().step(*args, **kwargs)

    mp = pytest.MonkeyPatch()
    mp.setattr(train_module, "build_model", spy_build)
    mp.setattr(torch.amp, "GradScaler", SpyScaler)
    try:
        result = train(tiny_resnet, mnist, epochs=1, batch_size=32, lr=0.1, device="cuda")
    finally:
        mp.undo()
    return result, built[0], seen, scalers


def test_train_on_cuda_learns_under_amp_and_channels_last(cuda_run, mnist):
    import torch

    r, model, seen, scalers = cuda_run
    steps = len(mnist.train_y) // 32
    assert r.device == "cuda" and r.epochs == 1
    assert r.accuracy > 0.5                        # chance is 0.1; the CPU run reaches 0.71-0.75
    h = r.history[0]
    assert math.isfinite(h["train_loss"]) and h["train_loss"] < 2.3   # below ln 10
    assert math.isfinite(r.val_loss) and 0 < r.val_loss < 2.3
    assert r.images_per_second > 0 and r.seconds > 0
    # every training forward ran in fp16 on NHWC activations, on the GPU
    assert len(seen) == steps
    assert all(seen_cl and dtype == torch.float16 and dev == "cuda" for seen_cl, dtype, dev in seen)
    # one GradScaler stepped every batch and kept a finite scale; the weights stay fp32 NHWC
    assert len(scalers) == 1 and scalers[0].steps == steps
    assert 0 < scalers[0].get_scale() < math.inf
    weights = [p for p in model.parameters() if p.dim() == 4]
    assert weights and all(p.is_cuda and p.dtype == torch.float32 for p in model.parameters())
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in weights)


def test_evaluate_on_cuda_agrees_with_the_cpu_on_the_same_weights(cuda_run, mnist):
    import torch

    r, model, _, _ = cuda_run
    n = len(mnist.val_y)
    on_gpu = evaluate(model, mnist, layout=torch.channels_last)
    assert abs(on_gpu["accuracy"] - r.accuracy) <= 1 / n     # train's own last validation
    cpu_model = copy.deepcopy(model).cpu().to(memory_format=torch.contiguous_format)
    on_cpu = evaluate(cpu_model, mnist)
    # fp16 autocast moves logits by ~1e-3: at most a few near-ties flip
    assert abs(on_gpu["accuracy"] - on_cpu["accuracy"]) <= 3 / n
    assert on_gpu["loss"] == pytest.approx(on_cpu["loss"], rel=1e-2)


def test_precise_bn_and_weight_averaging_on_cuda(mnist, tiny_resnet):
    """Recomputed batch-norm statistics (under autocast) and averaged weights on the GPU: the
    same training steps as the plain run, finite scores that still learn, CPU-like effect."""
    kw = dict(epochs=1, batch_size=32, lr=0.1, device="cuda", seed=1)
    plain = train(tiny_resnet, mnist, **kw)
    precise = train(tiny_resnet, mnist, precise_bn=256, **kw)
    averaged = train(tiny_resnet, mnist, precise_bn=256, weight_average=0.3, **kw)
    assert precise.history[0]["train_loss"] == pytest.approx(plain.history[0]["train_loss"], rel=1e-3)
    for r in (precise, averaged):
        assert r.accuracy > 0.5 and math.isfinite(r.val_loss) and 0 < r.val_loss < 2.3
    assert precise.val_loss != plain.val_loss and averaged.val_loss != precise.val_loss


def test_costs_on_cuda_are_the_exact_counts(cuda_run, mnist, tiny_resnet):
    from nas.measure import measured_params_macs
    from nas.zoo.resnet import resnet18

    r, model, _, _ = cuda_run
    g = proxy_genotype(tiny_resnet, mnist)
    c = count(g)
    assert (r.proxy_params, r.proxy_macs) == (c.params, c.macs)
    assert sum(p.numel() for p in model.parameters()) == c.params
    assert measured_params_macs(g, device="cuda") == (c.params, c.macs)
    full = resnet18()   # at its 224 px target: 11,689,512 params, 1.8 GMACs
    assert measured_params_macs(full, device="cuda") == (count(full).params, count(full).macs)


#: run in a fresh process: there the caching allocator holds nothing yet, so a cap below one
#: allocation segment makes the first allocation fail (in this process, tensors the earlier
#: tests keep alive leave free room in their segments, and small weights can land there)
_OOM = """
import math, torch
from nas.evaluate.train import TrialFailure, train
from nas.evaluate.data import load_dataset
from nas.zoo.resnet import resnet
data = load_dataset(limit=300, resolution=16)
net = resnet("basic", (1, 1, 1, 1), widths=(16, 32, 64, 128), name="tiny_resnet")
torch.cuda.set_per_process_memory_fraction(1e-5)  # ~0.85 MB of 80 GB: below one 2 MB segment
try:
    train(net, data, batch_size=32, max_train_batches=2, device="cuda")
    print("no failure")
except TrialFailure as e:
    print("failure:", e)
torch.cuda.set_per_process_memory_fraction(1.0)
r = train(net, data, batch_size=32, max_train_batches=2, device="cuda")
print("recovered:", math.isfinite(r.val_loss))
"""


def test_out_of_memory_on_cuda_is_a_trial_failure():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _OOM], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "failure: out of memory on cuda at batch size 32" in out.stdout, out.stdout
    assert "recovered: True" in out.stdout, out.stdout


def _complete(db, study: str) -> list[dict]:
    from nas.store import TrialStore

    store = TrialStore(db)
    try:
        assert store.study(study)["config"]["device"] == "cuda"
        return [t for t in store.trials(study) if t["state"] == "COMPLETE"]
    finally:
        store.close()


def test_search_cli_on_cuda_trains_and_records_trials(tmp_path):
    from nas.search import main

    db = tmp_path / "s.db"
    rc = main([*TINY, "--workers", "1", "--device", "cuda", "--trials", "2", "--storage", str(db),
               "--study", "cuda", "--dashboard", str(tmp_path / "d.html")])
    assert rc == 0
    done = _complete(db, "cuda")
    assert len(done) == 2
    for t in done:
        assert 0 <= t["accuracy"] <= 1 and math.isfinite(t["val_loss"])
        assert t["target_macs"] <= 600_000_000 and t["proxy_macs"] > 0
        assert t["epochs"][-1]["val_accuracy"] == t["accuracy"]


def test_ray_backend_runs_two_trials_at_once_on_one_gpu(tmp_path):
    pytest.importorskip("ray")
    from nas.search import main

    db = tmp_path / "s.db"
    rc = main([*TINY, "--backend", "ray", "--gpus-per-trial", "0.5", "--cpus-per-trial", "1",
               "--workers", "2", "--scheduler", "none", "--device", "cuda", "--trials", "2",
               "--storage", str(db), "--study", "ray", "--dashboard", str(tmp_path / "d.html")])
    assert rc == 0
    done = _complete(db, "ray")   # a trial on "cuda" completes only where its worker saw the GPU
    assert len(done) == 2
    assert all(0 <= t["accuracy"] <= 1 for t in done)
    a, b = done
    assert a["worker"] != b["worker"]                     # two Ray workers...
    assert a["started_at"] < b["finished_at"] and b["started_at"] < a["finished_at"]  # ...at once


def test_latency_on_cuda_grows_with_the_batch():
    from nas.evaluate.latency import measure_latency
    from nas.zoo.resnet import resnet18

    g = resnet18()
    one = measure_latency(g, input_shape=(3, 224, 224), batch_size=1, device="cuda")
    many = measure_latency(g, input_shape=(3, 224, 224), batch_size=64, device="cuda")
    assert 0 < one < many < 1.0
