"""Danbooru as it really behaves (issue 11), against the loopback fake: its own 429 (no Retry-After, a
growing penalty for requests made while limited), the account's tag limit from /profile.json, both
"too slow" 500s, and durations in Danbooru's own units."""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
import time

import pytest

from swimlatent_wrap.danbooru import query as q
from swimlatent_wrap.danbooru.client import (
    REQUEST_TIMEOUT_MESSAGE,
    STATEMENT_TIMEOUT_MESSAGE,
    Client,
    Credentials,
    TransientError,
    account_tag_limit,
    is_timeout_500,
    is_timeout_error,
    tag_limit_of_level,
)
from tests.danbooru.conftest import write_recipe
from tests.danbooru.fake import TIMEOUT_MESSAGES
from tests.danbooru.test_collect import ENV, FAST_RETRIES, KEY, check_dataset, populate
from tests.danbooru.test_stream import global_order, stream
from tests.helpers import run_cli

TAGS = ["rating:g", "age:<4y", "-status:deleted", "order:score"]


def fill(fake, n):
    for i in range(1, n + 1):
        fake.add_post(i, score=i % 97, rating="g", days_old=1 + i % 1000)


def danbooru_429(fake, burst: float, second: float = 0.02) -> None:
    """Switch on the fake's copy of Danbooru's limiter: ``burst`` requests, then 429s without Retry-After;
    one point back every ``second`` (1 s on the real server)."""
    fake.rate_limit_burst, fake.rate_limit_second = burst, second


def hold_clusters(times: list[float], hold: float) -> list[float]:
    """The first 429 of each hold (429s to requests already in flight as it began join it)."""
    starts: list[float] = []
    for t in sorted(times):
        if not starts or t > starts[-1] + hold:
            starts.append(t)
    return starts


def sent_during_holds(fake, hold: float, slack: float) -> list[tuple[float, str]]:
    """Requests that reached the fake well inside a hold: after the 429 that began it (plus ``slack`` for
    a request already in flight then) and before the hold can have ended."""
    bad = []
    for start in hold_clusters(fake.limited_at, hold):
        bad += [(t - start, path) for t, path in fake.arrivals if start + slack < t < start + hold - 0.02]
    return bad


# -- 429 without Retry-After ----------------------------------------------------------------------

def test_the_fake_limits_as_danbooru_does(fake):
    """The fake's limiter itself: no Retry-After, and each request while limited deepens the penalty."""
    import requests

    fill(fake, 3)
    danbooru_429(fake, burst=2, second=0.5)
    answers = [requests.get(f"{fake.url}/posts.json", params={"tags": "order:score"}, timeout=10) for _ in range(5)]
    assert [a.status_code for a in answers] == [200, 200, 429, 429, 429]
    assert all("Retry-After" not in a.headers for a in answers)
    assert "Wait a minute" in answers[2].json()["message"]
    assert fake.penalised == 2 and fake.rate_points < -2  # two requests made while limited: two more seconds


def test_a_429_without_retry_after_holds_every_thread_once_and_uses_no_tries(fake):
    fill(fake, 3)
    danbooru_429(fake, burst=3)
    hold = 0.6
    lines: list[str] = []
    c = Client(fake.url, rate=1000.0, backoff=0.01, max_tries=1, rate_limit_wait=hold, rate_limit_budget=60,
               notify=lines.append)
    results: list[int] = []
    errors: list[BaseException] = []

    def work():
        try:
            for _ in range(6):
                results.append(len(c.posts(TAGS, 1)))
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and results == [3] * 18  # max_tries = 1, and no 429 used it up
    assert c.rate_limit_holds >= 1 and fake.rate_limited >= 1
    assert lines and all(line.startswith("rate limited by Danbooru (HTTP 429, no Retry-After): holding every request "
                                         "for 0.6 s (") and "of the 60 s budget used)" in line for line in lines)
    assert len(lines) == c.rate_limit_holds  # one line per hold, not per thread
    assert not sent_during_holds(fake, hold, slack=0.25)
    # only requests already in flight as a hold began found the server still limited
    assert fake.penalised <= 2 * len(hold_clusters(fake.limited_at, hold))


