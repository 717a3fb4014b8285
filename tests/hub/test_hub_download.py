"""`hf:` models (stages/hub.py) against a fake Hugging Face Hub over loopback HTTP (tests/hub/fake_hub.py),
huggingface_hub pointed at it through HF_ENDPOINT / HF_HOME / HF_TOKEN in a child process, as a user runs it."""

from __future__ import annotations

import hashlib
import json
import random
import time
from pathlib import Path

import pytest

from swimlatent_wrap.workdir import Workdir
from tests.hub.conftest import child, popen
from tests.hub.fake_hub import FakeHub

REPO_ID = "stabilityai/sdxl-tiny"
NAME = "sd_xl_base_1.0.safetensors"
DATA = random.Random(11).randbytes(3_000_000)  # 3 MB: several reads, small enough for any machine
SHA = hashlib.sha256(DATA).hexdigest()
CUT = 1_234_567
# huggingface_hub >= 1.0 (httpx) hands over bytes as they arrive: a cut loses none; 0.x (requests,
# the version sd-scripts pins) in reads of 64 KiB: a cut loses less than one.
SLACK = 1 << 16


def kept_bytes(part: Path) -> int:
    """The .part's size, checked to be a prefix of the file that ends at most SLACK before the cut."""
    data = part.read_bytes()
    assert CUT - SLACK < len(data) <= CUT and data == DATA[:len(data)], len(data)
    return len(data)

# ensure_hub_file, the stage function train and smoke call; one line per outcome on stdout.
FETCH = """
import sys
from pathlib import Path
from swimlatent_wrap.errors import UserError
from swimlatent_wrap.stages.hub import ensure_hub_file
from swimlatent_wrap.workdir import Workdir
try:
    path, sha = ensure_hub_file(Workdir(Path(sys.argv[1])), sys.argv[2], sys.argv[3])
except UserError as error:
    print("ERROR", *error.lines, sep="\\n")
    sys.exit(1)
print("OK", path, sha)
"""


@pytest.fixture
def fetch(hub: FakeHub, tmp_path: Path):
    hub.add(REPO_ID, {NAME: DATA, "README.md": b"# tiny\n"}, lfs={NAME})
    work = tmp_path / "work"

    def run(repo_id: str = REPO_ID, name: str = NAME, **env: str):
        return child(FETCH, str(work), repo_id, name, env={**hub.env(tmp_path / "hf"), **env})

    run.work = work  # type: ignore[attr-defined]
    run.target = Workdir(work).hub_file(REPO_ID, NAME)  # type: ignore[attr-defined]
    return run


def errors(done) -> list[str]:
    return done.stdout.split("ERROR\n", 1)[1].splitlines() if "ERROR\n" in done.stdout else []


def test_first_download_shows_progress_verifies_and_is_remembered(fetch, hub):
    done = fetch()
    assert done.returncode == 0, done.stdout + done.stderr
    target = fetch.target
    assert done.stdout.split() == ["OK", str(target), SHA]
    assert f"swimlatent: fetching hf:{REPO_ID}/{NAME} (3.0 MB) into {target.parent}" in done.stderr
    assert f"{NAME}: 100%" in done.stderr  # the progress bar
    assert target.read_bytes() == DATA and not target.with_name(NAME + ".part").exists()
    assert json.loads(target.with_name(NAME + ".verified.json").read_text())["sha256"] == SHA
    assert hub.gets(NAME) == [None]
    asked = len(hub.requests)
    again = fetch()  # verified before: no request at all
    assert again.returncode == 0 and again.stdout.split()[2] == SHA
    assert len(hub.requests) == asked


def test_a_small_non_lfs_file_is_checked_against_its_git_blob_id(fetch, hub):
    done = fetch(name="README.md")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.split()[2] == hashlib.sha256(b"# tiny\n").hexdigest()


