"""A minimal Language Server Protocol client, to drive the real npm ``yaml-language-server``
(what VS Code's YAML extension runs) over stdio from a test.

``yaml_language_server()`` finds the server, installing it with npm into a cache folder
(``$MISPEC_CACHE`` or ``~/.cache/mispec``) the first time: the test setup needs only node
and npm.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

PACKAGE = "yaml-language-server"


def cache_dir() -> Path:
    return Path(os.environ.get("MISPEC_CACHE") or Path.home() / ".cache" / "mispec") / "npm"


def yaml_language_server() -> list[str]:
    """The command that starts the server on stdio (installing it when missing)."""
    node = shutil.which("node")
    npm = shutil.which("npm")
    assert node and npm, "node and npm are needed to run the yaml-language-server test"
    main = cache_dir() / "node_modules" / PACKAGE / "bin" / PACKAGE
    if not main.exists():
        cache_dir().mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [npm, "install", "--prefix", str(cache_dir()), "--no-audit", "--no-fund", PACKAGE],
            check=True,
            capture_output=True,
            timeout=300,
        )
    assert main.exists(), f"npm installed no {main}"
    return [node, str(main), "--stdio"]


class LanguageClient:
    """Send requests and notifications; answer the server's own requests; collect
    notifications (``publishDiagnostics``) by method."""

    def __init__(self, command: list[str], settings: dict[str, Any]):
        self.settings = settings
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        self._id = 0
        self._responses: dict[int, Any] = {}
        self.notifications: queue.Queue[dict[str, Any]] = queue.Queue()
        self._lock = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        self.proc.stdin.flush()

    def _read(self) -> None:
        out = self.proc.stdout
        assert out is not None
        while True:
            headers = {}
            while True:
                line = out.readline()
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    break
                k, _, v = line.decode().partition(":")
                headers[k.strip().lower()] = v.strip()
            msg = json.loads(out.read(int(headers["content-length"])))
            if "method" in msg and "id" in msg:  # a request from the server
                self._answer(msg)
            elif "method" in msg:
                self.notifications.put(msg)
            else:
                with self._lock:
                    self._responses[msg["id"]] = msg
                    self._lock.notify_all()

    def _answer(self, msg: dict[str, Any]) -> None:
        result: Any = None
        if msg["method"] == "workspace/configuration":
            items = msg["params"]["items"]
            result = [self.settings.get(i.get("section", ""), None) for i in items]
        self._send({"id": msg["id"], "result": result})

    def request(self, method: str, params: Any, timeout: float = 60) -> Any:
        self._id += 1
        rid = self._id
        self._send({"id": rid, "method": method, "params": params})
        deadline = time.monotonic() + timeout
        with self._lock:
            while rid not in self._responses:
                left = deadline - time.monotonic()
                assert left > 0, f"no answer to {method} in {timeout} s"
                self._lock.wait(left)
            msg = self._responses.pop(rid)
        assert "error" not in msg, msg
        return msg["result"]

    def notify(self, method: str, params: Any) -> None:
        self._send({"method": method, "params": params})

    def diagnostics(self, uri: str, timeout: float = 60) -> list[dict[str, Any]]:
        """The next non-empty diagnostics the server publishes for ``uri``."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no diagnostics for {uri} in {timeout} s"
            try:
                msg = self.notifications.get(timeout=left)
            except queue.Empty:
                continue
            params = msg.get("params", {})
            if (
                msg["method"] == "textDocument/publishDiagnostics"
                and params["uri"] == uri
                and params["diagnostics"]
            ):
                return list(params["diagnostics"])

    def close(self) -> None:
        try:
            self.request("shutdown", None, timeout=10)
            self.notify("exit", None)
            self.proc.wait(timeout=10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
