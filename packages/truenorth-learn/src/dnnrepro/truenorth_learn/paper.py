"""The registration of Wen et al. (DAC 2016) with the dnnrepro core: claims, run, bench, CLI.

Claims: claims.py; profiles and their costs: config.py; the run: experiment.py; figures:
figures.py; the simulator benchmark: bench.py; extra subcommands: cli.py.
"""

from __future__ import annotations

from dnnrepro.core.paper import Paper

from .claims import CLAIMS
from .experiment import run


def _add_commands(sub) -> None:
    from .cli import add_commands

    add_commands(sub)


def _bench(opts):
    from .bench import bench

    return bench(opts)


PAPER = Paper(
    name="truenorth-learn",
    title=(
        "A New Learning Method for Inference Accuracy, Core Occupation, and Performance "
        "Co-optimization on TrueNorth Chip"
    ),
    arxiv="1604.00697",
    version="0.1.0",
    claims=CLAIMS,
    run=run,
    default_seeds={"smoke": 1, "small": 3, "paper": 3},
    add_commands=_add_commands,
    source_module="dnnrepro.truenorth_learn",
    bench=_bench,
)
