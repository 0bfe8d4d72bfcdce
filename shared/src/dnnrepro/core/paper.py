"""What a paper package registers, and the context its reproduction runs in.

A package exposes one :class:`Paper` through the entry-point group ``dnnrepro.papers``::

    [project.entry-points."dnnrepro.papers"]
    ssl = "dnnrepro.ssl.paper:PAPER"

``PAPER.run(ctx)`` measures: it loads data through ``ctx.load`` (and any other file it reads
through ``ctx.input``), trains with ``dnnrepro.core.train.fit`` (checkpoints under
``ctx.work(...)``), records one value per claim and seed with ``ctx.record`` (a timing claim's
:class:`~dnnrepro.core.bench.RatioMeasurement` with ``ctx.record_timing``), chooses knobs with
``ctx.tune`` and saves figures with ``ctx.figure``. :func:`reproduce` turns that into
``<out_root>/<pkg>/<profile>/results.json`` and the READMEs.

Expensive steps go through ``ctx.stage(name, fn, **key)``: a finished stage is stored
(atomically) in the run's work folder, keyed by its name and the JSON of ``key``, and not
recomputed after a kill. The work folder (:func:`run_folder`) is keyed by a fingerprint of the
code the package uses (its own files and the core modules it imports), so after a change of that
code nothing is resumed from state the old code wrote, while an edit of an unrelated core module
recomputes nothing.

``PAPER.bench(opts: BenchOptions) -> list[dict]`` (optional) runs the package's speed benchmarks;
``dnnrepro <pkg> bench`` calls it and writes ``paper_results/<pkg>/bench.json``.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import data as _data
from .bench import RatioMeasurement
from .errors import ConfigError, DataError
from .io import sha256_file, write_bytes, write_json
from .results import Claim, build_results, claims_table, provenance, save_figure, write_results

PROFILES = ("smoke", "small", "paper")
SMOKE_ROOT = "_smoke"  # smoke runs write under <out_root>/_smoke/: they never touch pinned results


@dataclass(frozen=True)
class BenchOptions:
    """What ``dnnrepro <pkg> bench`` passes to ``Paper.bench``.

    ``threads``: torch threads in effect (already set); ``quick``: a short run (fewer repeats,
    smaller shapes) for tests and CI; ``data_dir``: the user's data folder (None: the default);
    ``out_dir``: the folder bench.json is written to (a benchmark may put figures there);
    ``work_root``: root of the run folders, for :meth:`run_folder`.
    """

    threads: int
    quick: bool
    data_dir: Path | None
    out_dir: Path
    work_root: Path = Path("runs")
    paper: Paper | None = None

    def run_folder(self, profile: str = "small") -> Path:
        """The work folder of this package's ``profile`` run (see :func:`run_folder`)."""
        if self.paper is None:
            raise ConfigError("BenchOptions.run_folder needs the paper (set by dnnrepro bench)")
        return run_folder(self.paper, profile, self.work_root)


@dataclass
class Paper:
    """A paper package's registration.

    ``default_seeds`` maps a profile to the number of seeds run when ``--seeds`` is not given.
    ``add_commands(subparsers)`` may add package-specific CLI subcommands next to ``reproduce``;
    each added parser must set ``func=handler(args) -> int``. ``bench(opts: BenchOptions) ->
    list[dict]`` returns bench.json entries (build them with ``dnnrepro.core.bench.bench_entry``).
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
    bench: Callable[[BenchOptions], list[dict[str, Any]]] | None = None

    def __post_init__(self):
        ids = [c.id for c in self.claims]
        if len(ids) != len(set(ids)):
            raise ConfigError(f"{self.name}: duplicate claim ids")
        if self.bench is not None and not callable(self.bench):
            raise ConfigError(f"{self.name}: bench must be a callable bench(opts) -> list[dict]")

    @property
    def module(self) -> str:
        """The package's import name (``source_module``, else ``dnnrepro.<name>``)."""
        return self.source_module or f"dnnrepro.{self.name.replace('-', '_')}"


def _plain_name(kind: str, name: str) -> str:
    """``name`` if it can be a file name (no separators, not hidden, not '..'), else ConfigError."""
    if (
        not isinstance(name, str)
        or not name
        or name.startswith(".")
        or "/" in name
        or "\\" in name
        or "\0" in name
    ):
        raise ConfigError(f"{kind} name {name!r} must be a plain file name (no '/', not hidden)")
    return name


