"""Models: the VGG11(-BN) classifier, preprocessing, checkpoints, training, evaluation.

Submodules import torch; import what you need from them, e.g. ``from klugerhans.models.training import train``.
"""

from klugerhans.models.checkpoint import CheckpointMeta, Classifier, load_classifier, load_model, save_checkpoint
from klugerhans.models.evaluation import evaluate_model
from klugerhans.models.preprocess import Normalization, make_preprocess, to_tensor
from klugerhans.models.recipe import TrainConfig
from klugerhans.models.training import TrainResult, train
from klugerhans.models.vgg import ModelConfig, create_model

__all__ = [
    "CheckpointMeta",
    "Classifier",
    "ModelConfig",
    "Normalization",
    "TrainConfig",
    "TrainResult",
    "create_model",
    "evaluate_model",
    "load_classifier",
    "load_model",
    "make_preprocess",
    "save_checkpoint",
    "to_tensor",
    "train",
]
