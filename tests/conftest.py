from __future__ import annotations

import http.server
import json
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from peerread_fixtures import folder_listing, write_peerread  # noqa: E402


def pytest_configure(config):
    """``sys._called_from_test`` makes peerbench.plugins load no installed entry point unless
    PEERBENCH_LOAD_PLUGINS names it, so a plugin pip-installed here (peerbench-distill, say) cannot
    change what a test sees. A test opts in by setting that variable, or registers a plugin object
    itself (``echo_plugin``); subprocess tests run a fresh interpreter, which loads entry points."""
    sys._called_from_test = True


def pytest_collection_modifyitems(config, items):
    """``-m fast`` leaves out the tests marked slow, though their module is marked fast as a whole."""
    if config.getoption("markexpr") != "fast":
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """Every test gets its own cache dir and working dir; no user data is read or written."""
    home = tmp_path / "home"
    monkeypatch.setenv("PEERBENCH_HOME", str(home))
    monkeypatch.setenv("PEERBENCH_HTTP_BACKOFF", "0.01")
    monkeypatch.delenv("PEERBENCH_DATA", raising=False)
    monkeypatch.delenv("PEERBENCH_LOAD_PLUGINS", raising=False)  # a developer's shell must not opt tests in
    monkeypatch.delenv("PEERBENCH_PEERREAD_URL", raising=False)
    monkeypatch.delenv("PEERBENCH_PEERREAD_LISTING_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    yield home


@pytest.fixture(scope="session")
def peerread_root(tmp_path_factory) -> Path:
    return write_peerread(tmp_path_factory.mktemp("peerread") / "data")


class FixtureServer:
    """PeerRead's URL layout on 127.0.0.1, with fault injection and a count of every request."""

    def __init__(self, root: Path):
        self.root = root
        self.hits: Counter[str] = Counter()
        self.missing: set[str] = set()
        self.truncated: set[str] = set()
        self.flaky: Counter[str] = Counter()  # rel -> how many 503s before it works
        self.slow: set[str] = set()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                path = self.path.split("?")[0]
                if path.startswith("/contents/data/"):  # GitHub's contents API for one folder
                    server.hits["listing:" + path] += 1
                    return self._send(200, json.dumps(folder_listing(server.root, path.removeprefix(
                        "/contents/data/"))).encode())
                rel = path.removeprefix("/data/")
                server.hits[rel] += 1
                if rel in server.slow:
                    time.sleep(0.3)
                if rel in server.missing:
                    return self._send(404, b"404: Not Found")
                if server.flaky[rel] > 0:
                    server.flaky[rel] -= 1
                    return self._send(503, b"busy", {"Retry-After": "0"})
                file = server.root / rel
                if not file.is_file():
                    return self._send(404, b"404: Not Found")
                body = file.read_bytes()
                if rel in server.truncated:
                    body = body[: len(body) // 2]
                return self._send(200, body)

            def _send(self, status, body, headers=None):
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def peerread_server(peerread_root, monkeypatch):
    server = FixtureServer(peerread_root)
    monkeypatch.setenv("PEERBENCH_PEERREAD_URL", server.url + "/data")
    monkeypatch.setenv("PEERBENCH_PEERREAD_LISTING_URL", server.url + "/contents")
    yield server
    server.close()


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random Llama-style chat model with a locally trained tokenizer (tests/tiny_model.py)."""
    from tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model") / "tiny-reviewer")


@pytest.fixture(scope="session")
def echo_site(tmp_path_factory) -> Path:
    """The example plugin installed with pip, as a user would, into a folder of its own."""
    import subprocess

    target = tmp_path_factory.mktemp("echo-site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(target), str(REPO / "examples" / "peerbench-echo")], check=True)
    return target


@pytest.fixture
def echo_plugin(echo_site):
    """The example plugin registered in this process (llm-style), unregistered afterwards."""
    from peerbench import plugins, registry

    sys.path.insert(0, str(echo_site))
    import peerbench_echo

    plugins.load_plugins()
    plugins.pm.register(peerbench_echo, name="echo")
    registry.reset()
    try:
        yield peerbench_echo
    finally:
        plugins.pm.unregister(name="echo")
        registry.reset()
        sys.path.remove(str(echo_site))


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("PEERBENCH_")}
    env.update({"PEERBENCH_HOME": str(home), "PYTHONUNBUFFERED": "1"}, **extra)
    return env


def run_cli(args: list[str], env: dict[str, str], **kwargs):
    import subprocess

    return subprocess.run([sys.executable, "-m", "peerbench.cli", *args], env=env, capture_output=True, text=True,
                          timeout=kwargs.pop("timeout", 120), **kwargs)


@pytest.fixture(scope="session")
def distill_site(tmp_path_factory):
    """The bundled distillation plugin, pip-installed as a user would, into a folder for PYTHONPATH."""
    import subprocess

    target = tmp_path_factory.mktemp("distill-site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(target), str(REPO / "plugins" / "peerbench-distill")], check=True)
    return target


@pytest.fixture
def inline_plugin():
    """Register a plugin object for one test, llm-style; the registries are rebuilt around it."""
    from peerbench import plugins, registry

    registered = []

    def register(obj, name):
        plugins.load_plugins()
        plugins.pm.register(obj, name=name)
        registered.append(name)
        registry.reset()

    yield register
    for name in registered:
        plugins.pm.unregister(name=name)
    plugins.failures[:] = [f for f in plugins.failures if f.name not in registered]
    registry.reset()
