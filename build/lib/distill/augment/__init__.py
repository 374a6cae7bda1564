"""Text augmentations, one module each, filed in ``AUGMENTATIONS`` by name; plus embedding mixup."""

from distill.augment._mixup import draw_mixup, mix, mixup
from distill.augment.base import AUGMENTATIONS, AugmentContext, AugmentOp, augment_examples
from distill.plugin import import_submodules, load_plugins

import_submodules(__name__)
load_plugins()

__all__ = ["AUGMENTATIONS", "AugmentContext", "AugmentOp", "augment_examples", "draw_mixup", "mix", "mixup"]