def test_the_part_file_holds_the_bytes_while_the_download_runs(fetch, hub, tmp_path):
    hub.hold_after[NAME] = CUT
    proc = popen(FETCH, str(fetch.work), REPO_ID, NAME, env=hub.env(tmp_path / "hf"))
    try:
        assert hub.held.wait(60)
        part = fetch.target.with_name(NAME + ".part")
        for _ in range(600):  # the child writes what it received; wait for it, event by event
            if part.is_file() and part.stat().st_size > CUT - SLACK:
                break
            proc.poll()
            time.sleep(0.05)
        kept_bytes(part)
        assert not fetch.target.exists()
    finally:
        hub.release.set()
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, out + err
    assert fetch.target.read_bytes() == DATA


def test_a_dropped_connection_is_resumed_in_the_same_run(fetch, hub):
    hub.cut_after[NAME] = CUT
    done = fetch()
    assert done.returncode == 0, done.stdout + done.stderr
    first, resumed = hub.gets(NAME)
    kept = int(resumed.removeprefix("bytes=").removesuffix("-"))
    assert first is None and CUT - SLACK < kept <= CUT
    assert f"connection lost at {kept} of {len(DATA)} bytes" in done.stderr
    assert fetch.target.read_bytes() == DATA


def test_a_cut_then_an_outage_keeps_the_bytes_and_the_next_run_resumes_them(fetch, hub):
    hub.cut_after[NAME] = CUT
    hub.outage_after_cut = True  # huggingface_hub's own retries would give up here and delete its partial file
    done = fetch()
    assert done.returncode == 1
    part = fetch.target.with_name(NAME + ".part")
    assert errors(done) == [(f"hf:{REPO_ID}/{NAME}: download interrupted (the Hub answered 503); 1.2 MB of 3.0 MB kept "
                            f"in {part}: run again to resume it")], done.stdout + done.stderr
    kept = kept_bytes(part)
    assert not fetch.target.exists()
    hub.outage.clear()
    hub.outage_after_cut = False
    hub.requests.clear()
    again = fetch()
    assert again.returncode == 0, again.stdout + again.stderr
    assert hub.gets(NAME) == [f"bytes={kept}-"]  # from the kept bytes, not from byte 0
    assert f"resuming hf:{REPO_ID}/{NAME} at 1.2 MB of 3.0 MB" in again.stderr
    assert again.stdout.split()[2] == SHA and not part.exists()


def test_an_outage_before_any_byte_is_one_line(fetch, hub):
    hub.outage.set()
    done = fetch()
    assert done.returncode == 1
    [line] = errors(done)
    assert line.startswith(f"hf:{REPO_ID}/{NAME}: the Hugging Face Hub answered 503; try again later; and it is not in ")


def test_a_corrupted_download_is_moved_aside_and_the_next_run_fetches_it_afresh(fetch, hub):
    hub.corrupt[NAME] = DATA[:1000] + bytes(1000) + DATA[2000:]  # same size, other bytes
    done = fetch()
    assert done.returncode == 1
    broken = fetch.target.with_name(NAME + ".corrupt")
    [line] = errors(done)
    assert line.startswith(f"hf:{REPO_ID}/{NAME}: checksum mismatch") and SHA in line and str(broken) in line
    assert broken.read_bytes() == hub.corrupt[NAME] and not fetch.target.exists()
    del hub.corrupt[NAME]
    again = fetch()
    assert again.returncode == 0 and again.stdout.split()[2] == SHA
    assert fetch.target.read_bytes() == DATA


def test_a_gated_repo_without_a_token_is_one_line_naming_the_licence_page_and_hf_token(fetch, hub):
    hub.add("gated/sdxl", {NAME: DATA}, lfs={NAME}, gated=True)
    done = fetch("gated/sdxl")
    assert done.returncode == 1
    assert errors(done) == [(f"hf:gated/sdxl/{NAME}: gated/sdxl is gated: accept its licence at {hub.url}/gated/sdxl "
                            f"(logged in), then set HF_TOKEN to an access token of that account")]
    assert "run again" not in done.stdout
    with_token = fetch("gated/sdxl", HF_TOKEN=hub.token)
    assert with_token.returncode == 0, with_token.stdout + with_token.stderr
    assert with_token.stdout.split()[2] == SHA


