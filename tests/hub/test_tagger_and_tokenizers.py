"""The tagger model (tagger/model_files.py) and the CLIP tokenizers (stages/tokenizers.py) fetched
through the real CLI from the fake Hugging Face Hub (tests/hub/fake_hub.py) over loopback HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest

from swimlatent_wrap.stages import tokenizers as tk
from tests.helpers import make_images, run_cli
from tests.hub.fake_hub import FakeHub
from tests.tagger.tiny_tagger import build_tiny_tagger
from tests.tokenizers.test_tokenizers import LAION, OPENAI, built  # noqa: F401  (the fixture)

TAGGER = "SmilingWolf/wd-swinv2-tagger-v3"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, bytes]:
    folder = build_tiny_tagger(tmp_path_factory.mktemp("tiny") / "tiny")
    return {name: (folder / name).read_bytes() for name in ("model.onnx", "selected_tags.csv")}


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


def tag(images: Path, model: str, env: dict[str, str]):
    return run_cli("tag", "--images", str(images), "--model", model, env={"SWIMLATENT_WORKDIR": str(images.parent / "w"), **env})


def test_the_tagger_model_is_fetched_once_then_served_from_the_cache_offline(hub: FakeHub, tiny, tmp_path, closed_endpoint):
    hub.add(TAGGER, tiny, lfs={"model.onnx"})
    images = tmp_path / "images"
    make_images(images, 1)
    env = hub.env(tmp_path / "hf")
    done = tag(images, TAGGER, env)
    assert done.returncode == 0, done.stderr
    assert (images / "img000.txt").read_text(encoding="utf-8").strip()
    assert hub.gets("model.onnx") == [None] and hub.gets("selected_tags.csv") == [None]
    snapshots = list((tmp_path / "hf" / "hub" / ("models--" + TAGGER.replace("/", "--")) / "snapshots").iterdir())
    assert [p.name for p in snapshots] and (snapshots[0] / "model.onnx").read_bytes() == tiny["model.onnx"]
    hub.requests.clear()
    for other in ({"HF_HUB_OFFLINE": "1"}, {"HF_ENDPOINT": closed_endpoint}):
        (images / "img000.txt").unlink()
        again = tag(images, TAGGER, {**env, **other})
        assert again.returncode == 0, again.stderr
        assert (images / "img000.txt").is_file()
    assert not hub.requests  # the cache is looked at first: no request at all


def test_a_gated_tagger_repo_without_a_token_is_one_line(hub: FakeHub, tiny, tmp_path):
    hub.add("gated/tagger", tiny, lfs={"model.onnx"}, gated=True)
    images = tmp_path / "images"
    make_images(images, 1)
    done = tag(images, "gated/tagger", hub.env(tmp_path / "hf"))
    assert done.returncode == 1
    assert error_lines(done.stderr) == [(f"error: cannot get the tagger model gated/tagger: gated/tagger is gated: accept its "
                                        f"licence at {hub.url}/gated/tagger (logged in), then set HF_TOKEN to an access "
                                        f"token of that account")], done.stderr
    with_token = tag(images, "gated/tagger", {**hub.env(tmp_path / "hf"), "HF_TOKEN": hub.token})
    assert with_token.returncode == 0, with_token.stderr


def test_a_tagger_repo_without_its_tags_and_an_unknown_repo_are_one_clear_line_each(hub: FakeHub, tiny, tmp_path):
    hub.add("someone/not-a-tagger", {"model.onnx": tiny["model.onnx"]}, lfs={"model.onnx"})
    images = tmp_path / "images"
    make_images(images, 1)
    env = hub.env(tmp_path / "hf")
    no_tags = tag(images, "someone/not-a-tagger", env)
    assert error_lines(no_tags.stderr) == [("error: the Hugging Face repo someone/not-a-tagger has no selected_tags.csv: "
                                           "not a WD14 tagger (it needs model.onnx and selected_tags.csv)")], no_tags.stderr
    unknown = tag(images, "nobody/nothing", env)
    assert error_lines(unknown.stderr)[0] == ("error: cannot get the tagger model nobody/nothing: the Hugging Face Hub has "
                                              "no such repo (or it is private: set HF_TOKEN)"), unknown.stderr


def test_an_uncached_tagger_model_with_nothing_listening_is_one_clear_line(hub: FakeHub, tmp_path, closed_endpoint):
    images = tmp_path / "images"
    make_images(images, 1)
    done = tag(images, TAGGER, {**hub.env(tmp_path / "hf"), "HF_ENDPOINT": closed_endpoint})
    assert done.returncode == 1
    port = closed_endpoint.rsplit(":", 1)[1]
    assert error_lines(done.stderr)[0].startswith(f"error: cannot get the tagger model {TAGGER}: nothing answers at "
                                                  f"127.0.0.1:{port}"), done.stderr
    assert "offline?" in error_lines(done.stderr)[1] and "Traceback" not in done.stderr


def serve_tokenizers(hub: FakeHub, built: Path, *, gated: bool = False, without: tuple[str, ...] = ()) -> None:  # noqa: F811
    for folder, repo_id in ((OPENAI, "openai/clip-vit-large-patch14"), (LAION, "laion/CLIP-ViT-bigG-14-laion2B-39B-b160k")):
        files = {p.name: p.read_bytes() for p in (built / folder).iterdir() if p.is_file() and p.name not in without}
        hub.add(repo_id, files, gated=gated)


def test_the_tokenizers_are_fetched_from_the_fake_hub_through_the_cli(hub: FakeHub, built, tmp_path):  # noqa: F811
    assert [tok.repo_id for tok in tk.TOKENIZERS] == ["openai/clip-vit-large-patch14", "laion/CLIP-ViT-bigG-14-laion2B-39B-b160k"]
    serve_tokenizers(hub, built, without=("special_tokens_map.json",))  # optional: skipped when absent
    work = tmp_path / "work"
    done = run_cli("--workdir", str(work), "tokenizers", "--fetch", env=hub.env(tmp_path / "hf"))
    assert done.returncode == 0, done.stderr
    cache = work / "cache" / "tokenizers"
    assert tk.cache_problem(cache) is None
    assert (cache / LAION / "vocab.json").read_bytes() == (built / LAION / "vocab.json").read_bytes()


def test_gated_and_missing_tokenizer_files_are_one_line(hub: FakeHub, built, tmp_path):  # noqa: F811
    serve_tokenizers(hub, built, gated=True)
    work = tmp_path / "work"
    gated = run_cli("--workdir", str(work), "tokenizers", "--fetch", env=hub.env(tmp_path / "hf"))
    assert gated.returncode == 1
    assert error_lines(gated.stderr) == [(f"error: cannot fetch vocab.json of openai/clip-vit-large-patch14: "
                                         f"openai/clip-vit-large-patch14 is gated: accept its licence at "
                                         f"{hub.url}/openai/clip-vit-large-patch14 (logged in), then set HF_TOKEN to "
                                         f"an access token of that account")], gated.stderr
    hub.repos.clear()
    serve_tokenizers(hub, built, without=("merges.txt",))
    missing = run_cli("--workdir", str(work), "tokenizers", "--fetch", env=hub.env(tmp_path / "hf2"))
    [line] = error_lines(missing.stderr)
    assert "merges.txt of openai/clip-vit-large-patch14" in line and "EntryNotFoundError" in line and "--from-bpe FILE" in line