class RunContext:
    """Everything a reproduction needs; created by :func:`reproduce`.

    Read-only: ``paper, profile, seeds, threads, data_dir, out_dir, work_dir, fingerprint``.
    Everything the run produces goes through the methods; :func:`reproduce` collects it.
    """

    def __init__(
        self,
        paper: Paper,
        profile: str,
        seeds: Sequence[int],
        out_dir: str | os.PathLike,
        work_dir: str | os.PathLike,
        data_dir: str | os.PathLike | None = None,
        threads: int = 2,
        quiet: bool = False,
        fingerprint: str = "",
    ):
        self._paper = paper
        self._profile = profile
        self._seeds = tuple(int(s) for s in seeds)
        self._out_dir = Path(out_dir)
        self._work_dir = Path(work_dir)
        self._data_dir = None if data_dir is None else Path(data_dir)
        self._threads = int(threads)
        self._quiet = quiet
        self._fingerprint = fingerprint
        self._claims = {c.id: c for c in paper.claims}
        self._measurements: dict[str, list[float]] = {}
        self._timings: dict[str, dict[str, Any]] = {}
        self._notes: dict[str, str] = {}
        self._figures: list[str] = []
        self._datasets: set[str] = set()
        self._inputs: dict[str, str] = {}
        self._details: dict[str, Any] = {}
        self._tuning: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ read-only state
    @property
    def paper(self) -> Paper:
        return self._paper

    @property
    def profile(self) -> str:
        return self._profile

    @property
    def seeds(self) -> list[int]:
        """The reporting seeds (a fresh list; tuning uses other seeds, see :meth:`tune`)."""
        return list(self._seeds)

    @property
    def threads(self) -> int:
        return self._threads

    @property
    def data_dir(self) -> Path | None:
        return self._data_dir

    @property
    def out_dir(self) -> Path:
        """``<out_root>/<pkg>/<profile>/``: results.json, README and figures of this run."""
        return self._out_dir

    @property
    def work_dir(self) -> Path:
        """The run's resumable state (stages, checkpoints); see :func:`run_folder`."""
        return self._work_dir

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    # ------------------------------------------------------------------ inputs
    def load(self, name: str, split: str = "train"):
        """``dnnrepro.core.data.load`` with this run's data dir; the set goes into provenance.

        ``split``: "train", "val", "train_minus_val" or "test".
        """
        out = _data.load(name, split, self._data_dir)
        self._datasets.add(name)
        return out

    def input(self, path: str | os.PathLike) -> Path:
        """Record a file the run reads (a net.json, a checkpoint) with its sha256 in provenance.

        Returns the path; a missing file raises DataError naming it.
        """
        p = Path(path)
        if not p.is_file():
            raise DataError(f"{self._paper.name}: input file {p} does not exist; create it first")
        self._inputs[str(p)] = sha256_file(p)
        return p

    # ------------------------------------------------------------------ outputs
    def _claim(self, claim_id: str) -> Claim:
        claim = self._claims.get(claim_id)
        if claim is None:
            raise ConfigError(f"{self._paper.name}: no claim {claim_id!r} is declared")
        return claim

    def record(self, claim_id: str, value: float) -> None:
        """Record one measured value (one seed) for a declared claim."""
        self._claim(claim_id)
        self._measurements.setdefault(claim_id, []).append(float(value))

    def record_timing(self, claim_id: str, measurement: RatioMeasurement | dict) -> None:
        """Record a timing claim's :class:`RatioMeasurement` (or its ``as_dict()``, e.g. from a
        stage): its interval and machine load decide the claim; the ratio is also its value.

        One measurement per claim and run; a claim not declared ``timing=True`` is refused.
        """
        claim = self._claim(claim_id)
        if getattr(claim, "timing", True) is False:
            raise ConfigError(
                f"{self._paper.name}: claim {claim_id!r} is not a timing claim; declare it with "
                "timing=True or record a plain value with ctx.record"
            )
        if claim_id in self._timings:
            raise ConfigError(
                f"{self._paper.name}: timing claim {claim_id!r} was already recorded in this run"
            )
        m = (
            measurement
            if isinstance(measurement, RatioMeasurement)
            else RatioMeasurement.from_dict(measurement)
        )
        self._timings[claim_id] = m.as_dict()
        self._measurements.setdefault(claim_id, []).append(float(m.ratio))

    def note(self, claim_id: str, text: str) -> None:
        """Attach a note (what was measured, caveats) to a claim's row."""
        self._claim(claim_id)
        self._notes[claim_id] = (self._notes.get(claim_id, "") + " " + text).strip()

    def figure(self, name: str, fig, data: Any = None) -> None:
        """Save a figure as ``<name>.png`` (and ``data`` as ``<name>.json``) in :attr:`out_dir`.

        ``fig``: a matplotlib figure, or the path of a PNG made elsewhere (copied, and recorded
        as an input).
        """
        _plain_name("figure", name)
        if isinstance(fig, (str, os.PathLike)):
            src = self.input(fig)
            write_bytes(self._out_dir / f"{name}.png", src.read_bytes())
            write_json(self._out_dir / f"{name}.json", data)
            png = f"{name}.png"
        else:
            png = save_figure(self._out_dir, name, fig, data).png
        if png not in self._figures:
            self._figures.append(png)

    def detail(self, key: str, value: Any) -> None:
        """Store a JSON-able table or value under ``details[key]`` of results.json (replaces an
        earlier value under the same key)."""
        if not isinstance(key, str) or not key:
            raise ConfigError(f"{self._paper.name}: a detail key must be a non-empty string")
        self._details[key] = value

    # ------------------------------------------------------------------ work
    def work(self, *parts: str) -> Path:
        """A folder under this run's work dir (checkpoints, resumable state)."""
        path = self._work_dir.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def stage(self, name: str, fn: Callable[[], Any], **key: Any) -> Any:
        """Run ``fn()`` once; its JSON-able result is stored and reused after a restart.

        The stored result is keyed by ``name`` and the JSON of ``key`` (the arguments that make
        the result: ``ctx.stage("train", fn, lr=0.1, seed=s)``); a call with other key values is
        another stage. A stored result from different code (another fingerprint) is recomputed.
        """
        _plain_name("stage", name)
        try:
            key_json = json.dumps(key, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"{self._paper.name}: stage {name!r} key must be JSON-able ({exc})"
            ) from exc
        fname = name if not key else f"{name}-{hashlib.sha256(key_json.encode()).hexdigest()[:12]}"
        path = self._work_dir / "stages" / f"{fname}.json"
        if path.exists():
            try:
                stored = json.loads(path.read_text())
                if stored.get("fingerprint") == self._fingerprint and stored.get("key", {}) == (
                    json.loads(key_json)
                ):
                    self.log(f"stage {name}: reusing the stored result")
                    return stored["value"]
            except (ValueError, KeyError, AttributeError):
                pass  # a torn file cannot exist (atomic writes); an edited one is recomputed
        value = fn()
        write_json(path, {"fingerprint": self._fingerprint, "key": key, "value": value})
        return value

    def tune(
        self,
        name: str,
        candidates: Sequence[Any],
        evaluate: Callable[..., float],
        objective: Any = "max",
        n_seeds: int = 2,
    ):
        """Choose a knob with ``dnnrepro.core.tuning.tune`` on the validation split, with tuning
        seeds ``TUNING_SEED_BASE + i`` (i < ``n_seeds``; disjoint from :attr:`seeds`); the
        TuningRecord goes into results.json. Returns the record (``.choice`` is the pick)."""
        from . import tuning

        _plain_name("tuning", name)
        if any(r.get("name") == name for r in self._tuning):
            raise ConfigError(f"{self._paper.name}: knob {name!r} was already tuned in this run")
        if not isinstance(n_seeds, int) or n_seeds < 1:
            raise ConfigError(f"{self._paper.name}: tune({name!r}) needs n_seeds >= 1")
        record = tuning.tune(
            name,
            list(candidates),
            evaluate,
            seeds=[tuning.TUNING_SEED_BASE + i for i in range(n_seeds)],
            reporting_seeds=list(self._seeds),
            split="val",
            objective=objective,
        )
        self._tuning.append(record.as_dict())
        return record

    def log(self, message: str) -> None:
        if not self._quiet:
            print(f"[{self._paper.name} {self._profile}] {message}", file=sys.stderr, flush=True)

    def _collected(self) -> dict[str, Any]:
        """What the run produced, for :func:`reproduce` (copies)."""
        return {
            "measurements": {k: list(v) for k, v in self._measurements.items()},
            "timings": dict(self._timings),
            "notes": dict(self._notes),
            "figures": list(self._figures),
            "datasets": sorted(self._datasets),
            "inputs": dict(self._inputs),
            "details": dict(self._details),
            "tuning": list(self._tuning),
        }