def test_an_unknown_repo_or_file_is_one_line(fetch, hub):
    no_repo = fetch("nobody/nothing")
    assert no_repo.returncode == 1 and len(errors(no_repo)) == 1
    assert "nobody/nothing" in errors(no_repo)[0] and "HF_TOKEN" in errors(no_repo)[0]
    no_file = fetch(REPO_ID, "missing.safetensors")
    assert no_file.returncode == 1
    assert errors(no_file) == [f"hf:{REPO_ID}/missing.safetensors: no file 'missing.safetensors' in the Hub repo {REPO_ID}"]


@pytest.mark.parametrize("how", ["offline", "unreachable"])
def test_without_the_hub_and_without_the_file_is_one_line(fetch, hub, closed_endpoint, how):
    env = {"HF_HUB_OFFLINE": "1"} if how == "offline" else {"HF_ENDPOINT": closed_endpoint}
    done = fetch(**env)
    assert done.returncode == 1
    [line] = errors(done)
    assert line.startswith(f"hf:{REPO_ID}/{NAME}: cannot reach the Hugging Face Hub") and "local path" in line
    assert ("HF_HUB_OFFLINE is set" if how == "offline" else "Connect") in line  # ConnectError / ConnectionError
    assert "Traceback" not in done.stderr and not hub.requests


@pytest.mark.parametrize("how", ["offline", "unreachable"])
def test_without_the_hub_a_fetched_file_serves_and_an_unverified_one_warns(fetch, hub, closed_endpoint, how):
    assert fetch().returncode == 0
    env = {"HF_HUB_OFFLINE": "1"} if how == "offline" else {"HF_ENDPOINT": closed_endpoint}
    hub.requests.clear()
    done = fetch(**env)
    assert done.returncode == 0 and done.stdout.split()[2] == SHA and not hub.requests
    fetch.target.with_name(NAME + ".verified.json").unlink()  # present, never verified
    unverified = fetch(**env)
    assert unverified.returncode == 0 and unverified.stdout.split()[1:] == [str(fetch.target), "None"]
    assert f"swimlatent: warning: using {fetch.target} unverified" in unverified.stderr


# preflight's quick question before anything slow (train's checks): the same answers, as problems.
PREFLIGHT = """
import sys
from pathlib import Path
from swimlatent_wrap.recipe.model import HubRef
from swimlatent_wrap.stages.preflight import Preflight, check_hub_model
from swimlatent_wrap.workdir import Workdir
result = Preflight()
check_hub_model(HubRef("hf:" + sys.argv[2] + "/" + sys.argv[3], sys.argv[2], sys.argv[3]), Workdir(Path(sys.argv[1])), result)
print("SIZE", getattr(result.hub_remote, "size", None))
for line in result.problems:
    print("PROBLEM", line)
"""


def test_preflight_asks_the_hub_and_reports_a_gated_repo_before_training(hub, tmp_path):
    hub.add(REPO_ID, {NAME: DATA}, lfs={NAME})
    hub.add("gated/sdxl", {NAME: DATA}, lfs={NAME}, gated=True)
    env = hub.env(tmp_path / "hf")
    ok = child(PREFLIGHT, str(tmp_path / "work"), REPO_ID, NAME, env=env)
    assert ok.stdout.splitlines() == [f"SIZE {len(DATA)}"], ok.stdout + ok.stderr
    gated = child(PREFLIGHT, str(tmp_path / "work"), "gated/sdxl", NAME, env=env)
    assert gated.stdout.splitlines()[1:] == [(f"PROBLEM model = hf:gated/sdxl/{NAME}: gated/sdxl is gated: accept its "
                                             f"licence at {hub.url}/gated/sdxl (logged in), then set HF_TOKEN to an "
                                             f"access token of that account")], gated.stdout + gated.stderr
    assert not hub.gets(NAME)  # asked, nothing downloaded
