"""`train` online with an empty tokenizer cache fetches the two CLIP tokenizers itself (once, like
an hf: model) before starting sd-scripts, from a loopback fake Hub (HF_ENDPOINT)."""

from __future__ import annotations

import shutil

from swimlatent_wrap.stages import tokenizers
from tests.tokenizers.test_tokenizers import built, fake_hub  # noqa: F401  (the fixtures)


def test_train_fetches_missing_tokenizers_then_trains(stages, fake_hub, tmp_path):  # noqa: F811
    lab = stages
    cache = lab.workdir / "cache" / "tokenizers"
    shutil.rmtree(cache)
    done = lab.cli("train", str(lab.recipes / "base.toml"), "--allow-cpu", **fake_hub.env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "fetching them from the Hugging Face Hub once" in done.stderr
    assert tokenizers.cache_problem(cache) is None
    assert lab.model("base").is_file()
