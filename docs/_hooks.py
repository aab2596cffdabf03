"""MkDocs hooks for chainrule's documentation site (``mkdocs.yml``: ``hooks: [docs/_hooks.py]``).

What they add to a plain MkDocs build, all at build time and all offline:

- the home page is README.md itself (``docs/index.md`` holds one include line), its links into
  docs/ rewritten to the site's pages;
- every ``tutorials/*.md`` (jupytext Markdown notebooks) becomes a page under ``tutorials/``,
  executed by a Jupyter kernel, its outputs (text, tables, figures, HTML displays) shown under
  each cell;
- a page with the explain trace of Mazur's 2-2-2 example, computed by ``chainrule.explain`` and
  shown as its self-contained HTML page in a frame;
- math (``$…$``, ``$$…$$``, parsed by pymdownx.arithmatex) is turned into MathML, which
  browsers draw with no script or web font;
- a relative link to a file of the checkout that is not part of the site (``../benchmarks/...``)
  keeps its text and loses the link, so ``mkdocs build --strict`` checks every other one.

``CHAINRULE_DOCS_TUTORIALS=0 mkdocs build`` leaves the tutorials out (nothing is executed).
The functions below that do not take MkDocs objects work without MkDocs installed, for the tests.
"""

from __future__ import annotations

import base64
import html
import logging
import os
import posixpath
import re
from pathlib import Path

log = logging.getLogger("mkdocs.hooks.chainrule")

INCLUDE_README = '--8<-- "README.md"'
EXPLAIN_PAGE = "explain-mazur.md"
EXPLAIN_HTML = "explain/mazur.html"
LAYERS_PAGE = "explain-layers.md"
LAYERS_HTML = {"conv": "explain/conv.html", "attention": "explain/attention.html", "rnn": "explain/rnn.html"}
TUTORIALS = "tutorials"

_state: dict = {}

# Docstrings that numpydoc parsing cannot read as written, whose griffe warnings the strict build
# shows as information rather than failing on; each entry is a file of the checkout. The one left:
# SyntheticGradient's protocol paragraph follows its Parameters without a section header ("Notes").
LENIENT_DOCSTRINGS: tuple[str, ...] = ()


class _LenientDocstrings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and any(f in record.getMessage() for f in LENIENT_DOCSTRINGS):
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


_lenient = _LenientDocstrings()


# ---------------------------------------------------------------- configuration and files

def tutorial_sources(root: Path) -> list[Path]:
    """The tutorial notebooks: ``tutorials/*.md`` of the checkout, in name order (none when the
    environment sets CHAINRULE_DOCS_TUTORIALS=0, for a quick build that executes nothing)."""
    if os.environ.get("CHAINRULE_DOCS_TUTORIALS", "1") == "0":
        return []
    folder = root / TUTORIALS
    return sorted(p for p in folder.glob("*.md") if p.name.lower() != "readme.md") if folder.is_dir() else []


def title_of(markdown: str, fallback: str) -> str:
    """The first level-1 heading of a Markdown text (after any YAML header), else ``fallback``."""
    for line in strip_front_matter(markdown).splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return fallback


def strip_front_matter(text: str) -> str:
    if text.startswith("---\n"):
        end = text.find("\n---", 4)
        if end != -1:
            return text[text.find("\n", end + 1) + 1:] if text.find("\n", end + 1) != -1 else ""
    return text


def on_config(config):
    root = Path(os.path.abspath(config["config_file_path"])).parent
    griffe_log = logging.getLogger("mkdocs.plugins.griffe")
    if _lenient not in griffe_log.filters:
        griffe_log.addFilter(_lenient)
    _state.update(root=root, docs=Path(config["docs_dir"]).resolve(), outputs={})
    tutorials = tutorial_sources(root)
    nav = config.get("nav")
    if tutorials and nav is not None:
        entries = [{title_of(p.read_text(encoding="utf-8"), p.stem): f"{TUTORIALS}/{p.name}"} for p in tutorials]
        at = next((i for i, item in enumerate(nav) if isinstance(item, dict) and "Guides" in item), len(nav) - 1)
        nav.insert(at + 1, {"Tutorials": entries})
    return config


