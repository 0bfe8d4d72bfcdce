"""Claims declared as data, verdicts by declared rules, results.json and the rendered READMEs.

A package states its paper's claims once (:class:`Claim`), each with the rule that decides it
(:class:`Rule`), before anything is measured. ``reproduce`` records measured values per claim (one
per seed); :func:`write_results` takes the mean over seeds, applies the rule, and writes
``paper_results/<pkg>/results.json`` (atomically, with provenance), ``paper_results/<pkg>/README.md``
(paper vs ours side by side) and the index ``paper_results/README.md``.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import statistics
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .io import write_json, write_text

CONFIDENCE = ("verified", "secondary", "unverified")
REPRODUCED, NOT_REPRODUCED, NOT_RUN = "reproduced", "not reproduced", "not run at this profile"


@dataclass(frozen=True)
class Rule:
    """How a measured value (the mean over seeds) decides a claim.

    kinds: ``at_least`` (value >= a), ``at_most`` (value <= a), ``between`` (a <= value <= b),
    ``within`` (|value - a| <= b, an absolute tolerance around a target).
    """

    kind: str
    a: float
    b: float | None = None

    def __post_init__(self):
        if self.kind not in ("at_least", "at_most", "between", "within"):
            raise ConfigError(f"unknown rule kind {self.kind!r}")
        if self.kind in ("between", "within") and self.b is None:
            raise ConfigError(f"rule {self.kind} needs two numbers")

    def decide(self, value: float) -> bool:
        """True when ``value`` satisfies the rule; NaN never does."""
        if value is None or not math.isfinite(value):
            return False
        if self.kind == "at_least":
            return value >= self.a
        if self.kind == "at_most":
            return value <= self.a
        if self.kind == "between":
            return self.a <= value <= self.b
        return abs(value - self.a) <= self.b

    def describe(self) -> str:
        """The rule in words, e.g. '>= 0.97'."""
        if self.kind == "at_least":
            return f">= {self.a:g}"
        if self.kind == "at_most":
            return f"<= {self.a:g}"
        if self.kind == "between":
            return f"in [{self.a:g}, {self.b:g}]"
        return f"within {self.b:g} of {self.a:g}"


def at_least(a: float) -> Rule:
    return Rule("at_least", a)


def at_most(a: float) -> Rule:
    return Rule("at_most", a)


def between(a: float, b: float) -> Rule:
    return Rule("between", a, b)


def within(target: float, tolerance: float) -> Rule:
    return Rule("within", target, tolerance)


@dataclass(frozen=True)
class Claim:
    """One claim of a paper, as data.

    ``paper_value`` is the paper's number as the paper states it (text, with its unit in ``unit``);
    ``metric`` says exactly what we measure and in which unit; ``rule`` decides on our mean.
    ``profiles`` lists the profiles at which the claim is tested (others report "not run at this
    profile"); ``scale_note`` says how our setting differs from the paper's.
    """

    id: str
    statement: str
    paper_value: str
    unit: str
    source: str
    confidence: str
    metric: str
    rule: Rule
    profiles: tuple[str, ...] = ("small", "paper")
    scale_note: str = ""

    def __post_init__(self):
        if self.confidence not in CONFIDENCE:
            raise ConfigError(f"claim {self.id}: confidence must be one of {CONFIDENCE}")


def verdict(claim: Claim, values: list[float] | None, profile: str) -> tuple[str, float | None]:
    """(verdict, mean) for a claim given its measured values at ``profile``."""
    if profile not in claim.profiles or not values:
        return NOT_RUN, None
    mean = statistics.fmean(values)
    return (REPRODUCED if claim.rule.decide(mean) else NOT_REPRODUCED), mean


# --------------------------------------------------------------------------- provenance


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(
    profile: str,
    seeds: list[int],
    data_sha256: dict[str, str],
    wall_seconds: float,
    packages: dict[str, str],
    source_paths: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Where a result came from: commit, dirty flag, time, versions, hardware, data, wall time.

    ``dirty`` says whether tracked files under ``source_paths`` (default: the whole repository)
    differ from the commit: the code that made the result, not unrelated work in progress.
    """
    import numpy
    import torch

    status = _git("status", "--porcelain", "--untracked-files=no", "--", *source_paths)
    gpu = None
    if torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(0)
    return {
        "commit": _git("rev-parse", "HEAD") or "unknown",
        "dirty": bool(status) if status is not None else None,
        "dirty_scope": list(source_paths) or ["."],
        "time_utc": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "profile": profile,
        "seeds": seeds,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": numpy.__version__,
            **packages,
        },
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        # 1-minute load average when the run ended: timings from a busy machine read differently
        "load_average": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "gpu": gpu,
        "data_sha256": data_sha256,
        "wall_seconds": round(wall_seconds, 1),
    }


# --------------------------------------------------------------------------- writing


def _fmt(value: float | str | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):  # a non-finite number as stored in JSON ("nan", "inf")
        return value
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        return f"{value:.4g}"
    return f"{value:.3e}"


