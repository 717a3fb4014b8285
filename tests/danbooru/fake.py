"""A fake Danbooru over real loopback HTTP: /posts.json with the API's limits and metatags, and the files.

What it implements (reference/ecosystem.md §A): `limit` clamped to 1..200, numbered pages with a page
cap answering 410, the tag limit answering 422 (order: counts, free metatags do not), HTTP basic auth
answering 401 for a wrong key (403 when `forbid` is set), rating/status/age/date/filetype/score/
favcount/width/height/mpixels metatags with Danbooru's range syntax, plain and negated tags,
order:score/favcount (ties by id desc), deleted posts returned unless `-status:deleted`, hidden posts
without file_url/md5. Files are served under /data/ at an absolute URL on another host name
(`localhost` instead of `127.0.0.1`, like Danbooru's CDN), so a client that sends its key to the file
host is caught.

Faults are switched on per test through attributes: counters are consumed by the next matching
requests; `chaos` makes a seeded random share of all requests fail in one of the ways above;
`hold_files` holds file requests until the test sets `release` (and sets `held` when one waits).
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
YEAR = 31556952.0  # ActiveSupport's year, as Danbooru's age: uses
UNITS = {"s": 1, "min": 60, "h": 3600, "d": 86400, "w": 604800, "mo": 2629746, "yr": YEAR, "y": YEAR}


TIMEOUT_MESSAGES = ("The database timed out running your query.",  # application_controller.rb: QueryCanceled
                    "Your request took too long to complete and was canceled.")  # Rack::Timeout
LEVEL_NAMES = {0: "Anonymous", 10: "Restricted", 20: "Member", 30: "Gold", 31: "Platinum", 32: "Builder",
               35: "Contributor", 37: "Approver", 40: "Moderator", 50: "Admin", 60: "Owner"}


def level_tag_limit(level: int) -> float:
    return float("inf") if level >= 31 else 6 if level == 30 else 2


def png_bytes(seed: int, size: int = 16) -> bytes:
    from PIL import Image

    rng = random.Random(seed)
    image = Image.new("RGB", (size, size), (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    image.putpixel((seed % size, (seed // size) % size), (seed % 256, 0, 255))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _range(spec: str, value: float, parse=float) -> bool:
    """Danbooru's range syntax: 5, >5, >=5, <5, <=5, 5..10 (inclusive), 5...10 (end excluded), ..5, 5.., a,b."""
    if "," in spec and ".." not in spec:
        return any(_range(part, value, parse) for part in spec.split(","))
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
    for unit in sorted(UNITS, key=len, reverse=True):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * UNITS[unit]
    raise ValueError(text)


