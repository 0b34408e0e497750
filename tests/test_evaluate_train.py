"""nas.evaluate.train: learns on real data, reports per epoch, fails cleanly, is deterministic."""
import pytest

from nas.builder import GraphBuilder
from nas.cost import count
from nas.errors import NasError
from nas.evaluate.train import TrialFailure, build_model, evaluate, proxy_genotype, train


def test_one_epoch_beats_chance_on_embedded_mnist(mnist, tiny_resnet):
    seen = []
    # 37 steps; with the last BN of each residual branch at zero (nas.ops init), lr 0.1
    # reaches 0.71-0.75 on seeds 0/1 (0.58 at lr 0.05, 0.23 at batch 64, measured)
    r = train(tiny_resnet, mnist, epochs=1, batch_size=32, lr=0.1,
              on_epoch=lambda e, a: seen.append((e, a)))
    assert r.accuracy > 0.5           # chance is 0.1
    assert seen == [(1, r.accuracy)] and r.epochs == 1
    h = r.history[0]
    assert set(h) == {"epoch", "train_loss", "val_accuracy", "val_loss", "seconds"}
    assert h["train_loss"] < 2.3      # below the loss of a uniform guess, ln 10
    assert 0 < h["val_loss"] < 2.3
    assert r.val_loss == r.best_val_loss == h["val_loss"]
    assert r.images_per_second > 0 and r.seconds >= h["seconds"] > 0


def test_costs_are_those_of_the_proxy_task(mnist, tiny_resnet):
    r = train(tiny_resnet, mnist, max_train_batches=1, batch_size=16)
    g = proxy_genotype(tiny_resnet, mnist)
    assert g.input_shape == (1, 16, 16)
    assert (r.proxy_params, r.proxy_macs) == (count(g).params, count(g).macs)
    assert r.proxy_params < count(tiny_resnet).params     # 1 input channel, 10 classes


def test_deterministic_under_a_seed_on_cpu(mnist, tiny_resnet):
    a, b = (train(tiny_resnet, mnist, epochs=2, max_train_batches=3, batch_size=32, seed=5)
            for _ in range(2))
    c = train(tiny_resnet, mnist, epochs=2, max_train_batches=3, batch_size=32, seed=6)
    strip = lambda r: [(h["train_loss"], h["val_accuracy"]) for h in r.history]  # noqa: E731
    assert strip(a) == strip(b)
    assert strip(a) != strip(c)


def test_callback_can_stop_training(mnist, tiny_resnet):
    class Stop(Exception):
        pass

    calls = []

    def on_epoch(epoch, acc):
        calls.append(epoch)
        if epoch == 2:
            raise Stop

    with pytest.raises(Stop):
        train(tiny_resnet, mnist, epochs=5, max_train_batches=1, batch_size=16, on_epoch=on_epoch)
    assert calls == [1, 2]


def test_nan_loss_becomes_trial_failure(mnist, tiny_resnet):
    with pytest.raises(TrialFailure, match="diverged.*loss became (nan|inf)") as e:
        train(tiny_resnet, mnist, lr=1e6, epochs=2, batch_size=32)
    assert "learning rate" in e.value.reason and isinstance(e.value, NasError)


def test_architecture_too_big_for_the_proxy_input_is_a_trial_failure(mnist):
    b = GraphBuilder((3, 64, 64), "wide_kernel")
    x = b.node("conv", "conv", [b.input], out_channels=8, kernel=20, padding=0)  # 16 -> -3
    y = b.node("fc", "linear", [b.node("flat", "flatten", [b.node("gap", "gap", [x])])],
               out_features=10)
    g = b.build(y, classifiers=[y])
    with pytest.raises(TrialFailure, match="does not fit the proxy input"):
        train(g, mnist)


@pytest.mark.parametrize("kwargs", [{"epochs": 0}, {"batch_size": 1}, {"lr": float("nan")},
                                    {"max_train_batches": 0}])
def test_bad_arguments(mnist, tiny_resnet, kwargs):
    with pytest.raises(NasError):
        train(tiny_resnet, mnist, **kwargs)


