"""Proxy training: a genotype retargeted to a dataset, trained E epochs, validated each epoch.

    result = train(genotype, load_dataset("mnist"), epochs=2, on_epoch=report)
    result.accuracy, result.val_loss, result.history

SGD with Nesterov momentum and a per-step cosine schedule by default. The data stays in
memory as tensors: each step indexes a slice of a seeded random permutation (no DataLoader,
no per-sample Python). On CUDA the step runs under AMP (fp16 with a gradient scaler) in
channels_last. On CPU the activations are channels_last too (oneDNN's depthwise and
dense-block kernels are up to ~2x faster in it), while the weights of dense k x k convs stay
in the default layout (their gradients come out of oneDNN in that layout; channels_last
weights cost a copy per conv per step), SGD runs as one fused kernel, and convs skip the
kernel taps that only ever meet zero padding on the small maps of a proxy (a 3x3 conv on a
1x1 map runs as a 1x1 conv: same outputs and gradients, up to 9x less work). On the
smallest maps convs run as matrix products (MKL's GEMM beats oneDNN's conv kernels there at
a batch of 32), and depthwise convs take their weight gradient from a small compiled kernel
where oneDNN has none of its fast ones (:mod:`nas.evaluate.dwconv`). A NaN/inf loss or an
out-of-memory error raises :class:`TrialFailure` with the reason; on CPU a run is
deterministic under its seed.
"""
from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from typing import Callable

from nas.cost import count
from nas.errors import GenotypeError, NasError
from nas.evaluate.data import Dataset
from nas.genotype import Genotype

CUDA_CHECK_EVERY = 25  # steps between loss checks on CUDA (each check syncs the device)


class TrialFailure(NasError):
    """A trial that cannot produce a result (NaN/inf loss, out of memory, unfit input size)."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


@dataclass
class TrainResult:
    """What a proxy training run measured; ``accuracy`` and ``val_loss`` are the last epoch's
    validation accuracy and mean validation cross-entropy (main head)."""

    accuracy: float
    best_accuracy: float
    history: list[dict]
    seconds: float
    epochs: int
    proxy_params: int
    proxy_macs: int
    images_per_second: float
    val_loss: float = float("nan")
    best_val_loss: float = float("nan")
    device: str = "cpu"
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Plain data."""
        return asdict(self)


#: Resolution transforms (``transform=``): how a net designed for its target resolution
#: (224 px) is trained at the proxy's low resolution. "none": as designed, so at 28 px an
#: ImageNet stem leaves the last stage at 1x1. "stem:K": the last K downsampling ops of the
#: input chain (the ops from the input up to the first branch: the stem, for the shipped
#: spaces) run at stride 1, so every later stage keeps 2**K times its spatial extent (and
#: costs about 4**K times the MACs, counted exactly on the transformed proxy genotype).
TRANSFORMS = ("none", "stem:1", "stem:2")


def proxy_genotype(genotype: Genotype, dataset: Dataset, transform: str = "none") -> Genotype:
    """``genotype`` retargeted to ``dataset`` (input channels, classes and input resolution),
    with the resolution ``transform`` applied (see :data:`TRANSFORMS`)."""
    g = genotype.retarget(dataset.in_channels, dataset.num_classes)
    g.graph.nodes[g.input]["attrs"] = {**g.attrs(g.input), "shape": list(dataset.input_shape)}
    undo = _transform_steps(transform)
    if undo:
        _undo_stem_downsampling(g, undo)
    try:
        g.validate()
    except GenotypeError as e:
        raise TrialFailure(f"the architecture does not fit the proxy input "
                           f"{list(dataset.input_shape)} (transform {transform}): {e}") from None
    return g


def _transform_steps(transform: str) -> int:
    if transform not in TRANSFORMS:
        raise NasError(f"unknown resolution transform {transform!r}; use one of "
                       f"{', '.join(TRANSFORMS)}")
    return 0 if transform == "none" else int(transform.partition(":")[2])


