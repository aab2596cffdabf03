"""Screenshots of the built documentation site (``make docs`` first), with Debian's chromium.

    python docs/screenshots/take.py [SITE_DIR]      # SITE_DIR defaults to site/

Serves the site on 127.0.0.1, opens a tutorial page (the first under tutorials/), an explain
trace displayed in a tutorial notebook's output, the explain page of Mazur's example and the API
reference of the network, and writes tutorial.png, notebook-explain.png, explain.png and api.png
beside this file. Every request that leaves 127.0.0.1 is refused and
reported: the site must show fully without the network.
"""

from __future__ import annotations

import functools
import shutil
import sys
import tempfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from playwright.sync_api import sync_playwright

HERE = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else shutil.which("chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def main(site: Path) -> int:
    tutorials = sorted(p.name for p in (site / "tutorials").glob("*.html"))
    shots = {"explain.png": ("explain-mazur.html", None), "api.png": ("api/network.html", None)}
    if tutorials:
        shots["tutorial.png"] = (f"tutorials/{tutorials[0]}", ".cr-nb-output")
        # an explain trace as a notebook shows it (its _repr_html_), in the first tutorial that displays one
        with_trace = [t for t in tutorials if 'class="cr-x"' in (site / "tutorials" / t).read_text(encoding="utf-8")]
        if with_trace:
            shots["notebook-explain.png"] = (f"tutorials/{with_trace[0]}", ".cr-nb-output .cr-x")
    else:
        print("no tutorial in the site: tutorial.png not taken")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    outside, errors = [], []
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, args=ARGS, headless=True,
                                                       viewport={"width": 1280, "height": 900})

        def guard(route):
            if route.request.url.startswith(base) or route.request.url.startswith("data:"):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        browser.route("**/*", guard)
        for name, (path, scroll_to) in shots.items():
            page = browser.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(base + path, wait_until="networkidle")
            if scroll_to:                     # the first cell with its output, and the math above it
                page.locator(scroll_to).first.evaluate("e => window.scrollTo(0, e.getBoundingClientRect().top"
                                                       " + window.scrollY - 420)")
                page.wait_for_timeout(600)    # the header's title change on scrolling is animated
            if name == "explain.png":
                page.locator("iframe").scroll_into_view_if_needed()
                page.wait_for_timeout(300)
            page.screenshot(path=str(HERE / name))
            print(f"{name}: {base}{path}")
            page.close()
        browser.close()
    server.shutdown()
    for url in outside:
        print(f"refused a request outside the site: {url}")
    for error in errors:
        print(f"page error: {error}")
    return 1 if outside or errors else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "site").resolve()))