def test_evaluate_reports_accuracy_and_mean_cross_entropy_over_the_whole_split(mnist, tiny_resnet):
    import torch
    import torch.nn.functional as F

    model = build_model(tiny_resnet, mnist, seed=3)
    model.eval()
    with torch.no_grad():
        logits = model(mnist.val_x)
    want_loss = F.cross_entropy(logits, mnist.val_y).item()
    want_acc = (logits.argmax(1) == mnist.val_y).sum().item() / len(mnist.val_y)
    # batches that do not divide the split: the mean is over images, not over batches
    got = evaluate(model, mnist, batch_size=7)
    assert set(got) == {"accuracy", "loss"}
    assert got["accuracy"] == pytest.approx(want_acc, abs=1e-9)
    assert got["loss"] == pytest.approx(want_loss, rel=1e-5)


def test_best_val_loss_is_the_lowest_epoch(mnist, tiny_resnet):
    r = train(tiny_resnet, mnist, epochs=3, max_train_batches=2, batch_size=16)
    losses = [h["val_loss"] for h in r.history]
    assert r.val_loss == losses[-1] and r.best_val_loss == min(losses)
    assert r.to_dict()["best_val_loss"] == min(losses)


def test_lr_schedule_warms_up_linearly_then_decays_by_cosine():
    from nas.evaluate.train import lr_schedule

    plain = lr_schedule(1.0, 10)
    assert plain[0] == 1.0 and plain[-1] == pytest.approx(0) and len(plain) == 11
    assert all(a >= b for a, b in zip(plain, plain[1:]))
    warm = lr_schedule(1.0, 10, warmup=0.3)
    assert warm[:4] == pytest.approx([1 / 3, 2 / 3, 1.0, 1.0])
    assert all(a >= b for a, b in zip(warm[3:], warm[4:])) and warm[-1] == pytest.approx(0)


def test_warmup_and_label_smoothing_change_training_not_the_validation_loss_definition(mnist, tiny_resnet):
    base = train(tiny_resnet, mnist, max_train_batches=3, batch_size=16)
    smooth = train(tiny_resnet, mnist, max_train_batches=3, batch_size=16, label_smoothing=0.1)
    warm = train(tiny_resnet, mnist, max_train_batches=3, batch_size=16, warmup=0.5)
    assert smooth.history[0]["train_loss"] != base.history[0]["train_loss"]
    assert warm.history[0]["train_loss"] != base.history[0]["train_loss"]
    with pytest.raises(NasError, match="warmup"):
        train(tiny_resnet, mnist, warmup=1.0)
    with pytest.raises(NasError, match="label_smoothing"):
        train(tiny_resnet, mnist, label_smoothing=-0.1)


def test_recompute_bn_sets_the_running_statistics_to_the_mean_over_batches():
    import torch

    from nas.evaluate.train import recompute_bn

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4))
    x = torch.randn(40, 1, 6, 6) * 3 + 1
    recompute_bn(model, x, images=30, batch_size=10, seed=5)
    idx = torch.randperm(40, generator=torch.Generator().manual_seed(5))[:30]
    with torch.no_grad():
        outs = [model[0](x[idx[i:i + 10]]) for i in range(0, 30, 10)]
    bn = model[1]
    want_mean = torch.stack([o.mean((0, 2, 3)) for o in outs]).mean(0)
    want_var = torch.stack([o.var((0, 2, 3), unbiased=True) for o in outs]).mean(0)
    assert torch.allclose(bn.running_mean, want_mean, atol=1e-5)
    assert torch.allclose(bn.running_var, want_var, atol=1e-4)
    assert bn.momentum == 0.1 and model.training          # restored


def test_precise_bn_and_weight_averaging_change_the_validated_model_only(mnist, tiny_resnet):
    kw = dict(max_train_batches=4, batch_size=16)
    base = train(tiny_resnet, mnist, **kw)
    precise = train(tiny_resnet, mnist, precise_bn=64, **kw)
    averaged = train(tiny_resnet, mnist, precise_bn=64, weight_average=0.5, **kw)
    # the same training steps (same losses), other statistics / weights at validation
    assert precise.history[0]["train_loss"] == base.history[0]["train_loss"]
    assert averaged.history[0]["train_loss"] == base.history[0]["train_loss"]
    assert precise.val_loss != base.val_loss and averaged.val_loss != precise.val_loss
    assert train(tiny_resnet, mnist, precise_bn=64, **kw).val_loss == precise.val_loss
    with pytest.raises(NasError, match="weight_average needs precise_bn"):
        train(tiny_resnet, mnist, weight_average=0.5)
    with pytest.raises(NasError, match="precise_bn"):
        train(tiny_resnet, mnist, precise_bn=-1)


