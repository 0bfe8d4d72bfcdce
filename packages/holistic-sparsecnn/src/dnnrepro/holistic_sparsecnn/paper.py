"""The package's registration with the dnnrepro CLI (claims: claims.py; run: experiment.py;
profiles: config.py; benchmark: bench.py).

Park et al., "Faster CNNs with Direct Sparse Convolutions and Guided Pruning", ICLR 2017
(arXiv:1608.01409).
"""

from __future__ import annotations

from dnnrepro.core.paper import Paper

from . import __version__
from .claims import CLAIMS


def _run(ctx) -> None:
    from .experiment import run

    run(ctx)


def _bench(opts) -> list[dict]:
    from .bench import bench

    return bench(opts)


def _add_commands(sub) -> None:
    from .cli import add_commands

    add_commands(sub)


PAPER = Paper(
    name="holistic-sparsecnn",
    title="Faster CNNs with Direct Sparse Convolutions and Guided Pruning",
    arxiv="1608.01409",
    version=__version__,
    claims=CLAIMS,
    run=_run,
    default_seeds={"smoke": 1, "small": 3, "paper": 3},
    add_commands=_add_commands,
    source_module="dnnrepro.holistic_sparsecnn",
    bench=_bench,
)
