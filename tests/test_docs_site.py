"""The documentation site (mkdocs.yml, docs/_hooks.py): it builds strictly, offline, and every link holds.

The site is built into a temporary folder with ``mkdocs build --strict`` and its HTML parsed:
every internal link (href, src, and the #anchor of each) points at a page and an id that exist,
nothing is loaded from the network (no script, style sheet, font, image or frame from an http(s)
address), and every ``cr.Name`` / ``chainrule.x.Name`` a page mentions is a real object of the
package. The quick build leaves the tutorials out (CHAINRULE_DOCS_TUTORIALS=0); the slow one
executes them as ``make docs`` does. The build tests skip when MkDocs (the ``docs`` extra) is not
installed; the checks of the hook's own functions and of the API pages' names run without it.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
HOOKS_PATH = ROOT / "docs" / "_hooks.py"


def _load_hooks():
    spec = importlib.util.spec_from_file_location("chainrule_docs_hooks", HOOKS_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hooks = _load_hooks()


# ---------------------------------------------------------------- reading the built HTML

class _Page(HTMLParser):
    """The ids, the outgoing references and the article text of one HTML page."""

    LOADS = {"script": ("src",), "img": ("src",), "iframe": ("src",), "source": ("src", "srcset"),
             "link": ("href",), "video": ("src", "poster"), "audio": ("src",), "embed": ("src",),
             "object": ("data",)}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[str] = []          # every href/src: to check that it resolves
        self.loads: list[str] = []          # what the browser fetches when showing the page
        self.text: list[str] = []
        self._article = 0
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name"):
            if attrs.get(key) and (key == "id" or tag == "a"):
                self.ids.add(attrs[key])
        for key in ("href", "src"):
            if attrs.get(key) is not None:
                self.links.append(attrs[key])
        for key in self.LOADS.get(tag, ()):
            if attrs.get(key):
                self.loads.append(attrs[key])
        if tag == "article":
            self._article += 1
        if tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag):
        if tag == "article":
            self._article -= 1
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data):
        if self._article > 0 and not self._skip:
            self.text.append(data)


def parse_site(site: Path) -> dict[Path, _Page]:
    pages = {}
    for path in sorted(site.rglob("*.html")):
        page = _Page()
        page.feed(path.read_text(encoding="utf-8"))
        pages[path] = page
    return pages


def broken_links(site: Path, pages: dict[Path, _Page]) -> list[str]:
    """Each internal reference of the built pages whose file or #anchor does not exist."""
    broken = []
    for path, page in pages.items():
        for link in page.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or not (parts.path or parts.fragment):
                continue                     # http(s), mailto, data: and the like; a bare "#"
            if parts.path.startswith("/"):
                target = site / unquote(parts.path).lstrip("/")
            else:
                target = (path.parent / unquote(parts.path)) if parts.path else path
            if target.is_dir():
                target = target / "index.html"
            where = f"{path.relative_to(site)}: {link}"
            if not target.exists():
                broken.append(f"{where} (no file {target})")
            elif parts.fragment and target.suffix == ".html":
                ids = pages[target.resolve()].ids if target.resolve() in pages else parse_site_file(target).ids
                if unquote(parts.fragment) not in ids:
                    broken.append(f"{where} (no id {parts.fragment!r} in {target.relative_to(site)})")
    return broken


