"""The playground's web server, without a browser: pages, controls, the event stream, the guard."""

import http.client
import json
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr
from chainrule.cli import main
from chainrule.playground import cli as playground_cli
from chainrule.playground import serve
from chainrule.playground.server import load_static


@pytest.fixture
def pg():
    before = set(threading.enumerate())
    playground = serve(port=0, keepalive=0.2, frame_interval=0.05)
    yield playground
    playground.close()
    deadline = time.monotonic() + 1.0
    while set(threading.enumerate()) - before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not set(threading.enumerate()) - before


def request(pg, method, path, body=None, headers=None, content_type="application/json"):
    conn = http.client.HTTPConnection("127.0.0.1", pg.port, timeout=10)
    try:
        hdrs = dict(headers or {})
        if body is not None and "Content-Type" not in hdrs and content_type:
            hdrs["Content-Type"] = content_type
        if method == "POST" and body is None:
            body = b""
            if content_type:
                hdrs.setdefault("Content-Type", content_type)
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def post_json(pg, path, obj=None):
    status, _, body = request(pg, "POST", path, json.dumps(obj or {}).encode())
    return status, json.loads(body)


URL = re.compile(rb"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'`)<>]*")


def test_page_assets_and_favicon_answer_200_without_external_urls(pg):
    for path, kind in [("/", "text/html"), ("/static/app.js", "text/javascript"), ("/static/style.css", "text/css"),
                       ("/favicon.ico", "image/x-icon")]:
        status, headers, body = request(pg, "GET", path)
        assert status == 200, path
        assert headers["Content-Type"].startswith(kind)
        assert int(headers["Content-Length"]) == len(body) > 0
        # the only URL-shaped text is the SVG namespace name, which is never fetched
        assert set(URL.findall(body)) <= {b"http://www.w3.org/2000/svg"}, path
        assert not re.search(rb"""(src|href)\s*=\s*["']//""", body)
        assert not re.search(rb"url\(\s*['\"]?(?!data:)[a-z]+:", body)
    _, headers, html = request(pg, "GET", "/")
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    for ref in re.findall(rb'(?:src|href)="([^"]+)"', html):
        status, _, _ = request(pg, "GET", ref.decode())
        assert status == 200, ref
    assert request(pg, "GET", "/static/../server.py")[0] == 404
    assert request(pg, "GET", "/nothing")[0] == 404


def test_post_step_is_one_minibatch_bit_identical_to_the_library(pg):
    status, state = post_json(pg, "/api/config", {"seed": 11, "layers": [3], "activations": ["tanh"],
                                                  "optimizer": "momentum", "lr": 0.1})
    assert status == 200 and state["frame"]["step"] == 0
    rng = np.random.default_rng(np.random.SeedSequence(11).spawn(3)[1])
    ref = cr.Sequential(cr.Dense(2, 3, seed=rng), cr.Tanh(), cr.Dense(3, 1, seed=rng), cr.Sigmoid(),
                        dtype=np.float64)
    opt = cr.SGD(lr=0.1, momentum=0.9)
    train = np.array(state["data"]["train"])
    X, T = train[:, :2], train[:, 2:3]
    assert np.array_equal(np.array(state["frame"]["weights"][0]), ref.layers[0].params["weight"])
    for k in range(1, 4):
        status, frame = post_json(pg, "/api/step")
        assert status == 200 and frame["step"] == k and len(frame["batch"]) == 10
        idx = np.array(frame["batch"])
        out = ref.forward(X[idx], training=True)
        value, grad = cr.SSE().value_and_grad(out, T[idx])
        ref.backward(grad)
        grads = [ref.layers[0].grads["weight"].copy(), ref.layers[2].grads["weight"].copy()]
        opt.step(ref)
        for level, position in enumerate((0, 2)):
            assert np.array_equal(np.array(frame["weights"][level]), ref.layers[position].params["weight"])
            assert np.array_equal(np.array(frame["biases"][level]), ref.layers[position].params["bias"])
            assert np.array_equal(np.array(frame["grads"][level]), grads[level])
        assert frame["loss"]["batch"] == value


def read_events(resp, count, timeout):
    """Up to ``count`` SSE events or comments, as ("frame", dict) / ("comment", text)."""
    out, data, kind = [], None, None
    deadline = time.monotonic() + timeout
    while len(out) < count and time.monotonic() < deadline:
        line = resp.fp.readline().decode()
        if not line:
            break
        line = line.rstrip("\n")
        if line.startswith(":"):
            out.append(("comment", line[1:].strip()))
        elif line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            data = line[5:].strip()
        elif line == "" and data is not None:
            out.append((kind, json.loads(data)))
            data, kind = None, None
    return out


def open_events(pg):
    conn = http.client.HTTPConnection("127.0.0.1", pg.port, timeout=5)
    conn.request("GET", "/api/events")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Content-Type").startswith("text/event-stream")
    return conn, resp