# --------------------------------------------------------------------------- code fingerprint


def code_fingerprint(*modules: str) -> str:
    """sha256 over the .py and .cu sources of the given top-level modules (whole folders)."""
    h = hashlib.sha256()
    for name in modules:
        module = importlib.import_module(name)
        root = Path(module.__file__).parent
        for path in sorted(root.rglob("*")):
            if path.suffix in (".py", ".cu") and "__pycache__" not in path.parts:
                h.update(str(path.relative_to(root)).encode())
                h.update(path.read_bytes())
    return h.hexdigest()


def _core_imports(path: Path, core_dir: Path, relative_base: str | None) -> set[str]:
    """Names of the core modules (``x`` for dnnrepro/core/x.py) a source file imports anywhere
    (also inside functions). ``relative_base``: the dotted package a relative import starts from
    (``dnnrepro.core`` for a core file, None for a package file, whose relative imports stay in
    the package)."""
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except SyntaxError:
        return set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if relative_base is None or node.level > 1:
                    continue
                base = relative_base + (f".{node.module}" if node.module else "")
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)
    found = set()
    for name in names:
        parts = name.split(".")
        if parts[:2] == ["dnnrepro", "core"] and len(parts) >= 3:
            if (core_dir / f"{parts[2]}.py").is_file():
                found.add(parts[2])
    return found


