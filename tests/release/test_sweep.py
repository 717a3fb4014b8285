"""`swimlatent sweep`: one sdxl_gen_img run, every (prompt, seed, ratio) cell mapped back, a grid."""

from __future__ import annotations

import json
import shlex
import shutil

import pytest

from tests.helpers import REPO, run_cli

SHIPPED = REPO / "recipes" / "swim-in-latent"


@pytest.fixture
def setup(tmp_path):
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "prompts.txt").write_text("# two prompts\n1girl, solo\nscenery, no humans\n")
    (recipes / "ft.toml").write_text(f'extends = "{SHIPPED}/base.toml"\nname = "ft"\n')
    (recipes / "lora.toml").write_text(f'extends = "{SHIPPED}/lora.toml"\nname = "lora"\n'
                                       '[sweep]\nratios = [0.0, 0.5, 1.0]\nseeds = [7, 9]\nprompts = "prompts.txt"\n'
                                       'width = 64\nheight = 96\n')
    sd = tmp_path / "sd-scripts"
    sd.mkdir()
    shutil.copy(REPO / "tests/release/gen_img_standin.py", sd / "sdxl_gen_img.py")
    work = tmp_path / "work"
    for stage in ("ft", "lora"):
        (work / "models").mkdir(parents=True, exist_ok=True)
        (work / "models" / f"{stage}.safetensors").write_bytes(b"stand-in")
    return {"recipe": recipes / "lora.toml", "sd": sd, "work": work}


def sweep(setup, *extra, env=None):
    return run_cli("--workdir", str(setup["work"]), "--sd-scripts", str(setup["sd"]), "sweep", str(setup["recipe"]), *extra, env=env)


def test_sweep_draws_every_cell_and_builds_the_grid(setup):
    from PIL import Image

    result = sweep(setup, "--allow-cpu")
    assert result.returncode == 0, result.stderr
    (folder,) = (setup["work"] / "sweeps" / "lora").iterdir()
    record = json.loads((folder / "sweep.json").read_text())
    cells = record["images"]
    assert len(cells) == 2 * 2 * 3  # prompts × seeds × ratios
    assert {(c["prompt"], c["seed"], c["ratio"]) for c in cells} == {
        (p, s, r) for p in ("1girl, solo", "scenery, no humans") for s in (7, 9) for r in (0.0, 0.5, 1.0)}
    for cell in cells:  # each file is the image drawn for its cell
        with Image.open(folder / cell["file"]) as image:
            assert image.getpixel((0, 0)) == (round(255 * cell["ratio"]), cell["seed"], 0)
    with Image.open(folder / "grid.png") as grid:
        assert grid.size == (260 + 3 * 256, 36 + 4 * 256)
        for cell in cells:  # the grid puts each image in its row and column
            x = 260 + cell["column"] * 256 + 128
            y = 36 + cell["row"] * 256 + 128
            assert grid.getpixel((x, y)) == (round(255 * cell["ratio"]), cell["seed"], 0)
    page = (folder / "index.html").read_text()
    assert page.count("<img src=\"im_") == 12 and "LoRA ratio 0.5" in page
    argv = record["argv"]
    assert argv[argv.index("--network_weights") + 1] == str(setup["work"] / "models/lora.safetensors")
    assert argv[argv.index("--ckpt") + 1] == str(setup["work"] / "models/ft.safetensors")
    assert "--bf16" in argv and "--sequential_file_name" in argv
    prompts = (folder / "prompts.txt").read_text().splitlines()
    assert prompts[1] == "1girl, solo --w 64 --h 96 --s 28 --l 7 --d 7 --am 0.5"


def test_dry_run_prints_the_command_and_writes_nothing(setup):
    result = sweep(setup, "--dry-run")
    assert result.returncode == 0, result.stderr
    command = [line for line in result.stdout.splitlines() if not line.startswith("#")]
    assert len(command) == 1 and shlex.split(command[0])[1].endswith("sdxl_gen_img.py")
    assert not (setup["work"] / "sweeps").exists()


def test_a_missing_image_is_a_clear_error(setup):
    result = sweep(setup, "--allow-cpu", env={"STANDIN_GEN_SKIP": "5"})
    assert result.returncode == 1 and "wrote 11 of 12 images" in result.stderr and "Traceback" not in result.stderr


def test_without_a_gpu_the_sweep_stops_before_drawing(setup):
    result = sweep(setup)
    assert result.returncode == 1 and "CUDA" in result.stderr and "Traceback" not in result.stderr
    assert not any((setup["work"] / "sweeps" / "lora").glob("*/im_*.png"))


def test_missing_models_say_what_to_train(setup):
    (setup["work"] / "models" / "lora.safetensors").unlink()
    result = sweep(setup, "--allow-cpu")
    assert result.returncode == 1 and "lora.safetensors" in result.stderr and "train" in result.stderr
