"""Throughput of our LRP engine vs zennit vs a plain gradient pass (heatmaps per second).

All three explain the predicted class of the same batches on the same model and thread count:

* ours: ``klugerhans.explain.LRP`` built once, ``attribute(x)`` per batch;
* zennit 0.5: ``Gradient(model, EpsilonPlusFlat(canonizers=[VGGCanonizer()]))`` entered once and held open
  (``ResNetCanonizer`` for torchvision ResNets, ``SequentialMergeBatchNorm`` for other torchvision models),
  output relevance ``onehot * logits`` (the same as ours);
* gradient: ``torch.autograd.grad`` of the predicted logit w.r.t. the input (no LRP at all), on a copy of the
  model without zennit's hooks.

Methods run interleaved, batch by batch, after warm-up batches, so load from other processes hits all alike; the
median batch time of each gives its throughput. Usage::

    python benchmarks/lrp_throughput.py [--batches 8] [--warmup 2] [--batch-size 64] [--threads N]
    python benchmarks/lrp_throughput.py --arch resnet50 --size 224 --batch-size 4 --batches 4 --warmup 1

The last line is ``lrp_speedup_vs_zennit: X.XX`` (our heatmaps/s over zennit's) for our VGG11-BN, and
``lrp_speedup_vs_zennit_<arch>: X.XX`` with ``--arch`` (a torchvision model with random weights).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable
from functools import partial

import torch
import torchvision
from zennit.attribution import Gradient
from zennit.canonizers import SequentialMergeBatchNorm
from zennit.composites import COMPOSITES as ZENNIT_COMPOSITES
from zennit.torchvision import ResNetCanonizer, VGGCanonizer

from klugerhans.explain import LRP, Composite, Gamma
from klugerhans.explain.attention import has_attention
from klugerhans.models.vgg import create_model


def _randomize_batch_norm(model: torch.nn.Module, seed: int) -> None:
    """Non-trivial BatchNorm statistics, as a trained model has (affects accuracy checks, not speed)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d) and m.running_mean is not None and m.running_var is not None:
                m.running_mean.normal_(0, 0.2, generator=gen)
                m.running_var.uniform_(0.5, 2.0, generator=gen)


