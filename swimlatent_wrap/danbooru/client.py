"""A polite Danbooru client: honest User-Agent, shared pacing, bounded retries, clear refusals.

Credentials come only from the environment (DANBOORU_LOGIN / DANBOORU_API_KEY) and travel as HTTP
basic auth, to the API's own host only (never to a file host such as the CDN); they are never logged,
written or echoed, and `redact` strips the key from any message that could carry it.

Retried (up to ``max_tries``, exponential backoff with jitter): 429 (waiting what Retry-After says, and
holding every other thread's requests too), 5xx, timeouts, dropped connections, truncated bodies.
Turned into one clear error saying what to change: 401, 403, 422, and 410 (the page cap, which the
search streams handle themselves).
"""

from __future__ import annotations

import email.utils
import json
import os
import random
import threading
import time
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlsplit

from swimlatent_wrap import __version__
from swimlatent_wrap.errors import UserError
from swimlatent_wrap.secrets import redact

DEFAULT_ROOT = "https://danbooru.donmai.us"
MAX_RETRY_AFTER = 900.0  # a Retry-After longer than this is not waited out: the run stops and says so


class TransientError(Exception):
    """A failure that outlived its retries (429, 5xx, timeout, dropped connection, truncated body)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class PageCapError(UserError):
    """HTTP 410: past the account's numbered-page cap."""


class FileGone(Exception):
    """A file URL answered 404/410/451: that post is recorded as failed, the crawl goes on."""


class Pacer:
    """A token bucket of capacity one shared by every thread: at most ``rate`` requests per second.
    ``hold`` pushes every thread's next request back (a 429 is about the client, not one request)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate and rate > 0 else 0.0
        self._lock = threading.Lock()
        self._next = 0.0

    def wait(self, stop: threading.Event | None = None) -> None:
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self.interval
        delay = slot - time.monotonic()
        if delay > 0:
            if stop is not None:
                stop.wait(delay)
            else:
                time.sleep(delay)

    def hold(self, seconds: float) -> None:
        with self._lock:
            self._next = max(self._next, time.monotonic() + seconds)


def network_reason(url: str, error: Exception) -> str:
    """A network failure in words, naming the host: requests' messages bury the cause in reprs."""
    import requests

    host = urlsplit(url).netloc or url
    text = str(error)
    if isinstance(error, requests.Timeout):
        return f"no answer from {host} within the timeout"
    if "Failed to resolve" in text or "Name or service not known" in text or "nodename nor servname" in text:
        return f"cannot resolve {urlsplit(url).hostname} (no network, or a wrong api_root / DANBOORU_API_URL?)"
    if "Connection refused" in text:
        return f"{host} refused the connection"
    if "Connection reset" in text or "RemoteDisconnected" in text or "Connection aborted" in text:
        return f"{host} dropped the connection"
    return f"cannot reach {host} ({type(error).__name__})"


@dataclass(frozen=True)
class Credentials:
    login: str | None
    api_key: str | None

    def __repr__(self) -> str:  # never shows the key, even in a traceback's locals
        return f"Credentials(login={self.login!r}, api_key={'***' if self.api_key else None})"

    @classmethod
    def from_env(cls) -> "Credentials":
        login = os.environ.get("DANBOORU_LOGIN") or None
        key = os.environ.get("DANBOORU_API_KEY") or None
        if bool(login) != bool(key):
            raise UserError("set both DANBOORU_LOGIN and DANBOORU_API_KEY (or neither, to search anonymously)")
        return cls(login, key)


def api_root(recipe_root: str | None) -> str:
    root = os.environ.get("DANBOORU_API_URL") or recipe_root or DEFAULT_ROOT
    root = root.strip().rstrip("/")
    if urlsplit(root).scheme not in ("http", "https"):
        raise UserError(f"Danbooru API root {root!r} is not an http(s) URL: fix [dataset.danbooru] api_root or DANBOORU_API_URL")
    return root


