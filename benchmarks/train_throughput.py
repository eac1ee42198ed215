"""Training throughput: klugerhans' real training step versus a bare PyTorch loop, measured in one run.

Both sides train the same VGG11-BN (same initial weights, same SGD optimizer, batch size and thread
count) on the same pre-decoded images. The bare loop does forward/loss/backward/step on ready, normalised
float tensors; our side runs :func:`klugerhans.models.loop.run_epoch` exactly as ``klugerhans train`` does:
uint8 batches gathered in a random order, converted, augmented (affine + colour jitter), normalised.
Rounds alternate between the two so that load changes on a shared machine hit both alike.

    python benchmarks/train_throughput.py [--width 1.0] [--steps 1] [--rounds 15] [--threads N] [--device cpu]

Last line: ``train_throughput_ratio: X.XX`` (our images/s over the bare loop's, median over rounds; goal >= 0.95).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from klugerhans.models.augment import AugmentConfig
from klugerhans.models.distributed import resolve_device
from klugerhans.models.loop import TrainStep, make_optimizer, run_epoch
from klugerhans.models.preprocess import Normalization, to_tensor
from klugerhans.models.vgg import ModelConfig, create_model


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--width", type=float, default=1.0, help="VGG width multiplier (1.0 = full VGG11-BN)")
    parser.add_argument("--size", type=int, default=32, help="input side in pixels")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=1, help="optimizer steps per side and round")
    parser.add_argument("--rounds", type=int, default=15, help="alternating rounds (the ratio is their median)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    n = args.steps * args.batch_size
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, args.size, args.size, 3), dtype=np.uint8)
    labels = torch.from_numpy(rng.integers(0, 43, size=n)).to(device)
    config = ModelConfig(width=args.width, input_size=args.size)
    norm = Normalization()
    cuda = device.type == "cuda"
    fmt = torch.channels_last if cuda else torch.contiguous_format

    torch.manual_seed(0)
    ours_model = create_model(config).to(device).to(memory_format=fmt)
    bare_model = create_model(config).to(device).to(memory_format=fmt)
    bare_model.load_state_dict(ours_model.state_dict())
    step = TrainStep(ours_model, make_optimizer(ours_model, 0.01, 5e-4), norm, device, AugmentConfig(), amp=cuda)
    bare_opt = make_optimizer(bare_model, 0.01, 5e-4)
    # On CUDA the bare loop gets the same AMP and memory layout, so only the pipeline differs.
    scaler = torch.amp.GradScaler(device.type, enabled=cuda)
    ours_images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(device)
    bare_x = to_tensor(images, norm).to(device).contiguous(memory_format=fmt)

    def bare(steps: int) -> None:
        bare_model.train()
        for s in range(steps):
            sl = slice(s * args.batch_size, (s + 1) * args.batch_size)
            with torch.autocast(device.type, dtype=torch.float16, enabled=cuda):
                loss = F.cross_entropy(bare_model(bare_x[sl]).float(), labels[sl])
            bare_opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(bare_opt)
            scaler.update()

    def ours(steps: int, epoch: int) -> None:
        run_epoch(
            step, ours_images[: steps * args.batch_size], labels[: steps * args.batch_size],
            batch_size=args.batch_size, seed=0, epoch=epoch, lr_schedule=lambda s: 0.01,
        )  # fmt: skip

    bare(1)
    ours(1, 0)
    times: dict[str, list[float]] = {"bare": [], "ours": []}
    for r in range(args.rounds):
        # Alternate which side goes first, so neither always runs on a warmer machine.
        for side in ("bare", "ours") if r % 2 == 0 else ("ours", "bare"):
            _sync(device)
            start = time.perf_counter()
            bare(args.steps) if side == "bare" else ours(args.steps, r + 1)
            _sync(device)
            times[side].append(time.perf_counter() - start)
    t_bare, t_ours = sum(times["bare"]), sum(times["ours"])
    # Each round's two sides run back to back under about the same load from other processes; the median of
    # the per-round ratios ignores rounds that a burst of load hit on one side only.
    ratio = float(np.median(np.array(times["bare"]) / np.array(times["ours"])))
    images_total = args.rounds * args.steps * args.batch_size
    print(f"device {device}, threads {torch.get_num_threads()}, VGG11-BN width {args.width}, {args.size} px")
    print(f"batch {args.batch_size}, {args.rounds} rounds x {args.steps} steps per side")
    print(f"bare PyTorch loop: {images_total / t_bare:8.1f} images/s")
    print(f"klugerhans train : {images_total / t_ours:8.1f} images/s (augmentation included)")
    rounds = ", ".join(f"{b / o:.2f}" for b, o in zip(times["bare"], times["ours"], strict=True))
    print(f"ratio of total times {t_bare / t_ours:.2f}; per round: {rounds}")
    print(f"train_throughput_ratio: {ratio:.2f}")


if __name__ == "__main__":
    main()
