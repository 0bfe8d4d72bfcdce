"""Registration of Wu et al. (CVPR 2017) with the core: ``dnnrepro conv-m-da reproduce|bench``.

Claims: :mod:`.claims`; profiles and their cost: :mod:`.config`; the runs: :mod:`.experiment`.
"""

from __future__ import annotations

from dnnrepro.core.paper import Paper

from . import __version__
from .bench import bench
from .claims import CLAIMS
from .experiment import run


def _add_commands(sub) -> None:
    from .cli import add_commands

    add_commands(sub)


PAPER = Paper(
    name="conv-m-da",
    title="A Compact DNN: Approaching GoogLeNet-Level Accuracy of Classification and Domain "
    "Adaptation",
    arxiv="1703.04071",
    version=__version__,
    claims=CLAIMS,
    run=run,
    default_seeds={"smoke": 1, "small": 3, "paper": 5},
    add_commands=_add_commands,
    source_module="dnnrepro.conv_m_da",
    bench=bench,
)
