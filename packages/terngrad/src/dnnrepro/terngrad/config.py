"""The three profiles of ``dnnrepro terngrad reproduce``: one frozen :class:`Profile` each.

Every arm trains LeNet (or the 784-300-100-10 MLP) with the LeNet script's settings (brief 1.7):
total batch 64, momentum 0.9, poly lr (power 0.5), weight decay 5e-4 inside the loss (so each
worker's decay term is ternarized, as in the authors' code), every tensor ternarized
(quantize_logits, size_to_binarize 1). Costs below are CPU seconds on this 2-core machine with
1 torch thread; "measured" ones come from the dry runs named in each docstring.
"""

from __future__ import annotations

from dataclasses import dataclass

MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4
BATCH = 64  # total batch over all workers, as the authors' --batch_size
CLIP_C = 2.5


@dataclass(frozen=True, kw_only=True)
class Profile:
    """Settings of one profile.

    - ``dataset`` / ``train_examples``: the training set (None: all of it; cut to a multiple of
      the total batch so every N divides every batch);
    - ``steps``, ``lr``: optimizer steps and peak lr of every emulated arm (poly schedule);
    - ``lenet_n``: worker counts of the TernGrad (c = 2.5) LeNet arms; ``noclip_n`` those of the
      unclipped arms; ``mlp_n`` those of the MLP arms; one fp32 arm per model serves every N
      (total batch 64 is the same computation for any N);
    - ``gloo_n``, ``gloo_steps``: real gloo DDP processes (fp32 and TernGrad a2a/base3 per seed);
      ``bytes_n``: process counts whose per-collective byte counts are checked against the formula;
    - ``identity_draws``: ternarization draws per layer for the unbiasedness/second-moment checks;
    - ``cifarnet_steps``: Table 1's CifarNet arms (None: not run, with a note);
    - ``checkpoint_every``: steps between mid-run checkpoints of each arm (0: epoch ends only);
    - ``emulator``: "vectorized" (``emulate_stacked``, one fused pass over all workers) or
      "reference" (``emulate``, one worker at a time) for the emulated arms; both give the same
      gradients bit for bit (tested), so the choice changes the cost, never the numbers.
    """

    name: str
    dataset: str
    train_examples: int | None
    steps: int
    lr: float
    lenet_n: tuple[int, ...]
    noclip_n: tuple[int, ...]
    mlp_n: tuple[int, ...]
    gloo_n: tuple[int, ...]
    gloo_steps: int
    bytes_n: tuple[int, ...]
    identity_draws: int
    cifarnet_steps: int | None = None
    checkpoint_every: int = 0
    emulator: str = "vectorized"


SMOKE = Profile(
    name="smoke",
    dataset="mnist5k",
    train_examples=640,
    steps=3,
    lr=0.05,
    lenet_n=(2,),
    noclip_n=(2,),
    mlp_n=(2,),
    gloo_n=(2,),
    gloo_steps=3,
    bytes_n=(2,),
    identity_draws=40,
)
"""``dnnrepro terngrad reproduce --profile smoke``: every code path once, 1 seed; about 20 s
(measured: 15-25 s, most of it the gloo process start). Results are not claims."""

SMALL = Profile(
    name="small",
    dataset="mnist5k",
    train_examples=3968,
    steps=62,
    lr=0.05,  # the script's 0.01 is for 10,000 steps; one epoch needs a larger one
    lenet_n=(2, 4, 8, 16, 32, 64),
    noclip_n=(2, 16),
    mlp_n=(2, 8, 32),
    gloo_n=(2, 4),
    gloo_steps=62,
    bytes_n=(2, 4, 8),
    identity_draws=200,
)
"""``dnnrepro terngrad reproduce --profile small`` (3 seeds): one epoch of mnist5k (3968 images,
62 steps); measured 244 s with 2 threads on the idle machine (1302 s under heavy load)."""

PAPER = Profile(
    name="paper",
    dataset="mnist",
    train_examples=None,
    steps=10_000,
    lr=0.01,
    lenet_n=(2, 4, 8, 16, 32, 64),
    noclip_n=(2, 8, 64),  # issue 17: no-clip at N in {2, 8, 64} only, to fit the budget
    mlp_n=(2, 8, 32),
    gloo_n=(2, 4),
    gloo_steps=300,  # a short real-gloo run to show the hook trains like the emulator
    bytes_n=(2, 4, 8),
    identity_draws=200,
    cifarnet_steps=None,  # Table 1 needs 300K steps x 2 arms: ~8 CPU hours each; not run
    checkpoint_every=500,
)
"""``dnnrepro terngrad reproduce --profile paper --data-dir ../shared/data`` (3 seeds): the LeNet
script on full MNIST (60,000 images), 10,000 steps at lr 0.01.

Cost per seed, from the per-step times measured on this machine with 1 thread for issue 17
(before the counter stream and the vectorized emulator): fp32 LeNet 14.5 ms/step; the emulated
TernGrad step grew with N up to ~0.40 s at N = 64. With the vectorized emulator (indicative,
1 thread, machine busy: another reproduction and other jobs on the 2 cores) the N = 64 step costs
about 6.9x a plain fp32 step at total batch 64 (interval 6.3-8.8x; the reference emulator 8.5x in
the same run; 8.6x vs 11.6x in an earlier run under heavier load), and its fused ternarize pass
over 64 x 431k elements 60 ms (0.12 s under the heavier load); not yet re-measured on an idle
machine, so the per-arm hours below are the old, pre-vectorization estimate. A shortened dry run (6
steps per arm, every part, 1 seed) ran end to end; its wall time (~8 min on the loaded machine)
is dominated by the 10,000-image test evaluation of each of the 14 arms. LeNet arms
(fp32 + 6 TernGrad + 3 no-clip) x 10,000 steps: about 3.5-4 h per seed before vectorization; MLP
arms about 0.5 h; gloo 2 x 2 x 300 steps: ~2 min; identities, levels, bytes: ~1 min. About
12-13 CPU hours for 3 seeds before vectorization: over issue 17's 3-hour target; the vectorized
emulator cuts the emulated arms' step by a fifth to a quarter against the reference (same
numbers); how far that brings the total is for an idle-machine measurement. Every arm
checkpoints every 500 steps and every finished part is a stage, so the run can be stopped and
resumed at any point.
"""

PROFILES: dict[str, Profile] = {p.name: p for p in (SMOKE, SMALL, PAPER)}
DEFAULT_SEEDS = {"smoke": 1, "small": 3, "paper": 3}
