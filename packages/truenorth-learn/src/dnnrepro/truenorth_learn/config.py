"""The three run profiles (smoke, small, paper) as typed, frozen settings.

``PROFILES[name]`` is what ``dnnrepro truenorth-learn reproduce --profile <name>`` runs; each
profile's ``command`` and ``cost`` fields say how to start it and what it takes. The
protocol (experiment.py): per data set, train the Esser baseline to convergence, fine-tune it with
each candidate penalty, choose the candidate with ``ctx.tune`` on the validation split (tuning
seeds 1000, 1001), then train the baseline and fine-tune the chosen penalty for every reporting
seed and measure accuracy vs copies and vs ticks on the test split, averaged over ``draws``
simulator draws per seed.

The iso-accuracy ``tolerance`` of each data set is declared here, before running, above the
expected 95% interval of the baseline's 64-copy accuracy over 3 seeds (t with 2 degrees of
freedom) at that test-set size: mnist5k 0.02 (1,000 test images), digits 0.03 (364), full MNIST
0.01 (10,000).

Costs are estimates for an idle 2-core machine (2 threads), from the throughput of the pinned
small run (about 8,000 training images/s on the 5-core net; one 64-copy x 16-tick simulation of
1,000 images in 3.4 s with shared input spikes, bench.json; independent spikes per copy cost
about 4x that, measured here). This session's machine was shared (load 15-19 on 2 cores), so
no wall time measured here is representative: the shortened paper dry run (every training cut to
2 steps, 300 test images; tests/test_cli_paper.py) took 204 s under that load.
"""

from __future__ import annotations

from dataclasses import dataclass

from .penalty import KINDS


@dataclass(frozen=True, kw_only=True)
class DatasetPlan:
    """One data set of a profile.

    ``base_epochs``: the Esser baseline's training (to convergence); ``finetune_epochs``: the
    penalty fine-tuning that starts from the baseline's weights (lr ``finetune_lr``);
    ``tolerance``: iso-accuracy slack (fraction) below the baseline's best accuracy, declared
    before running; ``max_steps``: truncates every training (smoke and dry runs only);
    ``train_limit``/``test_limit``: first N images only (smoke).
    """

    dataset: str
    base_epochs: int
    finetune_epochs: int
    lr: float = 0.02
    finetune_lr: float = 0.005
    tolerance: float = 0.01
    max_steps: int | None = None
    train_limit: int | None = None
    test_limit: int | None = None


@dataclass(frozen=True, kw_only=True)
class Profile:
    """How big each part of a run is.

    ``kinds`` x ``strengths``: the penalty candidates of the tuning; ``copies``/``ticks``: the
    spatial curve (1 tick) goes to ``copies`` copies, the temporal grid is ``ticks_copies``
    copies x ``ticks`` ticks; ``val_copies``: copies simulated on the validation split;
    ``draws``: simulator draws (sampled crossbars and spikes) per trained model and seed;
    ``tuning_seeds``: seeds of the tuning (1000, 1001, ...); ``inputs``: the input-spike
    assumption of every curve the claims use, "independent" (each copy has its own spike source,
    as on the chip when every copy receives its own spike train) or "shared" (one source fanned
    out to all copies); the spatial curve is also measured with the other one.
    """

    command: str
    cost: str
    datasets: tuple[DatasetPlan, ...]
    kinds: tuple[str, ...] = KINDS
    strengths: tuple[float, ...] = (1.0, 3.0, 10.0)
    copies: int = 64
    ticks: int = 16
    ticks_copies: int = 16
    val_copies: int = 16
    draws: int = 2
    tuning_seeds: int = 2
    inputs: str = "independent"


SMOKE = Profile(
    command="dnnrepro truenorth-learn reproduce --profile smoke",
    cost="about 30 s: 2-step trainings (1 tuning seed, 2 candidates), 60 test images",
    datasets=(
        DatasetPlan(
            dataset="mnist5k",
            base_epochs=1,
            finetune_epochs=1,
            max_steps=2,
            train_limit=300,
            test_limit=60,
        ),
        DatasetPlan(
            dataset="digits",
            base_epochs=1,
            finetune_epochs=1,
            max_steps=2,
            train_limit=300,
            test_limit=60,
        ),
    ),
    kinds=("l1_to_binary", "neuron_var"),
    strengths=(3.0,),
    copies=4,
    ticks=2,
    ticks_copies=2,
    val_copies=2,
    draws=1,
    tuning_seeds=1,
)

SMALL = Profile(
    command="dnnrepro truenorth-learn reproduce --profile small",
    cost=(
        "about 5 min on 2 threads: mnist5k 5 baselines x 20 epochs and 33 fine-tunes x 3 epochs "
        "(~200 epochs of 3,600 images, ~2 min), digits 5 x 30 + 33 x 5 epochs (~1 min), "
        "simulations: 2 tuning seeds x 16 models on 400 validation images and 3 seeds x 2 models "
        "x 2 draws on the 1,000 / 364 test images (~1 min)"
    ),
    datasets=(
        DatasetPlan(dataset="mnist5k", base_epochs=20, finetune_epochs=3, tolerance=0.02),
        DatasetPlan(dataset="digits", base_epochs=30, finetune_epochs=5, tolerance=0.03),
    ),
)

PAPER = Profile(
    command=(
        "dnnrepro truenorth-learn reproduce --profile paper --data-dir ../shared/data "
        "(full MNIST IDX files)"
    ),
    cost=(
        "about 1.5 h on 2 threads (estimate; budget 3 h), resumable (every training is a "
        "checkpointed fit, every measurement a stage): 5 baselines x 30 epochs and 33 fine-tunes "
        "x 3 epochs of 54,004 images (~250 epochs at ~7 s, ~30 min); 2 tuning seeds x 16 "
        "validation simulations (16 copies x 2 draws, 5,996 images, ~5 min); 3 seeds x 2 models "
        "x 2 draws of 64 copies + 16 copies x 16 ticks on 10,000 test images with independent "
        "input spikes per copy (drawing them dominates: ~4 min a draw, ~50 min); digits as in "
        "the small profile (~2 min)"
    ),
    datasets=(
        DatasetPlan(dataset="mnist", base_epochs=30, finetune_epochs=3, tolerance=0.01),
        DatasetPlan(dataset="digits", base_epochs=30, finetune_epochs=5, tolerance=0.03),
    ),
)

PROFILES = {"smoke": SMOKE, "small": SMALL, "paper": PAPER}