def input_chain(g: Genotype) -> list[str]:
    """The nodes from the input up to (excluding) the first branch or merge, in order."""
    chain, n = [], g.input
    while True:
        succ = list(g.graph.successors(n))
        if len(succ) != 1 or len(g.inputs(succ[0])) != 1 or succ[0] in g.outputs:
            return chain
        n = succ[0]
        chain.append(n)


def _undo_stem_downsampling(g: Genotype, k: int) -> None:
    """Set stride 1 on the last ``k`` downsampling ops (any op with a stride > 1) of the
    input chain; raise NasError when the chain has fewer."""
    strided = []
    for n in input_chain(g):
        attrs = g.resolved_attrs(n)
        if "stride" in attrs:
            stride = attrs["stride"] if attrs["stride"] is not None else attrs.get("kernel", 1)
            if max((stride,) if isinstance(stride, int) else tuple(stride)) > 1:
                strided.append(n)
    if len(strided) < k:
        raise NasError(f"transform stem:{k} needs {k} downsampling ops before the first branch; "
                       f"this architecture has {len(strided)} ({', '.join(strided) or 'none'})")
    for n in strided[len(strided) - k:]:
        g.graph.nodes[n]["attrs"] = {**g.attrs(n), "stride": 1}


def build_model(genotype: Genotype, dataset: Dataset, *, seed: int = 0, transform: str = "none"):
    """The compiled proxy model of ``genotype`` with weights initialised under ``seed``."""
    import torch

    from nas.compiler import compile as compile_genotype

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return compile_genotype(proxy_genotype(genotype, dataset, transform))


def train(genotype: Genotype, dataset: Dataset, *, epochs: int = 1, batch_size: int = 128,
          lr: float = 0.05, momentum: float = 0.9, weight_decay: float = 5e-4, seed: int = 0,
          device: str = "cpu", on_epoch: Callable[[int, float], None] | None = None,
          max_train_batches: int | None = None, channels_last: bool | None = None,
          aux_weight: float = 0.4, eval_batch_size: int = 1000, warmup: float = 0.0,
          label_smoothing: float = 0.0, transform: str = "none", precise_bn: int = 0,
          weight_average: float = 0.0,
          clock: Callable[[], float] = time.perf_counter) -> TrainResult:
    """Train ``genotype`` on ``dataset`` and return the validation accuracy per epoch.

    ``on_epoch(epoch, val_accuracy)`` runs after each epoch (epochs count from 1) and may
    raise to stop the run (e.g. a pruner). ``channels_last`` (activations in NHWC) defaults
    to on; ``False`` keeps everything NCHW.
    ``clock`` times the epochs (wall clock by default; ``time.thread_time`` gives CPU time).
    ``warmup``: the fraction of all steps over which the learning rate ramps up linearly
    before the cosine decay; ``label_smoothing`` applies to the training loss only (the
    validation loss is plain cross-entropy). ``transform``: the resolution transform
    (:data:`TRANSFORMS`); the proxy costs are those of the transformed genotype.
    ``precise_bn``: before each validation, the batch-norm statistics are recomputed over this
    many training images (forward passes in training mode, batches of ``batch_size``, equal
    weight per batch) instead of the running averages of the last steps; 0 keeps those.
    ``weight_average``: the model validated after the last epoch holds the mean of the weights
    after each of the last ``weight_average`` fraction of all steps (stochastic weight
    averaging; needs ``precise_bn``, since averaged weights need their own statistics).
    Raises :class:`TrialFailure` on NaN/inf loss or out of memory.
    """
    import torch

    _check_args(epochs, batch_size, lr, max_train_batches)
    if not (isinstance(warmup, (int, float)) and 0 <= warmup < 1):
        raise NasError(f"warmup must be a fraction in [0, 1), got {warmup!r}")
    if not (isinstance(label_smoothing, (int, float)) and 0 <= label_smoothing < 1):
        raise NasError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
    check_averaging(precise_bn, weight_average)
    dev = torch.device(device)
    layout = torch.channels_last if channels_last is None or channels_last \
        else torch.contiguous_format
    g = proxy_genotype(genotype, dataset, transform)
    cost = count(g)
    try:  # moving the model and the data to the device can run out of memory too
        model = to_layout(build_model(genotype, dataset, seed=seed, transform=transform).to(dev),
                          layout)
        data = dataset.to(dev) if dev.type != "cpu" else dataset
        history, timing = _fit(model, data, epochs=epochs, batch_size=batch_size, lr=lr,
                       momentum=momentum, weight_decay=weight_decay, seed=seed, dev=dev,
                       layout=layout, on_epoch=on_epoch, max_train_batches=max_train_batches,
                       aux_weight=aux_weight, eval_batch_size=eval_batch_size, clock=clock,
                       warmup=warmup, label_smoothing=label_smoothing,
                       precise_bn=precise_bn, weight_average=weight_average)
    except (torch.OutOfMemoryError, MemoryError) as e:
        raise _oom(e, dev, batch_size) from None
    except RuntimeError as e:
        if "out of memory" in str(e) or "can't allocate memory" in str(e):
            raise _oom(e, dev, batch_size) from None
        raise
    train_s = sum(t for t, _ in timing)
    images = sum(k for _, k in timing)
    accs = [h["val_accuracy"] for h in history]
    losses = [h["val_loss"] for h in history]
    return TrainResult(accuracy=accs[-1], best_accuracy=max(accs), history=history,
                       val_loss=losses[-1], best_val_loss=min(losses),
                       seconds=sum(h["seconds"] for h in history), epochs=len(history),
                       proxy_params=cost.params, proxy_macs=cost.macs,
                       images_per_second=images / train_s if train_s > 0 else float("nan"),
                       device=str(dev))


