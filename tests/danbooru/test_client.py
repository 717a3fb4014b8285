"""The client against the fake Danbooru: limits, errors, retries, pacing, User-Agent, credentials."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from swimlatent_wrap import __version__
from swimlatent_wrap.danbooru import query as q
from swimlatent_wrap.danbooru.client import Client, Credentials, Pacer, TransientError
from swimlatent_wrap.danbooru.download import candidates
from swimlatent_wrap.errors import UserError

TAGS = ["rating:g", "age:<4y", "-status:deleted", "order:score"]


def client(fake, **kw):
    kw.setdefault("rate", 1000.0)
    kw.setdefault("backoff", 0.01)
    return Client(fake.url, **kw)


def fill(fake, n, **kw):
    for i in range(1, n + 1):
        fake.add_post(i, score=i % 97, rating="g", days_old=i % 1000, **kw)


def test_limit_is_clamped_to_200_and_user_agent_is_ours(fake):
    fill(fake, 230)
    page = client(fake).posts(TAGS, 1, limit=500)
    assert len(page) == 200
    assert [p["score"] for p in page] == sorted((p["score"] for p in page), reverse=True)
    assert fake.user_agents and all(ua == f"swimlatent/{__version__}" for ua in fake.user_agents)


def test_user_agent_names_the_login(fake):
    fake.credentials = ("alice", "k3y")
    client(fake, credentials=Credentials("alice", "k3y")).posts(TAGS, 1)
    assert fake.user_agents == [f"swimlatent/{__version__} (by alice)"]


def test_page_cap_410_returns_none_and_windows_reach_every_post(fake):
    fill(fake, 700)
    fake.page_cap = 1
    c = client(fake)
    assert c.posts(TAGS, 2) is None
    dan = SimpleNamespace(page_limit=1000, max_age="4y")
    got = list(candidates(c, TAGS, dan, lambda: 700))
    ids = [p["id"] for p in got]
    assert len(ids) == len(set(ids)) == 700
    top = sorted(fake.posts, key=lambda p: (-p["score"], -p["id"]))[:200]
    assert ids[:200] == [p["id"] for p in top]  # the unwindowed first page is the global top
    rest = got[200:]
    assert [p["score"] for p in rest] == sorted((p["score"] for p in rest), reverse=True)  # merged by score
    assert any("date%3A" in r or "date:" in r for r in fake.api_requests)


def test_tag_limit_422_says_what_to_change(fake):
    fill(fake, 3)
    with pytest.raises(UserError) as error:
        client(fake).posts(["solo", "1girl"] + TAGS, 1)
    assert "422" in str(error.value) and "tag_limit" in str(error.value)
    dan = SimpleNamespace(tags=["solo"], order="score", tag_limit=2)
    assert "tag_limit is 2" in q.check_tag_limit(dan, ["some_artist"])
    assert q.check_tag_limit(SimpleNamespace(tags=[], order="score", tag_limit=2), ["some_artist"]) is None


def test_bad_key_401_is_a_clear_error_without_the_key(fake):
    fake.credentials = ("alice", "right-key")
    fill(fake, 3)
    with pytest.raises(UserError) as error:
        client(fake, credentials=Credentials("alice", "wrong-key-123")).posts(TAGS, 1)
    text = str(error.value)
    assert "401" in text and "DANBOORU_API_KEY" in text and "wrong-key-123" not in text


def test_429_honours_retry_after(fake):
    fill(fake, 3)
    fake.fail_429, fake.retry_after = 1, "1"
    start = time.monotonic()
    assert len(client(fake).posts(TAGS, 1)) == 3
    assert time.monotonic() - start >= 0.95
    assert len(fake.api_requests) == 2


def test_500s_are_retried_then_given_up(fake):
    fill(fake, 3)
    fake.fail_500 = 3
    assert len(client(fake).posts(TAGS, 1)) == 3
    fake.fail_500 = 50
    with pytest.raises(TransientError):
        client(fake).posts(TAGS, 1)
    assert len(fake.api_requests) == 4 + 5


def test_truncated_json_and_file_bodies_are_retried(fake, tmp_path):
    fill(fake, 3)
    fake.truncate_json = 2
    assert len(client(fake).posts(TAGS, 1)) == 3
    post = fake.posts[0]
    fake.truncate_file = 2
    chunks = []
    size = client(fake).download(fake.url + post["file_url"], chunks.append, chunks.clear)
    assert b"".join(chunks) == fake.files[post["md5"]] and size == len(b"".join(chunks))
    assert fake.file_requests[post["md5"]] == 3


def test_pacer_spaces_requests_across_threads():
    import threading

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
    assert time.monotonic() - start >= 14 / 50 - 0.01


def test_split_targets_sum_exactly():
    assert q.split_targets([0.5, 0.5], 11) == [6, 5]
    assert sum(q.split_targets([0.3, 0.3, 0.4], 7)) == 7
    assert q.split_targets([0.5, 0.5], 30000) == [15000, 15000]


def test_recipe_split_shares_must_add_up(tmp_path):
    from swimlatent_wrap.recipe import RecipeError, load_recipe
    from tests.danbooru.conftest import write_recipe

    path = write_recipe(tmp_path, "http://127.0.0.1:9", 10)
    assert load_recipe(path).dataset.danbooru.splits[0].share == 0.5
    text = path.read_text() + '\n[[dataset.danbooru.splits]]\nratings = "g"\nshare = 0.3\n'
    (tmp_path / "bad.toml").write_text(text.replace("concurrency = 2", "concurrency = 2"))
    with pytest.raises(RecipeError) as error:
        load_recipe(tmp_path / "bad.toml")
    assert "shares" in str(error.value) or "splits" in str(error.value)