def on_files(files, config):
    from mkdocs.structure.files import File

    for path in tutorial_sources(_state["root"]):
        files.append(File.generated(config, f"{TUTORIALS}/{path.name}", content=path.read_text(encoding="utf-8")))
    files.append(File.generated(config, EXPLAIN_PAGE, content=EXPLAIN_MARKDOWN))
    files.append(File.generated(config, EXPLAIN_HTML, content=mazur_trace_html()))
    files.append(File.generated(config, LAYERS_PAGE, content=LAYERS_MARKDOWN))
    from chainrule.explain.examples import example

    for name, target in LAYERS_HTML.items():
        files.append(File.generated(config, target, content=example(name).explain().to_html()))
    return files


# ---------------------------------------------------------------- links

_LINK = re.compile(r"(!?)\[([^\]\n]*)\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^\s*(```|~~~)")


def source_of(src_uri: str) -> str:
    """Where the page's Markdown lives in the checkout, relative to its root."""
    if src_uri == "index.md":
        return "README.md"
    if src_uri.startswith(f"{TUTORIALS}/"):
        return src_uri
    return f"docs/{src_uri}"


def site_target(repo_path: str) -> str | None:
    """The site file (relative to docs_dir) that a checkout path becomes, or None when it is not in the site."""
    if repo_path == "README.md":
        return "index.md"
    if repo_path.startswith("docs/"):
        return repo_path[len("docs/"):]
    if repo_path.startswith(f"{TUTORIALS}/") and repo_path.endswith(".md") and repo_path != f"{TUTORIALS}/README.md":
        return repo_path
    return None


def rewrite_links(markdown: str, src_uri: str, exists=None) -> str:
    """Point each relative link of a page at the site's file for the same checkout file.

    ``src_uri`` is the page's place in the site; its Markdown came from ``source_of(src_uri)``
    in the checkout. A link to a checkout file outside the site becomes its text alone (in code
    style when the text is the path). Code blocks are left alone. ``exists(repo_path)`` says
    whether a docs/ target exists (a missing one is kept, so that the strict build reports it).
    """
    source_dir = posixpath.dirname(source_of(src_uri))
    page_dir = posixpath.dirname(src_uri)

    def fix(match: re.Match) -> str:
        bang, text, url = match.groups()
        if re.match(r"^[a-z][a-z0-9+.-]*:|^#|^/", url, re.I):
            return match.group(0)
        path, _, anchor = url.partition("#")
        repo_path = posixpath.normpath(posixpath.join(source_dir, path))
        target = site_target(repo_path)
        if target is None:
            if bang:
                return match.group(0)
            return f"`{text}`" if text in (path, url, repo_path) else text
        new = posixpath.relpath(target, page_dir or ".") + (f"#{anchor}" if anchor else "")
        return f"{bang}[{text}]({new})"

    out, fenced = [], None
    for line in markdown.split("\n"):
        fence = _FENCE.match(line)
        if fence and (fenced is None or fence.group(1) == fenced):
            fenced = fence.group(1) if fenced is None else None
            out.append(line)
            continue
        out.append(line if fenced else _LINK.sub(fix, line))
    return "\n".join(out)


# ---------------------------------------------------------------- pages

def on_page_markdown(markdown, page, config, files):
    src_uri = page.file.src_uri
    if src_uri == EXPLAIN_PAGE:                 # raw HTML: MkDocs does not rewrite its URLs
        from mkdocs.utils import get_relative_url

        markdown = markdown.replace("{explain_src}", get_relative_url(EXPLAIN_HTML, page.url))
    if src_uri == LAYERS_PAGE:
        from mkdocs.utils import get_relative_url

        for name, target in LAYERS_HTML.items():
            markdown = markdown.replace(f"{{{name}_src}}", get_relative_url(target, page.url))
    if src_uri == "index.md" and INCLUDE_README in markdown:
        readme = (_state["root"] / "README.md").read_text(encoding="utf-8")
        markdown = markdown.replace(INCLUDE_README, readme)
    if src_uri.startswith(f"{TUTORIALS}/"):
        source = _state["root"] / src_uri
        markdown, outputs = render_notebook(source.read_text(encoding="utf-8"), cwd=source.parent,
                                            name=src_uri)
        _state["outputs"][src_uri] = outputs
    return rewrite_links(markdown, src_uri)


def on_page_content(html_text, page, config, files):
    outputs = _state["outputs"].pop(page.file.src_uri, None)
    if outputs:
        html_text = _OUTPUT_MARK.sub(lambda m: outputs[int(m.group(1))], html_text)
    return math_to_mathml(html_text)


# ---------------------------------------------------------------- math

_MATH_BLOCK = re.compile(r'<div class="arithmatex">\s*\\\[(.*?)\\\]\s*</div>', re.S)
_MATH_INLINE = re.compile(r'<span class="arithmatex">\\\((.*?)\\\)</span>', re.S)