class Fake:
    def __init__(self, *, page_cap: int = 1000, tag_limit: int = 2, credentials: tuple[str, str] | None = None) -> None:
        self.posts: list[dict] = []
        self.files: dict[str, bytes] = {}      # md5 -> bytes served (may differ from md5 on purpose)
        self.page_cap = page_cap
        self.tag_limit = tag_limit
        self.credentials = credentials
        self.forbid = False                    # every API request answers 403
        self.ignore: set[str] = set()          # metatags this server pretends not to know (e.g. {"score"})
        # pagination_extension.rb: page == page_cap switches paging mode and comes back ascending
        # (`super.first(n).reverse`), as the real server does; False for a plain numbered last page
        self.reverse_last_page = True
        # faults: the next N matching requests
        self.fail_500 = 0
        self.fail_429 = 0
        self.retry_after = "1"
        self.truncate_json = 0
        self.truncate_file = 0
        self.drop_api = 0                      # close the connection without an answer
        self.drop_file = 0
        self.slow_api = 0                      # answer after `slow_seconds` (past the client's timeout)
        self.slow_seconds = 2.0
        self.timeout_broad = False             # 500 "database timed out" for a search spanning > `broad_days`
        self.broad_days = 400
        self.timeout_message = TIMEOUT_MESSAGES[0]  # or [1]: the request timeout's 500, which means the same
        # Danbooru's own rate limiter (rate_limit.rb), on every request (API and files) when `rate_limit_burst`
        # is set: a token bucket of that many points refilled at 1 point per `rate_limit_second` (1 s on the
        # real server; scaled down in tests), each request costing 1. A request finding it short answers 429
        # with no Retry-After; one made while limited (the bucket below 0) costs a further 1-second penalty,
        # down to -30 points at most. `rate_limited` counts the 429s, `penalised` the requests made while limited.
        self.rate_limit_burst: float | None = None
        self.rate_limit_second = 1.0
        self.rate_points = 0.0
        self.rate_updated = 0.0
        self.rate_limited = 0
        self.penalised = 0
        self.limited_at: list[float] = []  # time.monotonic() of each 429 the limiter answered
        self.arrivals: list[tuple[float, str]] = []  # (time.monotonic(), path) of every request, as it arrives
        # /profile.json: the account's level (User::Levels) when set, else 404; the search's tag limit then
        # follows the level (2 up to Member, 6 Gold, unlimited Platinum and up), as user.rb's tag_query_limit
        self.profile_level: int | None = None
        self.profile_requests = 0
        self.file_500 = {}                     # md5 -> answers 500 this many times
        self.chaos = 0.0                       # share of all requests that fail at random
        self.rng = random.Random(1234)
        self.file_latency = 0.0
        self.api_latency = 0.0
        # a gate: the next `hold_files` file requests wait until `release` is set; `held` is set when one
        # is waiting (a test's handshake: the collector is downloading now)
        self.hold_files = 0
        self.held = threading.Event()
        self.release = threading.Event()
        # what happened
        self.user_agents: list[str] = []
        self.file_requests: Counter = Counter()     # md5 -> requests
        self.file_sent: Counter = Counter()         # md5 -> complete bodies written
        self.file_auth: list[bool] = []             # whether a file request carried an Authorization header
        self.api_requests: list[str] = []
        self.api_queries: list[tuple[str, int]] = []
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None
        self.url = ""
        self.file_root = ""

    # -- data ------------------------------------------------------------------------------------

    def add_post(self, post_id: int, *, score: int, rating: str, days_old: float = 10, ext: str = "png",
                 deleted: bool = False, hidden: bool = False, bad_md5: bool = False, width: int = 1024,
                 height: int = 1024, tags: str = "1girl solo", artist: str = "some_artist", fav_count: int | None = None,
                 character: str = "", size: int = 16, data: bytes | None = None) -> dict:
        data = png_bytes(post_id, size) if data is None else data
        md5 = hashlib.md5(data).hexdigest()
        self.files[md5] = data + b"corrupt" if bad_md5 else data
        created = NOW - dt.timedelta(days=days_old)
        post = {
            "id": post_id, "score": score, "fav_count": score // 2 if fav_count is None else fav_count,
            "rating": rating, "md5": md5, "file_ext": ext, "file_size": len(data),
            "image_width": width, "image_height": height, "is_deleted": deleted, "is_banned": hidden,
            "created_at": created.astimezone(dt.timezone(dt.timedelta(hours=-4))).isoformat(timespec="milliseconds"),
            "tag_string": " ".join(t for t in (tags, character, "original", artist, "highres") if t),
            "tag_string_general": tags, "tag_string_artist": artist, "tag_string_character": character,
            "tag_string_copyright": "original", "tag_string_meta": "highres",
            "file_url": f"/data/{md5}.{ext}", "source": "",
        }
        if hidden:
            del post["file_url"], post["md5"]
        self.posts.append(post)
        return post

    def eligible(self, ratings: str, *, min_pixels: int = 0, max_days: float = 4 * 365.2425, exts=("png", "jpg", "webp"),
                 order: str = "score") -> list[dict]:
        """Posts a correct collector may take for ``ratings`` ("g" or "sqe"), in Danbooru's order."""
        out = [p for p in self.posts if p["rating"] in ratings and not p["is_deleted"] and "md5" in p
               and p["file_ext"] in exts and p["image_width"] * p["image_height"] >= min_pixels
               and (NOW - dt.datetime.fromisoformat(p["created_at"])).total_seconds() < max_days * 86400
               and hashlib.md5(self.files[p["md5"]]).hexdigest() == p["md5"]]
        key = "score" if order == "score" else "fav_count"
        return sorted(out, key=lambda p: (-p[key], -p["id"]))

    # -- search ----------------------------------------------------------------------------------

    def search(self, query: str) -> tuple[int, object]:
        terms = query.split()
        counted = [t for t in terms if not (":" in t and t.lstrip("-~").split(":", 1)[0] in FREE)]
        tag_limit = self.tag_limit if self.profile_level is None else level_tag_limit(self.profile_level)
        if len(counted) > tag_limit:
            return 422, {"success": False, "message": f"You cannot search for more than {tag_limit} tags at a time."}
        result = list(self.posts)
        order, span = None, None
        for term in terms:
            neg = term.startswith("-")
            name, colon, value = term.lstrip("-").partition(":")
            if name == "order":
                order = value
                continue
            if colon and name in self.ignore:
                continue
            if not colon:
                pred = lambda p, t=name: t in p["tag_string"].split()  # noqa: E731
            elif name == "rating":
                pred = lambda p, v=value: p["rating"] in [x[0] for x in v.split(",")]  # noqa: E731
            elif name == "status":
                pred = lambda p, v=value: (v == "deleted") == p["is_deleted"] if v in ("deleted", "active") else True  # noqa: E731
            elif name == "age":  # reversed: age:<4y = created within 4 years
                span = span or (_age_seconds(value.lstrip("<>=")) / 86400)
                pred = lambda p, v=value: _range(v, (NOW - dt.datetime.fromisoformat(p["created_at"])).total_seconds(), _age_seconds)  # noqa: E731
            elif name == "date":
                if "..." in value:
                    a, b = value.split("...")
                    span = (dt.date.fromisoformat(b) - dt.date.fromisoformat(a)).days
                pred = lambda p, v=value: _range(v, dt.datetime.fromisoformat(p["created_at"]).date().toordinal(),  # noqa: E731
                                                 lambda s: dt.date.fromisoformat(s).toordinal())
            elif name == "filetype":
                pred = lambda p, v=value: p["file_ext"] in v.split(",")  # noqa: E731
            elif name == "score":
                pred = lambda p, v=value: _range(v, p["score"])  # noqa: E731
            elif name == "favcount":
                pred = lambda p, v=value: _range(v, p["fav_count"])  # noqa: E731
            elif name == "width":
                pred = lambda p, v=value: _range(v, p["image_width"])  # noqa: E731
            elif name == "height":
                pred = lambda p, v=value: _range(v, p["image_height"])  # noqa: E731
            elif name == "mpixels":
                pred = lambda p, v=value: _range(v, p["image_width"] * p["image_height"] / 1e6)  # noqa: E731
            else:
                pred = lambda p: True  # noqa: E731
            result = [p for p in result if bool(pred(p)) != neg]
        if self.timeout_broad and not counted[:-1 if order else None] and (span is None or span > self.broad_days):
            return 500, {"success": False, "message": self.timeout_message}
        if order == "score":
            result.sort(key=lambda p: (-p["score"], -p["id"]))
        elif order == "favcount":
            result.sort(key=lambda p: (-p["fav_count"], -p["id"]))
        else:
            result.sort(key=lambda p: -p["id"])
        return 200, result

    # -- server ----------------------------------------------------------------------------------

    def _rate_limit(self) -> bool:
        """Danbooru's RateLimit.create_or_update! for one request of cost 1: whether it is limited."""
        with self.lock:
            if self.rate_limit_burst is None:
                return False
            now = time.monotonic()
            burst, floor = self.rate_limit_burst, -30.0
            refilled = self.rate_points + (now - self.rate_updated) / self.rate_limit_second
            self.rate_updated = now
            limited = min(burst, refilled) - 1 < 0
            # limited already (below 0): a 1-second penalty (rate × 1 s = 1 point); else the cost, 1 point
            self.penalised += refilled < 0
            self.rate_points = max(floor, min(burst, refilled) - 1)
            self.rate_limited += limited
            if limited:
                self.limited_at.append(now)
            return limited

    def _chaos(self) -> str | None:
        with self.lock:
            if self.chaos and self.rng.random() < self.chaos:
                return self.rng.choice(["500", "429", "drop", "truncate"])
        return None

    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stalls

            def log_message(self, *a):
                pass

            def send(self, status, body: bytes, ctype="application/json", headers=(), length=None):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body) if length is None else length))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
                    self.close_connection = True
                    return False
                if length is not None and length != len(body):
                    self.close_connection = True
                    return False
                return True

            def drop(self):
                self.close_connection = True

            def do_GET(self):
                with fake.lock:
                    fake.user_agents.append(self.headers.get("User-Agent", ""))
                    fake.arrivals.append((time.monotonic(), self.path))
                url = urlparse(self.path)
                if fake._rate_limit():  # no Retry-After, as Danbooru's own 429
                    return self.send(429, b'{"success":false,"error":"RateLimiter::RateLimitError","message":'
                                          b'"You\'re doing that too fast. Wait a minute and try again."}')
                if url.path == "/profile.json" and fake.profile_level is not None:
                    return self.profile()
                if url.path.startswith("/data/"):
                    return self.file(url.path[len("/data/"):])
                if url.path == "/posts.json":
                    return self.api(parse_qs(url.query))
                self.send(404, b'{"success":false,"message":"not found"}')

            def profile(self):
                with fake.lock:
                    fake.profile_requests += 1
                level, login = 0, None  # no credentials: the anonymous user
                if "Authorization" in self.headers:
                    login, key = base64.b64decode(self.headers["Authorization"].split()[1]).decode().split(":", 1)
                    if fake.credentials is not None and (login, key) != fake.credentials:
                        return self.send(401, b'{"success":false,"message":"Invalid API key"}')
                    level = fake.profile_level
                limit = level_tag_limit(level)  # Float::INFINITY is null in Rails' JSON
                body = {"id": 1 if login else None, "name": login or "Anonymous", "level": level,
                        "level_string": LEVEL_NAMES.get(level, ""), "tag_query_limit": None if limit == float("inf") else limit,
                        "page_limit": 5000 if level >= 30 else 1000}
                return self.send(200, json.dumps(body).encode())

            def file(self, name):
                md5 = name.split(".")[0]
                chaos = fake._chaos()
                with fake.lock:
                    fake.file_requests[md5] += 1
                    fake.file_auth.append("Authorization" in self.headers)
                    drop = fake.drop_file > 0 or chaos == "drop"
                    fake.drop_file -= fake.drop_file > 0
                    truncate = not drop and (fake.truncate_file > 0 or chaos == "truncate")
                    fake.truncate_file -= truncate and fake.truncate_file > 0
                    fail = fake.file_500.get(md5, 0) > 0 or chaos == "500"
                    if fake.file_500.get(md5, 0) > 0:
                        fake.file_500[md5] -= 1
                    hold = fake.hold_files > 0
                    fake.hold_files -= hold
                if hold:
                    fake.held.set()
                    fake.release.wait(120)
                time.sleep(fake.file_latency)
                data = fake.files.get(md5)
                if drop:
                    return self.drop()
                if chaos == "429":
                    return self.send(429, b"slow down", "text/plain", headers=[("Retry-After", "0")])
                if fail:
                    return self.send(500, b"oops", "text/plain")
                if data is None:
                    return self.send(404, b"not found", "text/plain")
                if truncate:
                    return self.send(200, data[: len(data) // 2], "image/png", length=len(data))
                if self.send(200, data, "image/png"):
                    with fake.lock:
                        fake.file_sent[md5] += 1

            def api(self, params):
                time.sleep(fake.api_latency)
                query = params.get("tags", [""])[0]
                chaos = fake._chaos()
                with fake.lock:
                    fake.api_requests.append(self.path)
                    if fake.drop_api > 0 or chaos == "drop":
                        fake.drop_api -= fake.drop_api > 0
                        return self.drop()
                    if fake.fail_429 > 0 or chaos == "429":
                        fake.fail_429 -= fake.fail_429 > 0
                        return self.send(429, b'{"success":false,"message":"You\'re doing that too fast."}',
                                         headers=[("Retry-After", fake.retry_after if chaos is None else "0")])
                    if fake.fail_500 > 0 or chaos == "500":
                        fake.fail_500 -= fake.fail_500 > 0
                        return self.send(500, b'{"success":false,"message":"The database timed out running your query."}')
                    slow = fake.slow_api > 0
                    fake.slow_api -= slow
                    truncate = fake.truncate_json > 0 or chaos == "truncate"
                    fake.truncate_json -= fake.truncate_json > 0
                if slow:
                    time.sleep(fake.slow_seconds)
                if fake.forbid:
                    return self.send(403, b'{"success":false,"message":"Access denied"}')
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
                with fake.lock:
                    fake.api_queries.append((query, page))
                chunk = []
                for post in result[(page - 1) * limit: page * limit]:
                    post = dict(post)
                    if "file_url" in post:
                        post["file_url"] = fake.file_root + post["file_url"]
                    chunk.append(post)
                if fake.reverse_last_page and page == fake.page_cap:
                    chunk.reverse()
                body = json.dumps(chunk).encode()
                if truncate:
                    return self.send(200, body[: len(body) // 2], length=len(body))
                self.send(200, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{port}"
        self.file_root = f"http://localhost:{port}"  # another host name, as Danbooru's files come from its CDN
        return self.url

    def stop(self) -> None:
        self.release.set()  # no request left waiting on the gate
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
