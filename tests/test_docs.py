"""The documentation builds, and every Python example in it and in the README runs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _examples():
    for md in [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]:
        for i, match in enumerate(FENCE.finditer(md.read_text())):
            yield pytest.param(match.group(1), id=f"{md.relative_to(ROOT)}:{i}")


def test_only_examples_that_need_a_batch_system_are_left_out():
    """Python examples are fenced ```python and run below; the one that needs a SLURM
    cluster (dask-jobqueue) is fenced ```py instead, and no other is."""
    left_out = re.compile(r"^```py\n(.*?)^```", re.S | re.M)
    for md in [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]:
        for match in left_out.finditer(md.read_text()):
            assert "dask_jobqueue" in match.group(1), f"{md.name}: a ```py example that could run"


@pytest.mark.parametrize("code", list(_examples()))
def test_doc_example_runs(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "<doc example>", "exec"), {"__name__": "__doc_example__"})


def test_mkdocs_builds_strict(tmp_path):
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent))
    assert mkdocs, "mkdocs is part of the [testing] extra"
    out = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "site" / "index.html").exists()
