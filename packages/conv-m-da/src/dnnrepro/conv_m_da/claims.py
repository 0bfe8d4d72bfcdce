"""The declared claims of Wu et al. (CVPR 2017) and how each is measured here.

Restated after a review (issue 21 item 3):

- "ours beats source-only" became "ours beats AdaBN" per task: re-estimating BatchNorm statistics
  on the target (AdaBN) is the free baseline that source-only training lacks.
- "beats DAN and DANN" is judged per task from one value per seed (ours minus the better of DAN
  and DANN in that seed), so the core's interval decides instead of a count of seed means.
- The parameter counts are ``by-construction``.
- The compression claim compares nets at matched source fit: the squeeze-like net's source-only
  pre-training goes on (up to 4x the steps) until its source TRAINING accuracy reaches the Conv-M
  net's; ``squeeze-source-match`` checks the match on the source test set.

Every value is recorded once per seed (one per (task, seed) cell); differences are in percentage
points of target test accuracy.
"""

from __future__ import annotations

from dnnrepro.core.results import Claim, at_least, within

from .tasks import FULL_MNIST_TASKS, SMALL_TASKS

# test images of each target domain (for the one-seed binomial interval of a difference)
TEST_SIZE = {"mnist5k": 1000, "digits": 364, "syndigits": 2000, "mnist": 10000}
NET_TASK = "syndigits->mnist5k"  # the task of the network comparisons (small profile)

SMALL = ("small",)
PAPER_ONLY = ("paper",)


def task_id(task: str) -> str:
    """``mnist5k->digits`` -> ``mnist5k-to-digits`` (claim ids and stage names)."""
    return task.replace("->", "-to-")


def _scale_note(task: str) -> str:
    if task in SMALL_TASKS:
        return (
            "Digit task at 1x16x16 from the embedded sets, compact Conv-M net trained from "
            "scratch (source pre-training stands in for ImageNet initialization); the paper "
            "uses Office-31/Office-Caltech."
        )
    return (
        "Full MNIST (60k/10k) as one domain, 1x16x16, compact Conv-M net trained from "
        "scratch; the paper uses Office-31/Office-Caltech."
    )


def _per_task_claims(tasks: tuple[str, ...], profiles: tuple[str, ...]) -> list[Claim]:
    out = []
    for task in tasks:
        target = task.split("->")[1]
        common = {
            "source": "abstract",
            "confidence": "verified",
            "profiles": profiles,
            "scale_note": _scale_note(task),
            "test_size": TEST_SIZE[target],
            "test_scale": 100.0,
            "test_difference": True,
            "unit": "pp",
        }
        out.append(
            Claim(
                id=f"beats-adabn-{task_id(task)}",
                statement=f"The unified DA method beats AdaBN (the free baseline) on {task}",
                paper_value="beats prior methods on 16 of 18 Office tasks",
                metric=f"target test accuracy on {task}, ours minus AdaBN (pp), one value per "
                "seed, last iterate",
                rule=at_least(0.0),
                **common,
            )
        )
        out.append(
            Claim(
                id=f"beats-dan-dann-{task_id(task)}",
                statement=f"The unified method slightly outperforms DAN and DANN on {task}",
                paper_value="slightly outperforms previous competitive ones",
                metric=f"target test accuracy on {task}, ours minus the better of DAN and DANN "
                "in the same seed (pp), one value per seed",
                rule=at_least(0.0),
                **common,
            )
        )
    return out