def _timed(methods: dict[str, Callable[[torch.Tensor], object]], batches: list[torch.Tensor], warmup: int) -> dict:
    """Median seconds per batch of each method, run interleaved batch by batch after ``warmup`` batches."""
    times: dict[str, list[float]] = {name: [] for name in methods}
    for i, x in enumerate(batches):
        for name, fn in methods.items():
            start = time.perf_counter()
            fn(x)
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def _peak_bytes(fn: Callable[[], object]) -> int:
    """Peak bytes the CPU allocator held above the start while ``fn`` ran (torch's profiler)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    level = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        level += event.self_cpu_memory_usage  # allocations positive, frees negative
        peak = max(peak, level)
    return peak


def _transformer(args: argparse.Namespace) -> None:
    """A torchvision transformer: ours (AttnLRP) vs LXT (its ViT patches, zennit's composite) vs the gradient.

    LXT patches torch's classes for the whole process, so the gradient pass is timed against ours first, LXT against
    ours after LXT's patches are in.
    """
    sized = {"image_size": args.size} if args.arch.startswith("vit_") else {}
    model = torchvision.models.get_model(args.arch, num_classes=1000, **sized).eval()
    assert has_attention(model)
    with torch.no_grad():  # torchvision's zero head would make every logit 0
        head = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
        head.weight.normal_(0, 0.02)
    for p in model.parameters():
        p.requires_grad_(False)
    batches = [torch.randn(args.batch_size, 3, args.size, args.size) for _ in range(args.warmup + args.batches)]
    # LXT's ViT example: the gamma rule on every conv and dense layer (zennit's named composites with a special
    # first layer fail under LXT's zennit patch)
    ours = LRP(model, Composite(conv=Gamma(args.gamma), linear=Gamma(args.gamma)))

    def run_ours(x: torch.Tensor) -> torch.Tensor:
        return ours.attribute(x).relevance

    def run_gradient(x: torch.Tensor) -> torch.Tensor:
        x = x.clone().requires_grad_()
        out = model(x)
        (grad,) = torch.autograd.grad(out.gather(1, out.argmax(1, keepdim=True)).sum(), x)
        return grad

    default = LRP(model, args.composite)

    def run_default(x: torch.Tensor) -> torch.Tensor:
        return default.attribute(x).relevance

    phase = {"ours": run_ours, args.composite: run_default, "gradient": run_gradient}
    first = _timed(phase, batches, args.warmup)
    memory = {name: _peak_bytes(partial(fn, batches[0])) for name, fn in phase.items()}
    # benchmarks/lxt_reference.py; imported only now: it patches torch's classes for the rest of the process
    from lxt_reference import lxt_attributor
    from zennit.rules import Gamma as ZennitGamma

    run_lxt = lxt_attributor(model, ZennitGamma(args.gamma))
    second = _timed({"ours": run_ours, "lxt": run_lxt}, batches, args.warmup)
    memory["lxt"] = _peak_bytes(lambda: run_lxt(batches[0]))
    check = batches[0][:2]
    diff = (run_ours(check) - run_lxt(check)).abs().max() / run_lxt(check).abs().max()
    print(
        f"model: torchvision {args.arch}, {args.size}x{args.size}, batch {args.batch_size}, gamma {args.gamma} on "
        f"every conv and dense layer, {args.threads} threads, {args.batches} timed batches (median)"
    )
    print(f"max |ours - lxt| / max |lxt| on {len(check)} images: {diff:.2e}")
    for name, seconds in [*first.items(), ("lxt", second["lxt"])]:
        per = memory[name] / args.batch_size / 2**20
        print(f"{name:>18}: {args.batch_size / seconds:8.2f} heatmaps/s, peak {per:.0f} MiB per heatmap")
    print(f"lrp_speedup_vs_gradient_{args.arch}: {first['gradient'] / first[args.composite]:.2f} ({args.composite})")
    print(f"lrp_speedup_vs_gradient_{args.arch}_gamma: {first['gradient'] / first['ours']:.2f}")
    print(f"lrp_speedup_vs_lxt_{args.arch}: {second['lxt'] / second['ours']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=8, help="timed batches per method")
    parser.add_argument("--warmup", type=int, default=2, help="untimed batches per method first")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--size", type=int, default=32, help="input side in pixels")
    parser.add_argument("--width", type=float, default=1.0, help="VGG width multiplier (1.0 = full VGG11-BN)")
    parser.add_argument("--composite", default="epsilon_plus_flat")
    parser.add_argument("--gamma", type=float, default=0.25, help="transformers: the gamma rule on every layer (LXT's)")
    parser.add_argument("--arch", default=None, help="a torchvision model (e.g. resnet50) instead of our VGG11-BN")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    if args.arch is not None and args.arch.startswith(("vit_", "swin_", "maxvit_")):
        _transformer(args)
        return
    if args.arch is None:
        model = create_model(width=args.width, input_size=args.size).eval()
        canonizer = VGGCanonizer()
        label = f"VGG11-BN width {args.width}"
    else:
        model = getattr(torchvision.models, args.arch)(weights=None).eval()
        canonizer = ResNetCanonizer() if args.arch.startswith(("resnet", "wide_resnet", "resnext")) else None
        canonizer = canonizer or (VGGCanonizer() if args.arch.startswith("vgg") else SequentialMergeBatchNorm())
        label = f"torchvision {args.arch}"
    _randomize_batch_norm(model, 0)
    batches = [torch.randn(args.batch_size, 3, args.size, args.size) for _ in range(args.warmup + args.batches)]

    ours = LRP(model, args.composite)
    zennit_model = copy.deepcopy(model)  # zennit's hooks and canonizer must not slow down the gradient pass
    composite = ZENNIT_COMPOSITES[args.composite](canonizers=[canonizer])

    def run_ours(x: torch.Tensor) -> torch.Tensor:
        return ours.attribute(x).relevance

    def predicted_logit(out: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(out).scatter_(1, out.argmax(1, keepdim=True), 1.0) * out

    def run_gradient(x: torch.Tensor) -> torch.Tensor:
        x = x.clone().requires_grad_()
        out = model(x)
        (grad,) = torch.autograd.grad(out, x, predicted_logit(out.detach()))
        return grad

    with Gradient(zennit_model, composite) as attributor:

        def run_zennit(x: torch.Tensor) -> torch.Tensor:
            return attributor(x, predicted_logit)[1]

        methods: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
            "ours": run_ours,
            "zennit": run_zennit,
            "gradient": run_gradient,
        }
        check = batches[0][:8] if args.arch is None else batches[0][:2]
        diff = (run_ours(check) - run_zennit(check)).abs().max() / run_zennit(check).abs().max()
        times: dict[str, list[float]] = {name: [] for name in methods}
        for i, x in enumerate(batches):
            for name, fn in methods.items():
                start = time.perf_counter()
                fn(x)
                if i >= args.warmup:
                    times[name].append(time.perf_counter() - start)

    rate = {name: args.batch_size / statistics.median(t) for name, t in times.items()}
    print(
        f"model: {label}, {args.size}x{args.size}, batch {args.batch_size}, "
        f"composite {args.composite}, {args.threads} threads, {args.batches} timed batches (median)"
    )
    # zennit 0.5.1's canonizer leaves each merged BatchNorm dividing by sqrt(1 + eps): a few 1e-5 expected
    print(f"max |ours - zennit| / max |zennit| on {len(check)} images: {diff:.2e}")
    for name, r in rate.items():
        print(f"{name:>9}: {r:8.1f} heatmaps/s")
    suffix = "" if args.arch is None else f"_{args.arch}"
    print(f"lrp_speedup_vs_gradient{suffix}: {rate['ours'] / rate['gradient']:.2f}")
    print(f"lrp_speedup_vs_zennit{suffix}: {rate['ours'] / rate['zennit']:.2f}")


if __name__ == "__main__":
    main()
