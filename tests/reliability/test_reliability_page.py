"""docs/reliability.md cannot go stale silently: it must list every scenario marked in
tests/reliability with its current fault and expected outcome, and nothing else.

The page is generated (``uv run --frozen scripts/reliability-report``) and committed, not
rewritten by the test run. This check ignores what changes from run to run (date, commit,
order of runs), so a page regenerated after a merge passes it as soon as it lists the merged
scenarios.
"""

from __future__ import annotations

import importlib
import re
import sys
from importlib.machinery import SourceFileLoader
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
HERE = Path(__file__).resolve().parent
FIX = "regenerate it: uv run --frozen scripts/reliability-report, then commit docs/reliability.md"


def _report() -> ModuleType:
    loader = SourceFileLoader("reliability_report", str(ROOT / "scripts" / "reliability-report"))
    module = ModuleType(loader.name)
    module.__file__ = loader.path
    sys.modules[loader.name] = module  # its dataclasses look their module up
    loader.exec_module(module)
    return module


def _marked(report: ModuleType) -> dict[str, dict[str, Any]]:
    """scenario id -> the kwargs of its reliability mark, from the test modules themselves."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(HERE.glob("test_*.py")):
        module = importlib.import_module(path.stem)  # this folder is on sys.path (rootdir)
        for name, function in vars(module).items():
            if name.startswith("test_") and callable(function):
                found.update(report.marked_scenarios(path.name, name, function))
    return found


def test_the_page_lists_every_marked_scenario() -> None:
    report = _report()
    page = (ROOT / report.PAGE).read_text(encoding="utf-8")
    marked = _marked(report)
    assert marked, "no scenario carries @pytest.mark.reliability"
    listed = set(re.findall(r"^\| `([^`]+\.py::[^`]+)` \|", page, flags=re.MULTILINE))
    missing = sorted(set(marked) - listed)
    gone = sorted(listed - set(marked))
    assert not missing, f"docs/reliability.md lacks {missing}: {FIX}"
    assert not gone, f"docs/reliability.md lists removed scenarios {gone}: {FIX}"
    changed = sorted(s for s, mark in marked.items() if report.row_prefix(s, mark) not in page)
    assert not changed, f"the fault or expected text of {changed} changed: {FIX}"
    failing = re.findall(r"^\| `([^`]+)` .*\*\*(?:FAIL|not run)", page, flags=re.MULTILINE)
    assert not failing, f"the committed page records failures {failing}: fix them, then {FIX}"