def _check_args(epochs, batch_size, lr, max_train_batches) -> None:
    if not isinstance(epochs, int) or epochs < 1:
        raise NasError(f"epochs must be an int >= 1, got {epochs!r}")
    if not isinstance(batch_size, int) or batch_size < 2:
        raise NasError(f"batch_size must be an int >= 2 (batch norm needs 2), got {batch_size!r}")
    if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
        raise NasError(f"lr must be a positive finite number, got {lr!r}")
    if max_train_batches is not None and (not isinstance(max_train_batches, int) or max_train_batches < 1):
        raise NasError(f"max_train_batches must be an int >= 1 or None, got {max_train_batches!r}")


def check_averaging(precise_bn, weight_average) -> None:
    """Raise NasError unless ``precise_bn`` (images, >= 0) and ``weight_average`` (a fraction
    in [0, 1), which needs ``precise_bn``) can train together."""
    if not isinstance(precise_bn, int) or isinstance(precise_bn, bool) or precise_bn < 0:
        raise NasError(f"precise_bn must be an int >= 0 (training images), got {precise_bn!r}")
    if not (isinstance(weight_average, (int, float)) and 0 <= weight_average < 1):
        raise NasError(f"weight_average must be a fraction in [0, 1), got {weight_average!r}")
    if weight_average > 0 and precise_bn == 0:
        raise NasError("weight_average needs precise_bn > 0: averaged weights need batch-norm "
                       "statistics of their own (e.g. precise_bn=400)")


