"""The coverage-guided fuzzing of fuzz/ (``scripts/fuzz``), briefly: the seed corpus replays
clean, a short atheris run over every parser finds nothing, and a planted bug does fail a run
(so a clean run means something). ``scripts/fuzz --seconds N`` is the long run."""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
from _fuzz import TALLY, attempt

ROOT = Path(__file__).resolve().parents[2]
FUZZ = ROOT / "fuzz"
sys.path.insert(0, str(FUZZ))
import targets  # noqa: E402 - fuzz/ is not a package: found through the path set above

# Seconds of the short run: every parser still gets hundreds of inputs (the first byte picks it).
SHORT_RUN = int(os.environ.get("EGRESS_ATHERIS_SECONDS", "5"))
# Installed by `uv sync` on Linux x86-64, where a missing atheris fails the test (a broken
# install step); elsewhere there is no wheel and scripts/fuzz only replays the corpus.
needs_atheris = pytest.mark.skipif(
    importlib.util.find_spec("atheris") is None
    and (sys.platform, platform.machine()) != ("linux", "x86_64"),
    reason="atheris has wheels for Linux x86-64 only")


@pytest.mark.parametrize("name", sorted(targets.TARGETS))
def test_seed_corpus_replays_clean(name: str) -> None:
    seeds = sorted((FUZZ / "corpus" / name).iterdir())
    assert seeds, f"fuzz/corpus/{name}/ needs a few seed inputs"
    allowed = (targets.EgressError, *targets.EXTRA_ALLOWED[name])
    for seed in seeds:
        attempt(f"atheris seed corpus: {name}", lambda s=seed: targets.TARGETS[name](
            s.read_bytes()), allowed)


def _fuzz(*args: str, work: Path, selftest: bool = False) -> subprocess.Popen[bytes]:
    env = {**os.environ, **({"EGRESS_FUZZ_SELFTEST": "1"} if selftest else {})}
    return subprocess.Popen([sys.executable, str(FUZZ / "fuzz.py"), *args, "--work", str(work)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)


@needs_atheris
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_short_coverage_guided_run_finds_nothing_and_a_planted_bug_is_found(
        tmp_path: Path) -> None:
    clean, planted = tmp_path / "clean", tmp_path / "planted"
    (planted / "corpus" / "selftest").mkdir(parents=True)
    (planted / "corpus" / "selftest" / "planted").write_bytes(b"boom!")
    # Both at once: each pays atheris's start-up, and a 2-core machine runs them side by side.
    runs = [_fuzz("all", "--seconds", str(SHORT_RUN), work=clean),
            _fuzz("selftest", "--seconds", "2", work=planted, selftest=True)]
    (out_clean, _), (out_planted, _) = (run.communicate(timeout=240) for run in runs)
    assert runs[0].returncode == 0, out_clean.decode(errors="replace")[-3000:]
    summary = json.loads((clean / "summary.json").read_text())["parsers"]
    assert set(summary) == set(targets.TARGETS), "a parser got no input"
    for name, row in summary.items():
        assert row["inputs"] >= 20, f"{name}: only {row['inputs']} inputs"
        tally = TALLY[f"atheris {SHORT_RUN}s: {name}"]
        tally[0] += row["inputs"]
        tally[1] = max(tally[1], row["max_wall_ms"])

    assert runs[1].returncode == 1, out_planted.decode(errors="replace")[-3000:]
    assert b"FINDING" in out_planted and b"KeyError" in out_planted
    assert list((planted / "crashes" / "selftest").iterdir()), "the input was not saved"
