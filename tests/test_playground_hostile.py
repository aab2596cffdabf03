"""The playground's server against hostile or careless clients: each request gets a legible answer.

The guard's basic rules (foreign Host or Origin: 403, a form's Content-Type: 415, an
oversized body: 413, a network over the size caps: 400) are in test_playground_server.py.
"""

import http.client
import json
import threading
import time

import pytest

from chainrule.cli import main
from chainrule.errors import ConfigError
from chainrule.playground import serve
from chainrule.playground import server as playground_server
from chainrule.playground.server import is_loopback


@pytest.fixture
def pg():
    playground = serve(port=0, keepalive=0.2)
    yield playground
    playground.close()


def raw(pg, method, path, headers, body=b""):
    """Send headers exactly as given (repeats included); the status and the decoded JSON answer."""
    conn = http.client.HTTPConnection("127.0.0.1", pg.port, timeout=10)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null")
    finally:
        conn.close()


def post(pg, path, body: bytes):
    return raw(pg, "POST", path, [("Host", f"127.0.0.1:{pg.port}"), ("Content-Type", "application/json")], body)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.168.1.2"])
def test_serve_refuses_a_non_loopback_address_unless_told_to_allow_it(host):
    with pytest.raises(ConfigError, match=r"playground host: expected a loopback address.*allow_remote=True"):
        serve(host=host, port=0)


def test_loopback_addresses_are_the_ones_that_bind_without_allow_remote():
    # RFC 1122: all of 127.0.0.0/8 is loopback; RFC 4291: ::1 is IPv6's only loopback address
    assert all(map(is_loopback, ["127.0.0.1", "127.1.2.3", "localhost", "LOCALHOST", "::1"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "", "10.0.0.1", "::2", "evil.example", "128.0.0.1"]))
    with serve(host="127.0.0.2", port=0) as pg:
        assert pg._server.server_address[0] == "127.0.0.2"


def test_cli_refuses_a_wildcard_host_without_allow_remote(monkeypatch, capsys):
    calls = []

    def fake_serve(*args, **kwargs):  # never bind a reachable address in a test
        calls.append((args, kwargs))
        raise OSError("not bound in this test")

    monkeypatch.setattr(playground_server, "serve", fake_serve)
    assert main(["playground", "--no-browser", "--host", "0.0.0.0"]) == 2
    assert not calls
    err = capsys.readouterr().err
    assert "--host '0.0.0.0' is not a loopback address" in err and "--allow-remote" in err
    assert main(["playground", "--no-browser", "--host", "0.0.0.0", "--allow-remote"]) == 1  # the fake's OSError
    assert calls[0][1]["allow_remote"] is True


def test_a_second_host_or_origin_header_is_refused(pg):
    good_host, good_origin = ("Host", f"127.0.0.1:{pg.port}"), ("Origin", f"http://127.0.0.1:{pg.port}")
    assert raw(pg, "GET", "/api/state", [good_host])[0] == 200
    for headers in ([good_host, ("Host", "evil.example")],
                    [good_host, good_origin, ("Origin", "http://evil.example")],
                    [good_host, ("Content-Type", "application/json"), good_origin, ("Origin", "http://evil.example")]):
        method = "POST" if ("Content-Type", "application/json") in headers else "GET"
        status, answer = raw(pg, method, "/api/play" if method == "POST" else "/api/state", headers, b"{}")
        assert status == 400 and "more than one" in answer["error"], headers
    assert not pg.session.playing


@pytest.mark.parametrize("depth", [5_000, 30_000])
def test_json_nested_thousands_deep_gets_400_not_a_dropped_connection(pg, depth):
    body = b"[" * depth + b"]" * depth
    assert len(body) <= 64 * 1024  # under the body cap: the parser itself has to cope
    status, answer = post(pg, "/api/config", body)
    assert status == 400 and "nests too deeply" in answer["error"]
    body = b'{"a":' * (depth // 4) + b"1" + b"}" * (depth // 4)
    status, answer = post(pg, "/api/backprop", body)
    assert status == 400 and "nests too deeply" in answer["error"]
    assert post(pg, "/api/step", b"{}")[0] == 200  # and the server goes on


def test_an_integer_of_thousands_of_digits_gets_400(pg):
    for path, field in (("/api/config", "seed"), ("/api/backprop", "index")):
        status, answer = post(pg, path, b'{"%s": %s}' % (field.encode(), b"9" * 5000))
        assert status == 400 and "not valid JSON" in answer["error"], path


def test_an_unexpected_error_gets_500_with_its_name(pg, monkeypatch):
    def broken():
        raise KeyError("frame")

    monkeypatch.setattr(pg.session, "state", broken)
    status, answer = raw(pg, "GET", "/api/state", [("Host", f"127.0.0.1:{pg.port}")])
    assert status == 500 and answer["error"] == "internal error (KeyError: 'frame')"


def test_200_concurrent_requests_all_get_answers(pg):
    # With the standard library's listen backlog of 5 the kernel drops most of such a burst's
    # connections; their clients retry after 1, 3, 7, 15 s and some were still waiting after 20 s.
    n, results = 200, [None] * 200
    start = threading.Barrier(n + 1)

    def one(i):
        conn = http.client.HTTPConnection("127.0.0.1", pg.port, timeout=15)
        start.wait()
        try:
            conn.request("GET", "/api/state" if i % 2 else "/favicon.ico")
            resp = conn.getresponse()
            results[i] = (resp.status, len(resp.read()))
        except OSError as exc:
            results[i] = (repr(exc), 0)
        finally:
            conn.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    start.wait()
    began = time.monotonic()
    for t in threads:
        t.join(30)
    elapsed = time.monotonic() - began
    assert [r for r in results if r is None or r[0] != 200 or r[1] == 0] == []
    assert elapsed < 10, f"200 concurrent requests took {elapsed:.1f} s"
