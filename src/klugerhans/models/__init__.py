"""Models: the VGG11(-BN) classifier, its training loop and checkpoints."""
