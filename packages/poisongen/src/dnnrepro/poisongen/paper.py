"""Registration of the poisongen paper package: claims, run, profiles' seeds, commands, bench.

    dnnrepro poisongen reproduce --profile small     # mnist5k (784-64-10) and digits (64-32-10)
    dnnrepro poisongen bench                         # generation-rate benchmark

Claims: claims.py; profiles: config.py; the run: experiment.py; figures: figures.py.
"""

from __future__ import annotations

from dnnrepro.core.paper import Paper

from . import __version__
from .bench import bench
from .claims import CLAIMS
from .config import PROFILES
from .experiment import run


def _add_commands(subparsers) -> None:
    from .cli import add_commands

    add_commands(subparsers)


PAPER = Paper(
    name="poisongen",
    title="Generative Poisoning Attack Method Against Neural Networks",
    arxiv="1703.01340",
    version=__version__,
    claims=CLAIMS,
    run=run,
    default_seeds={name: p.seeds for name, p in PROFILES.items()},
    add_commands=_add_commands,
    source_module="dnnrepro.poisongen",
    bench=bench,
)
