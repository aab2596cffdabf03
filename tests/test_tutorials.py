"""The tutorials run: each tutorials/NN-*.md (jupytext Markdown) is converted to a notebook and
executed on a fresh kernel. Every published number a tutorial quotes is checked by an
``assert`` in a cell, so a drifting number fails here. Nothing is written into the repository:
the kernel runs in a temporary folder.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "tutorials").glob("[0-9][0-9]-*.md"))
CELL_TIMEOUT = 60  # seconds per cell

HEADER = """---
jupyter:
  jupytext:
    formats: md
    text_representation:
      extension: .md
      format_name: markdown
"""


def test_the_tutorials_are_numbered_in_the_learners_order():
    assert [p.name[:2] for p in TUTORIALS] == ["01", "02", "03", "04", "05", "06", "07", "08"]


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.stem)
def test_tutorial_header_cells_and_exercises(path):
    text = path.read_text(encoding="utf-8")
    assert text.startswith(HEADER), "the jupytext header (format md) comes first"
    assert "  kernelspec:\n    display_name: Python 3\n    language: python\n    name: python3\n" in text
    fences = re.findall(r"^```(\w*)$", text, flags=re.M)
    assert fences and all(f in ("python", "") for f in fences)
    assert "## Exercises" in text and "def check(" in text


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.stem)
def test_tutorial_is_what_jupytext_writes_back(path):
    jupytext = pytest.importorskip("jupytext")
    text = path.read_text(encoding="utf-8")
    assert jupytext.writes(jupytext.reads(text, fmt="md"), fmt="md") == text


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.stem)
def test_tutorial_runs_on_a_fresh_kernel(path, tmp_path, monkeypatch):
    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    # the kernel imports this checkout's chainrule, whether or not it is installed
    src = str(ROOT / "src")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    nb = jupytext.read(path, fmt="md")
    assert nb.metadata["kernelspec"]["name"] == "python3"
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    errors = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    assert not any(tmp_path.iterdir()), "a tutorial wrote files"
