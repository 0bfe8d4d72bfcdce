"""Generation-rate benchmark: generative vs direct poisons per second, measured in one run.

    python -m dnnrepro.poisongen.bench --out paper_results/poisongen [--threads 1] [--dataset mnist5k]

Entries (seconds per poison, batch 1 unless said, same thread count, same process):
- generative (one generator pass) vs direct faithful with the fastest engine for the target
  (linear-chain rank-one sweep for the MLP): the ratio the ``speedup`` claim uses;
- the same against the generic vmap engine and the authors' coordinate-by-coordinate loop;
- generative batched over 100 seeds (per poison) vs direct faithful;
- generative with its reward rounds re-run for every poison (the authors' script) vs direct;
- direct exact hypergradient vs direct faithful;
- amortization: generator training (auto-encoder pretraining + reward rounds) and the number of
  poisons after which the generative method is ahead including that training.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from dnnrepro.core import data as core_data
from dnnrepro.core.bench import Timing, threads, time_callable, write_bench
from dnnrepro.core.errors import DnnreproError

from .direct import DirectGradientAttack
from .generative import GenerativeAttack, Generator, pretrain_autoencoder
from .targets import train_target


def run(dataset: str, n_threads: int, work: Path, direct_repeats: int = 3) -> list[dict]:
    """Measure and return the bench entries (see the module doc)."""
    x, y = core_data.load(dataset, "train")
    model, _ = train_target(dataset, (x, y), 0, work / "target")
    seed_x, seed_y = x[:1], y[:1]
    with threads(n_threads) as n:
        torch.manual_seed(0)
        g = Generator(tuple(x.shape[1:]))
        pre = pretrain_autoencoder(g, x, checkpoint_dir=work / "autoencoder")["seconds"]
        gen = GenerativeAttack(model, (x, y), generator=g).fit()
        fit_seconds = pre + gen.reward_seconds
        t_gen = time_callable(lambda: gen.poison(seed_x, seed_y), warmup=10, repeats=500)
        batch = x[:100], y[:100]
        t_batch = time_callable(lambda: gen.poison(*batch), warmup=3, repeats=50)
        fast = DirectGradientAttack(model, (x, y))  # auto: linear-chain for the MLP
        vec = DirectGradientAttack(model, (x, y), engine="vectorized")
        loop = DirectGradientAttack(model, (x, y), engine="loop")
        exact = DirectGradientAttack(model, (x, y), mode="exact")
        t_fast = time_callable(lambda: fast.poison(seed_x, seed_y), warmup=1, repeats=10)
        t_vec = time_callable(lambda: vec.poison(seed_x, seed_y), warmup=1, repeats=direct_repeats)
        t_loop = time_callable(lambda: loop.poison(seed_x, seed_y), warmup=0, repeats=1)
        t_exact = time_callable(lambda: exact.poison(seed_x, seed_y), warmup=2, repeats=20)

    def ratio(name, cand, base, cand_per=1, note=""):
        c, b = cand.median / cand_per, base.median
        return {
            "name": name,
            "dataset": dataset,
            "threads": n,
            "candidate_seconds_per_poison": c,
            "baseline_seconds_per_poison": b,
            "speedup": b / c,
            "candidate": cand.as_dict(),
            "baseline": base.as_dict(),
            "note": note,
        }

    refit = Timing(
        t_gen.median + gen.reward_seconds, t_gen.min, t_gen.max, 1, 0, t_gen.threads
    )  # one measurement of the reward rounds plus the timed generator pass
    entries = [
        ratio(
            f"generative vs direct-faithful ({fast.engine})",
            t_gen,
            t_fast,
            note="the claim's ratio",
        ),
        ratio("generative vs direct-faithful (vmap vectorised)", t_gen, t_vec),
        ratio("generative vs direct-faithful (authors' coordinate loop)", t_gen, t_loop),
        ratio(f"generative batched x100 vs direct-faithful ({fast.engine})", t_batch, t_fast, 100),
        ratio(
            f"generative re-fit per poison (10 reward rounds) vs direct-faithful ({fast.engine})",
            refit,
            t_fast,
            note="the authors' generative script updates G while it makes each poison",
        ),
        ratio(f"direct-exact vs direct-faithful ({fast.engine})", t_exact, t_fast),
        ratio(f"direct-faithful {fast.engine} vs authors' loop", t_fast, t_loop),
    ]
    t_direct, t_g = t_fast.median, t_gen.median
    entries.append(
        {
            "name": "amortization of generator training",
            "dataset": dataset,
            "threads": n,
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dnnrepro.poisongen.bench")
    parser.add_argument("--out", default="paper_results/poisongen", help="folder for bench.json")
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work-dir", default="runs", help="cached target and auto-encoder")
    args = parser.parse_args(argv)
    try:
        entries = run(
            args.dataset, args.threads, Path(args.work_dir) / "poisongen" / "bench" / args.dataset
        )
    except DnnreproError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 2
    path = write_bench(args.out, "poisongen", entries)
    for e in entries:
        print({k: v for k, v in e.items() if k not in ("candidate", "baseline")})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