def test_event_stream_keep_alives_while_paused_and_frames_while_playing(pg):
    conn, resp = open_events(pg)
    try:
        events = read_events(resp, 3, timeout=3)
        assert events[0][0] == "frame" and events[0][1]["step"] == 0
        assert [e for e in events[1:] if e == ("comment", "keep-alive")]
        assert post_json(pg, "/api/play") == (200, {"playing": True, "error": None})
        frames = [e[1] for e in read_events(resp, 8, timeout=5) if e[0] == "frame"]
        steps = [f["step"] for f in frames]
        assert len(steps) >= 4 and all(b > a for a, b in zip(steps, steps[1:], strict=False))
        assert all(f["playing"] for f in frames[1:])
        status, frame = post_json(pg, "/api/pause")
        assert status == 200 and not frame["playing"]
    finally:
        conn.close()


def test_foreign_host_or_origin_gets_403(pg):
    port = pg.port
    assert request(pg, "GET", "/", headers={"Host": f"127.0.0.1:{port}"})[0] == 200
    assert request(pg, "GET", "/", headers={"Host": f"localhost:{port}"})[0] == 200
    for host in (f"evil.example:{port}", "127.0.0.1:1", "127.0.0.1", f"10.0.0.1:{port}", ""):
        assert request(pg, "GET", "/api/state", headers={"Host": host})[0] == 403, host
    assert request(pg, "GET", "/", headers={"Origin": f"http://127.0.0.1:{port}"})[0] == 200
    for origin in ("http://evil.example", f"http://evil.example:{port}", "null", f"https://127.0.0.1:{port}"):
        assert request(pg, "GET", "/api/state", headers={"Origin": origin})[0] == 403, origin
        status, _, _ = request(pg, "POST", "/api/play", b"{}", headers={"Origin": origin})
        assert status == 403
    assert not pg.session.playing


def test_posts_need_their_content_type_and_a_bounded_body(pg):
    for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        assert request(pg, "POST", "/api/play", b"{}", content_type=kind)[0] == 415  # what a form can send
    assert request(pg, "POST", "/api/play", b"", content_type=None)[0] == 415
    status, _, body = request(pg, "POST", "/api/config", b"{not json")
    assert status == 400 and "not valid JSON" in json.loads(body)["error"]
    for path, kind, length in (("/api/config", "application/json", 64 * 1024 + 1),
                               ("/api/upload?filename=big.csv", "text/csv", pg.max_upload + 1),
                               ("/api/upload?filename=huge.csv", "text/csv", 10**12)):
        conn = http.client.HTTPConnection("127.0.0.1", pg.port, timeout=5)
        conn.putrequest("POST", path)  # the headers only: the answer comes before any body is read
        conn.putheader("Content-Type", kind)
        conn.putheader("Content-Length", str(length))
        conn.endheaders()
        resp = conn.getresponse()
        assert resp.status == 413 and "at most" in json.loads(resp.read())["error"]
        conn.close()
    status, body = post_json(pg, "/api/config", {"layers": [9]})
    assert status == 400 and "'layers'" in body["error"]


def test_upload_over_http_uses_the_csv_reader_and_its_errors(pg):
    good = b"a,b,c\n" + b"".join(f"{i},{i % 5},{i % 3}\n".encode() for i in range(45))
    status, _, body = request(pg, "POST", "/api/upload?filename=tri.csv", good, content_type="text/csv")
    state = json.loads(body)
    assert status == 200 and state["config"]["dataset"] == "csv" and state["config"]["classes"] == 3
    status, _, body = request(pg, "POST", "/api/upload?filename=x.csv", b"p,q,r\n1,2,a\n3,4\n",
                              content_type="text/csv")
    assert status == 400
    assert json.loads(body)["error"] == ("x.csv, line 3, column 3: this row has 2 fields, the header has 3"
                                         " (no value for 'r')")


def test_backprop_trace_and_model_downloads(pg, tmp_path):
    post_json(pg, "/api/step")
    status, walk = post_json(pg, "/api/backprop", {"split": "test", "index": 2})
    assert status == 200 and walk["sample"]["split"] == "test" and walk["edges"]
    status, headers, md = request(pg, "GET", "/api/trace.md?split=test&index=2")
    assert status == 200 and headers["Content-Type"].startswith("text/markdown")
    assert "attachment" in headers["Content-Disposition"] and b"dE/dw1" in md
    status, headers, html = request(pg, "GET", "/api/trace.html?split=test&index=2")
    assert status == 200 and b"<svg" in html
    assert request(pg, "GET", "/api/trace.md?index=999999")[0] == 400
    status, _, model = request(pg, "GET", "/api/model.npz")
    assert status == 200
    (tmp_path / "m.npz").write_bytes(model)
    net = cr.load(tmp_path / "m.npz")
    frame = pg.session.frame()
    assert np.array_equal(net.layers[0].params["weight"], np.array(frame["weights"][0]))


