"""Intermediate-representation objectives, one module each, filed in ``OBJECTIVES`` by name."""

from distill.objectives.base import OBJECTIVES, Objective, ObjectiveContext
from distill.plugin import import_submodules

import_submodules(__name__)

__all__ = ["OBJECTIVES", "Objective", "ObjectiveContext"]
