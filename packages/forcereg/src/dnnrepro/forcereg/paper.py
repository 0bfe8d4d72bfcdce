"""The PAPER registration of this package (claims in claims.py, settings in config.py, the runs
in experiment.py, the benchmark in bench.py)."""

from __future__ import annotations

from dnnrepro.core.paper import Paper

from . import __version__
from .bench import bench
from .claims import CLAIMS
from .experiment import run

TITLE = "Coordinating Filters for Faster Deep Neural Networks (Force Regularization)"


def _add_commands(sub) -> None:
    from .cli import add_commands

    add_commands(sub)


PAPER = Paper(
    name="forcereg",
    title=TITLE,
    arxiv="1703.09746",
    version=__version__,
    claims=CLAIMS,
    run=run,
    default_seeds={"smoke": 1, "small": 3, "paper": 3},
    add_commands=_add_commands,
    source_module="dnnrepro.forcereg",
    bench=bench,
)
