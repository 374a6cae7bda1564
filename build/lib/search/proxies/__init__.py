"""Zero-cost proxies that rank students (against a teacher) without training, filed in ``PROXIES``.

``build_proxy(name, seed)`` gives a callable ``proxy(teacher, student, batch) -> float`` (higher = better);
``proxy.score_all(teacher, students, batch)`` scores a candidate set (``diswot`` standardises over it).
Networks are wrapped with ``ProxyModel.from_hf`` / ``ProxyModel.from_cnn``; see ``search.proxies.base`` for
what channels, positions and pooled features are for transformers and CNNs.
"""

from distill.plugin import import_submodules
from search.proxies._diswot import gram, gram_distance, row_normalise
from search.proxies.base import (
    PROXIES,
    CNNProxyModel,
    HFProxyModel,
    Proxy,
    ProxyBatch,
    ProxyModel,
    build_proxy,
    random_like,
    register,
    zscore,
)

import_submodules(__name__)

__all__ = [
    "PROXIES",
    "CNNProxyModel",
    "HFProxyModel",
    "Proxy",
    "ProxyBatch",
    "ProxyModel",
    "build_proxy",
    "gram",
    "gram_distance",
    "random_like",
    "register",
    "row_normalise",
    "zscore",
]
