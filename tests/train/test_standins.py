"""The stand-ins themselves: strict where sd-scripts is strict (unknown options, flags given values,
dataset-config keys), lax where it is lax (abbreviations, unchecked --config_file keys), and the
merge script producing a real merged file."""

from __future__ import annotations

import subprocess
import sys


PY = sys.executable


def script(tools, name, *argv, cwd=None):
    path = tools["sd"] / (f"networks/{name}.py" if name == "sdxl_merge_lora" else f"{name}.py")
    return subprocess.run([PY, str(path), *argv], capture_output=True, text=True, timeout=60, cwd=cwd)


def test_unknown_options_and_wrong_kinds_fail_like_argparse_in_sd_scripts(tools, tmp_path):
    done = script(tools, "sdxl_train", "--learning_rat", "1e-5")  # ambiguous prefix (learning_rate, learning_rate_te1, …)
    assert done.returncode == 2 and "ambiguous option" in done.stderr
    done = script(tools, "sdxl_train", "--network_dim", "4")  # a LoRA option: sdxl_train.py has none
    assert done.returncode == 2 and "unrecognized arguments" in done.stderr
    done = script(tools, "sdxl_train_network", "--mixed_precision", "bf17")
    assert done.returncode == 2 and "invalid choice" in done.stderr
    done = script(tools, "sdxl_train", "--config_file", str(tmp_path / "absent"))
    assert done.returncode == 1 and "absent.toml not found" in done.stdout


def test_config_file_keys_are_unchecked_and_cli_wins(tools, tmp_path):
    (tmp_path / "a.toml").write_text('[section]\nlearning_rat = 3\noutput_dir = "X"\n[other]\nmax_train_steps = 7\n')
    (tmp_path / "d.toml").write_text('[[datasets]]\n[[datasets.subsets]]\nimage_dir = "nowhere"\n')
    # unknown key silently kept; empty dataset: "No data found", exit 0 and no model (sd-scripts' behaviour)
    done = script(tools, "sdxl_train", "--config_file", str(tmp_path / "a"), "--output_dir", str(tmp_path / "out"),
                  "--dataset_config", str(tmp_path / "d.toml"))
    assert done.returncode == 0 and "No data found" in done.stdout
    assert not (tmp_path / "out").exists()


def test_dataset_config_typos_are_fatal(tools, tmp_path):
    (tmp_path / "d.toml").write_text('[general]\nresolution = 1024\n[[datasets]]\n[[datasets.subsets]]\nimage_dir = "x"\nnum_repeat = 2\n')
    done = script(tools, "sdxl_train", "--output_dir", str(tmp_path), "--dataset_config", str(tmp_path / "d.toml"))
    assert done.returncode == 1 and "extra keys not allowed @ data['datasets'][0]['subsets'][0]['num_repeat']" in done.stderr