def test_a_thread_waiting_for_its_slot_waits_for_the_hold_too(fake):
    """A thread queued behind the pacer when the hold begins does not slip out at its old slot."""
    fill(fake, 3)
    danbooru_429(fake, burst=1, second=1000.0)  # one request, then limited for the whole test
    held = threading.Event()
    # a 4 s hold: the second thread would have to start more than 3.5 s late (a loaded machine) to miss it
    c = Client(fake.url, rate=4.0, rate_limit_wait=4.0, rate_limit_budget=4.0, notify=lambda line: held.set())
    c.posts(TAGS, 1)  # the bucket is empty now
    outcomes: list[BaseException] = []

    def work():
        try:
            c.posts(TAGS, 1)
        except TransientError as error:  # the second hold would pass the budget
            outcomes.append(error)

    # one thread's slot is 0.25 s on (answered 429: the hold), the other's 0.5 s on, inside the hold
    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    assert held.wait(30)
    for t in threads:
        t.join(30)
    assert len(outcomes) == 2 and all(error.status == 429 for error in outcomes)
    first_429 = fake.limited_at[0]
    later = [t - first_429 for t, _ in fake.arrivals if t > first_429]
    # the queued thread did not go at its old slot (0.25 s after the 429): the one request after the 429 came
    # once the 4 s hold was over, was answered 429 again and spent the budget, so nothing else was sent
    assert len(later) == 1 and min(later) >= 3.95 and len(fake.arrivals) == 3


def test_holds_give_up_only_past_the_budget_and_never_hammer(fake):
    fill(fake, 3)
    danbooru_429(fake, burst=0)  # limited for good
    lines: list[str] = []
    c = Client(fake.url, rate=1000.0, max_tries=1, rate_limit_wait=0.2, rate_limit_budget=0.5, notify=lines.append)
    with pytest.raises(TransientError) as error:
        c.posts(TAGS, 1)
    assert error.value.status == 429 and "rate_limit_budget" in str(error.value)
    assert len(fake.arrivals) == 3  # one request, then one after each of the two holds: nothing in between
    with pytest.raises(TransientError, match="rate_limit_budget"):  # any thread, any later request: not sent
        c.download(f"{fake.file_root}/data/x.png", lambda chunk: None, lambda: None)
    assert len(fake.arrivals) == 3
    assert [line.split("(")[-1] for line in lines] == ["0.2 s of the 0.5 s budget used)", "0.4 s of the 0.5 s budget used)"]


def test_the_default_hold_is_a_minute_and_ctrl_c_ends_it(fake):
    fill(fake, 3)
    danbooru_429(fake, burst=0)
    held = threading.Event()
    lines: list[str] = []
    stop = threading.Event()

    def notify(line):
        lines.append(line)
        held.set()

    c = Client(fake.url, rate=1000.0, stop=stop, notify=notify)
    outcome: list[BaseException] = []

    def work():
        try:
            c.posts(TAGS, 1)
        except BaseException as error:  # noqa: BLE001
            outcome.append(error)

    worker = threading.Thread(target=work)
    worker.start()
    assert held.wait(30)
    assert lines == ["rate limited by Danbooru (HTTP 429, no Retry-After): holding every request for 60 s "
                     "(60 s of the 900 s budget used)"]
    assert c.pacer.held_until() - time.monotonic() > 50
    stop.set()
    worker.join(10)
    assert not worker.is_alive() and isinstance(outcome[0], KeyboardInterrupt)
    assert len(fake.arrivals) == 1


def test_collect_completes_under_danbooru_429s_with_nothing_sent_during_a_hold(fake, tmp_path):
    traps = populate(fake, per_group=20)
    assert traps
    fake.profile_level = 20  # a Member account: 2 tags, as assumed
    danbooru_429(fake, burst=6)
    hold = 0.6
    recipe = write_recipe(tmp_path, fake.url, 10,
                          extra=f"{FAST_RETRIES}\nrate_limit_wait = {hold}\nrate_limit_budget = 300")
    result = run_cli("--workdir", str(tmp_path / "w"), "collect", str(recipe), env=ENV)
    assert result.returncode == 0, result.stderr
    assert "rate limited by Danbooru (HTTP 429, no Retry-After): holding every request for 0.6 s" in result.stderr
    assert "of the 300 s budget used)" in result.stderr
    assert "held every request" in result.stderr and "for Danbooru's rate limit" in result.stderr
    assert "account alice is Member: 2 tags per search" in result.stdout
    check_dataset(fake, tmp_path / "w", 10, result.stdout + result.stderr)
    assert fake.rate_limited >= 2
    assert not sent_during_holds(fake, hold, slack=0.25)
    threads = 2 + 1  # downloads in flight, and the search beside them
    assert fake.penalised <= (threads - 1) * len(hold_clusters(fake.limited_at, hold))


