"""Remove a located artefact from images by filling it from its surroundings.

Harmonic (membrane) inpainting: the masked pixels are the solution of Laplace's equation with the unmasked pixels
around them as boundary values, found by Jacobi iteration (each masked pixel becomes the mean of its 4 neighbours,
repeatedly). It is the simplest member of the PDE inpainting family of Bertalmio et al., "Image inpainting",
SIGGRAPH 2000: a black sticker on a white sign becomes white, a sticker over the red ring becomes red, with smooth
transitions and no new edges, which is all a 32 px sign needs.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from klugerhans.errors import KlugerhansError

__all__ = ["inpaint"]


def inpaint(images: np.ndarray, masks: np.ndarray, iterations: int = 200, batch_size: int = 1024) -> np.ndarray:
    """Fill the masked pixels of each image from their surroundings.

    Args:
        images: (N, S, S, 3) uint8 images (not modified).
        masks: (N, S, S) bool, True where the artefact is.
        iterations: Jacobi sweeps (a hole ``k`` pixels across needs about ``k**2`` to settle; 200 suits holes up
            to ~14 px).
        batch_size: images per pass.

    Returns:
        (N, S, S, 3) uint8 copy with the masked pixels replaced.
    """
    images = np.asarray(images)
    masks = np.asarray(masks, dtype=bool)
    if images.ndim != 4 or images.shape[-1] != 3 or masks.shape != images.shape[:3]:
        raise KlugerhansError(f"need (N, S, S, 3) images and (N, S, S) masks, got {images.shape} and {masks.shape}")
    out = images.copy()
    todo = np.flatnonzero(masks.any(axis=(1, 2)) & ~masks.all(axis=(1, 2)))
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3).repeat(3, 1, 1, 1)
    for start in range(0, len(todo), batch_size):
        idx = todo[start : start + batch_size]
        x = torch.from_numpy(images[idx]).permute(0, 3, 1, 2).float()
        hole = torch.from_numpy(masks[idx])[:, None].float()
        known = 1.0 - hole
        # Start from the mean colour of each image's known pixels, then relax.
        mean = (x * known).sum((2, 3), keepdim=True) / known.sum((2, 3), keepdim=True).clamp(min=1)
        x = x * known + mean * hole
        # Neighbours outside the image do not count: divide by the number of neighbours inside.
        ones = torch.ones_like(hole[:, :, :, :])
        count = F.conv2d(ones, kernel[:1], padding=1)
        for _ in range(iterations):
            avg = F.conv2d(x, kernel, padding=1, groups=3) / count
            x = x * known + avg * hole
        out[idx] = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return out
