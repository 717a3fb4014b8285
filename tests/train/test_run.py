"""`swimlatent run`: the stage chain base → ft → lora through stage: references, skipping what is
done, re-training what changed (also downstream), resuming an interrupted stage, and the steps
before training for real: collect from a loopback fake Danbooru, tag with the tiny WD14 tagger,
link a selection."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from swimlatent_wrap.modelspec.safetensors_file import read_safetensors
from swimlatent_wrap.stages.verify import sha256_file
from tests.danbooru.fake import Fake
from tests.tagger.tiny_tagger import build_tiny_tagger
from tests.train.conftest import CAPTION, write_images

PREFIX = "new, newest, masterpiece, best quality, "  # base.toml's [captions] prefix


def run(lab, stage: str, **env: str):
    return lab.cli("run", str(lab.recipes / f"{stage}.toml"), "--allow-cpu", **env)


@pytest.fixture(scope="module")
def tagger_model(tmp_path_factory) -> Path:
    """The tests' tiny WD14 tagger (tests/tagger/tiny_tagger.py). On every image "1girl" has p 0.95
    and "looking_at_viewer" p 0.36: both pass the default general threshold (0.35), only "1girl" 0.5."""
    return build_tiny_tagger(tmp_path_factory.mktemp("tagger") / "tiny")


@pytest.fixture
def danbooru():
    server = Fake()
    server.start()
    yield server
    server.stop()


def test_chain_base_ft_lora_through_stage_references(stages):
    lab = stages
    for stage in ("base", "ft", "lora"):
        done = run(lab, stage)
        assert done.returncode == 0, done.stderr
    base, ft, lora = (lab.model(s) for s in ("base", "ft", "lora"))
    # each stage started from the previous one's placed model
    assert lab.steps_in(base) == 12
    assert lab.steps_in(ft) == 12 + 9  # base's steps + 3 epochs × 3 images
    ft_record, lora_record = lab.record("ft"), lab.record("lora")
    assert ft_record["input_model"] == {"ref": "stage:base", "path": str(base), "sha256": sha256_file(base),
                                        "from_run": str(lab.runs("base")[-1])}
    assert lora_record["input_model"]["sha256"] == sha256_file(ft)
    lora_meta = read_safetensors(lora).metadata
    assert lora_meta["ss_new_sd_model_hash"] == sha256_file(ft)  # sd-scripts trained the LoRA on ft's file
    assert lora_meta["modelspec.architecture"] == "stable-diffusion-xl-v1-base/lora"
    assert lab.steps_in(lora) == 8
    # trace the LoRA back: its record → ft's run → base's run → the checkpoint
    ft_run = Path(lora_record["input_model"]["from_run"])
    assert json.loads((ft_run / "run.json").read_text())["output"]["sha256"] == sha256_file(ft)
    assert ft_record["input_model"]["from_run"] == str(lab.runs("base")[-1])
    # the LoRA stage ends with sweep → merge (verified) → stamp → release/<title>.safetensors
    assert list((lab.root / "work" / "sweeps" / "lora").glob("*/grid.png"))
    release = lab.root / "work" / "release" / "lora.safetensors"
    meta = read_safetensors(release).metadata
    assert meta["modelspec.title"] == "lora" and meta["modelspec.hash_sha256"].startswith("0x")
    again = run(lab, "lora")
    assert "sweep: skipped" in again.stderr and "merge: skipped" in again.stderr, again.stderr


def test_run_skips_what_is_done_and_retrains_what_changed(stages):
    lab = stages
    assert run(lab, "base").returncode == 0
    assert run(lab, "ft").returncode == 0
    ft_before = sha256_file(lab.model("ft"))

    again = run(lab, "base")
    assert again.returncode == 0
    assert "train: skipped: inputs unchanged" in again.stderr and "tag: skipped" in again.stderr
    assert len(lab.runs("base")) == 1

    assert "train: skipped" in run(lab, "ft").stderr

    # a changed caption in base's dataset: base trains again, and so does ft, whose input changed
    (lab.root / "data" / "base" / "img000.txt").write_text("new, newest, masterpiece, best quality, 1boy\n")
    assert "train: skipped" not in run(lab, "base").stderr
    assert len(lab.runs("base")) == 2
    done = run(lab, "ft")
    assert "train: skipped" not in done.stderr, done.stderr
    assert len(lab.runs("ft")) == 2
    assert sha256_file(lab.model("ft")) != ft_before
    assert lab.record("ft")["input_model"]["sha256"] == sha256_file(lab.model("base"))

    # a changed recipe value retrains too
    recipe = lab.recipes / "ft.toml"
    recipe.write_text(recipe.read_text() + '\n[args]\nlearning_rate = 3e-6\n')
    assert "train: skipped" not in run(lab, "ft").stderr


def test_a_replaced_model_file_is_not_taken_as_done(stages):
    lab = stages
    assert run(lab, "base").returncode == 0
    lab.model("base").unlink()
    done = run(lab, "base")
    assert "train: skipped" not in done.stderr
    assert lab.model("base").is_file()


def test_run_resumes_an_interrupted_stage_with_the_same_inputs(stages):
    lab = stages
    assert run(lab, "base", STANDIN_CRASH_AT_EPOCH="3").returncode == 1
    done = run(lab, "base")
    assert done.returncode == 0, done.stderr
    assert "resuming from its saved state" in done.stderr
    assert lab.record("base")["resume"]["done_epochs"] == 2
    assert lab.steps_in(lab.model("base")) == 12


def test_run_after_train_with_nothing_changed_does_not_train_again(stages):
    """`train` records the inputs digest `run` compares (one function computes it for both)."""
    lab = stages
    trained = lab.cli("train", str(lab.recipes / "base.toml"), "--allow-cpu")
    assert trained.returncode == 0, trained.stderr
    [first] = lab.runs("base")
    assert lab.record("base")["inputs_digest"]
    done = run(lab, "base")
    assert done.returncode == 0, done.stderr
    assert f"train: skipped: inputs unchanged since the run in {first}" in done.stderr, done.stderr
    assert lab.runs("base") == [first]
    assert run(lab, "base").returncode == 0 and lab.runs("base") == [first]


def test_run_resumes_a_train_that_crashed_with_the_same_inputs(stages):
    lab = stages
    assert lab.cli("train", str(lab.recipes / "base.toml"), "--allow-cpu", STANDIN_CRASH_AT_EPOCH="3").returncode == 1
    done = run(lab, "base")
    assert done.returncode == 0, done.stderr
    assert "resuming from its saved state" in done.stderr, done.stderr
    assert lab.record("base")["resume"]["done_epochs"] == 2
    assert lab.steps_in(lab.model("base")) == 12


def test_run_collects_and_tags_then_trains_and_skips_both_when_unchanged(stages, danbooru, tagger_model):
    lab = stages
    for post_id in range(1, 6):
        danbooru.add_post(post_id, score=100 + post_id, rating="g")
    danbooru.add_post(6, score=500, rating="e")  # outside the split
    wanted = {p["md5"] for p in danbooru.eligible("g")[:3]}
    recipe = lab.recipe("danbooru", f"""\
        extends = "base.toml"
        name = "danbooru"
        [dataset]
        name = "collected"
        source = "danbooru"
        [dataset.danbooru]
        count = 3
        requests_per_second = 100.0
        [[dataset.danbooru.splits]]
        ratings = "g"
        share = 1.0
        [captions]
        model = "{tagger_model}"
    """)
    images = lab.workdir / "datasets" / "collected" / "images"
    api = {"DANBOORU_API_URL": danbooru.url}  # the API root the recipe's default is overridden by

    done = run(lab, "danbooru", **api)
    assert done.returncode == 0, done.stderr
    assert "collect: skipped" not in done.stderr and "tag: skipped" not in done.stderr, done.stderr
    assert {p.stem for p in images.glob("*.png")} == wanted  # the three highest-scored rating:g posts
    captions = {p.name: p.read_text() for p in images.glob("*.txt")}
    assert len(captions) == 3
    assert all(c.startswith(PREFIX) and "1girl" in c and "looking at viewer" in c for c in captions.values()), captions
    assert lab.record("danbooru")["dataset"]["captioned"] == 3
    assert lab.steps_in(lab.model("danbooru")) == 9  # 3 epochs × the 3 collected images
    asked = (len(danbooru.api_requests), sum(danbooru.file_requests.values()))

    again = run(lab, "danbooru", **api)
    assert again.returncode == 0, again.stderr
    for step in ("collect", "tag", "train"):
        assert f"{step}: skipped" in again.stderr, again.stderr
    assert (len(danbooru.api_requests), sum(danbooru.file_requests.values())) == asked  # no request at all
    assert {p.name: p.read_text() for p in images.glob("*.txt")} == captions
    assert len(lab.runs("danbooru")) == 1

    # a changed [captions] table re-captions every image (tag --force), and so retrains
    recipe.write_text(recipe.read_text() + "general_threshold = 0.5\n")
    changed = run(lab, "danbooru", **api)
    assert changed.returncode == 0, changed.stderr
    assert "collect: skipped" in changed.stderr and "tag: skipped" not in changed.stderr, changed.stderr
    recaptioned = {p.name: p.read_text() for p in images.glob("*.txt")}
    assert recaptioned.keys() == captions.keys()
    assert all(c.startswith(PREFIX) and "1girl" in c and "looking at viewer" not in c for c in recaptioned.values()), recaptioned
    assert len(lab.runs("danbooru")) == 2
    assert len(danbooru.api_requests) == asked[0]


def test_selection_dataset_is_tagged_then_linked_before_training(stages, tagger_model):
    lab = stages
    pool = lab.workdir / "datasets" / "pool" / "images"
    write_images(pool, 5, prefix="p")
    (pool / "p003.txt").unlink()  # selected, not yet captioned: the tag step captions it where it lives
    (pool / "p004.txt").unlink()  # not selected: left alone
    (lab.recipes / "pick.txt").write_text("p001.png\np003.png\n")
    lab.recipe("picked", f"""\
        extends = "base.toml"
        name = "picked"
        [dataset]
        name = "picked-set"
        source = "selection"
        from_dataset = "pool"
        selection = "pick.txt"
        [captions]
        model = "{tagger_model}"
    """)
    done = run(lab, "picked")
    assert done.returncode == 0, done.stderr
    steps = [done.stderr.index(f"[{n}/3] {step}\n") for n, step in enumerate(("tag", "select", "train"), 1)]
    assert steps == sorted(steps), done.stderr
    tagged = (pool / "p003.txt").read_text()
    assert tagged.startswith(PREFIX) and "1girl" in tagged and tagged != CAPTION + "\n"
    assert (pool / "p001.txt").read_text() == CAPTION + "\n"  # an existing caption is kept
    assert not (pool / "p004.txt").exists()
    picked = lab.workdir / "datasets" / "picked-set" / "images"
    assert sorted(p.name for p in picked.iterdir()) == ["p001.png", "p001.txt", "p003.png", "p003.txt"]
    assert os.path.samefile(picked / "p003.txt", pool / "p003.txt")  # linked after it was written
    assert lab.record("picked")["dataset"]["images"] == 2 and lab.record("picked")["dataset"]["captioned"] == 2
    assert lab.steps_in(lab.model("picked")) == 6  # 3 epochs × 2 selected images