# -- the account's tag limit ------------------------------------------------------------------------

def test_tag_limits_by_level():
    assert [tag_limit_of_level(level) for level in (0, 10, 20, 30, 31, 32, 35, 40, 60)] == [2, 2, 2, 6, 0, 0, 0, 0, 0]
    assert account_tag_limit({"level": 31, "level_string": "Platinum", "tag_query_limit": None}) == (0, "Platinum")
    assert account_tag_limit({"level": 30, "level_string": "Gold", "tag_query_limit": 6}) == (6, "Gold")
    assert account_tag_limit({"level": 20, "level_string": "Member"}) == (2, "Member")
    assert account_tag_limit({"level": 32}) == (0, "Builder")
    # a promotion: Danbooru's own tag_query_limit says unlimited for a Member
    assert account_tag_limit({"level": 20, "level_string": "Member", "tag_query_limit": None}) == (0, "Member")
    assert account_tag_limit({}) == (2, "unknown level")


def test_the_profile_is_read_with_credentials(fake):
    fake.credentials, fake.profile_level = ("alice", KEY), 30
    profile = Client(fake.url, rate=1000.0, credentials=Credentials("alice", KEY)).profile()
    assert account_tag_limit(profile) == (6, "Gold")


def test_plan_uses_the_account_unless_the_recipe_sets_tag_limit():
    class Dan:
        tags = ["1girl", "solo", "original", "highres", "-comic"]
        blacklist = ["gore"]
        order, max_age, keep_deleted, file_types = "score", "4y", False, ["png"]
        min_pixels = min_width = min_height = 0
        splits = []
        window_days, artist_mix, tag_limit = 365, "score", None

    everything = q.plan(Dan, 10, account_tag_limit=0)
    terms = everything.splits[0].searches[0].terms
    assert {"1girl", "solo", "original", "highres", "-comic", "-gore"} <= set(terms) and not everything.notes
    assert q.plan(Dan, 10).notes  # unknown account: 2, the rest checked locally
    Dan.tag_limit = 2
    assert q.plan(Dan, 10, account_tag_limit=0).notes  # the recipe wins


PLATINUM_TAGS = 'tags = ["1girl", "solo", "original", "highres", "-comic"]'


def test_a_platinum_account_gets_every_tag_in_the_query(fake, tmp_path):
    populate(fake, per_group=10)
    fake.credentials, fake.profile_level = ("alice", KEY), 31  # the fake then takes any number of tags
    recipe = write_recipe(tmp_path / "r", fake.url, 6, extra=f"{FAST_RETRIES}\n{PLATINUM_TAGS}")
    result = run_cli("--workdir", str(tmp_path / "w"), "collect", str(recipe), env=ENV)
    assert result.returncode == 0, result.stderr
    assert "account alice is Platinum: any number of tags per search" in result.stdout
    assert "checked locally" not in result.stdout
    assert fake.profile_requests == 1 and fake.api_queries
    for query, _ in fake.api_queries:
        assert {"1girl", "solo", "original", "highres", "-comic", "order:score"} <= set(query.split())
    assert KEY not in result.stdout + result.stderr
    db = sqlite3.connect(tmp_path / "w" / "datasets" / "dbtest" / "manifest.sqlite")
    assert db.execute("SELECT count(*) FROM posts WHERE status = 'downloaded'").fetchone() == (6,)
    db.close()


def test_the_recipe_tag_limit_wins_over_the_account(fake, tmp_path):
    populate(fake, per_group=10)
    fake.credentials, fake.profile_level = ("alice", KEY), 31
    recipe = write_recipe(tmp_path / "r", fake.url, 6, extra=f"{FAST_RETRIES}\n{PLATINUM_TAGS}\ntag_limit = 2")
    result = run_cli("--workdir", str(tmp_path / "w"), "collect", str(recipe), env=ENV)
    assert result.returncode == 0, result.stderr
    assert "checked locally" in result.stdout and fake.profile_requests == 0
    assert all(len([t for t in query.split() if ":" not in t or t.startswith("order:")]) == 2
               for query, _ in fake.api_queries)


def test_a_profile_the_key_may_not_read_falls_back_to_two(fake, tmp_path):
    populate(fake, per_group=10)  # no /profile.json on this fake (404), as for a key without that permission
    recipe = write_recipe(tmp_path / "r", fake.url, 4, extra=f"{FAST_RETRIES}\n{PLATINUM_TAGS}")
    result = run_cli("--workdir", str(tmp_path / "w"), "collect", str(recipe), env=ENV)
    assert result.returncode == 0, result.stderr
    assert "could not read the account's tag limit" in result.stderr and "assuming 2" in result.stderr
    assert "checked locally" in result.stdout


