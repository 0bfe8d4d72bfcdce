"""Generation-rate benchmark (``dnnrepro poisongen bench [--quick] [--threads N]``).

Entries, all seconds per poison at batch 1 in one process, timed with the interleaved protocol
(``bench.interleaved_ratio``) against the faithful direct attack with the fastest engine for the
target (the linear-chain rank-one sweep for the MLP):

- one generator pass (reading (a) of the paper's speedup);
- the generator re-fit from its auto-encoder (the reward rounds) plus one pass, as the authors'
  script makes each poison (reading (b), the one the ``speedup`` claim uses);
- the generic vmap engine and the authors' coordinate-by-coordinate loop vs the fast engine;
- the exact hypergradient (ours) vs the faithful direct attack;
- a plain row: generator training time and the break-even number of poisons.
"""

from __future__ import annotations

import torch

from dnnrepro.core import data as core_data
from dnnrepro.core.bench import bench_entry, interleaved_ratio
from dnnrepro.core.paper import BenchOptions

from .direct import DirectGradientAttack
from .generative import GenerativeAttack, Generator, pretrain_autoencoder
from .targets import train_target

DATASET = "mnist5k"


def bench(opts: BenchOptions) -> list[dict]:
    """Measure and return the bench.json entries (see the module doc)."""
    x, y = core_data.load(DATASET, "train", opts.data_dir)
    work = opts.work_root / "poisongen" / "bench" / DATASET
    work = work / "quick" if opts.quick else work  # a quick target never resumes a full one
    model, _ = train_target(
        DATASET, (x, y), 0, work / "target", max_steps=200 if opts.quick else None
    )
    one = x[:1], y[:1]
    torch.manual_seed(0)
    g = Generator(tuple(x.shape[1:]))
    pre = pretrain_autoencoder(g, x, checkpoint_dir=work / "autoencoder")["seconds"]
    ae_state = {k: v.clone() for k, v in g.state_dict().items()}
    gen = GenerativeAttack(model, (x, y), generator=g).fit()
    g2 = Generator(tuple(x.shape[1:]))
    refitter = GenerativeAttack(model, (x, y), generator=g2)
    fast = DirectGradientAttack(model, (x, y))  # auto: linear-chain for the MLP
    vec = DirectGradientAttack(model, (x, y), engine="vectorized")
    exact = DirectGradientAttack(model, (x, y), mode="exact")
    reps = 7 if opts.quick else 9

    def refit():
        g2.load_state_dict(ae_state)
        refitter.history.clear()
        refitter.fit()
        refitter.generate(one[0])

    def direct():
        fast.poison(*one)

    common = {"dataset": DATASET, "unit": "seconds per poison, batch 1"}
    base = f"direct-faithful ({fast.engine} engine)"
    m_fwd = interleaved_ratio(lambda: gen.generate(one[0]), direct, repeats=reps)
    m_ref = interleaved_ratio(refit, direct, repeats=reps, warmup=1)
    entries = [
        bench_entry(
            "generative (one pass) vs direct-faithful",
            m_fwd,
            baseline=base,
            candidate="one generator forward pass",
            note="reading (a): generator training excluded",
            **common,
        ),
        bench_entry(
            "generative re-fit per poison vs direct-faithful",
            m_ref,
            baseline=base,
            candidate="generator reward rounds from the auto-encoder + one pass",
            note="reading (b), the speedup claim's: the authors' script updates G for each poison",
            **common,
        ),
        bench_entry(
            "direct-exact vs direct-faithful",
            interleaved_ratio(lambda: exact.poison(*one), direct, repeats=reps),
            baseline=base,
            candidate="direct-exact (autograd hypergradient, ours)",
            **common,
        ),
        bench_entry(
            f"direct-faithful {fast.engine} vs vmap",
            interleaved_ratio(direct, lambda: vec.poison(*one), repeats=reps, warmup=1),
            baseline="direct-faithful (vmap vectorized engine)",
            candidate=base,
            **common,
        ),
    ]
    if not opts.quick:  # the authors' loop: 784 re-training steps per round, seconds per call
        loop = DirectGradientAttack(model, (x, y), engine="loop", rounds=1)
        fast1 = DirectGradientAttack(model, (x, y), rounds=1)
        entries.append(
            bench_entry(
                f"direct-faithful {fast.engine} vs the authors' loop (1 round)",
                interleaved_ratio(
                    lambda: fast1.poison(*one), lambda: loop.poison(*one), repeats=7, warmup=0
                ),
                baseline="direct-faithful (the authors' coordinate loop), 1 round",
                candidate=f"direct-faithful ({fast.engine}), 1 round",
                **common,
            )
        )
    fit_seconds = pre + gen.reward_seconds
    t_direct, t_g = m_fwd.baseline_s, m_fwd.candidate_s
    entries.append(
        {
            "name": "amortization of generator training",
            "dataset": DATASET,
            "threads": opts.threads,
            "generator_training_seconds": fit_seconds,
            "autoencoder_pretraining_seconds": pre,
            "reward_rounds_seconds": gen.reward_seconds,
            "break_even_poisons": fit_seconds / (t_direct - t_g) if t_direct > t_g else None,
            "speedup_including_training_at_1000_poisons": 1000
            * t_direct
            / (fit_seconds + 1000 * t_g),
        }
    )
    return entries
