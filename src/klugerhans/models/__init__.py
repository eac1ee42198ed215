"""Models: the VGG11(-BN) classifier and the torchvision/timm families, preprocessing, checkpoints, the user's own
weights, training, evaluation.

Submodules import torch; import what you need from them, e.g. ``from klugerhans.models.training import train``.
Importing this package registers our architectures (:mod:`klugerhans.models.vgg`) and the torchvision and timm
families (:mod:`klugerhans.models.architectures`).
"""

from klugerhans.models import vgg as vgg  # registers vgg11_bn and vgg11 in MODELS before anything builds a model
from klugerhans.models.architectures import parse_arch
from klugerhans.models.checkpoint import load_classifier, load_model, save_checkpoint
from klugerhans.models.classifier import Classifier
from klugerhans.models.config import ModelConfig, ModelSpec, create_model, register_model
from klugerhans.models.evaluation import Evaluation, evaluate_model
from klugerhans.models.meta import CheckpointMeta
from klugerhans.models.predict import top_classes
from klugerhans.models.preprocess import Normalization, make_preprocess, to_tensor
from klugerhans.models.recipe import TrainConfig, TrainOptions
from klugerhans.models.training import TrainResult, train
from klugerhans.models.user_weights import load_user_model

__all__ = [
    "CheckpointMeta",
    "Classifier",
    "Evaluation",
    "ModelConfig",
    "ModelSpec",
    "Normalization",
    "TrainConfig",
    "TrainOptions",
    "TrainResult",
    "create_model",
    "evaluate_model",
    "load_classifier",
    "load_model",
    "load_user_model",
    "make_preprocess",
    "parse_arch",
    "register_model",
    "save_checkpoint",
    "to_tensor",
    "top_classes",
    "train",
]
