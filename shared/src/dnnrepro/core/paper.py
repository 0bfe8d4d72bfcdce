"""What a paper package registers, and the context its reproduction runs in.

A package exposes one :class:`Paper` through the entry-point group ``dnnrepro.papers``::

    [project.entry-points."dnnrepro.papers"]
    ssl = "dnnrepro.ssl.paper:PAPER"

``PAPER.run(ctx)`` measures: it loads data through ``ctx.load``, trains with
``dnnrepro.core.train.fit`` (checkpoints under ``ctx.work(...)``), records one value per claim and
seed with ``ctx.record``, and saves figures with ``ctx.figure``. :func:`reproduce` turns that into
results.json and the READMEs. Expensive steps go through ``ctx.stage(name, fn)``: a finished stage
is stored (atomically) in the run's work folder and not recomputed after a kill, unless the code
changed (the stage is keyed by a hash of the package's and the core's sources).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import data as _data
from .errors import ConfigError
from .io import write_json
from .results import Claim, build_results, claims_table, provenance, save_figure, write_results

PROFILES = ("smoke", "small", "paper")


@dataclass
class Paper:
    """A paper package's registration.

    ``default_seeds`` maps a profile to the number of seeds run when ``--seeds`` is not given.
    ``add_commands(subparsers)`` may add package-specific CLI subcommands next to ``reproduce``;
    each added parser must set ``func=handler(args) -> int``.
    """

    name: str
    title: str
    arxiv: str
    version: str
    claims: list[Claim]
    run: Callable[[RunContext], None]
    default_seeds: dict[str, int] = field(
        default_factory=lambda: {"smoke": 1, "small": 1, "paper": 1}
    )
    add_commands: Callable[[argparse._SubParsersAction], None] | None = None
    source_module: str = ""  # the package's import name, for the code fingerprint

    def __post_init__(self):
        ids = [c.id for c in self.claims]
        if len(ids) != len(set(ids)):
            raise ConfigError(f"{self.name}: duplicate claim ids")


@dataclass
class RunContext:
    """Everything a reproduction needs; created by :func:`reproduce`."""

    paper: Paper
    profile: str
    seeds: list[int]
    out_dir: Path
    work_dir: Path
    data_dir: Path | None = None
    threads: int = 2
    quiet: bool = False
    measurements: dict[str, list[float]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    figures: list[str] = field(default_factory=list)
    datasets: set[str] = field(default_factory=set)
    details: dict[str, Any] = field(default_factory=dict)
    fingerprint: str = ""

    def load(self, name: str, split: str = "train"):
        """``dnnrepro.core.data.load`` with this run's data dir; remembers the set for provenance."""
        self.datasets.add(name)
        return _data.load(name, split, self.data_dir)

    def record(self, claim_id: str, value: float) -> None:
        """Record one measured value (one seed) for a declared claim."""
        if claim_id not in {c.id for c in self.paper.claims}:
            raise ConfigError(f"{self.paper.name}: no claim {claim_id!r} is declared")
        self.measurements.setdefault(claim_id, []).append(float(value))

    def note(self, claim_id: str, text: str) -> None:
        """Attach a note (what was measured, caveats) to a claim's row."""
        self.notes[claim_id] = (self.notes.get(claim_id, "") + " " + text).strip()

    def figure(self, name: str, fig, data: Any) -> None:
        """Save a matplotlib figure and the data it shows into the results folder."""
        saved = save_figure(self.out_dir, name, fig, data)
        if saved.png not in self.figures:
            self.figures.append(saved.png)

    def work(self, *parts: str) -> Path:
        """A folder under this run's work dir (checkpoints, resumable state)."""
        path = self.work_dir.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def stage(self, name: str, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` once; its JSON-able result is stored and reused after a restart.

        A stored result from different code (another fingerprint) is recomputed.
        """
        path = self.work_dir / "stages" / f"{name}.json"
        if path.exists():
            try:
                stored = json.loads(path.read_text())
                if stored.get("fingerprint") == self.fingerprint:
                    self.log(f"stage {name}: reusing the stored result")
                    return stored["value"]
            except ValueError:
                pass  # a torn file cannot exist (atomic writes); an edited one is recomputed
        value = fn()
        write_json(path, {"fingerprint": self.fingerprint, "value": value})
        return value

    def log(self, message: str) -> None:
        if not self.quiet:
            print(f"[{self.paper.name} {self.profile}] {message}", file=sys.stderr, flush=True)


def code_fingerprint(*modules: str) -> str:
    """sha256 over the .py and .cu sources of the given top-level modules (dnnrepro.core, ...)."""
    import importlib

    h = hashlib.sha256()
    for name in modules:
        module = importlib.import_module(name)
        root = Path(module.__file__).parent
        for path in sorted(root.rglob("*")):
            if path.suffix in (".py", ".cu") and "__pycache__" not in path.parts:
                h.update(str(path.relative_to(root)).encode())
                h.update(path.read_bytes())
    return h.hexdigest()


def _source_paths(module: str) -> tuple[str, ...]:
    """Repository-relative folders of the core's and the package's sources (for the dirty flag)."""
    import importlib

    paths = []
    for name in ("dnnrepro.core", module):
        try:
            folder = Path(importlib.import_module(name).__file__).resolve().parent
        except (ImportError, TypeError):
            continue
        paths.append(str(folder))
    return tuple(paths)


def reproduce(
    paper: Paper,
    profile: str = "small",
    seeds: int | None = None,
    out_root: str | os.PathLike = "paper_results",
    data_dir: str | os.PathLike | None = None,
    work_root: str | os.PathLike = "runs",
    threads: int | None = None,
    quiet: bool = False,
) -> dict:
    """Run ``paper`` at ``profile`` and write its results; returns the results document.

    Smoke runs write to ``<out_root>/_smoke/<pkg>`` so they never overwrite pinned results.
    """
    import torch

    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    n_seeds = paper.default_seeds.get(profile, 1) if seeds is None else seeds
    if not isinstance(n_seeds, int) or n_seeds < 1:
        raise ConfigError(f"--seeds must be an integer >= 1, not {seeds!r}")
    if threads is not None and threads < 1:
        raise ConfigError("--threads must be >= 1")
    if threads is None:
        # OMP_NUM_THREADS, when set, is the user's word on threads (e.g. 1 on a loaded machine)
        env = os.environ.get("OMP_NUM_THREADS", "")
        threads = int(env) if env.isdigit() and int(env) >= 1 else min(2, os.cpu_count() or 1)
    torch.set_num_threads(threads)
    out_dir = Path(out_root) / ("_smoke" if profile == "smoke" else "") / paper.name
    out_dir.mkdir(parents=True, exist_ok=True)
    module = paper.source_module or f"dnnrepro.{paper.name}"
    fingerprint = code_fingerprint("dnnrepro.core", module)
    ctx = RunContext(
        paper=paper,
        profile=profile,
        seeds=list(range(n_seeds)),
        out_dir=out_dir,
        # keyed by the code's fingerprint: after a code change nothing (stage results, training
        # checkpoints) is resumed from state the old code wrote
        work_dir=Path(work_root) / paper.name / profile / fingerprint[:16],
        data_dir=data_dir,
        threads=threads,
        quiet=quiet,
        fingerprint=fingerprint,
    )
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    paper.run(ctx)
    wall = time.perf_counter() - start
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for dist in ("dnnrepro-core", f"dnnrepro-{paper.name}"):
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            versions[dist] = "not installed"
    prov = provenance(
        profile,
        ctx.seeds,
        _data.sha256s(sorted(ctx.datasets)),
        wall,
        versions,
        _source_paths(module),
    )
    doc = build_results(
        paper.name,
        paper.title,
        paper.claims,
        ctx.measurements,
        ctx.notes,
        profile,
        prov,
        ctx.figures,
        ctx.details,
    )
    write_results(out_dir, doc)
    if not quiet:
        print(claims_table(doc))
    return doc
