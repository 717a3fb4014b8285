"""`swimlatent tag` on a workdir dataset takes the dataset's lock (swimlatent_wrap.locks): while another
run holds it, tag stops at once naming the holder and writes nothing; once it is free, tag captions as
usual. And a damaged manifest is one line saying what to do."""

from __future__ import annotations

import sqlite3

from swimlatent_wrap.danbooru.manifest import Manifest
from tests.danbooru.test_locks import holding
from tests.tagger.test_model_and_cli import write_recipe


def test_tag_stops_at_once_and_writes_nothing_while_its_dataset_is_held(tmp_path, tiny_model, images, tag):
    workdir = tmp_path / "work"
    dataset = workdir / "datasets" / "collected"
    folder = images("red.png", "gray.png", folder="work/datasets/collected/images")
    Manifest(dataset / "manifest.sqlite").close()
    recipe = write_recipe(tmp_path / "recipes", 'name = "collected"\nsource = "danbooru"\n[dataset.danbooru]\ncount = 2',
                          f'model = "{tiny_model}"')
    with holding(dataset, doing="collect") as child:
        code, _, err = tag("--workdir", workdir, recipe)
        assert code == 1
        assert f"dataset 'collected' is in use by another swimlatent run (pid {child.pid})" in err, err
        assert not list(folder.glob("*.txt"))
        # the same folder named directly is the same dataset
        code, _, err = tag("--images", folder, "--model", tiny_model)
        assert code == 1 and f"(pid {child.pid})" in err, err
        assert not list(folder.glob("*.txt"))
    code, _, err = tag("--workdir", workdir, recipe)
    assert code == 0, err
    assert sorted(p.name for p in folder.glob("*.txt")) == ["gray.txt", "red.txt"]
    with sqlite3.connect(dataset / "manifest.sqlite") as db:
        assert db.execute("SELECT count(*) FROM tagger_captions").fetchone() == (2,)


def test_a_damaged_manifest_stops_tag_with_what_to_do(tmp_path, tiny_model, images, tag):
    dataset = tmp_path / "datasets" / "mine"
    folder = images("red.png", folder="datasets/mine/images")
    (dataset / "manifest.sqlite").write_bytes(b"this is not a database\n" * 400)
    code, _, err = tag("--images", folder, "--model", tiny_model)
    assert code == 1 and "Traceback" not in err
    line = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(line) == 1, err
    assert (f"cannot record tags in the dataset manifest: {dataset / 'manifest.sqlite'}: file is not a database: "
            "the file is damaged") in line[0]
    assert "restore it from a backup, or move it aside" in line[0]