def test_a_stalled_client_neither_slows_training_nor_keeps_a_thread():
    with serve(port=0, frame_interval=0.01, write_timeout=0.3) as pg:
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", pg.port))
        stalled.sendall(f"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{pg.port}\r\n\r\n".encode())
        try:
            deadline = time.monotonic() + 5
            while not pg._server.connections and time.monotonic() < deadline:
                time.sleep(0.005)
            assert len(pg._server.connections) == 1  # the stream is open
            pg.session.play()
            while len(pg._server.connections) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not pg._server.connections  # the stalled stream was dropped, not waited on
            steps = pg.session.steps
            time.sleep(0.2)
            assert pg.session.steps > steps + 20  # and training went on
        finally:
            stalled.close()


def test_close_with_a_client_connected_returns_within_a_second_and_leaves_no_thread():
    before = set(threading.enumerate())
    pg = serve(port=0, keepalive=30)
    conn, resp = open_events(pg)
    read_events(resp, 1, timeout=3)
    idle = http.client.HTTPConnection("127.0.0.1", pg.port, timeout=5)  # an idle keep-alive connection
    idle.request("GET", "/favicon.ico")
    idle.getresponse().read()
    pg.session.play()
    time.sleep(0.1)
    start = time.monotonic()
    pg.close()
    assert time.monotonic() - start < 1.0
    assert not set(threading.enumerate()) - before
    rest = resp.fp.read()  # the stream ends (a hang would time out): what was sent, then EOF
    assert rest == b"" or rest.endswith(b"\n\n")
    conn.close()
    idle.close()
    with pytest.raises(OSError):
        urllib.request.urlopen(pg.url, timeout=1)


def test_serve_binds_loopback_by_default():
    with serve() as pg:
        assert pg.host == "127.0.0.1" and pg._server.server_address[0] == "127.0.0.1"
        assert pg.url == f"http://127.0.0.1:{pg.port}/"
        assert pg.host_allowed(f"[::1]:{pg.port}") and not pg.host_allowed(f"192.168.1.2:{pg.port}")


def test_cli_serves_until_interrupted(monkeypatch, capsys):
    seen = {}

    def wait(playground):
        with urllib.request.urlopen(playground.url, timeout=5) as resp:
            seen["status"] = resp.status
        seen["url"] = playground.url
        raise KeyboardInterrupt

    monkeypatch.setattr(playground_cli, "_wait", wait)
    assert main(["playground", "--no-browser", "--port", "0", "--dataset", "spiral", "--seed", "7"]) == 0
    assert seen["status"] == 200
    assert f"chainrule playground: {seen['url']}" in capsys.readouterr().out


def test_cli_help_and_bad_port(capsys):
    assert main(["playground", "--help"]) == 0
    assert "--no-browser" in capsys.readouterr().out
    assert main(["playground", "--no-browser", "--port", "70000"]) == 2


def _node() -> str | None:
    """A Node.js binary: the system's, or the one the playwright package ships."""
    found = shutil.which("node")
    if found:
        return found
    try:
        import playwright
    except ImportError:
        return None
    bundled = Path(playwright.__file__).parent / "driver" / "node"
    return str(bundled) if bundled.exists() else None


# (value, significant digits, text): worked by hand from the rule in format.js's comment
FORMATTED = [
    (0.0, 2, "0"), (-0.0, 2, "0"), (6.1e-4, 2, "6.1e-4"), (-0.000612, 2, "-6.1e-4"), (0.25, 2, "0.25"),
    (0.5, 2, "0.50"), (0.01, 2, "0.010"), (0.00999, 2, "0.010"), (0.0099, 2, "9.9e-3"), (-0.004, 2, "-4.0e-3"),
    (3.14159, 2, "3.1"), (1234.0, 2, "1200"), (9999.0, 2, "1.0e4"), (123456.0, 2, "1.2e5"), (-1e-20, 2, "-1.0e-20"),
    (0.69314718, 4, "0.6931"), (0.123456789, 6, "0.123457"), (97.5, 3, "97.5"), (100.0, 3, "100"),
]


def test_every_number_on_the_page_follows_one_format_rule():
    node = _node()
    if node is None:
        pytest.skip("no Node.js to run the page's format.js")
    source = load_static()["format.js"].decode()
    cases = [[v, d] for v, d, _ in FORMATTED]
    script = "\n".join([
        source, f"const out = {json.dumps(cases)}.map(([v, d]) => formatNumber(v, d));",
        "out.push(...[-0, NaN, null, Infinity, 5e-5].map((v) => formatNumber(v)));",
        "process.stdout.write(JSON.stringify(out));"])
    done = subprocess.run([node, "-e", script], capture_output=True, text=True, timeout=60, check=True)
    shown = json.loads(done.stdout)
    assert shown[:len(FORMATTED)] == [text for _, _, text in FORMATTED]
    assert shown[len(FORMATTED):] == ["0", "—", "—", "∞", "5.0e-5"]  # 2 digits unless asked
    html = load_static()["index.html"].decode()
    assert html.index("/static/format.js") < html.index("/static/app.js")