# -- the two "too slow" 500s ---------------------------------------------------------------------------

def test_both_timeout_500s_are_recognised():
    assert TIMEOUT_MESSAGES == (STATEMENT_TIMEOUT_MESSAGE, REQUEST_TIMEOUT_MESSAGE)
    for message in (*TIMEOUT_MESSAGES, "Your search took too long to execute and was cancelled."):
        assert is_timeout_500(500, message) and is_timeout_500(None, message)
    assert not is_timeout_500(503, STATEMENT_TIMEOUT_MESSAGE)
    assert not is_timeout_500(500, "The database is unavailable. Try again later.")
    assert not is_timeout_500(500, "")


@pytest.mark.parametrize("message", TIMEOUT_MESSAGES)
def test_either_timeout_500_gives_up_as_a_timeout(fake, message):
    fill(fake, 3)
    fake.timeout_broad, fake.broad_days, fake.timeout_message = True, 0, message
    with pytest.raises(TransientError) as error:
        Client(fake.url, rate=1000.0, backoff=0.001, max_tries=2).posts(TAGS, 1)
    assert error.value.status == 500 and error.value.timeout and is_timeout_error(error.value)
    assert "Danbooru timed out" in str(error.value)


@pytest.mark.parametrize("message", TIMEOUT_MESSAGES)
def test_either_timeout_500_narrows_the_window(fake, message):
    for i in range(1, 301):
        fake.add_post(i, score=(i * 31) % 300, rating="g", days_old=1 + (i * 5) % 1400)
    fake.timeout_broad, fake.broad_days, fake.timeout_message = True, 400, message
    got, ctx = stream(fake, max_tries=2)
    assert [p["id"] for p in got] == global_order(fake)
    assert "narrower windows" in " ".join(ctx.notes)


# -- durations in Danbooru's units -------------------------------------------------------------------

def test_years_and_months_are_fixed_lengths():
    now = dt.datetime(2024, 3, 1, 0, tzinfo=dt.timezone.utc)  # a leap year: calendar units would differ
    assert q.duration_seconds("1y") == 365.25 * 86400
    assert q.duration_seconds("1mo") == 365.25 / 12 * 86400 == 30.4375 * 86400
    assert q.age_cutoff("1y", now) == dt.datetime(2023, 3, 1, 18, tzinfo=dt.timezone.utc)  # not 2023-03-01 00:00
    assert q.age_cutoff("4y", now) == now - dt.timedelta(days=1461)
    assert q.age_cutoff("12mo", now) == q.age_cutoff("1y", now)
    assert q.age_cutoff("48months", now) == q.age_cutoff("4years", now) == q.age_cutoff("4yr", now)
    assert q.age_cutoff("1mo", dt.datetime(2026, 3, 31, tzinfo=dt.timezone.utc)) == \
        dt.datetime(2026, 2, 28, 13, 30, tzinfo=dt.timezone.utc)
    assert q.age_cutoff("2w", now) == now - dt.timedelta(days=14)
    assert q.age_cutoff("90min", now) == now - dt.timedelta(minutes=90)


def test_the_age_range_starts_at_the_fixed_length_cutoff():
    today = dt.date(2026, 8, 1)
    start, end = q.age_range("1y", today)
    noon = dt.datetime.combine(today, dt.time(12), dt.timezone.utc)
    assert start == (noon - dt.timedelta(days=365.25)).date() - dt.timedelta(days=1)
    assert end == today + dt.timedelta(days=2)


def test_collect_stops_with_one_line_once_the_budget_is_spent(fake, tmp_path):
    populate(fake, per_group=4)
    danbooru_429(fake, burst=0)  # limited for good
    recipe = write_recipe(tmp_path, fake.url, 4, extra=f"{FAST_RETRIES}\nrate_limit_wait = 0.2\nrate_limit_budget = 0.4")
    result = run_cli("--workdir", str(tmp_path / "w"), "collect", str(recipe))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "still rate limited by Danbooru (HTTP 429) after 0.4 s of holds" in result.stderr
    assert "rate_limit_budget = 0.4" in result.stderr and "run collect again later" in result.stderr
    assert result.stderr.count("holding every request for 0.2 s") == 2
    assert len(fake.arrivals) == 3  # the first search page, then one try after each hold
