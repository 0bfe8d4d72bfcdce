"""The ``dnnrepro`` command.

    dnnrepro list
    dnnrepro <pkg> reproduce [--profile smoke|small|paper] [--seeds N] [--out DIR] [--data-dir DIR]
    dnnrepro <pkg> bench [--out DIR] [--threads N] [--quick]   (packages that register one)
    dnnrepro <pkg> <command ...>          (commands a package adds)
    dnnrepro data materialize|verify|baselines [--data-dir DIR]

Bad input (unknown names, bad values, missing or corrupted data) prints one line saying what is
wrong and what to do, and exits with code 2; no traceback.
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import entry_points, version

from .errors import DnnreproError, describe_oserror

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (and exit code 2)."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def discover() -> dict[str, object]:
    """The installed paper packages: entry-point name -> entry point (not loaded yet)."""
    return {ep.name: ep for ep in entry_points(group="dnnrepro.papers")}


def _load_paper(ep):
    try:
        return ep.load()
    except Exception as exc:  # a broken install must not hide the other packages
        raise DnnreproError(f"paper package {ep.name!r} failed to load: {exc}") from exc


def _cmd_list(_args) -> int:
    papers = discover()
    if not papers:
        print("no paper packages installed (pip install -e packages/<name>)")
        return 0
    broken = 0
    for name in sorted(papers):
        try:
            paper = _load_paper(papers[name])
        except DnnreproError as exc:  # report it and go on: one broken package hides no other
            print(f"{name:20s} BROKEN   {exc}")
            broken += 1
            continue
        print(f"{name:20s} {paper.version:8s} {paper.title} (arXiv:{paper.arxiv})")
    return EXIT_USAGE if broken else 0


def _cmd_data(args) -> int:
    from pathlib import Path

    from . import baselines, data

    if (
        args.data_dir is not None
        and args.action != "materialize"
        and not Path(args.data_dir).expanduser().is_dir()
    ):
        raise DnnreproError(
            f"--data-dir {args.data_dir} does not exist; check the path (only `dnnrepro data "
            "materialize --data-dir DIR` creates a data folder)"
        )
    if args.action == "materialize":
        for key, path in data.materialize(args.names or None, args.data_dir).items():
            print(f"{key:18s} {path}")
    elif args.action == "verify":
        for fname, status in data.verify(args.data_dir).items():
            print(f"{fname:24s} {status}")
    else:
        names = args.names or list(baselines.BASELINES)
        for name in names:
            have = baselines.checkpoint.exists(baselines.path(name, args.data_dir))
            if not args.names and not baselines.available(name, args.data_dir):
                dataset = baselines.BASELINES[name].dataset
                state = f"built ({baselines.path(name, args.data_dir)})" if have else "skipped"
                print(f"{name:18s} {state}: needs the {dataset} files (see --data-dir)")
                continue
            metrics = (
                baselines.train(name, args.data_dir, fresh=args.retrain)
                if args.retrain or not have
                else None
            )
            acc = baselines.accuracy(name, args.data_dir)
            print(
                f"{name:18s} test accuracy {acc:.4f}"
                + (f" ({metrics['train_seconds']:.1f} s)" if metrics else "")
            )
    return 0


def _add_reproduce(sub, paper) -> None:
    p = sub.add_parser(
        "reproduce", help=f"reproduce {paper.name}'s claims and write paper_results/"
    )
    p.add_argument("--profile", default="small", help="smoke | small (default) | paper")
    p.add_argument("--seeds", type=int, default=None, help="number of seeds (0..N-1)")
    p.add_argument("--out", default="paper_results", help="results root (default paper_results)")
    p.add_argument(
        "--data-dir", default=None, help="data folder (default $DNNREPRO_DATA or the user cache)"
    )
    p.add_argument("--work-dir", default="runs", help="resumable run state (default runs/)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default 2)")

    def handler(args) -> int:
        from .paper import reproduce

        reproduce(
            paper, args.profile, args.seeds, args.out, args.data_dir, args.work_dir, args.threads
        )
        return 0

    p.set_defaults(func=handler)


def _add_bench(sub, paper) -> None:
    p = sub.add_parser("bench", help=f"time {paper.name}'s speed claims -> paper_results/<pkg>/")
    p.add_argument(
        "--out",
        default=None,
        help="folder for bench.json (default paper_results/<pkg>; --quick: paper_results/_smoke/<pkg>)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch threads (default 2)")
    p.add_argument("--quick", action="store_true", help="a short run (fewer repeats, small shapes)")
    p.add_argument("--data-dir", default=None, help="data folder (default $DNNREPRO_DATA)")
    p.add_argument("--work-dir", default="runs", help="run folders to reuse (default runs/)")

    def handler(args) -> int:
        from .paper import run_bench

        print(run_bench(paper, args.out, args.threads, args.quick, args.data_dir, args.work_dir))
        return 0

    p.set_defaults(func=handler)


def build_parser(papers: dict[str, object] | None = None, load: str | None = None) -> _Parser:
    """The full parser; only the paper named ``load`` is imported (startup stays fast)."""
    parser = _Parser(prog="dnnrepro", description="Reference implementations of seven DNN papers.")
    parser.add_argument(
        "--version",
        action="version",
        version=f"dnnrepro-core {version('dnnrepro-core')}"
        if _installed()
        else "dnnrepro-core (not installed)",
    )
    sub = parser.add_subparsers(dest="command", metavar="command", parser_class=_Parser)
    sub.add_parser("list", help="list installed paper packages").set_defaults(func=_cmd_list)
    d = sub.add_parser("data", help="materialize or verify datasets, train baselines")
    d.add_argument("action", choices=["materialize", "verify", "baselines"])
    d.add_argument(
        "--data-dir", default=None, help="data folder (default $DNNREPRO_DATA or the user cache)"
    )
    d.add_argument("--names", nargs="*", default=None, help="datasets or baselines (default all)")
    d.add_argument("--retrain", action="store_true", help="baselines: train again even if saved")
    d.set_defaults(func=_cmd_data)
    for name, ep in sorted((papers or {}).items()):
        p = sub.add_parser(name, help=f"the {name} paper package")
        psub = p.add_subparsers(dest="subcommand", metavar="subcommand", parser_class=_Parser)
        if name == load:
            paper = _load_paper(ep)
            _add_reproduce(psub, paper)
            if paper.bench is not None:
                _add_bench(psub, paper)
            if paper.add_commands is not None:
                paper.add_commands(psub)
    return parser


def _installed() -> bool:
    try:
        version("dnnrepro-core")
        return True
    except Exception:
        return False


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        papers = discover()
        load = argv[0] if argv and argv[0] in papers else None
        parser = build_parser(papers, load)
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return EXIT_USAGE if argv else 0
        return int(args.func(args) or 0)
    except DnnreproError as exc:
        print(f"dnnrepro: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # a filesystem fault: one line saying what, where and what to do
        print(f"dnnrepro: error: {describe_oserror(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("dnnrepro: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
