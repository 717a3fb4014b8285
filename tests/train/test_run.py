"""`swimlatent run`: the stage chain base → ft → lora through stage: references, skipping what is
done, re-training what changed (also downstream), resuming an interrupted stage, and calling the
collect/tag commands for the steps before training."""

from __future__ import annotations

import json
from pathlib import Path

from swimlatent_wrap.recipe import load_recipe
from swimlatent_wrap.stages.verify import read_safetensors, sha256_file
from swimlatent_wrap.workdir import Workdir


def run(lab, stage: str, **env: str):
    return lab.cli("run", str(lab.recipes / f"{stage}.toml"), "--allow-cpu", **env)


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


def test_run_calls_collect_and_tag_commands_and_skips_them_when_unchanged(stages, monkeypatch):
    """The collect and tag commands are other modules' work: here they are replaced by functions that
    do what they promise (images in the dataset folder, captions beside them), to see `run` call them
    with the recipe, in order, and skip them when their inputs are unchanged."""
    lab = stages
    from swimlatent_wrap.commands import collect, tag
    from swimlatent_wrap.stages.steps import run_stage
    from tests.train.conftest import write_images

    recipe_path = lab.recipe("danbooru", """\
        extends = "base.toml"
        name = "danbooru"
        [dataset]
        name = "collected"
        source = "danbooru"
        [dataset.danbooru]
        count = 3
        [[dataset.danbooru.splits]]
        ratings = "g"
        share = 1.0
    """)
    calls = []

    def fake_collect(args):
        calls.append(("collect", Path(args.recipe).name, args.limit))
        write_images(lab.workdir / "datasets" / "collected" / "images", 3, caption=None)
        return 0

    def fake_tag(args):
        calls.append(("tag", Path(args.recipe).name, args.force))
        for image in (lab.workdir / "datasets" / "collected" / "images").glob("*.png"):
            image.with_suffix(".txt").write_text("new, newest, masterpiece, best quality, 1girl\n")
        return 0

    monkeypatch.setattr(collect, "run", fake_collect)
    monkeypatch.setattr(tag, "run", fake_tag)
    monkeypatch.setenv("PYTHONPATH", str(lab.tools["pythonpath"]))
    recipe = load_recipe(recipe_path)
    workdir = Workdir(lab.workdir)
    run_stage(recipe, workdir=workdir, sd_scripts=lab.tools["sd"], allow_cpu=True)
    assert calls == [("collect", "danbooru.toml", None), ("tag", "danbooru.toml", False)]
    assert lab.model("danbooru").is_file()

    run_stage(recipe, workdir=workdir, sd_scripts=lab.tools["sd"], allow_cpu=True)
    assert len(calls) == 2  # nothing ran again
    assert len(lab.runs("danbooru")) == 1

    # a changed [captions] table re-tags with --force (and so retrains)
    recipe_path.write_text(recipe_path.read_text() + '\n[captions]\ngeneral_threshold = 0.5\n')
    run_stage(load_recipe(recipe_path), workdir=workdir, sd_scripts=lab.tools["sd"], allow_cpu=True)
    assert calls[2:] == [("tag", "danbooru.toml", True)]
    assert len(lab.runs("danbooru")) == 2


def test_selection_dataset_is_tagged_then_linked_before_training(stages, monkeypatch):
    lab = stages
    from tests.train.conftest import write_images

    write_images(lab.workdir / "datasets" / "pool" / "images", 5, prefix="p")
    (lab.recipes / "pick.txt").write_text("p001.png\np003.png\n")
    lab.recipe("picked", """\
        extends = "base.toml"
        name = "picked"
        [dataset]
        name = "picked-set"
        source = "selection"
        from_dataset = "pool"
        selection = "pick.txt"
    """)
    (lab.workdir / "datasets" / "pool" / "images" / "p003.txt").unlink()  # to be tagged: monkeypatched below
    from swimlatent_wrap.commands import tag
    from swimlatent_wrap.stages.steps import run_stage

    tagged = []

    def fake_tag(args):  # captions the selected images where they live (as `swimlatent tag` does)
        tagged.append(Path(args.recipe).name)
        (lab.workdir / "datasets" / "pool" / "images" / "p003.txt").write_text("new, newest, 1girl\n")
        return 0

    monkeypatch.setattr(tag, "run", fake_tag)
    monkeypatch.setenv("PYTHONPATH", str(lab.tools["pythonpath"]))
    run_stage(load_recipe(lab.recipes / "picked.toml"), workdir=Workdir(lab.workdir), sd_scripts=lab.tools["sd"], allow_cpu=True)
    assert tagged == ["picked.toml"]
    picked = lab.workdir / "datasets" / "picked-set" / "images"
    assert sorted(p.name for p in picked.iterdir()) == ["p001.png", "p001.txt", "p003.png", "p003.txt"]
    assert lab.record("picked")["dataset"]["images"] == 2 and lab.record("picked")["dataset"]["captioned"] == 2
    assert lab.steps_in(lab.model("picked")) == 6  # 3 epochs × 2 selected images
