"""A fake Danbooru over real loopback HTTP: /posts.json with the API's limits and metatags, and /data/ files.

Faults are switched on per test through attributes (counters consumed by each matching request).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import random
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

FREE = {"status", "rating", "limit", "is", "id", "date", "age", "filesize", "filetype", "parent", "child", "md5",
        "width", "height", "duration", "mpixels", "ratio", "score", "upvote", "downvotes", "favcount", "embedded",
        "tagcount", "pixiv_id", "pixiv"}
NOW = dt.datetime.now(dt.timezone.utc)


def png_bytes(seed: int) -> bytes:
    from PIL import Image

    rng = random.Random(seed)
    image = Image.new("RGB", (16, 16), (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    image.putpixel((seed % 16, (seed // 16) % 16), (seed % 256, 0, 255))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _range(spec: str, value: float, parse=float) -> bool:
    if "..." in spec:
        a, b = spec.split("...", 1)
        return (not a or value >= parse(a)) and (not b or value < parse(b))
    if ".." in spec:
        a, b = spec.split("..", 1)
        return (not a or value >= parse(a)) and (not b or value <= parse(b))
    for op, fn in ((">=", lambda x, y: x >= y), ("<=", lambda x, y: x <= y), (">", lambda x, y: x > y), ("<", lambda x, y: x < y)):
        if spec.startswith(op):
            return fn(value, parse(spec[len(op):]))
    return value == parse(spec)


def _age_seconds(text: str) -> float:
    for unit, secs in (("mo", 30.4375 * 86400), ("y", 365.25 * 86400), ("w", 7 * 86400), ("d", 86400), ("h", 3600)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * secs
    raise ValueError(text)


class Fake:
    def __init__(self, posts: list[dict] | None = None, *, page_cap: int = 1000, tag_limit: int = 2,
                 credentials: tuple[str, str] | None = None) -> None:
        self.posts: list[dict] = posts or []
        self.files: dict[str, bytes] = {}      # md5 -> bytes served (may differ from md5 on purpose)
        self.page_cap = page_cap
        self.tag_limit = tag_limit
        self.credentials = credentials
        self.fail_500 = 0            # next N API requests answer 500
        self.fail_429 = 0            # next N API requests answer 429 with Retry-After
        self.retry_after = "1"
        self.truncate_json = 0       # next N API answers are cut short
        self.truncate_file = 0       # next N file answers are cut short (Content-Length kept)
        self.file_latency = 0.0
        self.api_latency = 0.0
        self.user_agents: list[str] = []
        self.file_requests: Counter = Counter()
        self.api_requests: list[str] = []
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    # -- data ------------------------------------------------------------------------------------

    def add_post(self, post_id: int, *, score: int, rating: str, days_old: float = 10, ext: str = "png",
                 deleted: bool = False, hidden: bool = False, bad_md5: bool = False, width: int = 1024,
                 height: int = 1024, tags: str = "1girl solo", artist: str = "some_artist") -> dict:
        data = png_bytes(post_id)
        md5 = hashlib.md5(data).hexdigest()
        self.files[md5] = data + b"corrupt" if bad_md5 else data
        created = NOW - dt.timedelta(days=days_old)
        post = {
            "id": post_id, "score": score, "rating": rating, "md5": md5, "file_ext": ext, "file_size": len(data),
            "image_width": width, "image_height": height, "is_deleted": deleted, "is_banned": hidden,
            "created_at": created.isoformat(timespec="milliseconds"),
            "tag_string": f"{tags} {artist}", "tag_string_general": tags, "tag_string_artist": artist,
            "tag_string_character": "", "tag_string_copyright": "original", "tag_string_meta": "highres",
            "file_url": f"/data/{md5}.{ext}",
        }
        if hidden:
            del post["file_url"], post["md5"]
        self.posts.append(post)
        return post

    # -- search ----------------------------------------------------------------------------------

    def search(self, query: str) -> tuple[int, object]:
        terms = query.split()
        counted = [t for t in terms if not (":" in t and t.lstrip("-~").split(":", 1)[0] in FREE)]
        if len(counted) > self.tag_limit:
            return 422, {"success": False, "message": f"You cannot search for more than {self.tag_limit} tags at a time."}
        result = list(self.posts)
        order = None
        for term in terms:
            neg = term.startswith("-")
            name, _, value = term.lstrip("-").partition(":")
            if name == "order":
                order = value
                continue
            if not _:
                pred = lambda p, t=name: t in p["tag_string"].split()  # noqa: E731
            elif name == "rating":
                pred = lambda p, v=value: p["rating"] in [x[0] for x in v.split(",")]  # noqa: E731
            elif name == "status":
                pred = lambda p, v=value: (v == "deleted") == p["is_deleted"] if v in ("deleted", "active") else True  # noqa: E731
            elif name == "age":
                pred = lambda p, v=value: _range(v, (NOW - dt.datetime.fromisoformat(p["created_at"])).total_seconds(), _age_seconds)  # noqa: E731  age:<4y = created within 4y
            elif name == "date":
                pred = lambda p, v=value: _range(v, dt.datetime.fromisoformat(p["created_at"]).date().toordinal(),  # noqa: E731
                                                 lambda s: dt.date.fromisoformat(s).toordinal())
            elif name == "filetype":
                pred = lambda p, v=value: p["file_ext"] in v.split(",")  # noqa: E731
            elif name == "score":
                pred = lambda p, v=value: _range(v, p["score"])  # noqa: E731
            elif name == "width":
                pred = lambda p, v=value: _range(v, p["image_width"])  # noqa: E731
            elif name == "height":
                pred = lambda p, v=value: _range(v, p["image_height"])  # noqa: E731
            elif name == "mpixels":
                pred = lambda p, v=value: _range(v, p["image_width"] * p["image_height"] / 1e6)  # noqa: E731
            else:
                pred = lambda p: True  # noqa: E731
            result = [p for p in result if bool(pred(p)) != neg]
        if order == "score":
            result.sort(key=lambda p: (-p["score"], -p["id"]))
        else:
            result.sort(key=lambda p: -p["id"])
        return 200, result

    # -- server ----------------------------------------------------------------------------------

    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def send(self, status, body: bytes, ctype="application/json", headers=(), length=None):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body) if length is None else length))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)
                if length is not None and length != len(body):
                    self.close_connection = True

            def do_GET(self):
                with fake.lock:
                    fake.user_agents.append(self.headers.get("User-Agent", ""))
                url = urlparse(self.path)
                if url.path.startswith("/data/"):
                    return self.file(url.path[len("/data/"):])
                if url.path == "/posts.json":
                    return self.api(parse_qs(url.query))
                self.send(404, b'{"success":false}')

            def file(self, name):
                md5 = name.split(".")[0]
                with fake.lock:
                    fake.file_requests[md5] += 1
                    truncate = fake.truncate_file > 0
                    fake.truncate_file -= truncate
                time.sleep(fake.file_latency)
                data = fake.files.get(md5)
                if data is None:
                    return self.send(404, b"not found", "text/plain")
                if truncate:
                    return self.send(200, data[: len(data) // 2], "image/png", length=len(data))
                self.send(200, data, "image/png")

            def api(self, params):
                time.sleep(fake.api_latency)
                query = params.get("tags", [""])[0]
                with fake.lock:
                    fake.api_requests.append(self.path)
                    if fake.fail_429 > 0:
                        fake.fail_429 -= 1
                        return self.send(429, b'{"success":false,"message":"You\'re doing that too fast."}',
                                         headers=[("Retry-After", fake.retry_after)])
                    if fake.fail_500 > 0:
                        fake.fail_500 -= 1
                        return self.send(500, b'{"success":false,"message":"The database timed out running your query."}')
                    truncate = fake.truncate_json > 0
                    fake.truncate_json -= truncate
                if fake.credentials is not None and "Authorization" in self.headers:
                    login, key = base64.b64decode(self.headers["Authorization"].split()[1]).decode().split(":", 1)
                    if (login, key) != fake.credentials:
                        return self.send(401, b'{"success":false,"message":"Invalid API key"}')
                try:
                    limit = max(1, min(200, int(params.get("limit", ["20"])[0])))
                    page = int(params.get("page", ["1"])[0])
                except ValueError:
                    return self.send(400, b'{"success":false}')
                if page > fake.page_cap:
                    return self.send(410, json.dumps({"success": False, "message": f"You cannot go beyond page {fake.page_cap}."}).encode())
                status, result = fake.search(query)
                if status != 200:
                    return self.send(status, json.dumps(result).encode())
                body = json.dumps(result[(page - 1) * limit: page * limit]).encode()
                if truncate:
                    return self.send(200, body[: len(body) // 2], length=len(body))
                self.send(200, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
