"""LXT's relevance for a torchvision VisionTransformer, computed in a process of its own (LXT patches torch's classes).

``python tests/explain/lxt_oracle.py IN.pt OUT.pt``: IN holds ``state`` (the model's state dict), ``config`` (the
VisionTransformer keyword arguments), ``x``, ``target`` and ``rule`` ("epsilon" or "gamma" with ``value``, zennit's
rule on every conv and dense layer); OUT gets ``relevance`` (x times its gradient, as LXT's ViT example) and
``logits``. The reference itself is ``benchmarks/lxt_reference.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))


def main(source: str, out: str) -> None:
    import torch
    from lxt_reference import lxt_attributor
    from torchvision.models import VisionTransformer
    from zennit.rules import Epsilon, Gamma

    given = torch.load(source, weights_only=True)
    model = VisionTransformer(**given["config"]).eval()
    model.load_state_dict(given["state"])
    attribute = lxt_attributor(model, Epsilon(given["value"]) if given["rule"] == "epsilon" else Gamma(given["value"]))
    relevance = attribute(given["x"], given["target"])
    torch.save({"relevance": relevance, "logits": attribute.logits}, out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