def latex_to_mathml(latex: str, display: str) -> str:
    from latex2mathml.converter import convert

    return convert(latex.strip(), display=display)


def math_to_mathml(html_text: str) -> str:
    """Replace arithmatex's ``\\(…\\)`` and ``\\[…\\]`` (generic mode) by MathML."""
    html_text = _MATH_BLOCK.sub(lambda m: latex_to_mathml(html.unescape(m.group(1)), "block"), html_text)
    return _MATH_INLINE.sub(lambda m: latex_to_mathml(html.unescape(m.group(1)), "inline"), html_text)


# ---------------------------------------------------------------- notebooks

_OUTPUT_MARK = re.compile(r"<!--cr-output-(\d+)-->")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def render_notebook(text: str, cwd: Path, name: str = "notebook", execute: bool = True) -> tuple[str, list[str]]:
    """Execute a jupytext Markdown notebook and write it back as Markdown with its outputs.

    Returns the page's Markdown, in which each cell's outputs stand as ``<!--cr-output-N-->``,
    and the N-th output's HTML (the markers survive Markdown untouched and are filled in
    afterwards). A cell that raises fails the build unless it is tagged ``raises-exception``.
    The kernel is the notebook's (python3 by default) and runs in ``cwd``, as Jupyter runs a
    notebook in its own folder.
    """
    import jupytext

    nb = jupytext.reads(text, fmt="md")
    if execute:
        from nbclient import NotebookClient

        kernel = nb.metadata.get("kernelspec", {}).get("name", "python3")
        log.info("executing %s (kernel %s)", name, kernel)
        NotebookClient(nb, timeout=900, kernel_name=kernel, resources={"metadata": {"path": str(cwd)}}).execute()
    parts, outputs = [], []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            parts.append(cell.source)
        elif cell.cell_type == "code":
            tags = set(cell.metadata.get("tags", []))
            if "remove-cell" in tags:
                continue
            if "remove-input" not in tags and cell.source.strip():
                parts.append(f"```python\n{cell.source}\n```")
            shown = "".join(output_html(o) for o in cell.get("outputs", []))
            if shown and "remove-output" not in tags:
                outputs.append(f'<div class="cr-nb-output">{shown}</div>')
                parts.append(f"<!--cr-output-{len(outputs) - 1}-->")
        else:                                   # raw cells: as they are
            parts.append(cell.source)
    return "\n\n".join(parts) + "\n", outputs


def output_html(output) -> str:
    """One Jupyter output as HTML: the richest of its representations that a page can show."""
    kind = output.get("output_type")
    if kind == "stream":
        cls = "cr-nb-stderr" if output.get("name") == "stderr" else "cr-nb-stream"
        return f'<pre class="{cls}">{html.escape(output.get("text", ""))}</pre>'
    if kind == "error":
        trace = _ANSI.sub("", "\n".join(output.get("traceback", [])))
        return f'<pre class="cr-nb-error">{html.escape(trace)}</pre>'
    data = output.get("data", {})
    if "text/html" in data:
        return f'<div class="cr-nb-html">{_joined(data["text/html"])}</div>'
    if "image/svg+xml" in data:
        return f'<div class="cr-nb-image">{_joined(data["image/svg+xml"])}</div>'
    for mime in ("image/png", "image/jpeg"):
        if mime in data:
            payload = _joined(data[mime]).replace("\n", "")
            base64.b64decode(payload, validate=True)       # a broken image fails here, not in the reader's browser
            return f'<div class="cr-nb-image"><img alt="figure" src="data:{mime};base64,{payload}"></div>'
    if "text/markdown" in data:
        import markdown as md

        return f'<div class="cr-nb-markdown">{md.markdown(_joined(data["text/markdown"]))}</div>'
    if "text/plain" in data:
        return f'<pre class="cr-nb-result">{html.escape(_joined(data["text/plain"]))}</pre>'
    return ""


