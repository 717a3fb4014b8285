"""`collect` when Danbooru cannot be reached: every retry is a line naming the host and the cause
(never minutes of silence), then one line saying why it gave up and that what it has is kept."""

from __future__ import annotations

import socket

import pytest

from tests.danbooru.conftest import write_recipe
from tests.helpers import run_cli


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released: connecting is refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(("url", "cause"), [
    ("http://danbooru.invalid", "cannot resolve danbooru.invalid"),  # .invalid never resolves (RFC 2606)
    (None, "refused the connection"),
])
def test_an_unreachable_danbooru_is_said_on_every_retry_and_in_the_last_line(tmp_path, url, cause):
    url = url or f"http://127.0.0.1:{closed_port()}"
    recipe = write_recipe(tmp_path / "recipes", url, 4, extra="retry_wait = 0.01\nmax_tries = 3")
    result = run_cli("--workdir", str(tmp_path / "work"), "collect", str(recipe))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    retries = [line for line in result.stderr.splitlines() if "trying again" in line]
    assert len(retries) == 2 and all(cause in line for line in retries), result.stderr
    assert retries[1].endswith("(try 3 of 3)")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert "gave up on /posts.json after 3 tries: " in errors[0] and cause in errors[0]
    assert "what was downloaded is kept" in errors[1]
