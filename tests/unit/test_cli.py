"""The command line: version, ``python -m egress``, and help that reads as plain text."""

from __future__ import annotations

import argparse
import subprocess
import sys
from importlib.metadata import version

import pytest

from egress.cli import build_parser, main


def _parsers() -> dict[str, argparse.ArgumentParser]:
    top = build_parser()
    found = {"egress": top}
    for action in top._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.update({f"egress {name}": parser for name, parser in action.choices.items()})
    return found


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"egress {version('egress')}"


def test_python_dash_m_runs_the_same_command_line() -> None:
    done = subprocess.run([sys.executable, "-m", "egress", "--version"], capture_output=True,
                          text=True, timeout=60, check=True)
    assert done.stdout.strip() == f"egress {version('egress')}"


@pytest.mark.parametrize("command", sorted(_parsers()))
def test_help_is_plain_text_with_one_example(command: str) -> None:
    text = _parsers()[command].format_help()
    assert "``" not in text and ":class:" not in text and ":func:" not in text
    assert text.count("example:") == 1
    example = text.split("example:\n", 1)[1].splitlines()[0].strip()
    assert example.startswith(command + " ")

