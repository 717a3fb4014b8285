"""A polite Danbooru client: honest User-Agent, shared pacing, bounded retries, clear errors.

Credentials come only from the environment (DANBOORU_LOGIN / DANBOORU_API_KEY) and travel as HTTP
basic auth; they are never logged, written or echoed, and `redact` strips the key from any message.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator

from swimlatent_wrap import __version__
from swimlatent_wrap.errors import UserError

MAX_TRIES = 5


class TransientError(Exception):
    """A failure worth retrying (429, 5xx, timeout, dropped connection, truncated body)."""


class PageCapError(UserError):
    """HTTP 410: past the account's numbered-page cap."""


class Pacer:
    """A token bucket of capacity one shared by every thread: at most ``rate`` requests per second."""

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


@dataclass
class Credentials:
    login: str | None
    api_key: str | None

    @classmethod
    def from_env(cls) -> "Credentials":
        login = os.environ.get("DANBOORU_LOGIN") or None
        key = os.environ.get("DANBOORU_API_KEY") or None
        if bool(login) != bool(key):
            raise UserError("set both DANBOORU_LOGIN and DANBOORU_API_KEY (or neither, to search anonymously)")
        return cls(login, key)


def api_root(recipe_root: str | None) -> str:
    root = os.environ.get("DANBOORU_API_URL") or recipe_root or "https://danbooru.donmai.us"
    return root.rstrip("/")


def user_agent(login: str | None) -> str:
    return f"swimlatent/{__version__} (by {login})" if login else f"swimlatent/{__version__}"


class Client:
    def __init__(self, root: str, *, rate: float = 1.0, credentials: Credentials | None = None,
                 timeout: float = 30.0, backoff: float = 1.0, max_backoff: float = 60.0,
                 stop: threading.Event | None = None) -> None:
        self.root = root.rstrip("/")
        self.credentials = credentials or Credentials(None, None)
        self.pacer = Pacer(rate)
        self.timeout = timeout
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.stop = stop or threading.Event()
        self._local = threading.local()
        self.requests_sent = 0

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
            if self.credentials.login and self.credentials.api_key:
                session.auth = (self.credentials.login, self.credentials.api_key)
            self._local.session = session
        return session

    def redact(self, text: str) -> str:
        text = str(text)
        key = self.credentials.api_key
        if key:
            text = text.replace(key, "***")
        return text

    def _sleep(self, seconds: float) -> None:
        if self.stop.wait(max(0.0, seconds)):
            raise KeyboardInterrupt

    def _retry_delay(self, attempt: int) -> float:
        return min(self.max_backoff, self.backoff * (2 ** (attempt - 1)))

    def _raise_for(self, status: int, url: str, body: str) -> None:
        where = self.redact(url)
        message = ""
        try:
            import json

            message = json.loads(body).get("message") or ""
        except Exception:
            message = body[:200].strip()
        message = self.redact(message)
        detail = f" (server said: {message})" if message else ""
        if status == 401:
            raise UserError(f"Danbooru refused the credentials (HTTP 401) at {where}{detail}",
                            "check DANBOORU_LOGIN and DANBOORU_API_KEY (an API key, not your password), or unset both to search anonymously")
        if status == 403:
            raise UserError(f"Danbooru denied access (HTTP 403) at {where}{detail}",
                            "the API key may lack the posts:index permission or an IP allowlist blocks this machine; "
                            "a Cloudflare challenge also answers 403: wait, lower [dataset.danbooru] requests_per_second")
        if status == 422:
            raise UserError(f"Danbooru rejected the search (HTTP 422) at {where}{detail}",
                            "too many tags for this account (order: counts as one): lower [dataset.danbooru] tag_limit "
                            "to what your account allows or use fewer [dataset.danbooru] tags")
        if status == 410:
            raise PageCapError(f"Danbooru's page cap was reached (HTTP 410) at {where}{detail}",
                            "set [dataset.danbooru] page_limit to your account's cap (1000 ordinary, 5000 Gold+) so collect windows by date before it")
        raise UserError(f"Danbooru answered HTTP {status} at {where}{detail}")

    def _request(self, url: str, params: dict | None, *, stream: bool, handle: Callable):
        """GET with pacing and retries; ``handle(response)`` reads it (may raise TransientError)."""
        import requests

        last = ""
        for attempt in range(1, MAX_TRIES + 1):
            if self.stop.is_set():
                raise KeyboardInterrupt
            self.pacer.wait(self.stop)
            if self.stop.is_set():
                raise KeyboardInterrupt
            delay = self._retry_delay(attempt)
            try:
                self.requests_sent += 1
                with self._session().get(url, params=params, timeout=self.timeout, stream=stream) as response:
                    status = response.status_code
                    if status == 429:
                        retry_after = response.headers.get("Retry-After")
                        try:
                            delay = max(0.0, float(retry_after)) if retry_after is not None else delay
                        except ValueError:
                            pass
                        last = "HTTP 429 (rate limited)"
                    elif status >= 500:
                        last = f"HTTP {status}"
                    elif status >= 400:
                        self._raise_for(status, response.url, response.text)
                    else:
                        return handle(response)
            except (requests.Timeout, requests.ConnectionError) as error:
                last = f"network: {type(error).__name__}"
            except requests.exceptions.ChunkedEncodingError as error:
                last = f"truncated body: {type(error).__name__}"
            except TransientError as error:
                last = str(error)
            if attempt < MAX_TRIES:
                self._sleep(delay)
        raise TransientError(self.redact(f"gave up on {url} after {MAX_TRIES} tries: {last}"))

    # -- the API ---------------------------------------------------------------------------------

    def posts(self, tags: list[str], page: int, limit: int = 200) -> list[dict] | None:
        """One page of /posts.json; None when the server says the page is past its cap (410)."""
        url = f"{self.root}/posts.json"
        params = {"tags": " ".join(tags), "limit": str(limit), "page": str(page)}

        def handle(response):
            try:
                data = response.json()
            except ValueError as error:
                raise TransientError(f"truncated or invalid JSON from {url}") from error
            if isinstance(data, dict) and data.get("success") is False:
                raise UserError(self.redact(f"Danbooru refused the search: {data.get('message')}"))
            if not isinstance(data, list):
                raise TransientError(f"unexpected JSON from {url}")
            return data

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
            if expected is not None and expected.isdigit() and int(expected) != size:
                raise TransientError(f"truncated body: {size} of {expected} bytes")
            return size

        return self._request(url, None, stream=True, handle=handle)
