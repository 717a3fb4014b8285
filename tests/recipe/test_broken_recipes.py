"""A corpus of broken recipes through the real `swimlatent validate`: each refused with exactly one
line, `<file>: <table.key>: <message>`, naming the key that is wrong; never a traceback.

Every case extends a shipped recipe and changes one thing, so the line must come from that change
(the shipped recipes themselves validate: tests/plan).
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from tests.helpers import REPO, run_cli

SHIPPED = REPO / "recipes" / "swim-in-latent"
LINE = re.compile(r"^(?P<file>[^:]+\.toml): (?P<key>[^:]+): (?P<message>.+)$")

# (case, recipe it extends, TOML added after `extends` and `name`, the key refused, words the message has)
CASES = [
    ("lr-nan", "base", "[args]\nlearning_rate = nan", "args.learning_rate", "finite"),
    ("lr-inf", "base", "[args]\nlearning_rate = inf", "args.learning_rate", "finite"),
    ("lr-negative", "base", "[args]\nlearning_rate = -1.0", "args.learning_rate", "greater than 0"),
    ("lr-zero", "base", "[args]\nlearning_rate = 0.0", "args.learning_rate", "greater than 0"),
    ("epochs-negative", "base", "[args]\nmax_train_epochs = -3", "args.max_train_epochs", "1 or more"),
    ("epochs-zero", "base", "[args]\nmax_train_epochs = 0", "args.max_train_epochs", "1 or more"),
    ("accumulation-zero", "base", "[args]\ngradient_accumulation_steps = 0", "args.gradient_accumulation_steps", "1 or more"),
    ("cycles-zero", "base", "[args]\nlr_scheduler_num_cycles = 0", "args.lr_scheduler_num_cycles", "1 or more"),
    ("save-every-zero", "base", "[args]\nsave_every_n_epochs = 0", "args.save_every_n_epochs", "1 or more"),
    ("seed-negative", "base", "[args]\nseed = -1", "args.seed", "between 0 and"),
    ("snr-nan", "base", "[args]\nmin_snr_gamma = nan", "args.min_snr_gamma", "finite"),
    ("noise-offset-negative", "base", "[args]\nnoise_offset = -0.1", "args.noise_offset", "0 or more"),
    ("max-timestep", "base", "[args]\nmax_timestep = 2000", "args.max_timestep", "between 1 and 1000"),
    ("steps-beside-epochs", "base", "[args]\nmax_train_steps = 2", "args.max_train_steps", "max_train_epochs"),
    ("secret-in-args", "base", '[args]\nhuggingface_token = "hf_x"', "args.huggingface_token", "HF_TOKEN"),
    ("batch-zero", "base", "[dataset_config]\nbatch_size = 0", "dataset_config.batch_size", "1 or more"),
    ("dropout-above-1", "base", "[dataset_config]\ncaption_dropout_rate = 1.5", "dataset_config.caption_dropout_rate", "between 0 and 1"),
    ("dropout-nan", "base", "[dataset_config]\ncaption_dropout_rate = nan", "dataset_config.caption_dropout_rate", "finite"),
    ("keep-tokens-negative", "base", "[dataset_config]\nkeep_tokens = -1", "dataset_config.keep_tokens", "0 or more"),
    ("resolution-below-buckets", "base", "[dataset_config]\nresolution = 256", "dataset_config.resolution", "min_bucket_reso"),
    ("resolution-above-buckets", "base", "[dataset_config]\nresolution = 4096", "dataset_config.resolution", "max_bucket_reso"),
    ("repeats-negative", "base", "[dataset]\nnum_repeats = -1", "dataset.num_repeats", "1 or more"),
    ("repeats-zero", "base", "[dataset]\nnum_repeats = 0", "dataset.num_repeats", "1 or more"),
    ("dataset-name-up", "base", '[dataset]\nname = "../x"', "dataset.name", "not a plain name"),
    ("dataset-name-slash", "base", '[dataset]\nname = "a/b"', "dataset.name", "not a plain name"),
    ("dataset-name-absolute", "base", '[dataset]\nname = "/abs/x"', "dataset.name", "not a plain name"),
    ("near-duplicate-bits", "base", "[dataset]\nnear_duplicate_bits = 65", "dataset.near_duplicate_bits", "between 0 and 64"),
    ("window-days-huge", "base", "[dataset.danbooru]\nwindow_days = 99999999", "dataset.danbooru.window_days", "between 0 and 36525"),
    ("max-age-huge", "base", '[dataset.danbooru]\nmax_age = "99999y"', "dataset.danbooru.max_age", "at most 100 years"),
    ("max-age-zero", "base", '[dataset.danbooru]\nmax_age = "0d"', "dataset.danbooru.max_age", "at least 1"),
    ("max-age-minutes", "base", '[dataset.danbooru]\nmax_age = "48m"', "dataset.danbooru.max_age", "mo"),
    ("rate-nan", "base", "[dataset.danbooru]\nrequests_per_second = nan", "dataset.danbooru.requests_per_second", "finite"),
    ("count-zero", "base", "[dataset.danbooru]\ncount = 0", "dataset.danbooru.count", "between 1 and"),
    ("threshold-nan", "base", "[captions]\ngeneral_threshold = nan", "captions.general_threshold", "finite"),
    ("threshold-above-1", "base", "[captions]\ngeneral_threshold = 1.5", "captions.general_threshold", "between 0 and 1"),
    ("sample-scale-nan", "base", "[sample]\nscale = nan", "sample.scale", "finite"),
    ("sample-steps-zero", "base", "[sample]\nsteps = 0", "sample.steps", "between 1 and 1000"),
    ("sample-sampler", "base", '[sample]\nsampler = "nope"', "sample.sampler", "euler_a"),
    ("sample-prompt-option", "base", '[sample]\nprompts = "option.txt"', "sample.prompts", "' --'"),
    ("sample-prompts-empty", "base", '[sample]\nprompts = "empty.txt"', "sample.prompts", "no prompts"),
    ("machines-without-ip", "base", "[launch]\nnum_machines = 2\nnum_processes = 2", "launch.main_process_ip", "num_machines > 1"),
    ("rank-too-high", "base", "[launch]\nmachine_rank = 1", "launch.machine_rank", "below num_machines"),
    ("processes-zero", "base", "[launch]\nnum_processes = 0", "launch.num_processes", "1 or more"),
    ("port-too-high", "base", "[launch]\nmain_process_port = 70000", "launch.main_process_port", "between 1 and 65535"),
    ("gpu-ids", "base", '[launch]\ngpu_ids = "0;1"', "launch.gpu_ids", '"0,1"'),
    ("stage-name-up", "base", "", "name", "not a plain name"),
    ("stage-name-reserved", "base", "", "name", "reserved"),
    ("stage-name-unicode", "base", "", "name", "not a plain name"),
    ("model-stage-up", "base", 'model = "stage:../x"', "model", "stage:<name>"),
    ("model-hub-dots", "base", 'model = "hf:a/b/../c.safetensors"', "model", "hf:<owner>"),
    ("sweep-ratios-empty", "lora", "[sweep]\nratios = []", "sweep.ratios", "at least one"),
    ("sweep-ratio-nan", "lora", "[sweep]\nratios = [0.5, nan]", "sweep.ratios", "finite"),
    ("sweep-ratio-twice", "lora", "[sweep]\nratios = [0.5, 0.5]", "sweep.ratios", "twice"),
    ("sweep-seeds-empty", "lora", "[sweep]\nseeds = []", "sweep.seeds", "at least one"),
    ("sweep-sampler", "lora", '[sweep]\nsampler = "euler_b"', "sweep.sampler", "sdxl_gen_img"),
    ("sweep-width", "lora", "[sweep]\nwidth = 1001", "sweep.width", "multiple of 8"),
    ("sweep-steps-zero", "lora", "[sweep]\nsteps = 0", "sweep.steps", "between 1 and 1000"),
    ("merge-ratio-nan", "lora", "[merge]\nratio = nan", "merge.ratio", "finite"),
    ("merge-ratio-inf", "lora", "[merge]\nratio = -inf", "merge.ratio", "finite"),
    ("merge-ratio-zero", "lora", "[merge]\nratio = 0.0", "merge.ratio", "merges nothing"),
    ("lora-dim-zero", "lora", "[args]\nnetwork_dim = 0", "args.network_dim", "1 or more"),
    ("lora-alpha-negative", "lora", "[args]\nnetwork_alpha = -1.0", "args.network_alpha", "greater than 0"),
    ("modelspec-path", "lora", '[modelspec]\ndescription = "made in /home/me/models"', "modelspec.description", "absolute local path"),
    ("modelspec-windows-path", "lora", '[modelspec]\ntags = ["anime", "C:\\\\models"]', "modelspec.tags", "absolute local path"),
    ("modelspec-secret", "lora", '[modelspec]\nauthor = "hf_abcdefghijklmnopqrstuvwxyz"', "modelspec.author", "secret"),
    ("modelspec-date", "lora", '[modelspec]\ndate = "yesterday"', "modelspec.date", "ISO-8601"),
    ("modelspec-unknown-key", "lora", '[modelspec]\ntitel = "x"', "modelspec.titel", "did you mean 'title'"),
    ("modelspec-thumbnail", "lora", '[modelspec]\nthumbnail = "empty.txt"', "modelspec.thumbnail", "not an image"),
    ("selection-path", "lora", '[dataset]\nselection = "escaping-selection.txt"', "dataset.selection", "file name"),
    ("selection-empty", "lora", '[dataset]\nselection = "empty.txt"', "dataset.selection", "empty"),
    ("selection-from-itself", "lora", '[dataset]\nfrom_dataset = "danbooru-lora"', "dataset.from_dataset", "own name"),
    ("tag-limit-with-artists", "ft", '[dataset.danbooru]\nartists = "some-artists.txt"\ntag_limit = 1', "dataset.danbooru.tag_limit", "cannot hold order"),
    ("tags-past-the-limit", "base", '[dataset.danbooru]\ntag_limit = 2\ntags = ["1girl", "solo", "~smile"]', "dataset.danbooru.tags", "tag_limit"),
    ("file-types-video", "base", '[dataset.danbooru]\nfile_types = ["jpg", "mp4"]', "dataset.danbooru.file_types", "'mp4'"),
    ("api-root-not-http", "base", '[dataset.danbooru]\napi_root = "danbooru.donmai.us"', "dataset.danbooru.api_root", "http(s) URL"),
    ("api-root-credentials", "base", '[dataset.danbooru]\napi_root = "https://me:key@danbooru.donmai.us"', "dataset.danbooru.api_root", "DANBOORU_API_KEY"),
    ("split-share-nan", "base", '[[dataset.danbooru.splits]]\nratings = "g"\nshare = nan', "dataset.danbooru.splits[1].share", "finite"),
    ("split-shares-short", "base", '[[dataset.danbooru.splits]]\nratings = "g"\nshare = 0.9', "dataset.danbooru.splits", "add up to 0.9"),
    ("dataset-not-a-table", "base", "dataset = 3", "dataset", "expected a table"),
    ("model-empty", "base", 'model = ""', "model", "empty string"),
    ("model-url", "base", 'model = "https://huggingface.co/a/b/c.safetensors"', "model", "URLs are not model references"),
    ("prefix-line-break", "base", '[captions]\nprefix = ["new", "line\\nbreak"]', "captions.prefix", "line break"),
    ("prefix-comma", "base", '[captions]\nprefix = ["best quality, masterpiece"]', "captions.prefix", "comma"),
    ("prefix-published-path", "lora", '[captions]\nprefix = ["made in /home/me/art"]', "captions.prefix", "absolute local path"),
    ("prefix-a-string", "base", '[captions]\nprefix = "a, b"', "captions.prefix", "an array of strings"),
    ("resolution-one-side", "base", "[dataset_config]\nresolution = [1024]", "dataset_config.resolution", "[width, height]"),
    ("token-length", "base", "[args]\nmax_token_length = 300", "args.max_token_length", "150, 225"),
    ("warmup-ratio-above-1", "base", "[args]\nlr_warmup_steps = 1.5", "args.lr_warmup_steps", "ratio"),
    ("select-count-zero", "lora", "[dataset]\nselect_count = 0", "dataset.select_count", "1 or more"),
    ("te-lr-nan", "lora", "[args]\ntext_encoder_lr = [nan]", "args.text_encoder_lr", "finite"),
    ("artists-operator", "ft", '[dataset.danbooru]\nartists = "operator-artists.txt"', "dataset.danbooru.artists", "search operator"),
]
NAMES = {"stage-name-up": "../../x", "stage-name-reserved": "merged", "stage-name-unicode": "ベース"}


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory) -> dict[str, list[re.Match]]:
    """Every case written beside the others and validated in one real `swimlatent validate` run."""
    folder = tmp_path_factory.mktemp("broken")
    (folder / "option.txt").write_text("1girl, solo --w 512\n", encoding="utf-8")
    (folder / "empty.txt").write_text("# nothing yet\n\n", encoding="utf-8")
    (folder / "escaping-selection.txt").write_text("a.png\n../b.png\n", encoding="utf-8")
    (folder / "some-artists.txt").write_text("some_artist\n", encoding="utf-8")
    (folder / "operator-artists.txt").write_text("some_artist\n-other_artist\n", encoding="utf-8")
    paths = []
    for case, parent, body, _, _ in CASES:
        name = NAMES.get(case, case)
        text = f'extends = "{SHIPPED / parent}.toml"\nname = "{name}"\n' + textwrap.dedent(body) + "\n"
        if body.startswith("model"):
            text = text.replace(f'name = "{name}"\n', f'name = "{name}"\n' + body + "\n", 1).rsplit(body, 1)[0]
        path = folder / f"{case}.toml"
        path.write_text(text, encoding="utf-8")
        paths.append(str(path))
    result = run_cli("validate", *paths, cwd=folder)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    found: dict[str, list[re.Match]] = {case: [] for case, *_ in CASES}
    for line in result.stderr.splitlines():
        match = LINE.match(line)
        assert match, f"not a <file>: <key>: <message> line: {line!r}"
        if ": warning: " in line:
            continue  # ft.toml's own artists.txt is still empty: a warning, not a refusal
        found[Path(match["file"]).stem].append(match)
    return found


@pytest.mark.parametrize(("case", "key", "words"), [(c, k, w) for c, _, _, k, w in CASES], ids=[c[0] for c in CASES])
def test_each_broken_recipe_is_refused_with_one_line_naming_its_key(verdicts, case, key, words):
    lines = verdicts[case]
    assert [m["key"] for m in lines] == [key], [m.group(0) for m in lines]
    assert words in lines[0]["message"]


def test_the_corpus_is_large_and_each_case_distinct():
    assert len(CASES) >= 60
    assert len({c[0] for c in CASES}) == len(CASES)


def test_tags_past_the_default_limit_are_a_warning_when_the_account_decides(tmp_path):
    """With tag_limit unset, collect reads the account's limit (Gold 6, Platinum unlimited): validate
    cannot know it, so a search that fits only a larger limit is a warning, not a refusal."""
    recipe = tmp_path / "tags.toml"
    recipe.write_text(f'extends = "{SHIPPED / "base"}.toml"\nname = "tags"\n[dataset.danbooru]\n'
                      'tags = ["1girl", "solo", "~smile"]\n', encoding="utf-8")
    result = run_cli("validate", str(recipe))
    assert result.returncode == 0, result.stderr
    assert "dataset.danbooru.tags: warning:" in result.stderr and "DANBOORU_LOGIN" in result.stderr