def _fit(model, data: Dataset, *, epochs, batch_size, lr, momentum, weight_decay, seed, dev,
         layout, on_epoch, max_train_batches, aux_weight, eval_batch_size, clock, warmup=0.0,
         label_smoothing=0.0, precise_bn=0, weight_average=0.0):
    import torch
    import torch.nn.functional as F

    cuda = dev.type == "cuda"
    n = len(data.train_y)
    bs = min(batch_size, n)
    steps = n // bs  # the last partial batch is dropped (a batch of 1 breaks batch norm)
    if max_train_batches is not None:
        steps = min(steps, max_train_batches)
    # the per-step schedule, precomputed: setting a float is cheaper than a scheduler
    lrs = lr_schedule(lr, epochs * steps, warmup)
    # CPU: one fused kernel per step instead of ~3 passes over every parameter tensor
    # (+7-16% on ResNets); CUDA keeps torch's default (foreach) next to the grad scaler
    opt = torch.optim.SGD(model.parameters(), lr=lrs[0], momentum=momentum,
                          weight_decay=weight_decay, nesterov=momentum > 0,
                          **({} if cuda else {"fused": True}))
    group = opt.param_groups[0]
    scaler = torch.amp.GradScaler("cuda") if cuda else None
    autocast = (lambda: torch.autocast("cuda", dtype=torch.float16)) if cuda else nullcontext
    gen = torch.Generator().manual_seed(seed)
    x_all, y_all = data.train_x, data.train_y
    history, timing = [], []
    total_steps = epochs * steps
    average_from = total_steps - round(weight_average * total_steps) if weight_average else None
    averaged, n_averaged = None, 0
    with torch.random.fork_rng(devices=[dev.index or 0] if cuda else []):
        torch.manual_seed(seed)  # dropout and other in-model randomness
        for epoch in range(1, epochs + 1):
            t0 = clock()
            model.train()
            perm = torch.randperm(n, generator=gen)[: steps * bs].to(dev, non_blocking=True)
            total = torch.zeros((), device=dev) if cuda else 0.0
            for step in range(steps):
                idx = perm[step * bs:(step + 1) * bs]
                xb = x_all.index_select(0, idx)
                if layout is torch.channels_last:
                    xb = xb.contiguous(memory_format=layout)
                yb = y_all.index_select(0, idx)
                with autocast():
                    out = model(xb)
                    loss = _loss(F, out, yb, aux_weight, label_smoothing)
                opt.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.step(opt)
                    scaler.update()
                else:
                    loss.backward()
                    opt.step()
                done = (epoch - 1) * steps + step + 1
                group["lr"] = lrs[done]
                if average_from is not None and done > average_from:
                    averaged, n_averaged = _accumulate(model, averaged, n_averaged)
                if cuda:  # accumulate on the device; each check syncs, so check now and then
                    total += loss.detach()
                    if (step + 1) % CUDA_CHECK_EVERY == 0 or step + 1 == steps:
                        _check_finite(total.item(), epoch, step)
                else:
                    total += loss.item()
                    _check_finite(total, epoch, step)
            if averaged is not None and epoch == epochs:
                _load_average(model, averaged)
            if precise_bn:
                recompute_bn(model, x_all, images=precise_bn, batch_size=bs, seed=seed,
                             layout=layout, autocast=autocast)
            if cuda:
                torch.cuda.synchronize(dev)
            t1 = clock()
            val = evaluate(model, data, batch_size=eval_batch_size, layout=layout)
            acc = val["accuracy"]
            history.append({"epoch": epoch, "train_loss": float(total) / max(steps, 1),
                            "val_accuracy": acc, "val_loss": val["loss"],
                            "seconds": clock() - t0})
            timing.append((t1 - t0, steps * bs))
            if on_epoch is not None:
                on_epoch(epoch, acc)
    return history, timing


def _accumulate(model, averaged, n):
    """The running mean of the parameters, updated with the current ones."""
    import torch

    params = [p.detach() for p in model.parameters()]
    if averaged is None:
        return [p.clone() for p in params], 1
    torch._foreach_lerp_(averaged, params, 1.0 / (n + 1))
    return averaged, n + 1


def _load_average(model, averaged) -> None:
    import torch

    with torch.no_grad():
        for p, a in zip(model.parameters(), averaged):
            p.copy_(a)


def recompute_bn(model, x, *, images: int, batch_size: int, seed: int = 0, layout=None,
                 autocast=nullcontext) -> None:
    """Replace the running statistics of ``model``'s batch norms by their mean over ``images``
    images of ``x`` (a seeded sample), fed in batches of ``batch_size`` in training mode without
    gradients (precise BN: each batch weighs the same, the last partial batch is dropped)."""
    import torch
    from torch.nn.modules.batchnorm import _BatchNorm

    bns = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    if not bns:
        return
    n = min(images, len(x))
    bs = min(batch_size, n)
    if bs < 2:
        return
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n - n % bs]
    idx = idx.to(x.device)
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # a cumulative (equal-weight) mean over the batches
    was_training = model.training
    model.train()
    try:
        with torch.no_grad(), autocast():
            for i in range(0, len(idx), bs):
                xb = x.index_select(0, idx[i:i + bs])
                if layout is torch.channels_last:
                    xb = xb.contiguous(memory_format=layout)
                model(xb)
    finally:
        for m, momentum in zip(bns, momenta):
            m.momentum = momentum
        model.train(was_training)


