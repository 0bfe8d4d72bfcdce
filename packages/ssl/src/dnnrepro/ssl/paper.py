"""The registration of SSL with the dnnrepro core: claims, run, benchmark, CLI commands.

The claims are in :mod:`.claims`, the profiles in :mod:`.config`, the runs in :mod:`.experiment`.
"""

from __future__ import annotations

from dnnrepro.core.paper import Paper

from . import __version__
from .claims import CLAIMS, TITLE


def _run(ctx) -> None:
    from .experiment import run

    run(ctx)


def _bench(opts):
    from .bench import bench

    return bench(opts)


def _add_commands(sub) -> None:
    from .cli import add_commands

    add_commands(sub)


PAPER = Paper(
    name="ssl",
    title=TITLE,
    arxiv="1608.03665",
    version=__version__,
    claims=CLAIMS,
    run=_run,
    default_seeds={"smoke": 1, "small": 3, "paper": 3},
    add_commands=_add_commands,
    source_module="dnnrepro.ssl",
    bench=_bench,
)
