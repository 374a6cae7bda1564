"""Intermediate-representation objectives, one module each, filed in ``OBJECTIVES`` by name."""

from distill.objectives.base import OBJECTIVES, Objective, ObjectiveContext
from distill.plugin import import_submodules, load_plugins

import_submodules(__name__)
load_plugins()

__all__ = ["OBJECTIVES", "Objective", "ObjectiveContext"]
