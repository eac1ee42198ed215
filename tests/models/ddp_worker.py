"""Worker for test_distributed.py, launched by torchrun: trains on the tiny dataset, writes a weights hash.

Usage: python -m torch.distributed.run --nproc-per-node 2 ddp_worker.py OUT_DIR
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tiny_signs import register_tiny

from klugerhans.models.training import TrainConfig, TrainOptions, train


def state_hash(state: dict) -> str:
    h = hashlib.sha256()
    for name in sorted(state):
        h.update(name.encode())
        h.update(state[name].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def main() -> None:
    out = Path(sys.argv[1])
    register_tiny()
    recipe = TrainConfig(data="tiny", epochs=2, batch_size=32, width=0.125)
    result = train(recipe, TrainOptions(out=str(out / "run"), device="cpu", num_threads=1, progress=False))
    (out / f"hash{os.environ['RANK']}.txt").write_text(state_hash(result.model.state_dict()))


if __name__ == "__main__":
    main()
