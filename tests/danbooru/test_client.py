"""The client against the fake Danbooru over loopback HTTP: limits, refusals, retries, pacing, User-Agent, credentials."""

from __future__ import annotations

import email.utils
import threading
import time

import pytest

from swimlatent_wrap import __version__
from swimlatent_wrap.danbooru.client import Client, Credentials, FileGone, Pacer, TransientError, api_root
from swimlatent_wrap.errors import UserError

TAGS = ["rating:g", "age:<4y", "-status:deleted", "order:score"]


def client(fake, **kw):
    kw.setdefault("rate", 1000.0)
    kw.setdefault("backoff", 0.01)
    return Client(fake.url, **kw)


def fill(fake, n, **kw):
    for i in range(1, n + 1):
        fake.add_post(i, score=i % 97, rating="g", days_old=i % 1000, **kw)


def test_limit_is_clamped_to_200_and_the_user_agent_is_ours(fake):
    fill(fake, 230)
    page = client(fake).posts(TAGS, 1, limit=500)
    assert len(page) == 200
    assert [p["score"] for p in page] == sorted((p["score"] for p in page), reverse=True)
    assert fake.user_agents == [f"swimlatent/{__version__}"]


def test_user_agent_names_the_login_and_the_key_goes_to_the_api_host_only(fake, tmp_path):
    fake.credentials = ("alice", "k3y")
    fill(fake, 3)
    c = client(fake, credentials=Credentials("alice", "k3y"))
    post = c.posts(TAGS, 1)[0]
    assert post["file_url"].startswith(fake.file_root)  # absolute, on another host name, like Danbooru's CDN
    c.download(post["file_url"], lambda chunk: None, lambda: None)
    assert fake.user_agents == [f"swimlatent/{__version__} (by alice)"] * 2
    assert fake.file_auth == [False]
    assert "k3y" not in repr(c.credentials)


def test_credentials_come_in_pairs(monkeypatch):
    monkeypatch.setenv("DANBOORU_LOGIN", "alice")
    monkeypatch.delenv("DANBOORU_API_KEY", raising=False)
    with pytest.raises(UserError, match="set both"):
        Credentials.from_env()
    monkeypatch.setenv("DANBOORU_API_KEY", "k")
    assert Credentials.from_env() == Credentials("alice", "k")
    monkeypatch.setenv("DANBOORU_API_URL", "http://127.0.0.1:1/")
    assert api_root("https://danbooru.donmai.us") == "http://127.0.0.1:1"
    monkeypatch.setenv("DANBOORU_API_URL", "ftp://x")
    with pytest.raises(UserError, match="not an http"):
        api_root(None)


def test_page_cap_410_reads_as_the_end_of_numbered_pages(fake):
    fill(fake, 5)
    fake.page_cap = 1
    assert client(fake).posts(TAGS, 2) is None


def test_tag_limit_422_says_what_to_change(fake):
    with pytest.raises(UserError) as error:
        client(fake).posts(["solo", "1girl"] + TAGS, 1)
    assert "422" in str(error.value) and "tag_limit" in str(error.value) and "more than 2 tags" in str(error.value)


def test_bad_key_401_and_forbidden_403_are_clear_errors_without_the_key(fake):
    fake.credentials = ("alice", "right-key")
    with pytest.raises(UserError) as error:
        client(fake, credentials=Credentials("alice", "wrong-key-123")).posts(TAGS, 1)
    text = str(error.value)
    assert "401" in text and "DANBOORU_API_KEY" in text and "wrong-key-123" not in text
    fake.forbid = True
    with pytest.raises(UserError) as error:
        client(fake, credentials=Credentials("alice", "right-key")).posts(TAGS, 1)
    assert "403" in str(error.value) and "posts:index" in str(error.value)
    assert len(fake.api_requests) == 2  # refusals are not retried


def test_429_honours_retry_after_in_seconds_and_as_a_date(fake):
    fill(fake, 3)
    fake.fail_429, fake.retry_after = 1, "1"
    start = time.monotonic()
    assert len(client(fake).posts(TAGS, 1)) == 3
    assert time.monotonic() - start >= 0.95
    fake.fail_429 = 1
    fake.retry_after = email.utils.formatdate(time.time() + 2, usegmt=True)  # second resolution: 1-2 s from now
    start = time.monotonic()
    assert len(client(fake).posts(TAGS, 1)) == 3
    assert time.monotonic() - start >= 0.9
    assert len(fake.api_requests) == 4


def test_429_holds_every_thread(fake):
    """A 429 is about the client: while one thread waits out Retry-After, the others wait too."""
    fill(fake, 3)
    fake.fail_429, fake.retry_after = 1, "1"
    held = threading.Event()
    c = client(fake, notify=lambda line: held.set())  # told after the 429's hold is in place
    start = time.monotonic()
    first = threading.Thread(target=lambda: c.posts(TAGS, 1))
    first.start()
    assert held.wait(60)
    c.posts(TAGS, 1)  # sent only now, after the hold: it must wait the hold out
    assert time.monotonic() - start >= 0.95  # the hold began after start and lasts 1 s
    first.join()
    assert len(fake.api_requests) == 3


def test_500s_dropped_connections_and_timeouts_are_retried_then_given_up(fake):
    fill(fake, 3)
    fake.fail_500, fake.drop_api, fake.slow_api, fake.slow_seconds = 2, 1, 1, 1.0
    assert len(client(fake, timeout=0.3, max_tries=6).posts(TAGS, 1)) == 3
    fake.fail_500 = 50
    with pytest.raises(TransientError) as error:
        client(fake, max_tries=4).posts(TAGS, 1)
    assert error.value.status == 500 and "after 4 tries" in str(error.value)


def test_truncated_json_and_file_bodies_are_retried(fake):
    fill(fake, 3)
    fake.truncate_json = 2
    c = client(fake)
    assert len(c.posts(TAGS, 1)) == 3
    post = fake.posts[0]
    fake.truncate_file, fake.drop_file = 2, 1
    chunks = []
    size = c.download(fake.file_root + post["file_url"], chunks.append, chunks.clear)
    assert b"".join(chunks) == fake.files[post["md5"]] and size == len(b"".join(chunks))
    assert fake.file_requests[post["md5"]] == 4
    with pytest.raises(FileGone):
        c.download(fake.file_root + "/data/" + "0" * 32 + ".png", chunks.append, chunks.clear)


def test_pacer_spaces_requests_across_threads():
    pacer = Pacer(50.0)
    stamps = []

    def worker():
        for _ in range(5):
            pacer.wait()
            stamps.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(3)]
    start = time.monotonic()
    [t.start() for t in threads]
    [t.join() for t in threads]
    # Each wait returns at or after its own slot, and slots are 1/50 s apart from the first: so the
    # k-th return, whichever thread made it and however late it was scheduled, is at least k/50 s in.
    for k, stamp in enumerate(sorted(stamps)):
        assert stamp - start >= k / 50 - 1e-3, (k, stamp - start)


def test_pacing_of_real_requests(fake):
    fill(fake, 3)
    c = client(fake, rate=20.0)
    start = time.monotonic()
    for _ in range(6):
        c.posts(TAGS, 1)
    assert time.monotonic() - start >= 5 / 20 - 0.01
