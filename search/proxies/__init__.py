"""Zero-cost proxies that rank students (against a teacher) without training, filed in ``PROXIES``.

``rank(teacher, students, inputs, labels, proxy="size_then_diswot")`` is the entry point (one float per
student, higher = better) for torch CNNs and Hugging Face classifiers. Lower level:
``build_proxy(name, seed)`` gives ``proxy(teacher, student, batch) -> float`` and
``proxy.score_all(teacher, students, batch)``; networks are wrapped with ``ProxyModel.from_hf`` /
``from_torch`` / ``from_cnn`` (see ``search.proxies.models``).
"""

from distill.plugin import import_submodules
from search.proxies._diswot import gram, gram_distance, row_normalise
from search.proxies.base import PROXIES, Proxy, RankProxy, build_proxy, random_like, ranks, register
from search.proxies.batch import ProxyBatch
from search.proxies.models import HFProxyModel, ProxyModel, TorchProxyModel
from search.proxies.rank import DEFAULT_PROXY, as_batch, as_proxy_model, rank

import_submodules(__name__)

__all__ = [
    "DEFAULT_PROXY",
    "PROXIES",
    "HFProxyModel",
    "Proxy",
    "ProxyBatch",
    "ProxyModel",
    "RankProxy",
    "TorchProxyModel",
    "as_batch",
    "as_proxy_model",
    "build_proxy",
    "gram",
    "gram_distance",
    "random_like",
    "rank",
    "ranks",
    "register",
    "row_normalise",
]
