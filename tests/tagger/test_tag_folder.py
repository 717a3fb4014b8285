"""`swimlatent tag --images DIR --model M` end to end, with the tiny tagger built by the tests."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from PIL import Image

from swimlatent_wrap.tagger import pipeline
from swimlatent_wrap.tagger.session import TaggerSession
from tests.tagger import reference, scenes, tiny_tagger
from tests.tagger.tiny_tagger import build_tiny_tagger

SEED_PREFIX = ("new", "newest", "masterpiece", "best quality")


_PROBABILITIES: dict[tuple, object] = {}


def expected_caption(path: Path, **rule) -> str:
    # Copies of one scene share name, size and mtime (copy2): compute each scene's features once.
    stat = path.stat()
    key = (path.name, stat.st_size, stat.st_mtime_ns)
    if key not in _PROBABILITIES:
        with Image.open(path) as image:
            _PROBABILITIES[key] = tiny_tagger.probabilities(reference.features(image))
    return reference.caption(_PROBABILITIES[key], **rule)


def caption_of(image: Path) -> str:
    return image.with_suffix(".txt").read_text(encoding="utf-8")


def test_every_kind_of_image_gets_exactly_the_conventions_caption(images, tiny_model, tag):
    folder = images()
    code, out, err = tag("--images", folder, "--model", tiny_model, "--prefix", ", ".join(SEED_PREFIX))
    assert code == 0, err
    for name in scenes.SCENES:
        assert caption_of(folder / name) == expected_caption(folder / name, prefix=SEED_PREFIX) + "\n", name
    assert f"captioned {len(scenes.SCENES)} image(s)" in out


def test_the_scenes_land_on_both_sides_of_both_thresholds(scene_files):
    # Guards the test above: it only proves exactness if probabilities come close to the thresholds.
    def p(name, tag):
        with Image.open(scene_files / name) as image:
            return tiny_tagger.probabilities(reference.features(image))[tiny_tagger.NAMES.index(tag)]

    assert 0.85 < p("miku_above.png", "hatsune_miku") < 0.87
    assert 0.83 < p("miku_below.png", "hatsune_miku") < 0.85
    assert 0.35 < p("hair_above.png", "long_hair") < 0.375
    assert 0.33 < p("hair_below.png", "long_hair") < 0.35


def test_literal_captions(images, tiny_model, tag):
    folder = images("red.png", "tall_green_top.webp", "palette.png", "miku_above.png", "miku_below.png")
    assert tag("--images", folder, "--model", tiny_model, "--prefix", "new, newest, masterpiece, best quality")[0] == 0
    assert caption_of(folder / "red.png") == (
        "new, newest, masterpiece, best quality, kaga (kantai collection), long hair, 1girl, looking at viewer\n")
    assert caption_of(folder / "tall_green_top.webp") == (
        "new, newest, masterpiece, best quality, kaga (kantai collection), 1girl, white background, from below, ^_^, "
        "looking at viewer\n")
    assert caption_of(folder / "palette.png") == (
        "new, newest, masterpiece, best quality, kaga (kantai collection), 1girl, o_o, long hair, white background, ^_^, "
        "looking at viewer\n")
    assert caption_of(folder / "miku_above.png").startswith("new, newest, masterpiece, best quality, hatsune miku, kaga")
    assert "hatsune miku" not in caption_of(folder / "miku_below.png")


def test_thresholds_flags_change_the_caption(images, tiny_model, tag):
    folder = images("red.png")
    assert tag("--images", folder, "--model", tiny_model, "--general-threshold", "0.9", "--character-threshold", "0.5")[0] == 0
    assert caption_of(folder / "red.png") == "kaga (kantai collection), hakurei reimu, long hair, 1girl\n"


def test_corrupt_files_are_reported_by_name_and_skipped(images, tiny_model, tag):
    folder = images("red.png", "photo.jpg")
    broken = scenes.write_broken(folder)
    code, out, err = tag("--images", folder, "--model", tiny_model)
    assert code == 1  # the rest is captioned; the folder cannot be trained until these are fixed or moved
    assert "3 image(s) could not be read and were skipped" in err
    assert f"3 image(s) in {folder} cannot be read" in err and "move them out of the folder" in err
    for path in broken:
        assert path.name in err
        assert not path.with_suffix(".txt").exists()
    assert caption_of(folder / "red.png") == expected_caption(folder / "red.png") + "\n"
    assert caption_of(folder / "photo.jpg") == expected_caption(folder / "photo.jpg") + "\n"
    assert "3 unreadable, skipped" in out
    assert "Traceback" not in err


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(folder.glob("*.txt"))}


def test_a_rerun_over_a_finished_folder_rewrites_nothing_and_never_loads_the_model(images, tiny_model, tmp_path, tag):
    model = shutil.copytree(tiny_model, tmp_path / "model")
    folder = images("red.png", "photo.jpg", "gray.png", "tiny.bmp")
    assert tag("--images", folder, "--model", model)[0] == 0
    before = snapshot(folder)
    assert len(before) == 4
    (model / "model.onnx").write_bytes(b"not a model any more")  # loading it now would fail
    code, out, err = tag("--images", folder, "--model", model)
    assert code == 0, err
    assert snapshot(folder) == before
    assert "captioned 0 image(s)" in out and "4 already captioned, skipped" in out
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) == []  # no temp files left


def test_existing_captions_are_kept_and_force_rewrites_them_atomically(images, tiny_model, tag):
    folder = images("red.png", "gray.png")
    (folder / "red.txt").write_text("my own caption\n", encoding="utf-8")
    assert tag("--images", folder, "--model", tiny_model)[0] == 0
    assert caption_of(folder / "red.png") == "my own caption\n"
    assert caption_of(folder / "gray.png") == expected_caption(folder / "gray.png") + "\n"
    inode = (folder / "gray.txt").stat().st_ino
    code, out, _ = tag("--images", folder, "--model", tiny_model, "--force")
    assert code == 0 and "captioned 2 image(s)" in out
    assert caption_of(folder / "red.png") == expected_caption(folder / "red.png") + "\n"
    assert (folder / "gray.txt").stat().st_ino != inode  # a new file renamed over the old one


def test_a_rerun_retries_the_unreadable_and_leaves_the_rest(images, tiny_model, tag):
    folder = images("red.png")
    scenes.write_broken(folder)
    tag("--images", folder, "--model", tiny_model)
    before = snapshot(folder)
    code, out, err = tag("--images", folder, "--model", tiny_model)
    assert code == 1 and snapshot(folder) == before
    assert "3 image(s) could not be read" in err and "1 already captioned" in out


def test_captions_that_come_out_empty_are_named_with_what_to_change(images, tiny_model, tag):
    folder = images("red.png", "photo.jpg")
    code, out, err = tag("--images", folder, "--model", tiny_model, "--general-threshold", "1", "--character-threshold", "1")
    assert code == 1, err
    assert "2 caption(s) came out empty (photo.jpg, red.png)" in err and "lower the thresholds" in err
    assert "Traceback" not in err
    # the defaults pass tags on the same images: the next run captions them (a blank caption is no caption)
    code, out, err = tag("--images", folder, "--model", tiny_model)
    assert code == 0, err
    assert caption_of(folder / "red.png") == expected_caption(folder / "red.png") + "\n"


@pytest.mark.parametrize("batch", ["1", "3", "64"])
def test_batch_size_does_not_change_captions(images, tiny_model, tag, batch):
    folder = images()
    assert tag("--images", folder, "--model", tiny_model, "--batch-size", batch)[0] == 0
    for name in scenes.SCENES:
        assert caption_of(folder / name) == expected_caption(folder / name) + "\n", name


@pytest.mark.parametrize("variant", [
    {"input_name": "input_1:0"},
    {"input_name": "input"},
    {"input_name": "input", "channels_last": False},
    {"input_name": "input_1:0", "batch": 1},
])
def test_input_name_layout_and_batch_are_read_from_the_model(images, tmp_path, tag, variant):
    model = build_tiny_tagger(tmp_path / "variant", **variant)
    folder = images("red.png", "wide_two_tone.png", "alpha.png")
    code, _, err = tag("--images", folder, "--model", model, "--batch-size", "2")
    assert code == 0, err
    for name in ("red.png", "wide_two_tone.png", "alpha.png"):
        assert caption_of(folder / name) == expected_caption(folder / name) + "\n", name
    if variant.get("batch") == 1:
        assert "batch size fixed at 1; using that instead of 2" in err


def test_a_model_without_a_sigmoid_is_refused(images, tmp_path, tag):
    model = build_tiny_tagger(tmp_path / "logits", sigmoid=False)
    code, _, err = tag("--images", images("red.png"), "--model", model)
    assert code == 1
    assert "not probabilities" in err and "Traceback" not in err


def test_a_tag_list_that_does_not_fit_the_model_is_refused(images, tiny_model, tmp_path, tag):
    model = shutil.copytree(tiny_model, tmp_path / "short")
    lines = (model / "selected_tags.csv").read_text().splitlines()
    (model / "selected_tags.csv").write_text("\n".join(lines[:-2]) + "\n")
    code, _, err = tag("--images", images("red.png"), "--model", model)
    assert code == 1
    assert f"the model gives {len(tiny_model_tags())} scores but selected_tags.csv lists {len(lines) - 3} tags" in err


def tiny_model_tags():
    return tiny_tagger.NAMES


def test_the_cpu_fallback_is_announced_with_its_reason(images, tiny_model, tag):
    _, _, err = tag("--images", images("red.png"), "--model", tiny_model)
    assert "warning: the tagger runs on the CPU" in err
    assert "onnxruntime" in err.split("warning: the tagger runs on the CPU", 1)[1].splitlines()[0]


def test_no_progress_bar_or_colour_codes_when_stderr_is_not_a_terminal(images, tiny_model, tag):
    _, out, err = tag("--images", images("red.png", "gray.png"), "--model", tiny_model)
    assert "\x1b[" not in err and "\r" not in err
    assert "ETA" not in err


def test_tags_and_probabilities_go_into_an_existing_dataset_manifest(tmp_path, images, tiny_model, tag):
    dataset = tmp_path / "datasets" / "mine"
    folder = images("red.png", "miku_above.png", folder="datasets/mine/images")
    manifest = dataset / "manifest.sqlite"
    with sqlite3.connect(manifest) as db:
        db.execute("CREATE TABLE posts (id INTEGER PRIMARY KEY, md5 TEXT)")
        db.execute("INSERT INTO posts VALUES (1, 'abc')")
    assert tag("--images", folder, "--model", tiny_model)[0] == 0
    assert tag("--images", folder, "--model", tiny_model, "--force")[0] == 0  # replaces, never duplicates
    with sqlite3.connect(manifest) as db:
        assert db.execute("SELECT * FROM posts").fetchall() == [(1, "abc")]
        captions = dict(db.execute("SELECT image, caption FROM tagger_captions"))
        rows = db.execute("SELECT tag, category, probability FROM tagger_tags WHERE image = 'miku_above.png'").fetchall()
        models = {m for (m,) in db.execute("SELECT model FROM tagger_captions")}
    assert captions == {"red.png": caption_of(folder / "red.png").rstrip("\n"),
                        "miku_above.png": caption_of(folder / "miku_above.png").rstrip("\n")}
    assert models == {str(tiny_model)}
    with Image.open(folder / "miku_above.png") as image:
        probs = tiny_tagger.probabilities(reference.features(image))
    got = {tag: (category, p) for tag, category, p in rows}
    # The four ratings, and every tag at or above the lower threshold (0.35), nothing else.
    wanted = {name for name, category, p in zip(tiny_tagger.NAMES, tiny_tagger.CATEGORIES, probs) if category == 9 or p >= 0.35}
    assert set(got) == wanted
    for name, (category, p) in got.items():
        index = tiny_tagger.NAMES.index(name)
        assert category == tiny_tagger.CATEGORIES[index]
        assert p == pytest.approx(probs[index], abs=2e-3)


def test_images_sharing_a_stem_share_one_caption_file(images, tiny_model, tag, scene_files):
    folder = images("red.png")
    shutil.copy2(scene_files / "photo.jpg", folder / "red.jpg")
    code, out, err = tag("--images", folder, "--model", tiny_model)
    assert code == 0
    assert "red.png" in err and "share a file stem" in err
    assert caption_of(folder / "red.jpg") == expected_caption(folder / "red.jpg") + "\n"  # red.jpg sorts first


def test_an_interrupted_run_keeps_every_finished_caption(images, tiny_model, monkeypatch):
    folder = images("red.png", "gray.png", "tiny.bmp", "exact.png", "banner.png")
    calls = []
    original = TaggerSession.run

    def run_then_interrupt(self, batch):
        calls.append(len(batch))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(TaggerSession, "run", run_then_interrupt)
    rule = pipeline.CaptionRule((), 0.35, 0.85, (), False)
    with pytest.raises(KeyboardInterrupt):
        pipeline.tag_folder(pipeline.TagJob(folder, str(tiny_model), rule, batch_size=1))
    done = sorted(p.name for p in folder.glob("*.txt"))
    assert done == ["banner.txt", "exact.txt"]  # the first two batches, in name order
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]
    assert caption_of(folder / "exact.png") == expected_caption(folder / "exact.png") + "\n"


def test_decoding_runs_on_several_threads_in_order(tmp_path, scene_files):
    from swimlatent_wrap.tagger.decode import decode_ahead

    paths = [scene_files / n for n in scenes.SCENES] + [tmp_path / "missing.png"]
    results = list(decode_ahead(paths, 448, workers=3, ahead=4))
    assert [r.path for r in results] == paths
    assert all(r.pixels.shape == (448, 448, 3) for r in results[:-1])
    assert results[-1].pixels is None and "No such file" in results[-1].error


def test_the_tagger_modules_import_nothing_heavy():
    import subprocess
    import sys

    code = ("import sys, swimlatent_wrap.commands.tag, swimlatent_wrap.tagger.pipeline, swimlatent_wrap.tagger.session, "
            "swimlatent_wrap.tagger.preprocess, swimlatent_wrap.tagger.model_files; "
            "heavy = {'onnxruntime', 'PIL', 'numpy', 'huggingface_hub', 'rich'} & set(sys.modules); "
            "print(sorted(heavy)); sys.exit(1 if heavy else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ})
    assert result.returncode == 0, result.stdout + result.stderr