def parse_site_file(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def remote_loads(site: Path, pages: dict[Path, _Page]) -> list[str]:
    """What a page or a style sheet of the site would fetch from the network."""
    found = [f"{p.relative_to(site)}: {u}" for p, page in pages.items() for u in page.loads
             if re.match(r"^(https?:)?//", u.strip(), re.I)]
    for css in site.rglob("*.css"):
        for match in re.finditer(r"(?:@import\s+(?:url\()?|url\()\s*['\"]?((?:https?:)?//[^'\")\s]+)",
                                 css.read_text(encoding="utf-8")):
            found.append(f"{css.relative_to(site)}: {match.group(1)}")
    return found


# ---------------------------------------------------------------- names like cr.Dense

_NAME = re.compile(r"(?<![\w./-])(cr|chainrule)((?:\.[A-Za-z_]\w*)+)")


def resolve(dotted: str):
    """The object a dotted name ``chainrule.a.b`` stands for: the longest importable module
    prefix, then attributes. Raises ImportError or AttributeError when there is none."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError as exc:
            if exc.name and not dotted.startswith(exc.name):
                raise                        # an optional dependency is missing: say so
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


def unresolved_names(texts: dict[str, str]) -> list[str]:
    """Each ``cr.X.Y`` / ``chainrule.X.Y`` in the texts that is not an object of the package."""
    bad = []
    for where, text in texts.items():
        for match in _NAME.finditer(text):
            dotted = "chainrule" + match.group(2)
            try:
                resolve(dotted)
            except ModuleNotFoundError as exc:
                if exc.name and not exc.name.startswith("chainrule"):
                    continue                 # needs an optional extra that is not installed here
                bad.append(f"{where}: {match.group(0)}")
            except (ImportError, AttributeError):
                bad.append(f"{where}: {match.group(0)}")
    return sorted(set(bad))


# ---------------------------------------------------------------- checks that need no MkDocs

def test_links_into_docs_point_at_the_site_pages():
    readme = "See [docs/cli.md](docs/cli.md) and [the explain guide](docs/explain.md#the-names)."
    assert hooks.rewrite_links(readme, "index.md") == (
        "See [docs/cli.md](cli.md) and [the explain guide](explain.md#the-names).")
    tutorial = "[explain](../docs/explain.md), [home](../README.md), [next](02-next.md), [web](https://x.org/a.md)"
    assert hooks.rewrite_links(tutorial, "tutorials/01-first.md") == (
        "[explain](../explain.md), [home](../index.md), [next](02-next.md), [web](https://x.org/a.md)")


def test_links_out_of_the_site_keep_their_text_and_code_blocks_stay():
    text = ("([benchmarks/README.md](../benchmarks/README.md) says how), [the runner](../benchmarks/run.py)\n"
            "```python\nx = '[a](../benchmarks/README.md)'\n```")
    assert hooks.rewrite_links(text, "recurrent.md") == (
        "(`benchmarks/README.md` says how), the runner\n"
        "```python\nx = '[a](../benchmarks/README.md)'\n```")


def test_dollar_math_becomes_mathml():
    pytest.importorskip("latex2mathml")
    out = hooks.math_to_mathml('<p>a <span class="arithmatex">\\(x &lt; \\frac{1}{2}\\)</span></p>'
                               '<div class="arithmatex">\\[ \\sum_k o_k \\]</div>')
    assert "arithmatex" not in out and "\\(" not in out
    assert out.count("<math") == 2 and 'display="block"' in out and 'display="inline"' in out
    assert "<mfrac><mrow><mn>1</mn></mrow><mrow><mn>2</mn></mrow></mfrac>" in out
    assert "&#x0003C;" in out                # the escaped < came back as the operator


def test_notebook_outputs_become_html():
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    assert hooks.output_html({"output_type": "stream", "name": "stdout", "text": "a < b\n"}) == (
        '<pre class="cr-nb-stream">a &lt; b\n</pre>')
    assert f'src="data:image/png;base64,{png}"' in hooks.output_html(
        {"output_type": "display_data", "data": {"image/png": png + "\n", "text/plain": "<Figure>"}})
    assert hooks.output_html({"output_type": "execute_result",
                              "data": {"text/html": ["<b>", "x</b>"], "text/plain": "x"}}) == (
        '<div class="cr-nb-html"><b>x</b></div>')
    error = hooks.output_html({"output_type": "error", "traceback": ["\x1b[31mValueError\x1b[0m: no"]})
    assert error == '<pre class="cr-nb-error">ValueError: no</pre>'


def test_docstring_equations_are_shown_as_written():
    doc = ("Fully connected layer.\n\nforward:  x (n, n_in) -> z\nbackward: dL/dW = xᵀ · delta   (n_in, n_out)\n"
           "          dL/dx = delta · Wᵀ\n\nMore prose.\n\nParameters\n----------\nforward: int\n    Not touched.")
    assert hooks.fence_equations(doc) == (
        "Fully connected layer.\n\n```text\nforward:  x (n, n_in) -> z\nbackward: dL/dW = xᵀ · delta   (n_in, n_out)\n"
        "          dL/dx = delta · Wᵀ\n```\n\nMore prose.\n\nParameters\n----------\nforward: int\n    Not touched.")
    literal = "forward: g = f(x)  (fills ``grads``)"
    assert hooks.fence_equations(literal) == "```text\nforward: g = f(x)  (fills grads)\n```"
    prose = "One line.\n\nforwarding: not an equation"
    assert hooks.fence_equations(prose) == prose


def test_api_pages_name_real_objects():
    names = [line[4:].strip() for page in sorted((ROOT / "docs" / "api").glob("*.md"))
             for line in page.read_text(encoding="utf-8").splitlines() if line.startswith("::: ")]
    assert len(names) > 40
    missing = []
    for name in names:
        try:
            resolve(name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("chainrule"):
                missing.append(name)
        except (ImportError, AttributeError):
            missing.append(name)
    assert not missing, missing


def test_names_the_sources_mention_are_real():
    sources = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "tutorials").glob("*.md"))]
    bad = unresolved_names({str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in sources})
    assert not bad, bad


def test_the_name_check_finds_a_name_that_is_not_there():
    assert unresolved_names({"a": "cr.Dense and chainrule.errors.ShapeError and cr.datasets.load_digits()"}) == []
    assert unresolved_names({"a": "cr.Dense, cr.NoSuchLayer; chainrule.errors.NoSuchError."}) == [
        "a: chainrule.errors.NoSuchError", "a: cr.NoSuchLayer"]


def test_the_link_check_finds_a_missing_page_and_anchor(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "index.html").write_text('<h1 id="top">A</h1><a href="../b/#x">b</a><a href="#top">t</a>'
                                               '<a href="../c/">c</a><a href="../b/#nope">n</a>'
                                               '<script src="https://cdn.example/x.js"></script>')
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "index.html").write_text('<p id="x">B</p><link rel="stylesheet" href="//fonts.example/f.css">')
    pages = {p.resolve(): page for p, page in parse_site(tmp_path.resolve()).items()}
    broken = broken_links(tmp_path.resolve(), pages)
    assert len(broken) == 2 and "../c/" in broken[0] and "'nope'" in broken[1]
    assert sorted(remote_loads(tmp_path.resolve(), pages)) == [
        "a/index.html: https://cdn.example/x.js", "b/index.html: //fonts.example/f.css"]


# ---------------------------------------------------------------- the built site

def _build(out: Path, tutorials: bool, root: Path = ROOT) -> subprocess.CompletedProcess:
    pytest.importorskip("mkdocs", reason="MkDocs is not installed (pip install -e '.[docs]')")
    pytest.importorskip("material", reason="mkdocs-material is not installed (pip install -e '.[docs]')")
    pytest.importorskip("mkdocstrings_handlers.python", reason="mkdocstrings-python is not installed")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "CHAINRULE_DOCS_TUTORIALS": "1" if tutorials else "0",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])}
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(root / "mkdocs.yml"),
                           "--site-dir", str(out)], cwd=root, env=env, capture_output=True, text=True, timeout=1800)


def _check_site(site: Path) -> dict[Path, _Page]:
    pages = {p.resolve(): page for p, page in parse_site(site.resolve()).items()}
    assert pages, "no page was built"
    assert not broken_links(site.resolve(), pages), broken_links(site.resolve(), pages)
    assert not remote_loads(site.resolve(), pages), remote_loads(site.resolve(), pages)
    texts = {str(p.relative_to(site.resolve())): " ".join(page.text) for p, page in pages.items()}
    bad = unresolved_names(texts)
    assert not bad, bad
    return pages


@pytest.fixture(scope="module")
def quick_site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    result = _build(out, tutorials=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def test_site_builds_strictly_with_every_link_and_name_holding(quick_site):
    pages = _check_site(quick_site)
    home = " ".join(pages[(quick_site / "index.html").resolve()].text)
    first = next(line for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
                 if line and not line.startswith(("#", "`", "make")))
    assert first[:60] in home                  # the home page is the README
    for page in ("api/layers", "api/network", "api/sklearn", "api/credit", "api/errors", "explain-mazur"):
        assert (quick_site / f"{page}.html").is_file(), page


def test_api_reference_shows_docstrings(quick_site):
    text = " ".join(parse_site_file(quick_site / "api" / "layers.html").text)
    assert "Dense" in text and "Conv2D" in text and "Parameters" in text
    network = (quick_site / "api" / "network.html").read_text(encoding="utf-8")
    assert 'id="chainrule.Sequential.fit"' in network
    assert "<code>forward:  a⁰ = x," in network  # the equations as the docstring aligns them

def test_explain_trace_is_embedded(quick_site):
    page = parse_site_file(quick_site / "explain-mazur.html")
    assert "explain/mazur.html" in page.loads
    trace = (quick_site / "explain" / "mazur.html").read_text(encoding="utf-8")
    assert "0.298371109" in trace              # E_total of Mazur's example, as his page gives it
    assert "<svg" in trace


def test_search_index_is_local(quick_site):
    index = (quick_site / "search" / "search_index.json").read_text(encoding="utf-8")
    assert "backpropagation" in index and "SyntheticGradient" in index


SAMPLE = """\
---
jupyter:
  jupytext:
    text_representation: {extension: .md, format_name: markdown, format_version: '1.3'}
  kernelspec: {display_name: Python 3, language: python, name: python3}
---

# Sample

With $o = \\sigma(z)$, [the guide](../docs/explain.md).

```python
print(6 * 7)
```

```python
import chainrule as cr
cr.Dense(2, 3).params["weight"].shape
```
"""


def test_a_tutorial_is_executed_with_its_outputs(tmp_path):
    pytest.importorskip("jupytext")
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    markdown, outputs = hooks.render_notebook(SAMPLE, cwd=tmp_path, name="sample")
    assert "```python\nprint(6 * 7)\n```\n\n<!--cr-output-0-->" in markdown
    assert "$o = \\sigma(z)$" in markdown
    assert outputs == ['<div class="cr-nb-output"><pre class="cr-nb-stream">42\n</pre></div>',
                       '<div class="cr-nb-output"><pre class="cr-nb-result">(2, 3)</pre></div>']


def test_a_tutorial_cell_that_fails_fails_the_build(tmp_path):
    pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    broken = SAMPLE.replace("print(6 * 7)", "raise ValueError('the tutorial is wrong')")
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="the tutorial is wrong"):
        hooks.render_notebook(broken, cwd=tmp_path, name="sample")


@pytest.mark.slow
def test_full_site_with_executed_tutorials(tmp_path):
    result = _build(tmp_path / "site", tutorials=True)
    assert result.returncode == 0, result.stdout + result.stderr
    _check_site(tmp_path / "site")
    for source in hooks.tutorial_sources(ROOT):
        page = tmp_path / "site" / "tutorials" / f"{source.stem}.html"
        assert page.is_file(), page
        if "```python" in source.read_text(encoding="utf-8"):
            assert "cr-nb-output" in page.read_text(encoding="utf-8"), f"{source.name} shows no output"