def user_agent(login: str | None) -> str:
    """`swimlatent/<version>`, naming the account when there is one (Danbooru's admins ask for that)."""
    return f"swimlatent/{__version__} (by {login})" if login else f"swimlatent/{__version__}"


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as delta-seconds or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class Client:
    def __init__(self, root: str, *, rate: float = 1.0, credentials: Credentials | None = None,
                 timeout: float = 30.0, max_tries: int = 6, backoff: float = 1.0, max_backoff: float = 60.0,
                 stop: threading.Event | None = None, notify: Callable[[str], None] | None = None) -> None:
        self.root = root.rstrip("/")
        self._api_host = urlsplit(self.root)[:2]
        self.credentials = credentials or Credentials(None, None)
        self.pacer = Pacer(rate)
        self.timeout = timeout
        self.max_tries = max(1, int(max_tries))
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.stop = stop or threading.Event()
        self._local = threading.local()
        self._count_lock = threading.Lock()
        self.requests_sent = 0
        self.retries = 0
        # told each retry and why, so a wait is never silent (the collect stage prints it on stderr)
        self.notify = notify or (lambda line: None)

    # -- plumbing --------------------------------------------------------------------------------

    @property
    def user_agent(self) -> str:
        return user_agent(self.credentials.login)

    def _session(self):
        session = getattr(self._local, "session", None)
        if session is None:
            import requests

            session = requests.Session()
            session.headers["User-Agent"] = self.user_agent
            session.headers["Accept"] = "application/json, */*"
            self._local.session = session
        return session

    def _auth_for(self, url: str):
        """Basic auth for the API host only: a file host (the CDN, a mirror) never sees the key."""
        if self.credentials.login and self.credentials.api_key and urlsplit(url)[:2] == self._api_host:
            return (self.credentials.login, self.credentials.api_key)
        return None

    def redact(self, text: str) -> str:
        return redact(str(text), [self.credentials.api_key or ""])

    def _sleep(self, seconds: float) -> None:
        if self.stop.wait(max(0.0, seconds)):
            raise KeyboardInterrupt

    def _retry_delay(self, attempt: int) -> float:
        delay = min(self.max_backoff, self.backoff * (2 ** (attempt - 1)))
        return delay * (0.75 + 0.5 * random.random())

    def _raise_for(self, status: int, url: str, body: str) -> None:
        where = self.redact(urlsplit(url).path or url)
        message = ""
        try:
            message = json.loads(body).get("message") or ""
        except Exception:
            message = "" if "<html" in body[:500].lower() else body[:200].strip()
        message = self.redact(" ".join(str(message).split()))[:300]
        detail = f" (server said: {message})" if message else ""
        if status == 401:
            raise UserError(f"Danbooru refused the credentials (HTTP 401) at {where}{detail}",
                            "check DANBOORU_LOGIN and DANBOORU_API_KEY (an API key from your Danbooru profile, not the "
                            "password), or unset both to search anonymously")
        if status == 403:
            raise UserError(f"Danbooru denied access (HTTP 403) at {where}{detail}",
                            "the API key may lack the posts:index permission or its IP allowlist excludes this machine; "
                            "Cloudflare also answers 403 when it challenges a client: wait, lower [dataset.danbooru] "
                            "requests_per_second, and set DANBOORU_LOGIN so the User-Agent names you")
        if status == 422:
            raise UserError(f"Danbooru rejected the search (HTTP 422) at {where}{detail}",
                            "too many tags for this account (order: counts as one): set [dataset.danbooru] tag_limit to what "
                            "your account allows (2 anonymous/Member, 6 Gold) or use fewer [dataset.danbooru] tags")
        if status == 410:
            raise PageCapError(f"Danbooru's page cap was reached (HTTP 410) at {where}{detail}",
                               "set [dataset.danbooru] page_limit to your account's cap (1000 ordinary, 5000 Gold+)")
        raise UserError(f"Danbooru answered HTTP {status} at {where}{detail}")

    def _request(self, url: str, params: dict | None, *, stream: bool, handle: Callable):
        """GET with pacing and retries; ``handle(response)`` reads it (may raise TransientError)."""
        import requests

        last, last_status = "", None
        for attempt in range(1, self.max_tries + 1):
            if self.stop.is_set():
                raise KeyboardInterrupt
            self.pacer.wait(self.stop)
            if self.stop.is_set():
                raise KeyboardInterrupt
            delay = self._retry_delay(attempt)
            try:
                with self._count_lock:
                    self.requests_sent += 1
                with self._session().get(url, params=params, timeout=self.timeout, stream=stream,
                                         auth=self._auth_for(url), allow_redirects=True) as response:
                    status = response.status_code
                    last_status = status
                    if status == 429:
                        waited = retry_after_seconds(response.headers.get("Retry-After"))
                        if waited is not None:
                            if waited > MAX_RETRY_AFTER:
                                raise UserError(f"Danbooru asks us to wait {waited:.0f} s (HTTP 429, Retry-After); stopping",
                                                "what was downloaded is kept: run collect again later, perhaps with a lower "
                                                "[dataset.danbooru] requests_per_second")
                            delay = waited
                        self.pacer.hold(delay)
                        last = "HTTP 429 (rate limited)"
                    elif status >= 500:
                        last = f"HTTP {status}" + self._message_of(response)
                    elif status >= 400:
                        if stream and status in (404, 410, 451):
                            raise FileGone(f"HTTP {status}")
                        self._raise_for(status, response.url, response.text)
                    else:
                        return handle(response)
            except requests.exceptions.ChunkedEncodingError as error:
                last, last_status = f"truncated body ({type(error).__name__})", None
            except (requests.Timeout, requests.ConnectionError) as error:
                last, last_status = network_reason(url, error), None
            except TransientError as error:
                last, last_status = str(error), None
            if attempt < self.max_tries:
                with self._count_lock:
                    self.retries += 1
                self.notify(self.redact(f"{urlsplit(url).path}: {last}; trying again in {delay:.0f} s "
                                        f"(try {attempt + 1} of {self.max_tries})"))
                self._sleep(delay)
        raise TransientError(self.redact(f"gave up on {urlsplit(url).path} after {self.max_tries} tries: {last}"),
                             status=last_status)

    @staticmethod
    def _message_of(response) -> str:
        try:
            message = response.json().get("message")
        except Exception:
            return ""
        return f" ({' '.join(str(message).split())[:200]})" if message else ""

    # -- the API ---------------------------------------------------------------------------------

    def posts(self, terms: list[str] | tuple[str, ...], page: int, limit: int = 200) -> list[dict] | None:
        """One page of /posts.json; None when the server says the page is past its cap (410)."""
        url = f"{self.root}/posts.json"
        params = {"tags": " ".join(terms), "limit": str(limit), "page": str(page)}

        def handle(response):
            try:
                data = response.json()
            except ValueError as error:
                raise TransientError("truncated or invalid JSON") from error
            if isinstance(data, dict) and data.get("success") is False:
                raise UserError(self.redact(f"Danbooru refused the search: {data.get('message')}"))
            if isinstance(data, dict) and isinstance(data.get("posts"), list):
                data = data["posts"]
            if not isinstance(data, list):
                raise TransientError("unexpected JSON (not a list of posts)")
            return [post for post in data if isinstance(post, dict)]

        try:
            return self._request(url, params, stream=False, handle=handle)
        except PageCapError:
            return None

    def download(self, url: str, write: Callable[[bytes], None], reset: Callable[[], None]) -> int:
        """Stream ``url`` through ``write`` (``reset`` before every try); returns bytes written."""

        def handle(response):
            reset()
            expected = response.headers.get("Content-Length")
            size = 0
            for chunk in response.iter_content(chunk_size=1 << 16):
                if self.stop.is_set():
                    raise KeyboardInterrupt
                write(chunk)
                size += len(chunk)
            if expected is not None and expected.isdigit() and int(expected) != size \
                    and not response.headers.get("Content-Encoding"):
                raise TransientError(f"truncated body: {size} of {expected} bytes")
            return size

        return self._request(url, None, stream=True, handle=handle)