def lr_schedule(lr: float, total_steps: int, warmup: float = 0.0) -> list[float]:
    """The learning rate of steps 0..``total_steps`` (one extra: the value after the last step).

    A linear ramp over the first ``round(warmup * total_steps)`` steps (step k of w runs at
    ``lr * (k + 1) / w``), then a cosine decay from ``lr`` to 0 over the rest.
    """
    w = min(round(warmup * total_steps), max(total_steps - 1, 0))
    rest = max(total_steps - w, 1)
    return [lr * (k + 1) / w if k < w else lr * 0.5 * (1 + math.cos(math.pi * (k - w) / rest))
            for k in range(total_steps + 1)]


def to_layout(model, layout):
    """``model`` with its weights laid out for activations in ``layout``.

    channels_last on CUDA: every 4-d weight in channels_last. channels_last on CPU: weights
    whose two layouts share one memory order (1x1 and depthwise kernels) are marked
    channels_last, so oneDNN keeps the activations NHWC; dense k x k kernels stay in the
    default layout, because oneDNN returns their gradients in it and a channels_last weight
    costs a gradient copy per conv per step (measured: resnet18 at 28 px 0.88x with every
    weight channels_last, 1.08x this way; mobilenet_v2 1.9x either way).
    """
    import torch

    if layout is not torch.channels_last:
        return model.to(memory_format=torch.contiguous_format)
    model = model.to(memory_format=torch.channels_last)
    first = next(model.parameters(), None)
    if first is None or first.device.type == "cuda":
        return model
    for module in model.modules():
        w = getattr(module, "weight", None)
        if isinstance(w, torch.nn.Parameter) and w.dim() == 4 and w.shape[1] > 1 \
                and w.shape[2] * w.shape[3] > 1:
            w.data = w.data.contiguous()
        if type(module) is torch.nn.Conv2d and module.padding_mode == "zeros" \
                and isinstance(module.padding, tuple):
            module.__class__ = _cropping_conv_class()
    return model