def test_stem_transform_keeps_spatial_extent_and_is_counted_exactly(mnist, tiny_resnet):
    from nas.evaluate.train import input_chain

    plain, one = proxy_genotype(tiny_resnet, mnist), proxy_genotype(tiny_resnet, mnist, "stem:1")
    two = proxy_genotype(tiny_resnet, mnist, "stem:2")
    assert input_chain(plain) == ["conv1", "bn1", "relu1", "maxpool"]
    last = [g.infer_shapes()["layer4.0.relu"][1:] for g in (plain, one, two)]
    assert last == [(1, 1), (1, 1), (2, 2)]     # 16 px: 16/32 -> 1, then 2 with stem:2
    assert one.attrs("maxpool")["stride"] == 1 and one.attrs("conv1").get("stride", 1) == 2
    assert two.attrs("conv1")["stride"] == 1
    r = train(tiny_resnet, mnist, max_train_batches=1, batch_size=16, transform="stem:2")
    assert (r.proxy_params, r.proxy_macs) == (count(two).params, count(two).macs)
    assert r.proxy_macs > count(plain).macs
    with pytest.raises(NasError, match="unknown resolution transform"):
        proxy_genotype(tiny_resnet, mnist, "stem:9")


def test_live_taps_of_small_maps():
    from nas.evaluate.train import live_taps

    assert live_taps(1, 3, 1, 1, 1) == (1, 1, 0)      # 3x3 on a 1x1 map: the centre tap only
    assert live_taps(2, 3, 2, 1, 1) == (1, 2, 0)      # 3x3/2 on 2x2: the last two taps
    assert live_taps(2, 3, 1, 1, 1) is None           # every tap meets a pixel somewhere
    assert live_taps(7, 3, 1, 1, 1) is None
    assert live_taps(1, 7, 2, 3, 1) == (3, 3, 0)      # a 7x7/2 stem on a 1x1 input


