"""`swimlatent collect` as a real child process against the fake Danbooru: full runs with faults,
kills at random moments and resumes, Ctrl-C, --limit, artist lists, refusals."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from swimlatent_wrap import __version__
from tests.danbooru.conftest import write_recipe
from tests.helpers import REPO, run_cli

KEY = "sEcReT-kEy-0123456789"
ENV = {"DANBOORU_LOGIN": "alice", "DANBOORU_API_KEY": KEY}
FAST_RETRIES = "retry_wait = 0.01\nmax_tries = 12"


def populate(fake, per_group=40):
    """Eligible posts of both groups (scores with ties), plus high-scored traps that must never be collected."""
    pid = 0
    for group in ("g", "sqe"):
        for i in range(per_group):
            pid += 1
            rating = "g" if group == "g" else "sqe"[i % 3]
            fake.add_post(pid, score=100 + (pid * 37) % 60, rating=rating, days_old=5 + i * 30)
    traps = []
    for rating in ("g", "e"):
        for kind in ("deleted", "hidden", "bad_md5", "old", "gif", "small"):
            pid += 1
            kw = {"deleted": {"deleted": True}, "hidden": {"hidden": True}, "bad_md5": {"bad_md5": True},
                  "old": {"days_old": 365 * 4 + 30}, "gif": {"ext": "gif"}, "small": {"width": 1000, "height": 1000}}[kind]
            traps.append(fake.add_post(pid, score=5000 + pid, rating=rating, **kw))
    return traps


def top(fake, group, n):
    return {p["id"] for p in fake.eligible(group, min_pixels=1048576)[:n]}


def images_of(workdir):
    return workdir / "datasets" / "dbtest" / "images"


def check_dataset(fake, workdir, count, output):
    """Exactly ``count`` md5-verified images, the split exact, the highest-scored eligible posts,
    no temp files, an honest User-Agent on every request, the key nowhere."""
    images = images_of(workdir)
    files = sorted(images.iterdir())
    assert not [f.name for f in files if f.name.endswith(".part")]
    assert len(files) == count
    for f in files:
        assert hashlib.md5(f.read_bytes()).hexdigest() == f.stem
    db = sqlite3.connect(workdir / "datasets" / "dbtest" / "manifest.sqlite")
    rows = db.execute("SELECT id, split, md5, file_ext FROM posts WHERE status = 'downloaded'").fetchall()
    assert sorted(f"{md5}.{ext}" for _, _, md5, ext in rows) == [f.name for f in files]
    g_target = (count + 1) // 2  # largest remainder: an odd image goes to the first split
    by_split = {s: {i for i, sp, *_ in rows if sp == s} for s in ("g", "s,q,e")}
    assert by_split["g"] == top(fake, "g", g_target)
    assert by_split["s,q,e"] == top(fake, "sqe", count - g_target)
    reasons = dict(db.execute("SELECT id, reason FROM posts WHERE status IN ('skipped', 'failed')").fetchall())
    assert any("hidden" in (r or "") for r in reasons.values())
    assert any("md5 mismatch" in (r or "") for r in reasons.values())
    assert fake.user_agents and all(ua == f"swimlatent/{__version__} (by alice)" for ua in fake.user_agents)
    assert not any(fake.file_auth)  # the key went to the API host only
    assert KEY not in output
    for path in workdir.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
    db.close()
    return by_split


def test_collect_full_run_with_faults(fake, tmp_path):
    fake.credentials = ("alice", KEY)
    traps = populate(fake)
    fake.fail_500, fake.fail_429, fake.retry_after, fake.truncate_json, fake.truncate_file = 1, 1, "1", 1, 2
    fake.drop_api, fake.drop_file, fake.slow_api, fake.slow_seconds = 1, 1, 1, 2
    recipe = write_recipe(tmp_path, fake.url, 20, extra=FAST_RETRIES + "\ntimeout = 0.5")
    result = run_cli("--workdir", str(tmp_path / "w"), "collect", str(recipe), env=ENV)
    assert result.returncode == 0, result.stderr
    assert "20/20 images" in result.stdout
    check_dataset(fake, tmp_path / "w", 20, result.stdout + result.stderr)
    queries = " ".join(q for q, _ in fake.api_queries)
    assert "-status:deleted" in queries and "order:score" in queries and "age:<4y" in queries and "rating:s,q,e" in queries
    bad = [t for t in traps if t.get("md5") and hashlib.md5(fake.files[t["md5"]]).hexdigest() != t["md5"]]
    assert bad and all(fake.file_sent[t["md5"]] == 2 for t in bad)  # a wrong md5 is fetched once more, then failed
    assert not any(fake.file_requests[t["md5"]] for t in traps if t.get("md5") and t not in bad)
    # a second run fetches nothing again
    before = dict(fake.file_requests)
    again = run_cli("--workdir", str(tmp_path / "w"), "collect", str(recipe), env=ENV)
    assert again.returncode == 0 and "0 downloaded now" in again.stdout
    assert dict(fake.file_requests) == before
    # the report came along with it
    assert (tmp_path / "w" / "datasets" / "dbtest" / "report" / "index.html").is_file()


def test_a_server_that_ignores_filters_is_checked_locally(fake, tmp_path):
    """Deleted, old, small and gif posts come back from a lax server: every one is skipped with its reason."""
    fake.credentials = ("alice", KEY)
    traps = populate(fake)
    fake.ignore = {"status", "age", "filetype", "mpixels", "rating"}
    recipe = write_recipe(tmp_path, fake.url, 10, extra="window_days = 0")
    result = run_cli("--workdir", str(tmp_path / "w"), "collect", str(recipe), env=ENV)
    assert result.returncode == 0, result.stderr
    check_dataset(fake, tmp_path / "w", 10, result.stdout + result.stderr)
    db = sqlite3.connect(tmp_path / "w" / "datasets" / "dbtest" / "manifest.sqlite")
    reasons = dict(db.execute("SELECT id, reason FROM posts WHERE status = 'skipped'").fetchall())
    for trap, reason in zip(traps, ["deleted", "hidden or banned", None, "older than max_age 4y", "file type gif", "too small"] * 2):
        if reason:
            assert reasons[trap["id"]].startswith(reason), (trap["id"], reasons.get(trap["id"]))
    assert any(r.startswith("rating g outside split s,q,e") for r in reasons.values())
    assert not any(fake.file_requests[t["md5"]] for t in traps if t.get("md5") and "md5 mismatch" not in str(reasons.get(t["id"])) and t["id"] in reasons)


def test_limit_caps_the_total_and_keeps_the_split(fake, tmp_path):
    populate(fake)
    recipe = write_recipe(tmp_path, fake.url, 20)
    limited = run_cli("--workdir", str(tmp_path / "w"), "collect", str(recipe), "--limit", "7", env=ENV)
    assert limited.returncode == 0, limited.stderr
    assert "7/7 images" in limited.stdout
    check_dataset(fake, tmp_path / "w", 7, limited.stdout)
    # raising the limit later goes on from there, fetching none of the 7 again
    before = dict(fake.file_requests)
    more = run_cli("--workdir", str(tmp_path / "w"), "collect", str(recipe), "--limit", "12", env=ENV)
    assert more.returncode == 0 and "12/12 images" in more.stdout
    check_dataset(fake, tmp_path / "w", 12, more.stdout)
    assert all(fake.file_requests[md5] == n for md5, n in before.items() if n)


def _wait_for(predicate, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return False


def test_kill_at_random_moments_and_resume(fake, tmp_path):
    """SIGKILL the child three times at random points (on a file count, on a .part on disk, on a clock),
    with random faults on every request; the resumed run ends with exactly the right dataset."""
    seed = int(os.environ.get("SWIMLATENT_TEST_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    fake.credentials = ("alice", KEY)
    populate(fake)
    fake.chaos, fake.rng = 0.1, random.Random(seed)
    fake.file_latency = 0.04
    count = 30
    recipe = write_recipe(tmp_path, fake.url, count, extra=FAST_RETRIES)
    workdir = tmp_path / "w"
    images = images_of(workdir)
    env = dict(os.environ, **ENV)
    outputs, kills = [], 0
    for round_ in range(3):
        child = subprocess.Popen([sys.executable, "-m", "swimlatent_wrap", "--workdir", str(workdir), "collect", str(recipe)],
                                 cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        have = len(list(images.glob("*.png"))) if images.exists() else 0
        moment = rng.choice(["files", "part", "clock"])
        if moment == "files":
            goal = rng.randint(have + 1, count - 1) if have + 1 < count else count
            _wait_for(lambda: images.exists() and len(list(images.glob("*.png"))) >= goal, 30)
        elif moment == "part":
            _wait_for(lambda: images.exists() and any(images.glob("*.part")), 30)
        else:
            time.sleep(rng.uniform(0.2, 1.0))
        time.sleep(rng.random() * 0.02)
        present = {f.stem for f in images.glob("*.png")} if images.exists() else set()
        requests_then = dict(fake.file_requests)
        child.send_signal(signal.SIGKILL)
        out, err = child.communicate()
        outputs.append(out.decode() + err.decode())
        kills += child.returncode == -signal.SIGKILL
        if round_ == 0:
            killed_with = present
            killed_requests = requests_then
    assert kills >= 1, f"every run finished before its kill (seed {seed})"
    fake.chaos = 0.0
    result = run_cli("--workdir", str(workdir), "collect", str(recipe), env=ENV)
    assert result.returncode == 0, f"seed {seed}: {result.stderr}"
    check_dataset(fake, workdir, count, "".join(outputs) + result.stdout + result.stderr)
    for md5 in killed_with:  # in place before the first kill: never fetched again
        assert fake.file_requests[md5] == killed_requests[md5], f"seed {seed}: {md5} fetched again"
    final = [f.stem for f in images.glob("*.png")]
    sent = sum(fake.file_sent[md5] for md5 in final)
    assert sent <= count + kills * 2, f"seed {seed}: {sent} complete transfers for {count} images"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_stops_cleanly_and_leaves_a_consistent_manifest(fake, tmp_path, sig):
    populate(fake)
    fake.file_latency = 0.15
    recipe = write_recipe(tmp_path, fake.url, 30, concurrency=3)
    workdir = tmp_path / "w"
    images = images_of(workdir)
    child = subprocess.Popen([sys.executable, "-m", "swimlatent_wrap", "--workdir", str(workdir), "collect", str(recipe)],
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert _wait_for(lambda: images.exists() and len(list(images.glob("*.png"))) >= 3, 30)
    child.send_signal(sig)
    out, err = child.communicate(timeout=30)
    assert child.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert not list(images.glob("*.part"))
    db = sqlite3.connect(workdir / "datasets" / "dbtest" / "manifest.sqlite")
    downloaded = {f"{md5}.{ext}" for md5, ext in db.execute("SELECT md5, file_ext FROM posts WHERE status = 'downloaded'")}
    db.close()
    assert downloaded == {f.name for f in images.iterdir()}  # what finished is recorded, nothing else is on disk
    fake.file_latency = 0.0
    result = run_cli("--workdir", str(workdir), "collect", str(recipe))
    assert result.returncode == 0 and "30/30 images" in result.stdout


def test_a_complete_part_file_left_by_a_kill_is_verified_not_fetched_again(fake, tmp_path):
    from swimlatent_wrap.danbooru.download import reconcile
    from swimlatent_wrap.danbooru.manifest import Manifest

    populate(fake, per_group=4)
    recipe = write_recipe(tmp_path, fake.url, 4)
    post, other = fake.eligible("g", min_pixels=1048576)[:2]
    images = images_of(tmp_path / "w")
    images.mkdir(parents=True)
    with Manifest(tmp_path / "w" / "datasets" / "dbtest" / "manifest.sqlite") as manifest:
        manifest.record(post, "g", "planned")
        manifest.record(other, "g", "planned")
    (images / f"{post['md5']}.png.part").write_bytes(fake.files[post["md5"]])             # complete: kept
    (images / f"{other['md5']}.png.part").write_bytes(fake.files[other["md5"]][:10])       # partial: removed
    (images / ".caption.txt.part").write_text("the tagger's temp file")                    # not ours: left alone
    with Manifest(tmp_path / "w" / "datasets" / "dbtest" / "manifest.sqlite") as manifest:
        assert reconcile(manifest, images) == 1
        assert manifest.get(post["id"])["status"] == "downloaded"
    assert (images / f"{post['md5']}.png").is_file() and not (images / f"{other['md5']}.png.part").exists()
    assert (images / ".caption.txt.part").exists()
    (images / ".caption.txt.part").unlink()
    result = run_cli("--workdir", str(tmp_path / "w"), "collect", str(recipe))
    assert result.returncode == 0 and "4/4 images" in result.stdout
    assert fake.file_requests[post["md5"]] == 0 and fake.file_requests[other["md5"]] == 1


def test_refusals_say_what_to_change(fake, tmp_path):
    recipe = write_recipe(tmp_path / "a", fake.url, 4, artists=[])
    result = run_cli("--workdir", str(tmp_path / "w"), "collect", str(recipe))
    assert result.returncode == 1 and "no artist tags" in result.stderr and "Traceback" not in result.stderr
    lora = REPO / "recipes" / "swim-in-latent" / "lora.toml"
    result = run_cli("--workdir", str(tmp_path / "w"), "collect", str(lora))
    assert result.returncode == 1 and "danbooru-ft" in result.stderr
    cannot = write_recipe(tmp_path / "b", fake.url, 4, artists=["x"], extra='tags = ["pool:12"]')
    result = run_cli("--workdir", str(tmp_path / "w"), "collect", str(cannot))
    assert result.returncode == 1 and "tag_limit" in result.stderr and "cannot be checked locally" in result.stderr
    assert not fake.api_requests
    # the account's real limit is lower than the recipe says: the server's 422 comes back as one clear line
    fake.tag_limit = 1
    populate(fake, per_group=2)
    result = run_cli("--workdir", str(tmp_path / "w"), "collect", str(write_recipe(tmp_path / "c", fake.url, 2, extra='tags = ["1girl"]')))
    assert result.returncode == 1 and "HTTP 422" in result.stderr and "tag_limit" in result.stderr
    assert "Traceback" not in result.stderr
    fake.tag_limit, fake.credentials = 2, ("alice", "other")
    result = run_cli("--workdir", str(tmp_path / "w"), "collect", str(write_recipe(tmp_path / "d", fake.url, 2)), env=ENV)
    assert result.returncode == 1 and "HTTP 401" in result.stderr and KEY not in result.stderr + result.stdout


def test_extra_tags_past_the_limit_are_checked_locally(fake, tmp_path):
    for i in range(1, 41):
        fake.add_post(i, score=1000 - i, rating="g" if i % 2 else "s", tags="1girl solo" if i % 4 < 2 else "1girl")
    recipe = write_recipe(tmp_path, fake.url, 6, extra='tags = ["1girl", "solo"]')
    result = run_cli("--workdir", str(tmp_path / "w"), "collect", str(recipe))
    assert result.returncode == 0, result.stderr
    assert "checked locally" in result.stdout
    db = sqlite3.connect(tmp_path / "w" / "datasets" / "dbtest" / "manifest.sqlite")
    tags = [t for (t,) in db.execute("SELECT tags_general FROM posts WHERE status = 'downloaded'")]
    assert len(tags) == 6 and all("solo" in t.split() for t in tags)
    assert db.execute("SELECT COUNT(*) FROM posts WHERE reason = 'lacks tag: solo'").fetchone()[0] > 0
    assert all("solo" not in q for q, _ in fake.api_queries)


@pytest.mark.parametrize("mix", ["score", "even"])
def test_artist_lists(fake, tmp_path, mix):
    for i in range(1, 41):
        fake.add_post(i, score=1000 - i, rating="g" if i % 2 else "s", artist=("ann" if i <= 30 else "bob"))
    recipe = write_recipe(tmp_path, fake.url, 8, artists=["ann", "bob"], extra=f'artist_mix = "{mix}"')
    result = run_cli("--workdir", str(tmp_path / "w"), "collect", str(recipe))
    assert result.returncode == 0, result.stderr
    db = sqlite3.connect(tmp_path / "w" / "datasets" / "dbtest" / "manifest.sqlite")
    got = {i for (i,) in db.execute("SELECT id FROM posts WHERE status = 'downloaded'")}
    if mix == "score":  # the highest-scored of both artists together
        assert got == {1, 3, 5, 7, 2, 4, 6, 8}
    else:  # each artist in turn
        assert got == {1, 3, 31, 33, 2, 4, 32, 34}
    assert all(("ann" in q) != ("bob" in q) for q, _ in fake.api_queries)
