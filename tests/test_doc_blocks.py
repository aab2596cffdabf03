"""Every code block in README.md and docs/*.md runs as written.

The fenced blocks of each page are read in order:

- ```python blocks are Python; ```sh and ```bash blocks are shell scripts (run by bash, stopping
  at the first failing command); in a ```console block the lines that start with ``$ `` are the
  commands and the rest is their output;
- ```text blocks and blocks with no language are output, never run; any other language is an error
  here, so that a new kind of block is a decision, not an accident.

README.md promises that each of its blocks runs on its own, pasted alone, from the root of a
checkout: every README block runs alone, in a fresh interpreter and a fresh folder that holds a
copy of ``examples/data``. The blocks of a page under docs/ run in order, as a reader follows the
page: one fresh interpreter per page (the Python blocks share one namespace) and one temporary
folder, where the shell blocks run too, with the interpreter's ``bin`` first on PATH so that
``chainrule`` is found.

A block that must not run carries a marker on the line before its fence, with its reason::

    <!-- skip-block: installs packages -->

and a block that needs an optional extra names the modules it needs::

    <!-- requires: sklearn matplotlib -->

It is skipped, with that reason, only when one of them is not installed (on a page under docs/,
the blocks before it still run). ``python tests/test_doc_blocks.py PAGE.md`` runs one page and
shows its output.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import traceback
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
SLOW_PAGES: set[str] = set()           # pages over the budget of the default suite (none today)
TIMEOUT_S = 300

RUN_LANGS = {"python": "python", "sh": "shell", "bash": "shell", "console": "console"}
OUTPUT_LANGS = {"", "text"}
FENCE = re.compile(r"^(```+)\s*([\w+-]*)\s*$")
MARKER = re.compile(r"^<!--\s*(skip-block|requires):\s*(.*?)\s*-->\s*$")


@dataclass
class Block:
    page: str           # path relative to the checkout, e.g. "docs/recurrent.md"
    line: int           # line of the opening fence (1-based)
    kind: str           # "python", "shell" or "console"
    code: str
    skip: str | None = None
    requires: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"

    def missing(self) -> list[str]:
        return [m for m in self.requires if importlib.util.find_spec(m) is None]


def console_commands(code: str) -> str:
    """The commands of a console block: lines after ``$ `` and their ``\\`` continuations."""
    commands, continued = [], False
    for line in code.splitlines():
        if continued:
            commands.append(line)
        elif line.startswith("$ "):
            commands.append(line[2:])
        else:
            continue
        continued = line.rstrip().endswith("\\")
    return "\n".join(commands) + "\n"


def extract(path: Path) -> list[Block]:
    """The runnable blocks of a Markdown page, in order, with their markers."""
    page = path.relative_to(ROOT).as_posix()
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        ticks, lang = opening.group(1), opening.group(2).lower()
        end = i + 1
        while end < len(lines) and lines[end].strip() != ticks:
            end += 1
        if end == len(lines):
            raise AssertionError(f"{page}:{i + 1}: the code block opened here is never closed")
        code = "\n".join(lines[i + 1:end]) + "\n"
        if lang in RUN_LANGS:
            block = Block(page, i + 1, RUN_LANGS[lang], code)
            k = i - 1
            while k >= 0 and (marker := MARKER.match(lines[k].strip())):
                if marker.group(1) == "skip-block":
                    if not marker.group(2):
                        raise AssertionError(f"{page}:{k + 1}: skip-block needs a reason")
                    block.skip = marker.group(2)
                else:
                    block.requires += marker.group(2).split()
                k -= 1
            if block.kind == "console":
                block.code = console_commands(code)
            blocks.append(block)
        elif lang not in OUTPUT_LANGS:
            raise AssertionError(f"{page}:{i + 1}: code block language {lang!r} is neither run "
                                 f"({', '.join(RUN_LANGS)}) nor output (text or none)")
        i = end + 1
    return blocks


def environment() -> dict[str, str]:
    """The blocks' environment: this interpreter's bin first on PATH, this checkout's chainrule."""
    import chainrule

    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    src = str(Path(chainrule.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    env["MPLBACKEND"] = "Agg"
    # one BLAS thread: faster on a shared machine, and the blocks' printed numbers do not move
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def run_blocks(blocks: list[Block], folder: Path) -> subprocess.CompletedProcess:
    """Run ``blocks`` in order in a fresh interpreter (this file as a script), inside ``folder``."""
    spec = folder / ".doc_blocks.json"
    spec.write_text(json.dumps([b.__dict__ for b in blocks]), encoding="utf-8")
    return subprocess.run([sys.executable, str(Path(__file__).resolve()), "--run", str(spec)], cwd=folder,
                          env=environment(), capture_output=True, text=True, timeout=TIMEOUT_S)


def check(blocks: list[Block], folder: Path) -> None:
    """Run the blocks that may run; skip (after running those before it) at the first that may not."""
    import pytest

    runnable, reason = [], None
    for block in blocks:
        if block.skip:
            continue
        if missing := block.missing():
            reason = f"{block.where} needs {', '.join(missing)}, not installed (a chainrule extra)"
            break
        runnable.append(block)
    if runnable:
        result = run_blocks(runnable, folder)
        if result.returncode != 0:
            output = (result.stdout + result.stderr)[-6000:]
            pytest.fail(f"a block failed (exit status {result.returncode}):\n{output}", pytrace=False)
    if reason:
        pytest.skip(reason)


def cases():
    import pytest

    for path in PAGES:
        page = path.relative_to(ROOT).as_posix()
        marks = [pytest.mark.slow] if page in SLOW_PAGES else []
        if path == README:
            for block in extract(path):
                yield pytest.param([block], id=f"{page}:{block.line}", marks=marks)
        else:
            yield pytest.param(extract(path), id=page, marks=marks)


def _fresh_folder(tmp_path: Path, blocks: list[Block]) -> Path:
    if blocks and blocks[0].page == "README.md":       # README blocks run from a checkout's root
        shutil.copytree(ROOT / "examples" / "data", tmp_path / "examples" / "data")
    return tmp_path


# -- the tests -------------------------------------------------------------------------------

if __name__ != "__main__":      # run as a script, this file is the runner below
    import pytest

    @pytest.mark.parametrize("blocks", list(cases()))
    def test_blocks_run(blocks, tmp_path):
        check(blocks, _fresh_folder(tmp_path, blocks))

    def test_readme_states_its_rule():
        """The README says that each block runs alone; the test above holds it to that."""
        head = README.read_text(encoding="utf-8")[:3000]
        assert "runs on its own" in head

    def test_extract_reads_fences_and_markers(tmp_path, monkeypatch):
        page = tmp_path / "page.md"
        page.write_text(textwrap.dedent("""\
            ```python
            x = 1
            ```
            ```text
            output
            ```
            <!-- skip-block: installs packages -->
            ```sh
            pip install something
            ```
            <!-- requires: sklearn -->
            ```console
            $ echo one \\
              two
            one two
            $ ls
            ```
            """), encoding="utf-8")
        monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
        blocks = extract(page)
        assert [(b.line, b.kind, b.skip, b.requires) for b in blocks] == [
            (1, "python", None, []), (8, "shell", "installs packages", []), (12, "console", None, ["sklearn"])]
        assert blocks[0].code == "x = 1\n"
        assert blocks[2].code == "echo one \\\n  two\nls\n"

    def test_unknown_language_is_refused(tmp_path, monkeypatch):
        page = tmp_path / "page.md"
        page.write_text("```ruby\nputs 1\n```\n", encoding="utf-8")
        monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
        with pytest.raises(AssertionError, match="ruby"):
            extract(page)

    def test_skip_marker_and_missing_extra(tmp_path):
        ran = Block("docs/x.md", 1, "shell", "touch ran\n")
        skipped = Block("docs/x.md", 5, "shell", "exit 1\n", skip="installs packages")
        needs = Block("docs/x.md", 9, "python", "raise SystemExit(3)\n", requires=["chainrule_no_such_extra"])
        check([ran, skipped], tmp_path)                      # the skipped block's `exit 1` never runs
        (tmp_path / "ran").unlink()
        with pytest.raises(pytest.skip.Exception, match="docs/x.md:9 needs chainrule_no_such_extra"):
            check([ran, needs], tmp_path)
        assert (tmp_path / "ran").exists()                   # the block before it ran

    def test_a_failing_block_fails_and_names_its_line(tmp_path):
        blocks = [Block("docs/x.md", 3, "python", "y = 1\n"), Block("docs/x.md", 7, "python", "print(cr)\n")]
        result = run_blocks(blocks, tmp_path)
        assert result.returncode != 0
        assert "docs/x.md:7" in result.stderr and "NameError" in result.stderr


# -- the runner (a fresh interpreter per page or per README block) ---------------------------

def _run(spec: Path) -> int:
    namespace: dict = {"__name__": "__main__"}
    for data in json.loads(spec.read_text(encoding="utf-8")):
        block = Block(**data)
        print(f"--- {block.where} ({block.kind})", flush=True)
        if block.kind == "python":
            # blank lines first, so that a traceback's line numbers are the page's
            code = compile("\n" * block.line + block.code, block.where, "exec")
            try:
                exec(code, namespace)
            except BaseException:
                traceback.print_exc()
                print(f"block at {block.where} failed", file=sys.stderr)
                return 1
            sys.stdout.flush()
        else:
            status = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block.code]).returncode
            if status != 0:
                print(f"block at {block.where} failed: exit status {status}", file=sys.stderr)
                return 1
    return 0


def _main(argv: list[str]) -> int:
    if argv[:1] == ["--run"]:
        return _run(Path(argv[1]))
    import tempfile

    status = 0
    for name in argv:
        path = Path(name).resolve()
        groups = [[b] for b in extract(path)] if path == README else [extract(path)]
        for blocks in groups:
            runnable = [b for b in blocks if not b.skip]
            with tempfile.TemporaryDirectory() as tmp:
                result = run_blocks(runnable, _fresh_folder(Path(tmp), runnable))
            print(result.stdout + result.stderr)
            status |= result.returncode
    return status


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