def build_results(
    package: str,
    title: str,
    claims: list[Claim],
    measurements: dict[str, list[float]],
    notes: dict[str, str],
    profile: str,
    prov: dict[str, Any],
    figures: list[str],
    details: dict[str, Any],
) -> dict:
    """The results.json document (a plain dict)."""
    unknown = set(measurements) - {c.id for c in claims}
    if unknown:
        raise ConfigError(f"{package}: measurements for undeclared claims {sorted(unknown)}")
    rows = []
    for claim in claims:
        values = measurements.get(claim.id)
        v, mean = verdict(claim, values, profile)
        row = asdict(claim)
        row["rule"] = {
            "kind": claim.rule.kind,
            "a": claim.rule.a,
            "b": claim.rule.b,
            "text": claim.rule.describe(),
        }
        row.update(
            values=values or [],
            mean=mean,
            spread=(statistics.stdev(values) if values and len(values) > 1 else None),
            verdict=v,
            note=notes.get(claim.id, ""),
        )
        row["profiles"] = list(claim.profiles)
        rows.append(row)
    return {
        "package": package,
        "title": title,
        "claims": rows,
        "provenance": prov,
        "figures": figures,
        "details": details,
    }


def render_package_readme(doc: dict) -> str:
    """paper_results/<pkg>/README.md: the claims table, paper vs ours, then the figures."""
    prov = doc["provenance"]
    counted = [r for r in doc["claims"] if r["verdict"] != NOT_RUN]
    ok = sum(r["verdict"] == REPRODUCED for r in counted)
    lines = [
        f"# {doc['package']}: {doc['title']}",
        "",
        f"Profile `{prov['profile']}`, seeds {prov['seeds']}, commit `{prov['commit'][:12]}`"
        f"{' (dirty)' if prov['dirty'] else ''}, {prov['time_utc']}, {prov['wall_seconds']} s "
        f"on {prov['cpu']} ({prov['threads']} threads){', GPU ' + prov['gpu'] if prov['gpu'] else ''}.",
        f"Reproduced {ok} of {len(counted)} claims tested at this profile "
        f"({len(doc['claims'])} declared). Generated from results.json; do not edit by hand.",
        "",
        "| id | claim | source | confidence | paper | ours (mean over seeds) | rule | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in doc["claims"]:
        ours = _fmt(r["mean"])
        if r["spread"] is not None:
            ours += f" ± {_fmt(r['spread'])}"
        if r["mean"] is not None:
            ours += f" ({r['metric']})"
        lines.append(
            f"| {r['id']} | {r['statement']} | {r['source']} | {r['confidence']} | "
            f"{r['paper_value']} {r['unit']} | {ours} | {r['rule']['text']} | **{r['verdict']}** |"
        )
    notes = [
        (r["id"], r["note"], r["scale_note"]) for r in doc["claims"] if r["note"] or r["scale_note"]
    ]
    if notes:
        lines += ["", "## Notes", ""]
        for cid, note, scale in notes:
            text = " ".join(t for t in (scale, note) if t)
            lines.append(f"- **{cid}**: {text}")
    if doc["figures"]:
        lines += ["", "## Figures", ""]
        lines += [f"![{f}]({f})" for f in doc["figures"]]
    return "\n".join(lines) + "\n"


def render_index(root: Path) -> str:
    """paper_results/README.md: one row per package with results."""
    lines = [
        "# Results",
        "",
        "Pinned, citable results of `nox -s reproduce`; each row links the package's claims table.",
        "",
        "| package | reproduced / tested | declared | profile | date (UTC) | commit |",
        "|---|---|---|---|---|---|",
    ]
    for path in sorted(root.glob("*/results.json")):
        try:
            doc = json.loads(path.read_text())
        except ValueError:
            continue
        counted = [r for r in doc["claims"] if r["verdict"] != NOT_RUN]
        ok = sum(r["verdict"] == REPRODUCED for r in counted)
        prov = doc["provenance"]
        lines.append(
            f"| [{doc['package']}]({path.parent.name}/README.md) | {ok} / {len(counted)} | "
            f"{len(doc['claims'])} | {prov['profile']} | {prov['time_utc']} | `{prov['commit'][:12]}` |"
        )
    return "\n".join(lines) + "\n"


def write_results(out_dir: Path, doc: dict) -> Path:
    """Write results.json and README.md for one package and re-render the index one level up."""
    out_dir = Path(out_dir)
    write_json(out_dir / "results.json", doc)
    write_text(out_dir / "README.md", render_package_readme(doc))
    write_text(out_dir.parent / "README.md", render_index(out_dir.parent))
    return out_dir / "results.json"


def claims_table(doc: dict) -> str:
    """A plain-text table for the terminal: id, paper, ours, rule, verdict."""
    rows = [("claim", "paper", "ours", "rule", "verdict")]
    for r in doc["claims"]:
        rows.append(
            (
                f"{doc['package']}:{r['id']}",
                f"{r['paper_value']} {r['unit']}".strip(),
                _fmt(r["mean"]),
                r["rule"]["text"],
                r["verdict"],
            )
        )
    widths = [min(max(len(row[i]) for row in rows), 40) for i in range(5)]
    return "\n".join(
        "  ".join(cell[:40].ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


@dataclass
class Figure:
    """A saved figure: PNG plus the JSON it was drawn from (file names relative to out_dir)."""

    png: str
    data: str
    extra: list[str] = field(default_factory=list)


def save_figure(out_dir: Path, name: str, fig, data: Any) -> Figure:
    """Save a matplotlib figure as ``<name>.png`` and its data as ``<name>.json`` in ``out_dir``."""
    import io

    from .io import write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    write_bytes(Path(out_dir) / f"{name}.png", buf.getvalue())
    write_json(Path(out_dir) / f"{name}.json", data)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return Figure(f"{name}.png", f"{name}.json")
