"""A polite Danbooru client: honest User-Agent, shared pacing, bounded retries, clear refusals.

Credentials come only from the environment (DANBOORU_LOGIN / DANBOORU_API_KEY) and travel as HTTP
basic auth, to the API's own host only (never to a file host such as the CDN); they are never logged,
written or echoed, and `redact` strips the key from any message that could carry it.

Retried (up to ``max_tries``, exponential backoff with jitter): a 429 with Retry-After (waiting what it
says, and holding every other thread's requests too), 5xx, timeouts, dropped connections, truncated bodies.
Turned into one clear error saying what to change: 401, 403, 422, and 410 (the page cap, which the
search streams handle themselves).

Danbooru's own 429 (`ApplicationController`, `RateLimiter`/`RateLimit`) sends no Retry-After; its body
says "Wait a minute and try again", and every request made while limited adds a 1 s penalty (30 s at
most). So a 429 without Retry-After starts ONE hold shared by every thread (``rate_limit_wait``, 60 s by
default): no request at all leaves while it lasts, a 429 from a request already in flight joins it
instead of starting another, and such holds do not use up ``max_tries``; the client gives up only once
``rate_limit_budget`` seconds of holds have been spent.

Two HTTP 500s mean "too slow": "The database timed out running your query." (a statement timeout) and
"Your request took too long to complete and was canceled." (the request timeout); `is_timeout_500`
recognises both, and a TransientError for either says "Danbooru timed out" and has ``timeout`` set.
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
RATE_LIMIT_WAIT = 60.0   # Danbooru's 429 says "Wait a minute and try again" and sends no Retry-After
RATE_LIMIT_BUDGET = 900.0  # seconds of such holds before a run gives up

# The two messages of Danbooru's HTTP 500s for a query or request that ran too long
# (ApplicationController#rescue_exception: ActiveRecord::QueryCanceled, Rack::Timeout::RequestTimeoutException).
STATEMENT_TIMEOUT_MESSAGE = "The database timed out running your query."
REQUEST_TIMEOUT_MESSAGE = "Your request took too long to complete and was canceled."


def is_timeout_500(status: int | None, message: object) -> bool:
    """Whether an answer (status, server message or error text) is one of Danbooru's "too slow" 500s:
    the statement timeout ("The database timed out running your query.") or the request timeout
    ("Your request took too long to complete and was canceled."; its HTML page spells it "cancelled").
    A narrower search helps with both; a server that is down is not helped and is not matched."""
    if status is not None and status != 500:
        return False
    text = " ".join(str(message or "").lower().split())
    return "timed out running your query" in text or ("took too long" in text and "cancel" in text) \
        or "danbooru timed out" in text


class TransientError(Exception):
    """A failure that outlived its retries (429, 5xx, timeout, dropped connection, truncated body).
    ``timeout``: it was one of Danbooru's "too slow" 500s (is_timeout_500), which a narrower search helps."""

    def __init__(self, message: str, status: int | None = None, timeout: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.timeout = timeout or (status == 500 and is_timeout_500(status, message))


def is_timeout_error(error: BaseException) -> bool:
    """Whether ``error`` (a TransientError from this client) was a Danbooru timeout 500, either wording."""
    return bool(getattr(error, "timeout", False)) or (
        getattr(error, "status", None) == 500 and is_timeout_500(500, str(error)))


class PageCapError(UserError):
    """HTTP 410: past the account's numbered-page cap."""


class FileGone(Exception):
    """A file URL answered 404/410/451: that post is recorded as failed, the crawl goes on."""


class Pacer:
    """A token bucket of capacity one shared by every thread: at most ``rate`` requests per second.
    ``hold`` pushes every thread's next request back (a 429 is about the client, not one request),
    including a thread already waiting for a slot that comes before the hold's end: it queues again
    behind the hold, so nothing at all is sent while one lasts."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate and rate > 0 else 0.0
        self._lock = threading.Lock()
        self._next = 0.0
        self._held_until = 0.0
        self._holds = 0  # how many holds were placed (a waiting thread sees whether one came meanwhile)

    def wait(self, stop: threading.Event | None = None) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                slot = max(now, self._next, self._held_until)
                self._next = slot + self.interval
                holds = self._holds
            delay = slot - time.monotonic()
            if delay > 0:
                if stop is not None:
                    if stop.wait(delay):
                        return
                else:
                    time.sleep(delay)
            with self._lock:
                if self._holds == holds or time.monotonic() >= self._held_until:
                    return
            # a hold began while this thread waited for its slot: queue again behind it

    def hold(self, seconds: float) -> float:
        """Hold every request for ``seconds`` from now (a longer hold already placed is kept); its end."""
        with self._lock:
            until = time.monotonic() + seconds
            if until > self._held_until:
                self._held_until = until
                self._holds += 1
            self._next = max(self._next, self._held_until)
            return self._held_until

    def held_until(self) -> float:
        with self._lock:
            return self._held_until


# User::Levels (app/models/user.rb) and User.tag_query_limit: 2 for Anonymous, Restricted and Member, 6 for
# Gold, unlimited for Platinum and up (and for Member and up while a promotion runs; /profile.json then
# says so in tag_query_limit).
LEVELS = {0: "Anonymous", 10: "Restricted", 20: "Member", 30: "Gold", 31: "Platinum", 32: "Builder",
          35: "Contributor", 37: "Approver", 40: "Moderator", 50: "Admin", 60: "Owner"}
GOLD, PLATINUM = 30, 31
DEFAULT_TAG_LIMIT = 2  # anonymous (and Member): what is assumed when the account is not known


def tag_limit_of_level(level: int) -> int:
    """Danbooru's tag limit for an account level; 0 = unlimited (Platinum and up)."""
    if level >= PLATINUM:
        return 0
    return 6 if level == GOLD else DEFAULT_TAG_LIMIT


def account_tag_limit(profile: dict) -> tuple[int, str]:
    """The tag limit an account's /profile.json gives (0 = unlimited), and the level in words.
    Danbooru sends its own ``tag_query_limit`` for the logged-in user (null when unlimited: Ruby's
    Float::INFINITY becomes null in JSON), which also covers a running promotion; without it the
    limit follows ``level``."""
    level = profile.get("level")
    fallback = LEVELS.get(level, f"level {level}") if isinstance(level, int) else "unknown level"
    level_name = str(profile.get("level_string") or fallback)
    if "tag_query_limit" in profile:
        value = profile["tag_query_limit"]
        if value is None or (isinstance(value, float) and value == float("inf")):
            return 0, level_name
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 1:
            return int(value), level_name
    if isinstance(level, int) and not isinstance(level, bool):
        return tag_limit_of_level(level), level_name
    return DEFAULT_TAG_LIMIT, level_name


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
                 stop: threading.Event | None = None, notify: Callable[[str], None] | None = None,
                 rate_limit_wait: float = RATE_LIMIT_WAIT, rate_limit_budget: float = RATE_LIMIT_BUDGET) -> None:
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
        # Danbooru's 429 without Retry-After: one shared hold of rate_limit_wait s, up to rate_limit_budget s
        self.rate_limit_wait = max(0.0, float(rate_limit_wait))
        self.rate_limit_budget = max(0.0, float(rate_limit_budget))
        self.rate_limit_held = 0.0  # seconds of such holds started so far
        self.rate_limit_holds = 0
        self._hold_lock = threading.Lock()
        self._rate_limit_spent = False
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
                            "your account allows (2 anonymous/Member, 6 Gold, 0 = no limit for Platinum and up; left unset, it is read "
                            "from the account when DANBOORU_LOGIN is set) or use fewer [dataset.danbooru] tags")
        if status == 410:
            raise PageCapError(f"Danbooru's page cap was reached (HTTP 410) at {where}{detail}",
                               "set [dataset.danbooru] page_limit to your account's cap (1000 ordinary, 5000 Gold+)")
        raise UserError(f"Danbooru answered HTTP {status} at {where}{detail}")

    def _budget_spent(self, url: str) -> TransientError:
        return TransientError(self.redact(
            f"gave up on {urlsplit(url).path}: still rate limited by Danbooru (HTTP 429) after "
            f"{self.rate_limit_held:g} s of holds ([dataset.danbooru] rate_limit_budget = "
            f"{self.rate_limit_budget:g})"), status=429)

    def _rate_limit_hold(self, url: str) -> None:
        """A 429 without Retry-After: start the one shared hold (or join the one already running, when
        this request was in flight as it began), then wait it out. Gives up past the budget."""
        with self._hold_lock:
            now = time.monotonic()
            if self.pacer.held_until() > now:  # another thread's 429 already holds everyone: join it
                until = self.pacer.held_until()
                line = None
            else:
                if self.rate_limit_held + self.rate_limit_wait > self.rate_limit_budget + 1e-9:
                    self._rate_limit_spent = True  # from now on nothing more is sent (no thread hammers)
                    raise self._budget_spent(url)
                self.rate_limit_held += self.rate_limit_wait
                self.rate_limit_holds += 1
                until = self.pacer.hold(self.rate_limit_wait)
                line = (f"rate limited by Danbooru (HTTP 429, no Retry-After): holding every request for "
                        f"{self.rate_limit_wait:g} s ({self.rate_limit_held:g} s of the {self.rate_limit_budget:g} s "
                        "budget used)")
        with self._count_lock:
            self.retries += 1
        if line is not None:
            self.notify(self.redact(line))  # the hold is in place now
        self._sleep(until - time.monotonic())

    def _request(self, url: str, params: dict | None, *, stream: bool, handle: Callable):
        """GET with pacing and retries; ``handle(response)`` reads it (may raise TransientError)."""
        import requests

        last, last_status, timed_out = "", None, False
        attempt = 0
        while attempt < self.max_tries:
            attempt += 1
            if self.stop.is_set():
                raise KeyboardInterrupt
            self.pacer.wait(self.stop)
            if self.stop.is_set():
                raise KeyboardInterrupt
            if self._rate_limit_spent:  # the rate-limit budget is spent: no request leaves any more
                raise self._budget_spent(url)
            delay = self._retry_delay(attempt)
            try:
                with self._count_lock:
                    self.requests_sent += 1
                with self._session().get(url, params=params, timeout=self.timeout, stream=stream,
                                         auth=self._auth_for(url), allow_redirects=True) as response:
                    status = response.status_code
                    last_status = status
                    timed_out = False
                    if status == 429:
                        waited = retry_after_seconds(response.headers.get("Retry-After"))
                        if waited is None:  # Danbooru's own 429: one shared hold, not a try
                            response.close()
                            self._rate_limit_hold(url)
                            attempt -= 1
                            continue
                        if waited > MAX_RETRY_AFTER:
                            raise UserError(f"Danbooru asks us to wait {waited:.0f} s (HTTP 429, Retry-After); stopping",
                                            "what was downloaded is kept: run collect again later, perhaps with a lower "
                                            "[dataset.danbooru] requests_per_second")
                        delay = waited
                        self.pacer.hold(delay)
                        last = "HTTP 429 (rate limited)"
                    elif status >= 500:
                        message = self._message_of(response)
                        timed_out = is_timeout_500(status, message)
                        last = f"HTTP {status}" + (", Danbooru timed out" if timed_out else "") + message
                    elif status >= 400:
                        if stream and status in (404, 410, 451):
                            raise FileGone(f"HTTP {status}")
                        self._raise_for(status, response.url, response.text)
                    else:
                        return handle(response)
            except requests.exceptions.ChunkedEncodingError as error:
                last, last_status, timed_out = f"truncated body ({type(error).__name__})", None, False
            except (requests.Timeout, requests.ConnectionError) as error:
                last, last_status, timed_out = network_reason(url, error), None, False
            except TransientError as error:
                if error.status == 429:  # the rate-limit budget is spent
                    raise
                last, last_status, timed_out = str(error), None, False
            if attempt < self.max_tries:
                with self._count_lock:
                    self.retries += 1
                self.notify(self.redact(f"{urlsplit(url).path}: {last}; trying again in {delay:.0f} s "
                                        f"(try {attempt + 1} of {self.max_tries})"))
                self._sleep(delay)
        raise TransientError(self.redact(f"gave up on {urlsplit(url).path} after {self.max_tries} tries: {last}"),
                             status=last_status, timeout=timed_out)

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

    def profile(self) -> dict:
        """The account's /profile.json (level, level_string, tag_query_limit …); only with credentials."""
        url = f"{self.root}/profile.json"

        def handle(response):
            try:
                data = response.json()
            except ValueError as error:
                raise TransientError("truncated or invalid JSON") from error
            if not isinstance(data, dict):
                raise TransientError("unexpected JSON (not a user)")
            return data

        return self._request(url, None, stream=False, handle=handle)

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
