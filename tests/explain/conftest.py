"""Tiny randomly initialised VGGs with non-trivial BatchNorm statistics."""

from __future__ import annotations

import pytest
import torch
from lrp_reference import randomize
from torch import nn

from klugerhans.models.vgg import create_model


@pytest.fixture
def vgg_bn() -> nn.Module:
    """Our VGG11-BN at width 0.125 (8..64 channels), 32 px, random BatchNorm statistics."""
    torch.manual_seed(0)
    return randomize(create_model(width=0.125), 1)


@pytest.fixture
def vgg_plain() -> nn.Module:
    """Our VGG11 without BatchNorm at width 0.125, 32 px."""
    torch.manual_seed(0)
    return randomize(create_model(width=0.125, arch="vgg11"), 2)