def live_taps(size: int, kernel: int, stride: int, padding: int, dilation: int):
    """The kernel taps a zero-padded conv along one axis ever applies to a real input pixel,
    as ``(first, last, padding)`` for the cropped kernel ``[first, last]`` that gives the same
    output (same size, same values: the dropped taps only ever meet zero padding), or None
    when no cropping applies."""
    out = (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
    live = [t for t in range(kernel)
            if any(0 <= o * stride - padding + t * dilation < size for o in range(out))]
    if not live or (live[0] == 0 and live[-1] == kernel - 1):
        return None
    first, last = live[0], live[-1]
    pad = padding - first * dilation
    if pad < 0 or (size + 2 * pad - dilation * (last - first) - 1) // stride + 1 != out:
        return None
    return first, last, pad


_CROPPING_CONV = None

#: Convs with a 1x1 kernel run as one matrix product over the pixels when the output map has
#: at most this many pixels (oneDNN's conv is slower there: measured 1.2-1.3x on 2x2 maps,
#: 0.7-0.9x from 7x7 maps up).
GEMM_MAX_PIXELS = 4


#: Depthwise convs compute their weight gradient with :mod:`nas.evaluate.dwconv`'s kernel
#: (5x5/7x7 kernels: 3-20x faster than oneDNN's; 3x3 on 1x1-2x2 maps: 25x), except 3x3
#: kernels on maps of at least this many pixels a side, where oneDNN's JIT kernel is as fast.
DW_ONEDNN_MIN_MAP = 7


def _cropping_conv_class():
    """An ``nn.Conv2d`` subclass (same parameters and state dict) whose forward drops the
    kernel taps that only meet padding at the input size it gets: a 3x3 conv on a 1x1 map
    becomes a 1x1 conv (9x less work, oneDNN's depthwise kernels are slowest exactly there),
    a 3x3/2 conv on a 2x2 map a 2x2 one. Outputs and gradients are those of the full conv
    (the dropped taps' gradients are exactly zero, as they are in the full conv).

    On the smallest maps the (cropped) conv then runs as plain matrix products, which MKL's
    GEMM does 1.2-4x faster than oneDNN's conv kernels at a proxy's batch of 32 (measured at
    28 px): a conv with a one-pixel output whose kernel covers its whole input window is one
    ``linear`` (a batched one for grouped convs, a product and sum for depthwise ones), and
    a 1x1 conv on a map of at most :data:`GEMM_MAX_PIXELS` pixels is a ``linear`` over the
    pixels of the channels-last activations. Depthwise convs take their weight gradient
    from :mod:`nas.evaluate.dwconv` (see :data:`DW_ONEDNN_MIN_MAP`). Same sums, so the same
    outputs and gradients up to float rounding order."""
    global _CROPPING_CONV
    if _CROPPING_CONV is None:
        import torch
        import torch.nn as nn
        import torch.nn.functional as F

        class CroppingConv2d(nn.Conv2d):
            _plans: dict

            def _conv_forward(self, x, weight, bias):
                plans = self.__dict__.setdefault("_plans", {})
                key = (x.shape[-2], x.shape[-1])
                plan = plans.get(key, False)
                if plan is False:
                    plan = plans[key] = self._plan(*key)
                if plan is None:
                    return super()._conv_forward(x, weight, bias)
                crop, gemm = plan
                if crop is not None:
                    (h0, h1, ph), (w0, w1, pw) = crop
                    weight = weight[:, :, h0:h1 + 1, w0:w1 + 1]
                else:
                    ph, pw = self.padding
                if gemm == "pixel":
                    return self._pixel_gemm(x, weight, bias)
                if gemm == "pointwise":
                    return self._pointwise_gemm(x, weight, bias)
                if gemm == "depthwise" and x.dtype in (torch.float32, torch.float64) \
                        and torch.is_grad_enabled() and weight.requires_grad:
                    from nas.evaluate.dwconv import DepthwiseConv

                    return DepthwiseConv.apply(x, weight, bias, self.stride, (ph, pw),
                                               self.dilation)
                return F.conv2d(x, weight, bias, self.stride, (ph, pw), self.dilation,
                                self.groups)

            def _plan(self, h, w):
                axes = [live_taps(n, k, s, p, d) for n, k, s, p, d in
                        zip((h, w), self.kernel_size, self.stride, self.padding, self.dilation)]
                crop = None if axes == [None, None] else tuple(
                    a if a is not None else (0, k - 1, p)
                    for a, k, p in zip(axes, self.kernel_size, self.padding))
                kernel = (tuple(b - a + 1 for a, b, _ in crop) if crop is not None
                          else self.kernel_size)
                pad = tuple(p for _, _, p in crop) if crop is not None else self.padding
                out = [(n + 2 * p - d * (k - 1) - 1) // s + 1 for n, k, s, p, d in
                       zip((h, w), kernel, self.stride, pad, self.dilation)]
                gemm = None
                if out == [1, 1] and pad == (0, 0) and (
                        kernel == (1, 1) or tuple(self.dilation) == (1, 1)):
                    gemm = "pixel"          # one output pixel: a (grouped) matrix product
                elif kernel == (1, 1) and pad == (0, 0) and self.groups == 1 \
                        and out[0] * out[1] <= GEMM_MAX_PIXELS:
                    gemm = "pointwise"      # 1x1 conv on a tiny map: GEMM over the pixels
                elif self.groups == self.in_channels == self.out_channels > 1 \
                        and not (kernel == (3, 3) and min(h, w) >= DW_ONEDNN_MIN_MAP):
                    from nas.evaluate import dwconv

                    if dwconv.available():
                        gemm = "depthwise"  # weight gradient by our kernel, not oneDNN's
                if crop is None and gemm is None:
                    return None
                return crop, gemm

            def _pixel_gemm(self, x, weight, bias):
                # the output's one pixel sees x[:, :, :kh, :kw] (no padding left)
                kh, kw = weight.shape[-2:]
                n = x.shape[0]
                xs = x[:, :, :kh, :kw]
                g = self.groups
                if g == 1:
                    y = F.linear(xs.reshape(n, -1), weight.reshape(self.out_channels, -1), bias)
                elif g == self.in_channels == self.out_channels:   # depthwise
                    y = (xs * weight.view(1, g, kh, kw)).sum((2, 3)) if kh * kw > 1 \
                        else xs.reshape(n, g) * weight.reshape(1, g)
                    if bias is not None:
                        y = y + bias
                else:                                                 # grouped: batched
                    cols = xs.reshape(n, g, -1).transpose(0, 1)          # G N K
                    mats = weight.reshape(g, self.out_channels // g, -1).transpose(1, 2)
                    y = torch.bmm(cols, mats).transpose(0, 1).reshape(n, self.out_channels)
                    if bias is not None:
                        y = y + bias
                return y.view(n, self.out_channels, 1, 1)

            def _pointwise_gemm(self, x, weight, bias):
                sh, sw = self.stride
                if (sh, sw) != (1, 1):
                    x = x[:, :, ::sh, ::sw]
                n, c, h, w = x.shape
                rows = x.permute(0, 2, 3, 1).reshape(n * h * w, c)
                y = F.linear(rows, weight.reshape(self.out_channels, c), bias)
                return y.view(n, h, w, self.out_channels).permute(0, 3, 1, 2)

        _CROPPING_CONV = CroppingConv2d
    return _CROPPING_CONV


def _loss(F, out, y, aux_weight: float, label_smoothing: float = 0.0):
    if isinstance(out, (tuple, list)):  # main head followed by auxiliary heads
        main = F.cross_entropy(out[0], y, label_smoothing=label_smoothing)
        return main + aux_weight * sum(F.cross_entropy(o, y, label_smoothing=label_smoothing)
                                       for o in out[1:])
    return F.cross_entropy(out, y, label_smoothing=label_smoothing)


def _check_finite(value: float, epoch: int, step: int) -> None:
    if not math.isfinite(value):
        raise TrialFailure(f"training diverged: loss became {value} at epoch {epoch}, step "
                           f"{step + 1}; lower the learning rate")


def _oom(e: BaseException, dev, batch_size: int) -> TrialFailure:
    import torch

    if dev.type == "cuda":
        torch.cuda.empty_cache()
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return TrialFailure(f"out of memory on {dev} at batch size {batch_size}: {first[:200]}; "
                        "use a smaller batch size or a smaller proxy resolution")


def evaluate(model, data: Dataset, *, batch_size: int = 1000, layout=None) -> dict:
    """``{"accuracy", "loss"}`` of ``model`` on ``data``'s validation split: top-1 accuracy in
    [0, 1] and the mean cross-entropy over the whole split (main head only; NaN when the split
    is empty)."""
    import torch
    import torch.nn.functional as F

    dev = next(model.parameters()).device
    cuda = dev.type == "cuda"
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=dev)
    loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
    x_all, y_all = data.val_x.to(dev), data.val_y.to(dev)
    autocast = torch.autocast("cuda", dtype=torch.float16) if cuda else nullcontext()
    with torch.inference_mode(), autocast:
        for i in range(0, len(y_all), batch_size):
            xb = x_all[i:i + batch_size]
            yb = y_all[i:i + batch_size]
            if layout is torch.channels_last:
                xb = xb.contiguous(memory_format=layout)
            out = model(xb)
            if isinstance(out, (tuple, list)):  # main head first
                out = out[0]
            out = out.float()
            correct += (out.argmax(1) == yb).sum()
            loss_sum += F.cross_entropy(out, yb, reduction="sum").double()
    n = len(y_all)
    if n == 0:
        return {"accuracy": 0.0, "loss": float("nan")}
    return {"accuracy": correct.item() / n, "loss": loss_sum.item() / n}