def _joined(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


# ---------------------------------------------------------------- docstrings

_EQUATIONS = re.compile(r"^(forward|backward)\b[^:\n]{0,24}:\s")
_SECTION = re.compile(r"^\S.*\n-{3,}\s*$", re.M)


def fence_equations(docstring: str) -> str:
    """Show a docstring's equation paragraphs (``forward: …`` / ``backward: …``, aligned by
    spaces) as they are written: as preformatted text, not as a paragraph of joined lines
    (a ``literal`` in them loses its backquotes).
    Only the description before the first numpydoc section is touched."""
    end = _SECTION.search(docstring)
    head, tail = (docstring[:end.start()], docstring[end.start():]) if end else (docstring, "")
    paragraphs = head.split("\n\n")
    for i, para in enumerate(paragraphs):
        if _EQUATIONS.match(para.lstrip("\n")):
            literal = re.sub(r"``([^`]+)``", r"\1", para.strip("\n"))     # no inline markup in a block
            paragraphs[i] = f"```text\n{literal}\n```"
    return "\n\n".join(paragraphs) + tail


try:
    from griffe import Extension as _GriffeExtension
except ImportError:                             # the tests import this file without the docs extra
    _GriffeExtension = object


class EquationBlocks(_GriffeExtension):
    """griffe extension (mkdocs.yml: ``extensions: [docs/_hooks.py:EquationBlocks]``): see fence_equations."""

    def on_object(self, *, obj, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = fence_equations(obj.docstring.value)


# ---------------------------------------------------------------- explain

def mazur_trace():
    """The explain trace of Mazur's example: the network, loss and step of ``chainrule explain --example mazur``."""
    import numpy as np

    import chainrule as cr

    net = cr.Sequential(cr.Dense(2, 2, weight=[[0.15, 0.25], [0.20, 0.30]], bias=[0.35, 0.35]), cr.Sigmoid(),
                        cr.Dense(2, 2, weight=[[0.40, 0.50], [0.45, 0.55]], bias=[0.60, 0.60]), cr.Sigmoid(),
                        dtype=np.float64)
    net.layers[0].freeze("bias")
    net.layers[2].freeze("bias")
    return cr.explain(net, cr.SSE(), [0.05, 0.10], [0.01, 0.99], lr=0.5)


def mazur_trace_html() -> str:
    return mazur_trace().to_html()


EXPLAIN_MARKDOWN = """\
# explain: Mazur's example, drawn

The page below is what `chainrule explain` writes for M. Mazur's 2-2-2 sigmoid network
(inputs (0.05, 0.10), targets (0.01, 0.99), η = 0.5), as one self-contained HTML file: the
network drawn in SVG beside every step of the forward pass, the error, each gradient as its
chain of factors with a finite-difference check, and the update. It is computed when this site
is built, by the code below; [the explain guide](explain.md) describes every section.

```python
import numpy as np
import chainrule as cr

net = cr.Sequential(cr.Dense(2, 2, weight=[[0.15, 0.25], [0.20, 0.30]], bias=[0.35, 0.35]), cr.Sigmoid(),
                    cr.Dense(2, 2, weight=[[0.40, 0.50], [0.45, 0.55]], bias=[0.60, 0.60]), cr.Sigmoid(),
                    dtype=np.float64)
net.layers[0].freeze("bias"); net.layers[2].freeze("bias")
cr.explain(net, cr.SSE(), [0.05, 0.10], [0.01, 0.99], lr=0.5).save("mazur.html")
```

Hover a line of the drawing for its weight, contribution and gradient; the buttons under the
drawing switch what its lines show. [Open the page on its own](explain/mazur.html).

<iframe class="cr-explain-frame" src="{explain_src}" title="explain trace of Mazur's example"></iframe>
"""


LAYERS_MARKDOWN = """\
# explain: a convolution, attention and an RNN, drawn

`chainrule explain --example conv`, `--example attention` and `--example rnn` write these pages: a
network of convolutions, attention or a recurrent layer in matrix form, layer by layer (the RNN
unrolled in time), every factor of the backward pass
numbered and checked against its central difference
([the explain guide](explain.md#convolutions-and-attention-layer-by-layer)
reads them step by step; tutorial 08 redoes the key factors by hand). They are computed when this
site is built:

```python
from chainrule.explain.examples import example

example("conv").explain().save("conv.html")
example("attention").explain().save("attention.html")
example("rnn").explain().save("rnn.html")
```

## A 2×2 convolution on one 4×4 image

[Open the page on its own](explain/conv.html).

<iframe class="cr-explain-frame" src="{conv_src}" title="explain trace of a convolution"></iframe>

## Self-attention over two tokens

[Open the page on its own](explain/attention.html).

<iframe class="cr-explain-frame" src="{attention_src}" title="explain trace of attention"></iframe>

## Backpropagation through time in a tanh RNN

[Open the page on its own](explain/rnn.html).

<iframe class="cr-explain-frame" src="{rnn_src}" title="explain trace of an RNN"></iframe>
"""