def fingerprint_files(package_dir: Path, core_dir: Path) -> list[Path]:
    """The files the fingerprint covers: every .py/.cu file of the package, the core's
    ``__init__.py`` and the core modules the package imports, directly or through other core
    modules (import statements read from the sources, so the answer does not depend on what else
    the process imported)."""
    package_dir, core_dir = Path(package_dir), Path(core_dir)
    own = sorted(
        p
        for p in package_dir.rglob("*")
        if p.suffix in (".py", ".cu") and "__pycache__" not in p.parts and p.is_file()
    )
    todo: set[str] = set()
    for p in own:
        if p.suffix == ".py":
            todo |= _core_imports(p, core_dir, None)
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo |= _core_imports(core_dir / f"{name}.py", core_dir, "dnnrepro.core") - seen
    core = [core_dir / "__init__.py"] if (core_dir / "__init__.py").is_file() else []
    core += [core_dir / f"{n}.py" for n in sorted(seen)]
    return own + [p for p in core if p.resolve() not in {q.resolve() for q in own}]


def source_fingerprint(package_dir: Path, core_dir: Path) -> str:
    """sha256 over :func:`fingerprint_files` (each file's name relative to its root, and bytes)."""
    package_dir, core_dir = Path(package_dir), Path(core_dir)
    h = hashlib.sha256()
    for p in fingerprint_files(package_dir, core_dir):
        root = package_dir if p.is_relative_to(package_dir) else core_dir
        tag = "pkg" if root is package_dir else "core"
        h.update(f"{tag}/{p.relative_to(root).as_posix()}\0".encode())
        h.update(p.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def _module_dir(module: str) -> Path:
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(f"cannot import {module!r} for the code fingerprint: {exc}") from exc
    if getattr(mod, "__file__", None) is None:
        raise ConfigError(f"{module!r} has no source folder; set Paper.source_module")
    return Path(mod.__file__).resolve().parent


def package_fingerprint(paper: Paper) -> str:
    """The code fingerprint of ``paper``: its package's files and the core modules it uses."""
    return source_fingerprint(_module_dir(paper.module), _module_dir("dnnrepro.core"))


def run_folder(paper: Paper, profile: str, work_root: str | os.PathLike = "runs") -> Path:
    """The work folder of ``paper``'s ``profile`` run under ``work_root``:
    ``<work_root>/<pkg>/<profile>/<first 16 hex of the code fingerprint>``.

    Deterministic (same code, same folder; no search by time), so a benchmark or a tool can reuse
    a finished run's stages and checkpoints. The folder may not exist yet.
    """
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    return Path(work_root) / paper.name / profile / package_fingerprint(paper)[:16]


def results_folder(paper: Paper, profile: str, out_root: str | os.PathLike) -> Path:
    """``<out_root>/<pkg>/<profile>/``, or ``<out_root>/_smoke/<pkg>/smoke/`` for smoke runs."""
    root = Path(out_root) / SMOKE_ROOT if profile == "smoke" else Path(out_root)
    return root / paper.name / profile


def _check_writable(folder: Path, what: str, flag: str) -> None:
    """ConfigError (one line) unless ``folder`` exists or can be created, and takes a file."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".write-check-", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(
            f"the {what} folder {folder} is not writable ({reason}); "
            f"pass {flag} a folder you can write to"
        ) from exc


def _source_paths(module: str) -> tuple[str, ...]:
    """Folders of the core's and the package's sources (for the dirty flag)."""
    paths = []
    for name in ("dnnrepro.core", module):
        try:
            folder = Path(importlib.import_module(name).__file__).resolve().parent
        except (ImportError, TypeError):
            continue
        paths.append(str(folder))
    return tuple(paths)


def _build(paper: Paper, profile: str, prov: dict, got: dict[str, Any]) -> dict:
    """results.build_results with the run's timings, tuning records and inputs."""
    return build_results(
        paper.name,
        paper.title,
        paper.claims,
        got["measurements"],
        got["notes"],
        profile,
        prov,
        got["figures"],
        got["details"],
        timings=got["timings"],
        tuning=got["tuning"],
        inputs=got["inputs"],
    )


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

    Results go to :func:`results_folder` (``<out_root>/<pkg>/<profile>/``; smoke runs to
    ``<out_root>/_smoke/<pkg>/smoke/`` so they never overwrite pinned results); resumable state
    to :func:`run_folder`, held under an inter-process lock for the whole run. Both folders are
    checked writable before any work.
    """
    import torch

    from .lock import RunLock

    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    n_seeds = paper.default_seeds.get(profile, 1) if seeds is None else seeds
    if not isinstance(n_seeds, int) or n_seeds < 1:
        raise ConfigError(f"--seeds must be an integer >= 1, not {seeds!r}")
    threads = _resolve_threads(threads)
    out_dir = results_folder(paper, profile, out_root)
    fingerprint = package_fingerprint(paper)
    work_dir = Path(work_root) / paper.name / profile / fingerprint[:16]  # == run_folder(...)
    _check_writable(out_dir, "results", "--out")
    _check_writable(work_dir, "work", "--work-dir")
    torch.set_num_threads(threads)
    ctx = RunContext(
        paper,
        profile,
        list(range(n_seeds)),
        out_dir,
        work_dir,
        data_dir=data_dir,
        threads=threads,
        quiet=quiet,
        fingerprint=fingerprint,
    )
    with RunLock(work_dir):
        start = time.perf_counter()
        paper.run(ctx)
        wall = time.perf_counter() - start
    got = ctx._collected()
    prov = provenance(
        profile,
        ctx.seeds,
        _data.sha256s(got["datasets"]),
        wall,
        _versions(paper),
        _source_paths(paper.module),
    )
    prov["code_fingerprint"] = fingerprint
    doc = _build(paper, profile, prov, got)
    write_results(out_dir, doc)
    if not quiet:
        print(claims_table(doc))
    return doc


def _resolve_threads(threads: int | None) -> int:
    if threads is not None:
        if not isinstance(threads, int) or threads < 1:
            raise ConfigError("--threads must be >= 1")
        return threads
    # OMP_NUM_THREADS, when set, is the user's word on threads (e.g. 1 on a loaded machine)
    env = os.environ.get("OMP_NUM_THREADS", "")
    return int(env) if env.isdigit() and int(env) >= 1 else min(2, os.cpu_count() or 1)


def _versions(paper: Paper) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for dist in ("dnnrepro-core", f"dnnrepro-{paper.name}"):
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            versions[dist] = "not installed"
    return versions


def run_bench(
    paper: Paper,
    out_dir: str | os.PathLike | None = None,
    threads: int | None = None,
    quick: bool = False,
    data_dir: str | os.PathLike | None = None,
    work_root: str | os.PathLike = "runs",
) -> Path:
    """Run ``paper.bench`` and write ``<out_dir>/bench.json``; returns the file's path.

    ``out_dir`` defaults to ``paper_results/<pkg>`` (``paper_results/_smoke/<pkg>`` for a quick
    run, so a quick run never replaces the pinned benchmark).
    """
    from .bench import threads as pinned_threads
    from .bench import write_bench

    if paper.bench is None:
        raise ConfigError(f"{paper.name} registers no benchmark (Paper(bench=...))")
    if out_dir is None:
        root = Path("paper_results")
        out_dir = (root / SMOKE_ROOT if quick else root) / paper.name
    out_dir = Path(out_dir)
    n = _resolve_threads(threads)
    _check_writable(out_dir, "bench", "--out")
    with pinned_threads(n) as in_effect:
        opts = BenchOptions(
            threads=in_effect,
            quick=quick,
            data_dir=None if data_dir is None else Path(data_dir),
            out_dir=out_dir,
            work_root=Path(work_root),
            paper=paper,
        )
        entries = paper.bench(opts)
    if not isinstance(entries, list):
        raise ConfigError(f"{paper.name}: bench() must return a list of entries")
    return write_bench(out_dir, paper.name, entries, profile="quick" if quick else "full")
