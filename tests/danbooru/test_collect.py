"""`swimlatent collect` as a real child process against the fake Danbooru: full runs, kill and resume, refusals."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

from swimlatent_wrap import __version__
from tests.danbooru.conftest import write_recipe
from tests.helpers import REPO, run_cli

KEY = "sEcReT-kEy-0123456789"


def populate(fake, per_rating=30):
    """Eligible posts of both groups, plus high-scored traps that must never be collected."""
    pid = 0
    for group in ("g", "sqe"):
        for i in range(per_rating):
            pid += 1
            rating = group if group == "g" else "sqe"[i % 3]
            fake.add_post(pid, score=100 + (pid * 37) % 500, rating=rating, days_old=5 + i * 20)
    traps = []
    for rating in ("g", "e"):
        for kind in ("deleted", "hidden", "bad_md5", "old", "gif", "small"):
            pid += 1
            kw = {"deleted": {"deleted": True}, "hidden": {"hidden": True}, "bad_md5": {"bad_md5": True},
                  "old": {"days_old": 365 * 5}, "gif": {"ext": "gif"}, "small": {"width": 512, "height": 512}}[kind]
            traps.append(fake.add_post(pid, score=5000 + pid, rating=rating, **kw))
    return traps


def expected_ids(fake, ratings, n):
    ok = [p for p in fake.posts if p["rating"] in ratings and not p["is_deleted"] and "file_url" in p
          and p["file_ext"] == "png" and p["image_width"] >= 1024 and p["created_at"] and
          fake.files[p["md5"]] == fake.files[p["md5"]] and hashlib.md5(fake.files[p["md5"]]).hexdigest() == p["md5"]
          and p["id"] <= 60]
    ok.sort(key=lambda p: (-p["score"], -p["id"]))
    return {p["id"] for p in ok[:n]}


def check_dataset(fake, workdir, count, out_text):
    images = workdir / "datasets" / "dbtest" / "images"
    files = sorted(images.iterdir())
    assert not [f for f in files if f.name.endswith(".part")]
    assert len(files) == count
    for f in files:
        assert hashlib.md5(f.read_bytes()).hexdigest() == f.stem
    db = sqlite3.connect(workdir / "datasets" / "dbtest" / "manifest.sqlite")
    rows = db.execute("SELECT id, split FROM posts WHERE status = 'downloaded'").fetchall()
    assert len(rows) == count
    by_split = {s: {i for i, sp in rows if sp == s} for s in ("g", "s,q,e")}
    assert len(by_split["g"]) == len(by_split["s,q,e"]) == count // 2
    assert by_split["g"] == expected_ids(fake, "g", count // 2)
    assert by_split["s,q,e"] == expected_ids(fake, "sqe", count // 2)
    reasons = dict(db.execute("SELECT id, reason FROM posts WHERE status != 'downloaded'").fetchall())
    assert any("hidden" in (r or "") for r in reasons.values())
    assert any("md5" in (r or "") for r in reasons.values())
    # an honest User-Agent on every request, and the key nowhere
    assert fake.user_agents and all(ua == f"swimlatent/{__version__} (by alice)" for ua in fake.user_agents)
    assert KEY not in out_text
    for path in workdir.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
    return by_split


ENV = {"DANBOORU_LOGIN": "alice", "DANBOORU_API_KEY": KEY}


def test_collect_full_run_with_faults(fake, tmp_path):
    fake.credentials = ("alice", KEY)
    traps = populate(fake)
    fake.fail_500, fake.fail_429, fake.retry_after, fake.truncate_json, fake.truncate_file = 1, 1, "1", 1, 2
    recipe = write_recipe(tmp_path, fake.url, 20)
    result = run_cli("--workdir", str(tmp_path / "w"), "collect", str(recipe), env=ENV)
    assert result.returncode == 0, result.stderr
    assert "20/20 images" in result.stdout
    check_dataset(fake, tmp_path / "w", 20, result.stdout + result.stderr)
    queries = " ".join(fake.api_requests)
    assert "-status%3Adeleted" in queries and "order%3Ascore" in queries and "age%3A%3C4y" in queries
    assert not any(fake.file_requests[t["md5"]] for t in traps if t.get("md5") and t["file_ext"] == "gif")
    # a second run fetches nothing again
    before = dict(fake.file_requests)
    again = run_cli("--workdir", str(tmp_path / "w"), "collect", str(recipe), env=ENV)
    assert again.returncode == 0 and "0 downloaded now" in again.stdout
    assert dict(fake.file_requests) == before
    # --limit keeps the split on a fresh dataset
    limited = run_cli("--workdir", str(tmp_path / "w2"), "collect", str(recipe), "--limit", "6", env=ENV)
    assert limited.returncode == 0 and "6/6 images" in limited.stdout


def test_kill_and_resume(fake, tmp_path):
    fake.credentials = ("alice", KEY)
    populate(fake)
    fake.file_latency = 0.06
    fake.fail_500 = 1
    recipe = write_recipe(tmp_path, fake.url, 30)
    workdir = tmp_path / "w"
    images = workdir / "datasets" / "dbtest" / "images"
    env = dict(os.environ, **ENV)
    child = subprocess.Popen([sys.executable, "-m", "swimlatent_wrap", "--workdir", str(workdir), "collect", str(recipe)],
                             cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    goal = random.randint(3, 20)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done = [f for f in images.glob("*.png")] if images.exists() else []
        if len(done) >= goal:
            break
        time.sleep(0.01)
    time.sleep(random.random() * 0.1)
    child.send_signal(signal.SIGKILL)
    out, err = child.communicate()
    present = {f.stem for f in images.glob("*.png")}
    counts = dict(fake.file_requests)
    assert 0 < len(present) < 30, "kill came too late to test a resume"
    fake.file_latency = 0.0
    result = run_cli("--workdir", str(workdir), "collect", str(recipe), env=ENV)
    assert result.returncode == 0, result.stderr
    check_dataset(fake, workdir, 30, out.decode() + err.decode() + result.stdout + result.stderr)
    for md5 in present:  # files in place before the kill were never fetched again
        assert fake.file_requests[md5] == counts[md5]


def test_refusals(fake, tmp_path):
    recipe = write_recipe(tmp_path / "a", fake.url, 4, artists=[])
    result = run_cli("--workdir", str(tmp_path / "w"), "collect", str(recipe))
    assert result.returncode == 1 and "no artist tags" in result.stderr and "Traceback" not in result.stderr
    lora = REPO / "recipes" / "swim-in-latent" / "lora.toml"
    result = run_cli("--workdir", str(tmp_path / "w"), "collect", str(lora))
    assert result.returncode == 1 and "danbooru-ft" in result.stderr
    too_many = write_recipe(tmp_path / "b", fake.url, 4, extra="", artists=["x"])
    text = too_many.read_text().replace("concurrency = 2", 'concurrency = 2\ntags = ["solo"]')
    too_many.write_text(text)
    result = run_cli("--workdir", str(tmp_path / "w"), "collect", str(too_many))
    assert result.returncode == 1 and "tag_limit" in result.stderr
    assert not fake.api_requests


def test_artists_round_robin(fake, tmp_path):
    for i in range(1, 41):
        fake.add_post(i, score=1000 - i, rating="g" if i % 2 else "s", artist=("ann" if i <= 30 else "bob"))
    recipe = write_recipe(tmp_path, fake.url, 8, artists=["ann", "bob"])
    result = run_cli("--workdir", str(tmp_path / "w"), "collect", str(recipe))
    assert result.returncode == 0, result.stderr
    db = sqlite3.connect(tmp_path / "w" / "datasets" / "dbtest" / "manifest.sqlite")
    artists = [a for (a,) in db.execute("SELECT tags_artist FROM posts WHERE status = 'downloaded'")]
    assert artists.count("ann") == 4 and artists.count("bob") == 4
    assert all("ann" in r or "bob" in r for r in fake.api_requests)


def test_report_after_collect(fake, tmp_path):
    populate(fake, per_rating=6)
    recipe = write_recipe(tmp_path, fake.url, 6)
    assert run_cli("--workdir", str(tmp_path / "w"), "collect", str(recipe)).returncode == 0
    result = run_cli("--workdir", str(tmp_path / "w"), "report", str(recipe))
    assert result.returncode == 0, result.stderr
    assert "general" in result.stdout and "md5 mismatch" in result.stdout and "some_artist" in result.stdout
    page = (tmp_path / "w" / "datasets" / "dbtest" / "report" / "index.html").read_text()
    assert page.count("<svg") >= 5 and page.count("<img") == 6
