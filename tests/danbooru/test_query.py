"""Query planning: split targets, the tag budget (order: counts), local checks, durations, date windows."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from swimlatent_wrap.danbooru import query as q
from swimlatent_wrap.danbooru.download import Rules, ineligible, rules_for


def dan(**kw):
    values = dict(tags=[], blacklist=[], order="score", tag_limit=2, max_age="4y", keep_deleted=False,
                  file_types=["jpg", "png", "webp"], min_pixels=0, min_width=0, min_height=0, window_days=365,
                  artist_mix="score", splits=[SimpleNamespace(ratings="g", share=0.5), SimpleNamespace(ratings="s,q,e", share=0.5)])
    values.update(kw)
    return SimpleNamespace(**values)


def test_split_targets_add_up_exactly_and_follow_the_shares():
    assert q.split_targets([0.5, 0.5], 11) == [6, 5]
    assert q.split_targets([0.5, 0.5], 30000) == [15000, 15000]
    assert q.split_targets([0.3, 0.7], 10) == [3, 7]
    for count in range(1, 60):
        parts = q.split_targets([0.2, 0.3, 0.5], count)
        assert sum(parts) == count and all(abs(p - count * s) < 1 for p, s in zip(parts, [0.2, 0.3, 0.5]))


def test_plan_of_the_base_recipe_is_one_free_search_per_split():
    plan = q.plan(dan(min_pixels=1048576), 30000)
    assert [s.target for s in plan.splits] == [15000, 15000]
    g, rest = plan.splits
    assert g.ratings == "g" and rest.ratings == "s,q,e"
    terms = g.searches[0].terms
    assert terms == ("rating:g", "age:<4y", "-status:deleted", "filetype:jpg,png,webp", "mpixels:>=1.048", "order:score")
    assert q.counted_tags(list(terms)) == 1  # only order: counts
    assert g.searches[0].windowed  # no tag of its own: read in date windows


def test_order_counts_so_extra_tags_beyond_the_limit_are_checked_locally():
    plan = q.plan(dan(tags=["1girl", "solo", "-comic"], blacklist=["gore"]), 10)
    terms = plan.splits[0].searches[0].terms
    assert "1girl" in terms and "solo" not in terms and "order:score" in terms
    assert q.counted_tags(list(terms)) == 2
    assert plan.required == ("solo",) and set(plan.excluded) == {"comic", "gore"}
    assert "checked locally" in " ".join(plan.notes)
    assert not plan.splits[0].searches[0].windowed  # a search with its own tag is narrow already
    # a Gold account (6) takes them all into the search, the blacklist too
    gold = q.plan(dan(tags=["1girl", "solo", "-comic"], blacklist=["gore"], tag_limit=6), 10)
    terms = gold.splits[0].searches[0].terms
    assert {"1girl", "solo", "-comic", "-gore"} <= set(terms) and gold.required == ()
    assert "gore" in gold.excluded  # checked locally as well, whatever the server does


def test_artists_take_one_tag_each_and_a_search_of_their_own():
    plan = q.plan(dan(), 10, artists=["ann", "bob"])
    searches = plan.splits[0].searches
    assert [s.label for s in searches] == ["artist ann", "artist bob"]
    assert all(q.counted_tags(list(s.terms)) == 2 for s in searches)
    with pytest.raises(q.PlanError, match="tag_limit 1"):
        q.plan(dan(tag_limit=1), 10, artists=["ann"])
    with pytest.raises(q.PlanError, match="cannot be checked locally"):
        q.plan(dan(tags=["pool:12"]), 10, artists=["ann"])


def test_rules_check_everything_locally():
    plan = q.plan(dan(tags=["1girl", "solo"], blacklist=["gore"], min_pixels=1_000_000), 10)
    rules = rules_for(dan(min_pixels=1_000_000), plan, "g")
    now = dt.datetime.now(dt.timezone.utc)
    good = {"id": 1, "md5": "a" * 32, "file_url": "/x", "file_ext": "png", "rating": "g", "image_width": 1024,
            "image_height": 1024, "created_at": (now - dt.timedelta(days=3)).isoformat(), "tag_string": "1girl solo"}
    assert ineligible(good, rules) is None
    cases = {
        "hidden": ({"file_url": None}, "hidden or banned"), "deleted": ({"is_deleted": True}, "deleted"),
        "gif": ({"file_ext": "gif"}, "file type gif"), "rating": ({"rating": "e"}, "rating e outside split g"),
        "black": ({"tag_string": "1girl solo gore"}, "blacklisted tag: gore"), "lacks": ({"tag_string": "1girl"}, "lacks tag: solo"),
        "small": ({"image_width": 900}, "too small"), "old": ({"created_at": (now - dt.timedelta(days=1470)).isoformat()}, "older than"),
        "md5": ({"md5": "zz"}, "malformed md5"),
    }
    for name, (change, reason) in cases.items():
        assert (ineligible({**good, **change}, rules) or "").startswith(reason), name
    assert isinstance(rules, Rules)


def test_durations_follow_danbooru():
    now = dt.datetime(2026, 3, 31, 12, tzinfo=dt.timezone.utc)
    # fixed 365.25-day years and 365.25/12-day months (duration_parser.rb), not calendar units
    assert q.age_cutoff("4y", now) == now - dt.timedelta(days=4 * 365.25)
    assert q.age_cutoff("1mo", now) == now - dt.timedelta(days=365.25 / 12)
    assert q.age_cutoff("48months", now) == q.age_cutoff("4y", now)
    assert q.age_cutoff("30d", now) == now - dt.timedelta(days=30)
    assert q.age_cutoff("", now) is None
    assert "minutes" in q.duration_problem("4m")  # not months on Danbooru
    assert "seconds" in q.duration_problem("4.5y")  # Danbooru would read 4 seconds
    assert q.duration_problem("4 years") and q.duration_problem("") is None


def test_windows_cover_the_age_range_without_gaps():
    today = dt.date(2026, 8, 1)
    windows = q.windows("4y", 365, today)
    assert len(windows) == 4
    assert windows[0].end > today and windows[-1].start < today - dt.timedelta(days=4 * 365)
    for newer, older in zip(windows, windows[1:]):
        assert older.end == newer.start
    assert windows[0].terms() == [f"date:{windows[0].start}...{windows[0].end}"]
    assert q.windows("4y", 0, today)[0].terms() == []
    halves = windows[0].halves()
    assert halves[1].start == windows[0].start and halves[0].end == windows[0].end and halves[1].end == halves[0].start
    assert q.Window(today, today + dt.timedelta(days=1)).halves() == []


def test_recipe_rejects_bad_shares_and_minutes_for_months(tmp_path):
    from swimlatent_wrap.recipe import RecipeError, load_recipe
    from tests.danbooru.conftest import write_recipe

    path = write_recipe(tmp_path, "http://127.0.0.1:9", 10)
    loaded = load_recipe(path).dataset.danbooru
    assert [s.share for s in loaded.splits] == [0.5, 0.5] and loaded.max_age == "4y"
    # a recipe's splits replace the inherited ones as a whole
    bad = path.read_text() + ''.join(f'\n[[dataset.danbooru.splits]]\nratings = "{r}"\nshare = {s}\n' for r, s in (("g", 0.5), ("g,s", 0.8)))
    (tmp_path / "bad.toml").write_text(bad)
    with pytest.raises(RecipeError) as error:
        load_recipe(tmp_path / "bad.toml")
    assert "shares add up to 1.3" in str(error.value) and "rating g is in two splits" in str(error.value)
    (tmp_path / "months.toml").write_text(path.read_text() + "max_age = \"4m\"\n")
    with pytest.raises(RecipeError, match="minutes"):
        load_recipe(tmp_path / "months.toml")
