"""The registration of TernGrad with ``dnnrepro`` (``dnnrepro terngrad reproduce|bench|...``).

Claims: :mod:`.claims`; profiles and their cost: :mod:`.config`; the runs: :mod:`.experiment`;
figures: :mod:`.figures`; speed benchmarks: :mod:`.bench`.
"""

from __future__ import annotations

from dnnrepro.core.paper import Paper

from . import __version__
from .bench import run_bench
from .claims import CLAIMS
from .config import DEFAULT_SEEDS
from .experiment import run


def _add_commands(sub) -> None:
    from .cli import add_commands

    add_commands(sub)


PAPER = Paper(
    name="terngrad",
    title="TernGrad: Ternary Gradients to Reduce Communication in Distributed Deep Learning",
    arxiv="1705.07878",
    version=__version__,
    claims=CLAIMS,
    run=run,
    default_seeds=DEFAULT_SEEDS,
    add_commands=_add_commands,
    source_module="dnnrepro.terngrad",
    bench=run_bench,
)