def test_cropping_conv_equals_the_full_conv_in_outputs_and_gradients():
    """Random convs (kernels, strides, dilations, paddings, groups, bias) on maps small
    enough that taps only ever meet padding, or small enough to run as matrix products:
    same outputs and gradients as nn.Conv2d."""
    from collections import Counter

    import random

    import torch

    from nas.evaluate.train import _cropping_conv_class

    rng, cropped, checked, gemms = random.Random(0), 0, 0, Counter()
    while checked < 240:
        k, s, d = rng.choice([1, 3, 5, 7]), rng.choice([1, 2]), rng.choice([1, 1, 2])
        p, h, w = rng.randint(0, k // 2 * d + 1), rng.choice([1, 2, 3, 7]), rng.choice([1, 2, 3, 7])
        cin = rng.choice([4, 8])
        groups = rng.choice([1, cin, 2])
        cout = cin * rng.choice([1, 2]) if groups > 1 else rng.choice([3, 8])
        if min(h, w) + 2 * p - d * (k - 1) - 1 < 0:
            continue
        full = torch.nn.Conv2d(cin, cout, k, s, p, d, groups, bias=rng.random() < 0.5).double()
        crop = torch.nn.Conv2d(cin, cout, k, s, p, d, groups, bias=full.bias is not None).double()
        crop.load_state_dict(full.state_dict())
        crop.__class__ = _cropping_conv_class()
        x = torch.randn(3, cin, h, w, dtype=torch.double)
        if rng.random() < 0.5:
            x = x.contiguous(memory_format=torch.channels_last)
        x.requires_grad_()
        x2 = x.detach().clone().requires_grad_()
        y, y2 = full(x), crop(x2)
        grad = torch.randn_like(y)
        y.backward(grad)
        y2.backward(grad)
        for a, b in ((y2, y), (x2.grad, x.grad), (crop.weight.grad, full.weight.grad)):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
        plan = crop._plans[(h, w)]
        cropped += plan is not None and plan[0] is not None
        gemms[(plan[1], groups == 1, groups == cin) if plan is not None else None] += 1
        checked += 1
    assert cropped >= 20   # the interesting cases happened often
    assert all(gemms[("pixel", dense, depthwise)] >= 5
               for dense, depthwise in ((True, False), (False, True), (False, False)))
    assert gemms[("pointwise", True, False)] >= 5
    assert gemms[("depthwise", False, True)] >= 5


def test_depthwise_weight_gradient_kernel_equals_torch():
    """The compiled depthwise weight-gradient kernel against torch's, float64, random
    kernels, strides, paddings, dilations and map sizes (odd channel counts too)."""
    import random

    import torch

    from nas.evaluate import dwconv

    assert dwconv.available()   # cc is part of this project's environment
    rng = random.Random(1)
    for _ in range(60):
        k, s, d = rng.choice([(3, 3), (5, 5), (7, 7), (1, 3)]), rng.choice([1, 2]), rng.choice([1, 2])
        p = (rng.randint(0, k[0] // 2 * d), rng.randint(0, k[1] // 2 * d))
        h, w, c = rng.choice([1, 2, 4, 7, 9]), rng.choice([1, 3, 7]), rng.choice([1, 5, 16, 33])
        if h + 2 * p[0] < d * (k[0] - 1) + 1 or w + 2 * p[1] < d * (k[1] - 1) + 1:
            continue
        x = torch.randn(3, c, h, w, dtype=torch.double)
        weight = torch.randn(c, 1, *k, dtype=torch.double)
        y = torch.nn.functional.conv2d(x, weight, None, s, p, d, c)
        grad = torch.randn_like(y)
        ref = torch.ops.aten.convolution_backward(grad, x, weight, None, [s, s], list(p), [d, d],
                                                  False, [0, 0], c, [False, True, False])[1]
        got = dwconv.grad_weight(x, grad, k, (s, s), p, (d, d))
        torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)


def test_without_a_c_compiler_depthwise_convs_keep_torchs_path(monkeypatch, tmp_path):
    """No working compiler: available() is False (no error) and depthwise convs plan no
    kernel of ours, with the same outputs and gradients as nn.Conv2d."""
    import torch

    from nas.evaluate import dwconv
    from nas.evaluate.train import _cropping_conv_class

    monkeypatch.setattr(dwconv, "_LIB", False)
    monkeypatch.setenv("NAS_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", "false")   # a "compiler" that always fails
    assert not dwconv.available()
    assert not list(tmp_path.glob("*.so"))
    full = torch.nn.Conv2d(8, 8, 5, 1, 2, groups=8, bias=False).double()
    conv = torch.nn.Conv2d(8, 8, 5, 1, 2, groups=8, bias=False).double()
    conv.load_state_dict(full.state_dict())
    conv.__class__ = _cropping_conv_class()
    x = torch.randn(2, 8, 7, 7, dtype=torch.double)
    y, y2 = full(x), conv(x)
    y.sum().backward()
    y2.sum().backward()
    assert conv._plans[(7, 7)] is None   # nothing to crop, no GEMM, no depthwise kernel
    torch.testing.assert_close(y2, y, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(conv.weight.grad, full.weight.grad, rtol=1e-12, atol=1e-12)


def test_cpu_layout_keeps_dense_kernels_nchw_and_marks_the_rest_channels_last(mnist, tiny_resnet):
    import torch

    from nas.evaluate.train import _cropping_conv_class, to_layout

    g = tiny_resnet
    model = to_layout(build_model(g, mnist), torch.channels_last)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(type(m) is _cropping_conv_class() for m in convs)
    kinds = set()
    for m in convs:
        w = m.weight
        dense = w.shape[1] > 1 and w.shape[2] * w.shape[3] > 1
        kinds.add(dense)
        fmt = torch.contiguous_format if dense else torch.channels_last
        assert w.is_contiguous(memory_format=fmt)
    assert kinds == {True, False}   # 3x3 convs dense; 1x1 shortcuts and the 1-channel stem not
    nchw = to_layout(build_model(g, mnist), torch.contiguous_format)
    assert all(type(m) is torch.nn.Conv2d for m in nchw.modules() if isinstance(m, torch.nn.Conv2d))
