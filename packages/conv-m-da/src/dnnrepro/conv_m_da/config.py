"""One frozen settings object per profile of ``dnnrepro conv-m-da reproduce``.

Protocol of one (task, network, seed) cell, the same for every method and profile:

1. pre-train on the labelled source for ``pretrain`` steps (source only; the digit-scale stand-in
   for the paper's ImageNet initialization);
2. from that network, run each method for ``steps`` more steps (AdaBN: no steps, the BatchNorm
   statistics of the pre-trained network are re-estimated on the target training images);
3. report the target test accuracy of the checkpoint chosen by ``Profile.select``: the LAST
   iterate in every profile here (declared; no early stopping, no checkpoint picked on any target
   signal; every weight and step count is fixed in this file before any run, so no knob is
   tuned). ``select="im"`` or ``"snd"`` would pick each trained arm's checkpoint by an
   unsupervised validator on the unlabelled target training images instead
   (:mod:`dnnrepro.conv_m_da.validators`, scored every ``select_every`` steps); source-only
   pre-training always keeps its last iterate.
"""

from __future__ import annotations

from dataclasses import dataclass

from .adapt import METHODS
from .tasks import FULL_MNIST_TASKS, SMALL_TASKS

# the unified method with one of its three parts removed: (method, AdaptConfig overrides)
ABLATIONS = {
    "ours-no-domain": ("ours", {"lambda_domain": 0.0}),
    "ours-no-mmd": ("ours", {"lambda_mmd": 0.0}),
    "ours-no-label": ("ours", {"lambda_entropy": 0.0, "residual": False}),
}


@dataclass(frozen=True, kw_only=True)
class Profile:
    """Settings of one profile.

    ``tasks``: digit tasks (:data:`dnnrepro.conv_m_da.tasks.TASKS`) run with the compact net and
    every method in ``methods``; ``limit``: images kept per split (None: all); ``pretrain`` /
    ``steps``: source-only pre-training and adaptation steps, each on ``batch_size`` source (+
    ``batch_size`` target) images; ``image_size``: both domains are resized to 1 x size x size.
    ``net_task``: task of the network comparison (squeeze-like and inception-like nets, source_only
    and ours; None: not run); ``ablation_task``: task of the ablations of ours (None: not run);
    ``cls_task``: task whose source set is the classification benchmark (inception-like net,
    source only; None: not run); ``pca``: images per domain in the feature figure (0: none);
    ``match_chunks``: the squeeze-like net of the network comparison is pre-trained in up to this
    many chunks of ``pretrain`` steps, until its source TRAINING accuracy reaches the compact
    net's (compression claims at equal source fit; 1: same steps, no matching).
    ``office``: also run the Office rows (needs the user's Office folders).
    ``office_backbone``: the Office rows' network: ``"compact"`` (the paper-size Conv-M net,
    ImageNet-initialized from ``<data dir>/conv-m-da/compact_imagenet`` when that checkpoint
    exists) or a torchvision ResNet name (``"resnet50"``, ...; its ImageNet weights are read from
    ``<data dir>/conv-m-da/<name>.pth`` or ``.safetensors``, which the user supplies: see
    :mod:`dnnrepro.conv_m_da.backbones`).
    ``select``: checkpoint of each trained arm: ``"last"`` (declared for every profile here),
    ``"im"`` or ``"snd"`` (best unsupervised validator score every ``select_every`` steps; see
    :class:`~dnnrepro.conv_m_da.adapt.AdaptConfig`).
    """

    name: str
    tasks: tuple[str, ...]
    methods: tuple[str, ...] = METHODS
    limit: int | None = None
    pretrain: int
    steps: int
    batch_size: int = 32
    image_size: int = 16
    net_task: str | None = None
    ablation_task: str | None = None
    cls_task: str | None = None
    pca: int = 0
    match_chunks: int = 1
    office: bool = False
    office_size: int = 224
    office_pretrain: int = 1000
    office_steps: int = 2000
    office_bottleneck: int = 256
    office_dropout: float = 0.5
    office_discriminator_hidden: int = 1024
    office_backbone: str = "compact"
    select: str = "last"
    select_every: int = 50


