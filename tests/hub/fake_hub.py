"""A fake Hugging Face Hub over real loopback HTTP, for huggingface_hub pointed at it with HF_ENDPOINT.

What it implements, as the Hub answers (huggingface_hub 2.x reads exactly these):
- ``HEAD``/``GET /{owner}/{name}/resolve/{revision}/{file}``: ``X-Repo-Commit``; ``ETag`` (the git
  blob sha1 for a small file; for an LFS file the sha256 of its content, also as ``X-Linked-Etag``,
  with ``X-Linked-Size``); ``Content-Length``; ``Accept-Ranges`` and ``Range: bytes=N-`` answered 206
  with ``Content-Range``.
- ``POST /api/models/{owner}/{name}/paths-info/{revision}`` (``HfApi.get_paths_info``): public
  metadata, gated repos included, as on the Hub (``oid``, ``size``, ``lfs: {oid, size, pointerSize}``).
- ``GET /api/models/{owner}/{name}[/revision/{revision}]`` (``model_info``).
- Errors with the Hub's ``X-Error-Code``: a gated repo's files without ``Authorization: Bearer``
  answer 401 ``GatedRepo``; an unknown repo 404 ``RepoNotFound``; an unknown file 404 ``EntryNotFound``.

Faults, event-driven (never timed): ``cut_after[file] = N`` makes the next GET of that file send N
bytes (of a full Content-Length) and drop the connection; ``outage`` set makes every request answer
503 until cleared; ``outage_after_cut`` turns ``outage`` on at the moment of a cut (a cut followed by
an outage, the case where huggingface_hub's own retries give up); ``hold_after[file] = N`` sends N
bytes, sets ``held`` and waits for the test to set ``release`` before going on. ``corrupt[file]``
serves other bytes than those the metadata describes. ``requests`` records (method, path, Range).
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import parse_qs, unquote, urlsplit

COMMIT = "c0ffee" + "0" * 34


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()


@dataclass
class Repo:
    files: dict[str, bytes] = field(default_factory=dict)
    lfs: set[str] = field(default_factory=set)  # names stored in LFS (sha256 metadata)
    gated: bool = False


class FakeHub:
    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.token = "hf_fake_token"
        self.cut_after: dict[str, int] = {}
        self.hold_after: dict[str, int] = {}
        self.corrupt: dict[str, bytes] = {}
        self.outage = threading.Event()
        self.outage_after_cut = False
        self.held = threading.Event()
        self.release = threading.Event()
        self.requests: list[tuple[str, str, str | None]] = []
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def add(self, repo_id: str, files: dict[str, bytes], *, lfs: set[str] | None = None, gated: bool = False) -> Repo:
        repo = self.repos.setdefault(repo_id, Repo(gated=gated))
        repo.files.update(files)
        repo.lfs |= set(lfs or ())
        repo.gated = gated
        return repo

    def env(self, hf_home: object) -> dict[str, str]:
        """The environment that points huggingface_hub at this fake (no token, online)."""
        return {"HF_ENDPOINT": self.url, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "0", "HF_TOKEN": "",
                "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1", "HF_HUB_ETAG_TIMEOUT": "5",
                "HF_HUB_DOWNLOAD_TIMEOUT": "30"}

    def gets(self, filename: str) -> list[str | None]:
        """The Range headers of the GETs of ``filename`` so far (None: the whole file)."""
        return [rng for method, path, rng in self.requests if method == "GET" and path.endswith("/" + filename)
                and "/resolve/" in path]

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    # ---- the server ---------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                hub._serve(self, "HEAD")

            def do_GET(self) -> None:
                hub._serve(self, "GET")

            def do_POST(self) -> None:
                hub._serve(self, "POST")

        return Handler

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes = b"", *,
              head: bool = False) -> None:
        h.send_response(status)
        for key, value in headers.items():
            h.send_header(key, value)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if not head:
            h.wfile.write(body)

    def _error(self, h: BaseHTTPRequestHandler, status: int, code: str, message: str, head: bool) -> None:
        body = json.dumps({"error": message}).encode()
        self._send(h, status, {"X-Error-Code": code, "X-Error-Message": message, "Content-Type": "application/json",
                               "X-Request-Id": "fake"}, body, head=head)

    def _serve(self, h: BaseHTTPRequestHandler, method: str) -> None:
        path = unquote(urlsplit(h.path).path)
        length = int(h.headers.get("Content-Length") or 0)
        payload = h.rfile.read(length) if length else b""
        with self._lock:
            self.requests.append((method, path, h.headers.get("Range")))
        head = method == "HEAD"
        if self.outage.is_set():
            self._send(h, 503, {"Content-Type": "text/plain"}, b"Service Unavailable", head=head)
            return
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            self._api(h, "/".join(parts[2:4]), parts[4:], payload, head)
        elif len(parts) >= 5 and parts[2] == "resolve":
            self._resolve(h, "/".join(parts[:2]), "/".join(parts[4:]), method)
        else:
            self._error(h, 404, "RepoNotFound", "Repository not found", head)

    def _authorized(self, h: BaseHTTPRequestHandler) -> bool:
        return h.headers.get("Authorization") == f"Bearer {self.token}"

    def _api(self, h: BaseHTTPRequestHandler, repo_id: str, rest: list[str], payload: bytes, head: bool) -> None:
        repo = self.repos.get(repo_id)
        if repo is None:
            self._error(h, 404, "RepoNotFound", "Repository not found", head)
            return
        if rest[:1] == ["paths-info"]:
            wanted = parse_qs(payload.decode())["paths"] if payload else []
            infos = []
            for name in wanted:
                if name not in repo.files:
                    continue
                data = repo.files[name]
                if name in repo.lfs:
                    info = {"type": "file", "path": name, "size": len(data), "oid": git_blob_sha1(name.encode()),
                            "lfs": {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}}
                else:
                    info = {"type": "file", "path": name, "size": len(data), "oid": git_blob_sha1(data)}
                infos.append(info)
            self._send(h, 200, {"Content-Type": "application/json"}, json.dumps(infos).encode(), head=head)
            return
        info = {"id": repo_id, "modelId": repo_id, "sha": COMMIT, "private": False, "gated": "manual" if repo.gated else False,
                "siblings": [{"rfilename": name} for name in sorted(repo.files)], "tags": [], "downloads": 0, "likes": 0}
        self._send(h, 200, {"Content-Type": "application/json"}, json.dumps(info).encode(), head=head)

    def _resolve(self, h: BaseHTTPRequestHandler, repo_id: str, filename: str, method: str) -> None:
        head = method == "HEAD"
        repo = self.repos.get(repo_id)
        if repo is None:
            self._error(h, 404, "RepoNotFound", "Repository not found", head)
            return
        if repo.gated and not self._authorized(h):
            self._error(h, 401, "GatedRepo", f"Access to model {repo_id} is restricted. You must have access to it "
                        f"and be authenticated to access it. Please log in.", head)
            return
        if filename not in repo.files:
            self._error(h, 404, "EntryNotFound", f"{filename} does not exist on \"main\"", head)
            return
        data = repo.files[filename]
        headers = {"X-Repo-Commit": COMMIT, "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
        if filename in repo.lfs:
            sha = hashlib.sha256(data).hexdigest()
            headers.update({"ETag": f'"{sha}"', "X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(len(data))})
        else:
            headers["ETag"] = f'"{git_blob_sha1(data)}"'
        served = self.corrupt.get(filename, data)
        start, status = 0, 200
        rng = h.headers.get("Range")
        if rng and rng.startswith("bytes=") and not head:
            start = int(rng[len("bytes="):].split("-")[0] or 0)
            if start >= len(served):
                self._send(h, 416, {"Content-Range": f"bytes */{len(served)}"})
                return
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(served) - 1}/{len(served)}"
        body = served[start:]
        h.send_response(status)
        for key, value in headers.items():
            h.send_header(key, value)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if head:
            return
        hold = self.hold_after.pop(filename, None)
        cut = self.cut_after.pop(filename, None)
        if hold is not None:
            h.wfile.write(body[:hold])
            h.wfile.flush()
            self.held.set()
            self.release.wait()
            body = body[hold:]
            cut = None if cut is None else max(cut - hold, 0)
        if cut is not None:
            h.wfile.write(body[:cut])
            h.wfile.flush()
            if self.outage_after_cut:
                self.outage.set()
            h.close_connection = True
            import socket
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        h.wfile.write(body)
