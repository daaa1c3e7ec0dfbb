"""Bounded coverage-guided fuzzing of every egress parser (``scripts/fuzz --help``).

Each target runs in its own process under atheris (libFuzzer) for ``--seconds``; the inputs it
finds interesting grow a corpus under ``--work`` (kept between runs, so a long run builds on the
last), seeded from ``fuzz/corpus/<target>/``. A finding (an exception outside the documented
errors, an input over the CPU bound, a hang, a memory blow-up) is saved under
``<work>/crashes/<target>/`` and makes the exit status 1. Without atheris (it has wheels for
Linux x86-64 only) the seed and grown corpora are replayed instead, and the output says that no
coverage-guided run happened.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import targets  # noqa: E402 - found through the path set just above

SEEDS = HERE / "corpus"


def _seed_files(name: str) -> list[Path]:
    folder = SEEDS / name
    return sorted(folder.iterdir()) if folder.is_dir() else []


def _all_seeds(work: Path) -> Path:
    """The ``all`` target's seeds: every target's, behind its selector byte."""
    folder = work / "seeds-all"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for name in targets.TARGETS:
        for path in _seed_files(name):
            (folder / f"{name}-{path.name}").write_bytes(targets.selector(name) +
                                                         path.read_bytes())
    return folder


def replay(names: list[str], work: Path) -> int:
    """Run every corpus input through its target in this process (no atheris)."""
    print(f"{'target':<22} {'inputs':>7} {'max ms':>8}  result")
    failed = 0
    for name in names:
        files = [*_seed_files(name), *sorted((work / "corpus" / name).glob("*"))]
        worst, result = 0.0, "ok"
        for path in files:
            start = time.perf_counter()
            try:
                targets.run_one(name, path.read_bytes())
            except BaseException as exc:  # the finding: report it, keep replaying
                result, failed = f"FAIL {path}: {type(exc).__name__}: {exc}", failed + 1
            worst = max(worst, (time.perf_counter() - start) * 1000)
        print(f"{name:<22} {len(files):>7} {worst:>8.2f}  {result}")
    return 1 if failed else 0


def fuzz(name: str, seconds: int, work: Path, slow_ms: float) -> tuple[bool, dict[str, object]]:
    corpus = work / "corpus" / name
    crashes = work / "crashes" / name
    logs = work / "logs"
    for folder in (corpus, crashes, logs):
        folder.mkdir(parents=True, exist_ok=True)
    seeds = _all_seeds(work) if name == "all" else SEEDS / name
    stats = work / "logs" / f"{name}.json"
    stats.unlink(missing_ok=True)
    env = {**os.environ, "EGRESS_FUZZ_STATS": str(stats), "EGRESS_FUZZ_SLOW_MS": str(slow_ms)}
    command = [sys.executable, str(HERE / "run_target.py"), name,
               f"-max_total_time={seconds}", "-timeout=10", "-rss_limit_mb=2048",
               "-max_len=4096", f"-artifact_prefix={crashes}/", "-print_final_stats=1",
               str(corpus), *([str(seeds)] if seeds.is_dir() else [])]
    log = logs / f"{name}.log"
    with log.open("wb") as out:
        try:
            # libFuzzer stops itself after max_total_time; the margin covers start-up on a
            # loaded machine, and a stuck process is killed rather than waited on forever.
            code = subprocess.run(  # noqa: S603 - this interpreter, our own script
                command, stdout=out, stderr=subprocess.STDOUT, env=env,
                timeout=seconds + 180, check=False).returncode
        except subprocess.TimeoutExpired:
            code = -9
    data = json.loads(stats.read_text()) if stats.exists() else {"targets": {}}
    if code != 0:
        tail = log.read_text(errors="replace").splitlines()[-25:]
        print(f"\n{name}: FINDING (exit {code}); input saved under {crashes}/, log {log}:",
              *tail, sep="\n  ")
    return code == 0, data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/fuzz", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="*", metavar="TARGET",
                        help=f"default: each of them; 'all' fuzzes every parser in one "
                             f"process. Targets: {', '.join(targets.TARGETS)}")
    parser.add_argument("--seconds", type=int, default=60, help="per target (default 60)")
    parser.add_argument("--work", type=Path, default=HERE.parent / ".fuzz",
                        help="grown corpus, crashes and logs (default .fuzz/)")
    parser.add_argument("--slow-ms", type=float, default=250.0,
                        help="CPU per input that counts as a finding, under atheris's "
                             "instrumentation (default 250; the contract is 50 uninstrumented)")
    parser.add_argument("--replay", action="store_true",
                        help="only replay the corpora through the targets (no atheris)")
    args = parser.parse_args(argv)
    names = args.targets or list(targets.TARGETS)
    unknown = [n for n in names if n != "all" and n not in targets.TARGETS]
    if unknown:
        parser.error(f"unknown target(s): {', '.join(unknown)}")
    if args.replay or importlib.util.find_spec("atheris") is None:
        if not args.replay:
            print("scripts/fuzz: atheris is not installed (its wheels are for Linux x86-64 "
                  "only): NO coverage-guided run; replaying the corpora instead.")
        return replay([n for n in names if n != "all"] if "all" not in names
                      else list(targets.TARGETS), args.work)
    ok, rows = True, []
    for name in names:
        passed, data = fuzz(name, args.seconds, args.work, args.slow_ms)
        ok = ok and passed
        seconds = float(str(data.get("seconds", args.seconds)))
        found = data.get("targets")
        assert isinstance(found, dict)
        for parser_name, row in sorted(found.items()):
            rows.append((parser_name, row, seconds, passed))
    print(f"\n{'parser':<22} {'inputs':>9} {'inputs/s':>9} {'max ms':>8} {'max CPU':>8} "
          f"{'>50ms':>6}  result")
    for parser_name, row, seconds, passed in rows:
        print(f"{parser_name:<22} {row['inputs']:>9} {row['inputs'] / max(seconds, 1e-9):>9.0f} "
              f"{row['max_wall_ms']:>8.2f} {row['max_cpu_ms']:>8.2f} {row['over_50ms_cpu']:>6}  "
              f"{'ok' if passed else 'FINDING'}")
    (args.work / "summary.json").write_text(json.dumps(
        {"parsers": {p: {**r, "seconds": s, "ok": k} for p, r, s, k in rows}}, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