SMOKE = Profile(
    name="smoke",
    tasks=SMALL_TASKS,
    limit=96,
    pretrain=4,
    steps=3,
    batch_size=16,
    net_task="syndigits->mnist5k",
    ablation_task="mnist5k->digits",
    cls_task="mnist5k->digits",
    pca=24,
    match_chunks=2,
)
"""``dnnrepro conv-m-da reproduce --profile smoke``: every code path on 96 images per split, a few
steps; about 30 s on one CPU thread."""

SMALL = Profile(
    name="small",
    tasks=SMALL_TASKS,
    pretrain=300,
    steps=200,
    batch_size=32,
    net_task="syndigits->mnist5k",
    ablation_task="mnist5k->digits",
    cls_task="mnist5k->digits",
    pca=300,
    match_chunks=4,
)
"""``dnnrepro conv-m-da reproduce --profile small`` (3 seeds): the embedded digit sets at 1x16x16;
the 0.1 run took 303 s on 2 threads with 4 methods; with AdaBN (free) and CDAN (about DANN's
cost) estimated 6-7 CPU minutes."""

PAPER = Profile(
    name="paper",
    tasks=FULL_MNIST_TASKS,
    pretrain=1500,
    steps=1500,
    batch_size=64,
    image_size=16,
    office=True,
)
"""``dnnrepro conv-m-da reproduce --profile paper --data-dir ../shared/data`` (5 seeds by default):
the four full-MNIST tasks x {source_only, AdaBN, DAN, DANN, CDAN, ours} at 1x16x16 (MNIST and
syndigits shrunk, digits UP-sampled from 8x8), compact net, 1500 source-only pre-training steps
then 1500 steps per trained method, 64 source (+64 target) images per step (1.6 passes over full
MNIST per arm).

Cost: an ESTIMATE, see :data:`PAPER_COST` (about 2.9 CPU hours on 2 idle cores); the shortened dry
run is ``tests/test_paper.py::test_paper_profile_dry_run_on_full_mnist``. Resumable: each (task,
seed) cell is a stage, and each arm checkpoints every 200 steps.

The Office rows (office-state-of-the-art) need the user's Office-31 and Office-Caltech folders
(:mod:`dnnrepro.conv_m_da.office`); without them the run records the MNIST claims and notes the
one DataError that names the folders to create. ImageNet-initialized weights for the paper-size
net are read from ``<data dir>/conv-m-da/compact_imagenet`` when present.
"""

# Seconds per step on 2 idle threads, compact net at 1x16x16. Source-only, batch 32: the pinned
# 0.1 small run (302.6 s for about 17k steps, mostly batch 32 + 32) gives <= 0.018 s per step;
# doubling the batch doubles it; an adaptation step forwards source + target (2x) and adds the
# method's terms. Measured on 2026-11-28 with 1 thread under a load average of 12 on 2 cores
# (so several times slower than idle): source_only 0.23 s, DAN 0.35, DANN 0.41, CDAN 0.43,
# ours 0.46 per step at batch 64: the same ordering, adaptation 1.5-2x source-only.
PAPER_COST = {
    "seconds_per_source_only_step": 0.035,
    "seconds_per_adaptation_step": 0.07,
    "trained_methods": 4,  # dan, dann, cdan, ours (+ the source_only arm, + AdaBN: no steps)
    "cells": len(FULL_MNIST_TASKS) * 5,
    "estimated_cpu_hours": round(
        len(FULL_MNIST_TASKS) * 5 * (1500 * 0.035 * 2 + 1500 * 4 * 0.07) / 3600, 2
    ),
}

PROFILES = {p.name: p for p in (SMOKE, SMALL, PAPER)}