CLAIMS = [
    *_per_task_claims(SMALL_TASKS, SMALL),
    *_per_task_claims(FULL_MNIST_TASKS, PAPER_ONLY),
    Claim(
        id="compression-hurts-da",
        statement="A SqueezeNet-like compressed net adapts worse than the Conv-M net",
        paper_value="degraded DA ability (preliminary experiment)",
        unit="pp",
        source="abstract",
        confidence="verified",
        metric="target accuracy after the unified method on syndigits->mnist5k, Conv-M net "
        "minus squeeze-like net (percentage points), the squeeze-like net pre-trained until its "
        "source training accuracy matches the Conv-M net's (up to 4x the steps)",
        rule=at_least(1.0),
        profiles=SMALL,
        scale_note="Digit-size nets: Conv-M 27.8k vs squeeze-like 10.2k parameters. Only "
        "meaningful together with squeeze-source-match (same source test accuracy).",
        test_size=1000,
        test_scale=100.0,
        test_difference=True,
    ),
    Claim(
        id="squeeze-source-match",
        statement="...at the same source accuracy (precondition of compression-hurts-da)",
        paper_value="same classification accuracy",
        unit="pp",
        source="abstract",
        confidence="verified",
        metric="source test accuracy after source-only training on syndigits->mnist5k, Conv-M "
        "minus squeeze-like (percentage points)",
        rule=within(0.0, 2.0),
        profiles=SMALL,
        test_size=2000,
        test_scale=100.0,
        test_difference=True,
    ),
    Claim(
        id="convm-matches-inception-cls",
        statement="The Conv-M net reaches GoogLeNet-level classification accuracy with fewer "
        "parameters",
        paper_value="GoogLeNet-level accuracy",
        unit="pp",
        source="abstract",
        confidence="verified",
        metric="mnist5k test accuracy after source-only training, Conv-M net minus "
        "inception-like net (percentage points; Conv-M has 70% of its parameters)",
        rule=at_least(-1.0),
        profiles=SMALL,
        scale_note="ImageNet top-1 of the paper's network is not available to us.",
        test_size=1000,
        test_scale=100.0,
        test_difference=True,
    ),
    Claim(
        id="convm-matches-inception-da",
        statement="The Conv-M net reaches GoogLeNet-level domain adaptation accuracy",
        paper_value="GoogLeNet-level accuracy on DA",
        unit="pp",
        source="abstract",
        confidence="verified",
        metric="target accuracy after the unified method on syndigits->mnist5k, Conv-M net minus "
        "inception-like net (percentage points)",
        rule=at_least(-1.0),
        profiles=SMALL,
        test_size=1000,
        test_scale=100.0,
        test_difference=True,
    ),
    Claim(
        id="param-count",
        statement="The compact network has 4.1M parameters",
        paper_value="4.1M",
        unit="parameters",
        source="abstract",
        confidence="verified",
        metric="parameters of compact_net(1000, 'paper', 3), counted",
        rule=within(4.1e6, 0.1e6),
        scale_note="BY CONSTRUCTION: the paper's layer table is unavailable; our Conv-M widths "
        "were chosen to land near 4.1M, so this checks the builder, not the paper.",
        kind="by-construction",
        kind_reason="the widths were set to hit the paper's 4.1M parameters",
    ),
    Claim(
        id="param-ratio-googlenet",
        statement="4.1M parameters are 59% of GoogLeNet's",
        paper_value="0.59",
        unit="ratio",
        source="abstract",
        confidence="verified",
        metric="parameters of compact_net('paper') / inception_like('paper') (the GoogLeNet v1 "
        "layout without auxiliary heads), both counted",
        rule=within(0.59, 0.02),
        scale_note="The numerator is by construction (see param-count); the denominator is "
        "GoogLeNet's published layout, counted.",
        kind="by-construction",
        kind_reason="both nets' widths are set by us to the paper's layouts; the ratio follows "
        "from that choice",
    ),
    Claim(
        id="office-state-of-the-art",
        statement="State of the art on 16 of 18 Office-31 / Office-Caltech tasks",
        paper_value="16 of 18",
        unit="tasks",
        source="abstract",
        confidence="verified",
        metric="Office tasks (of 18) on which ours beats every other method (seed means)",
        rule=at_least(16),
        profiles=PAPER_ONLY,
        scale_note="Needs the Office datasets (user-supplied folders) and ideally "
        "ImageNet-initialized weights; our baselines are not the paper's tables. One count over "
        "seed means: at best inconclusive under the core's rules, declared as such.",
    ),
]
