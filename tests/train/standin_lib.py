"""Stand-in for sd-scripts' training and merge scripts (copied into a fake checkout by the tests).

Nothing here is sd-scripts code. What it keeps from sd-scripts at the pinned commit (facts file):
- the argument parser is built from the committed option manifest (names, kinds, types, choices),
  with argparse abbreviations on, as sd-scripts' parsers have them;
- ``--config_file``: ``.toml`` appended when missing, "not found" → exit 1, one level of tables
  flattened into the namespace, then the command line parsed into it (CLI wins) — facts §1;
- ``--dataset_config``: keys checked per level against the manifest's dataset schema (extra keys
  and type errors are fatal, as voluptuous makes them), captions read from
  ``<stem><caption_extension>`` with the ``.caption`` default, an empty dataset logs "No data
  found" and exits 0 without a model (facts §0.9);
- file names of saves and states (facts §2), ModelSpec / ss_ metadata (facts §4);
- ``--resume``: sdxl_train restores weights and scheduler position but restarts its step count and
  trains the whole ``max_train_steps`` again (facts §0.14); sdxl_train_network reads
  ``train_state.json`` and skips the epochs already done (train_network.py at 48d368fa);
- ``--lr_scheduler_type`` imports ``module.attr`` and rejects a non-zero ``lr_warmup_steps``.

"Training" is bookkeeping: the tensor ``model.diffusion_model.out.2.bias`` (fine-tune) or every
``lora_up`` weight (LoRA) grows by 1.0 per optimisation step, so a test can read from the file how
many steps went into it, across resumes and stages.

Behaviour switches (environment):
  STANDIN_FAIL=<code>          print an error and exit with that code before training
  STANDIN_NO_OUTPUT=1          log "No data found" and exit 0 without writing a model
  STANDIN_CORRUPT_OUTPUT=1     write a truncated final model and exit 0
  STANDIN_CRASH_AT_EPOCH=<n>   at the start of epoch n: leave a truncated model file, raise (exit 1)
  STANDIN_HANG_AT_EPOCH=<n>    at the start of epoch n: print a line, wait for SIGINT
  STANDIN_ON_SIGINT=save       on SIGINT save a state of the finished epochs, exit 130; default:
                               KeyboardInterrupt traceback, as sd-scripts does
  STANDIN_STEP_SECONDS=<f>     sleep per step
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib
import json
import math
import os
import pathlib
import struct
import sys
import time
import tomllib
import zlib

HERE = pathlib.Path(__file__).resolve().parent


class _Manifest(dict):
    """The option manifest copied beside this file, read on first use."""

    def __missing__(self, key):
        self.update(json.loads((HERE / "standin_manifest.json").read_text(encoding="utf-8")))
        return dict.__getitem__(self, key)


MANIFEST = _Manifest()
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
TRACKED = "model.diffusion_model.out.2.bias"


def log(message: str) -> None:
    print(message, flush=True)


# ------------------------------------------------------------------------------------------
# safetensors, by hand

_DTYPE_SIZE = {"F32": 4, "F16": 2, "BF16": 2, "I64": 8}


def read_safetensors(path) -> tuple[dict, dict[str, tuple[str, list[int], list[float]]]]:
    data = pathlib.Path(path).read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    metadata = header.pop("__metadata__", {}) or {}
    body = data[8 + length :]
    tensors = {}
    for name, info in header.items():
        start, end = info["data_offsets"]
        tensors[name] = (info["dtype"], info["shape"], _decode(info["dtype"], body[start:end]))
    return metadata, tensors


def _decode(dtype: str, raw: bytes) -> list[float]:
    if dtype == "F32":
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    if dtype == "F16":
        return list(struct.unpack(f"<{len(raw) // 2}e", raw))
    if dtype == "BF16":
        return [struct.unpack("<f", b"\x00\x00" + raw[i : i + 2])[0] for i in range(0, len(raw), 2)]
    if dtype == "I64":
        return [float(v) for v in struct.unpack(f"<{len(raw) // 8}q", raw)]
    raise ValueError(f"dtype {dtype} not supported by the stand-in")


def _encode(dtype: str, values: list[float]) -> bytes:
    if dtype == "F32":
        return struct.pack(f"<{len(values)}f", *values)
    if dtype == "F16":
        return struct.pack(f"<{len(values)}e", *values)
    if dtype == "BF16":
        return b"".join(struct.pack("<f", v)[2:] for v in values)
    if dtype == "I64":
        return struct.pack(f"<{len(values)}q", *[int(v) for v in values])
    raise ValueError(dtype)


def safetensors_bytes(tensors: dict, metadata: dict | None) -> tuple[bytes, bytes]:
    """(header part incl. length prefix, data part)."""
    header = {}
    chunks = []
    offset = 0
    for name in sorted(tensors):
        dtype, shape, values = tensors[name]
        raw = _encode(dtype, values)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text, b"".join(chunks)


def write_safetensors(path, tensors: dict, metadata: dict | None) -> None:
    head, body = safetensors_bytes(tensors, metadata)
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(path).write_bytes(head + body)


def write_truncated(path) -> None:
    head, body = safetensors_bytes({TRACKED: ("F32", [64], [0.0] * 64)}, {"modelspec.title": "broken"})
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(path).write_bytes((head + body)[: len(head) + 10])


def convert(tensors: dict, precision: str | None) -> dict:
    target = {"fp16": "F16", "bf16": "BF16", "float": "F32"}.get(precision or "")
    if not target:
        return tensors
    return {k: ((target if d in ("F32", "F16", "BF16") else d), s, v) for k, (d, s, v) in tensors.items()}


# ------------------------------------------------------------------------------------------
# Parser from the manifest, config file as sd-scripts reads it


# The parser is the package's, generated from the same manifest (the stand-ins run with a Python
# that has swimlatent installed).
from swimlatent_wrap.sdscripts.parser import build_parser  # noqa: E402


def read_config_from_file(args: argparse.Namespace, parser: argparse.ArgumentParser) -> argparse.Namespace:
    if not getattr(args, "config_file", None):
        return args
    config_path = args.config_file if args.config_file.endswith(".toml") else args.config_file + ".toml"
    if not os.path.exists(config_path):
        log(f"{config_path} not found.")
        sys.exit(1)
    log(f"Loading settings from {config_path}...")
    with open(config_path, "rb") as f:
        config = tomllib.load(f)
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(value)
        else:
            flat[key] = value
    config_args = argparse.Namespace(**flat)
    args = parser.parse_args(namespace=config_args)
    args.config_file = os.path.splitext(args.config_file)[0]
    return args


# ------------------------------------------------------------------------------------------
# Dataset config, checked like config_util's voluptuous schema (first problem only)


class InvalidConfig(Exception):
    pass


def _type_ok(kind: str, value) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int)  # voluptuous: bool passes as int too
    if kind == "float":
        return isinstance(value, float)
    if kind == "number":
        return isinstance(value, (int, float))
    if kind == "str":
        return isinstance(value, str)
    if kind == "table":
        return isinstance(value, dict)
    if kind == "int_or_int_pair":
        return isinstance(value, int) or (isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value))
    if kind == "float_pair":
        return isinstance(value, list) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value)
    return True


def _check_level(level: str, table: dict, where: str, skip=("subsets", "datasets")) -> None:
    allowed = MANIFEST["dataset_config"]["levels"][level]
    for key, value in table.items():
        if key in skip:
            continue
        if key not in allowed:
            raise InvalidConfig(f"extra keys not allowed @ data{where}['{key}']")
        if not _type_ok(allowed[key], value):
            raise InvalidConfig(f"expected {allowed[key]} for dictionary value @ data{where}['{key}']")
    for key in MANIFEST["dataset_config"].get("required", {}).get(level, []):
        if key not in table:
            raise InvalidConfig(f"required key not provided @ data{where}['{key}']")


def load_dataset_config(path: str) -> dict:
    if path.endswith(".toml"):
        with open(path, "rb") as f:
            config = tomllib.load(f)
    elif path.endswith(".json"):
        config = json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    else:
        raise ValueError(f"not supported config file format / 対応していない設定ファイルの形式です: {path}")
    for key in config:
        if key not in ("general", "datasets"):
            raise InvalidConfig(f"extra keys not allowed @ data['{key}']")
    _check_level("general", config.get("general", {}), "['general']")
    for i, dataset in enumerate(config.get("datasets", [])):
        subsets = dataset.get("subsets", [])
        finetuning = [("metadata_file" in s) for s in subsets]
        if any(finetuning) and not all(finetuning):
            raise InvalidConfig("DreamBooth subset and fine tuning subset cannot be mixed in the same dataset")
        kind = "finetuning" if subsets and all(finetuning) else "dreambooth"
        _check_level(f"{kind}_dataset", dataset, f"['datasets'][{i}]")
        for j, subset in enumerate(subsets):
            _check_level(f"{kind}_subset", subset, f"['datasets'][{i}]['subsets'][{j}]")
    return config


def pick(key, *tables, default=None):
    for table in tables:
        if table is not None and key in table and table[key] is not None:
            return table[key]
    return default


def dataset_summary(args) -> dict:
    """Images × repeats and batch size of the (first) dataset, as BlueprintGenerator would see them."""
    images, batches = 0, 0
    if args.dataset_config:
        try:
            config = load_dataset_config(str(args.dataset_config))
        except InvalidConfig as error:
            log("Invalid user config / ユーザ設定の形式が正しくないようです")
            raise SystemExit(f"voluptuous.error.MultipleInvalid: {error}")
        general = config.get("general", {})
        cli = {
            "caption_extension": args.caption_extension,
            "num_repeats": args.dataset_repeats,
            "batch_size": args.train_batch_size,
            "resolution": args.resolution,
        }
        for dataset in config.get("datasets", []):
            batch = pick("batch_size", dataset, general, cli, default=1)
            resolution = pick("resolution", dataset, general, cli)
            count = 0
            for subset in dataset.get("subsets", []):
                if "metadata_file" in subset:
                    meta = json.loads(pathlib.Path(subset["metadata_file"]).read_text(encoding="utf-8"))
                    count += len(meta) * pick("num_repeats", subset, dataset, general, cli, default=1)
                    continue
                image_dir = pathlib.Path(subset["image_dir"])
                if not image_dir.is_dir():
                    log(f"not directory: {image_dir}")
                    continue
                extension = pick("caption_extension", subset, dataset, general, cli, default=".caption")
                repeats = pick("num_repeats", subset, dataset, general, cli, default=1)
                found = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
                for image in found:
                    caption = image.with_name(image.stem + extension)
                    if not caption.is_file():
                        log(f"neither caption file nor class tokens are found. use empty caption for {image}")
                count += len(found) * repeats
            if count:
                assert resolution is not None, "resolution is required / resolution（解像度）指定は必須です"
            images += count
            batches += math.ceil(count / batch) if count else 0
    elif args.train_data_dir:
        root = pathlib.Path(args.train_data_dir)
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            repeats = int(folder.name.split("_", 1)[0]) if "_" in folder.name else 1
            found = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS]
            images += len(found) * repeats
        batches = math.ceil(images / args.train_batch_size) if images else 0
    return {"images": images, "batches": batches}


# ------------------------------------------------------------------------------------------
# Metadata as sd-scripts writes it (facts §4)


def implementation_version() -> str:
    return "sd-scripts/" + (os.environ.get("STANDIN_COMMIT") or "unknown")


def modelspec(args, lora: bool) -> dict:
    title = args.metadata_title or args.output_name or (("LoRA@" if lora else "Checkpoint@") + str(time.time()))
    resolution = args.resolution or "1024,1024"
    parts = [p.strip() for p in str(resolution).split(",")]
    width, height = (parts[0], parts[-1])
    meta = {
        "modelspec.architecture": "stable-diffusion-xl-v1-base" + ("/lora" if lora else ""),
        "modelspec.implementation": "https://github.com/Stability-AI/generative-models",
        "modelspec.title": title,
        "modelspec.resolution": f"{width}x{height}",
        "modelspec.sai_model_spec": "1.0.1",
    }
    for key in ("description", "author", "license", "tags", "merged_from"):
        value = getattr(args, f"metadata_{key}", None)
        if value:
            meta[f"modelspec.{key}"] = value
    meta["modelspec.date"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    meta["modelspec.prediction_type"] = "v" if args.v_parameterization else "epsilon"
    meta["modelspec.implementation_version"] = implementation_version()
    return meta


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------
# Training bookkeeping


class Trainer:
    def __init__(self, script: str, args) -> None:
        self.script = script
        self.args = args
        self.lora = script == "sdxl_train_network"
        self.scheduler_position = 0
        self.tensors: dict = {}
        self.base_meta: dict = {}
        self.started = time.time()

    # weights ----------------------------------------------------------------------------
    def load_base(self) -> None:
        source = self.args.pretrained_model_name_or_path
        if not source:
            raise SystemExit("pretrained_model_name_or_path is required")
        if not os.path.isfile(source):
            raise FileNotFoundError(f"checkpoint not found (the stand-in reads single files only): {source}")
        meta, tensors = read_safetensors(source)
        if not any(k.startswith("model.diffusion_model.") for k in tensors):
            raise RuntimeError(f"not an SDXL checkpoint (no model.diffusion_model.* tensors): {source}")
        self.base_path = source
        if self.lora:
            dim = self.args.network_dim or 4
            alpha = self.args.network_alpha if self.args.network_alpha is not None else 1.0
            modules = ["lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q", "lora_unet_middle_block_1_proj_in"]
            if not self.args.network_train_unet_only:
                modules.append("lora_te1_text_model_encoder_layers_0_self_attn_q_proj")
            for module in modules:
                self.tensors[f"{module}.lora_down.weight"] = ("F32", [dim, 4], [0.01] * (dim * 4))
                self.tensors[f"{module}.lora_up.weight"] = ("F32", [4, dim], [0.0] * (4 * dim))
                self.tensors[f"{module}.alpha"] = ("F32", [], [float(alpha)])
            if self.args.network_weights:
                _, weights = read_safetensors(self.args.network_weights)
                self.tensors.update(weights)
        else:
            self.tensors = dict(tensors)
            if TRACKED not in self.tensors:
                self.tensors[TRACKED] = ("F32", [4], [0.0] * 4)

    def step(self) -> None:
        if self.lora:
            for name, (dtype, shape, values) in list(self.tensors.items()):
                if name.endswith(".lora_up.weight"):
                    self.tensors[name] = (dtype, shape, [v + 1.0 for v in values])
        else:
            dtype, shape, values = self.tensors[TRACKED]
            self.tensors[TRACKED] = (dtype, shape, [v + 1.0 for v in values])
        self.scheduler_position += 1

    # saving -----------------------------------------------------------------------------
    def extension(self) -> str:
        if self.lora:
            return "." + (self.args.save_model_as or "safetensors")
        if self.args.save_model_as is None:
            return ".safetensors" if self.args.use_safetensors else ".ckpt"  # facts §0.8
        return ".safetensors" if "safetensors" in self.args.save_model_as.lower() else ".ckpt"

    def metadata(self, epoch: int, step: int) -> dict:
        meta = {}
        if self.lora:
            meta.update({
                "ss_session_id": "12345",
                "ss_training_started_at": str(self.started),
                "ss_output_name": str(self.args.output_name),
                "ss_learning_rate": str(self.args.learning_rate),
                "ss_unet_lr": str(self.args.unet_lr),
                "ss_max_train_steps": str(self.args.max_train_steps),
                "ss_lr_scheduler": str(self.args.lr_scheduler),
                "ss_optimizer": str(self.args.optimizer_type),
                "ss_network_module": str(self.args.network_module),
                "ss_network_dim": str(self.args.network_dim or 4),
                "ss_network_alpha": str(self.args.network_alpha),
                "ss_base_model_version": "sdxl_base_v1-0",
                "ss_sd_model_name": os.path.basename(self.base_path),
                "ss_new_sd_model_hash": file_sha256(self.base_path),
                "ss_sd_scripts_commit_hash": os.environ.get("STANDIN_COMMIT") or "unknown",
                "ss_seed": str(self.args.seed),
                "ss_epoch": str(epoch),
                "ss_steps": str(step),
                "ss_training_finished_at": str(time.time()),
            })
            if self.args.training_comment:
                meta["ss_training_comment"] = self.args.training_comment
        meta.update(modelspec(self.args, self.lora))
        return meta

    def save_model(self, name: str, epoch: int, step: int) -> pathlib.Path:
        path = pathlib.Path(self.args.output_dir) / (name + self.extension())
        tensors = convert(self.tensors, self.args.save_precision)
        if path.suffix != ".safetensors":
            path.write_bytes(b"PK\x03\x04 stand-in torch pickle, not safetensors")
            return path
        meta = self.metadata(epoch, step)
        head, body = safetensors_bytes(tensors, None)
        if self.lora:
            # LoRANetwork.save_weights: hashes of the data section (facts §4)
            meta["sshs_model_hash"] = hashlib.sha256(body).hexdigest()
            meta["sshs_legacy_hash"] = hashlib.sha256(body[0x100000 : 0x100000 + 0x10000]).hexdigest()[:8]
        write_safetensors(path, tensors, meta)
        log(f"saving checkpoint: {path}")
        return path

    def save_state(self, folder: str, epoch: int, local_step: int) -> None:
        state = pathlib.Path(self.args.output_dir) / folder
        state.mkdir(parents=True, exist_ok=True)
        write_safetensors(state / "model.safetensors", self.tensors, None)
        (state / "optimizer.bin").write_bytes(b"stand-in optimizer state")
        (state / "scheduler.bin").write_text(json.dumps({"last_epoch": self.scheduler_position}))
        (state / "random_states_0.pkl").write_bytes(b"stand-in rng")
        if self.lora:  # train_network.py's save_model_hook; sdxl_train.py writes no train_state.json
            (state / "train_state.json").write_text(json.dumps({"current_epoch": epoch, "current_step": local_step}))
        log(f"saving state at {state}")

    def load_state(self, folder: str):
        state = pathlib.Path(folder)
        if not (state / "model.safetensors").is_file() or not (state / "scheduler.bin").is_file():
            raise FileNotFoundError(f"accelerate load_state: no checkpoint in {folder}")
        _, weights = read_safetensors(state / "model.safetensors")
        self.tensors.update(weights)
        self.scheduler_position = json.loads((state / "scheduler.bin").read_text())["last_epoch"]
        log(f"resume training from local state: {folder}")
        train_state = state / "train_state.json"
        if self.lora and train_state.is_file():
            data = json.loads(train_state.read_text())
            log(f"load train state from {train_state}: {data}")
            return data["current_step"]
        return None

    def sample(self, tag: str) -> None:
        if not self.args.sample_prompts:
            return
        lines = [l.strip() for l in pathlib.Path(self.args.sample_prompts).read_text(encoding="utf-8").splitlines()]
        prompts = [l for l in lines if l and not l.startswith("#")]
        folder = pathlib.Path(self.args.output_dir) / "sample"
        folder.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d%H%M%S")
        for i, _ in enumerate(prompts):
            prefix = "" if self.args.output_name is None else self.args.output_name + "_"
            (folder / f"{prefix}{tag}_{i:02d}_{stamp}.png").write_bytes(tiny_png())


def tiny_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"\x00\x80\x80\x80"
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def check_scheduler(args) -> None:
    warmup = args.lr_warmup_steps
    if args.lr_scheduler_args:
        for item in args.lr_scheduler_args:
            key, value = item.split("=")  # sd-scripts: exactly one "=" per item
            ast.literal_eval(value)
    if args.lr_scheduler_type:
        module, _, attr = args.lr_scheduler_type.rpartition(".")
        target = getattr(importlib.import_module(module or "torch.optim.lr_scheduler"), attr)
        if not callable(target):
            raise TypeError(f"{args.lr_scheduler_type} is not callable")
        if warmup:
            raise ValueError(f"{args.lr_scheduler} does not require `num_warmup_steps`. Set None or 0.")
        log(f"use {args.lr_scheduler_type} | {args.lr_scheduler_args} as lr_scheduler")
        return
    if args.lr_scheduler not in MANIFEST["lr_schedulers"] and not args.lr_scheduler.startswith("adafactor"):
        raise ValueError(f"'{args.lr_scheduler}' is not a valid SchedulerType")
    if args.lr_scheduler == "constant" and warmup:
        raise ValueError("constant does not require `num_warmup_steps`. Set None or 0.")


def wait_for_sigint(trainer: Trainer, epoch_done: int, local_step: int) -> None:
    log(f"standin: waiting for SIGINT at epoch {epoch_done + 1}")
    try:
        while True:
            time.sleep(0.05)
    except KeyboardInterrupt:
        if os.environ.get("STANDIN_ON_SIGINT") == "save":
            name = trainer.args.output_name or "epoch"
            trainer.save_state(f"{name}-{epoch_done:06d}-state", epoch_done, local_step)
            log("standin: state saved on SIGINT")
            raise SystemExit(130)
        raise


def train(script: str) -> int:
    parser = build_parser(script)
    args = parser.parse_args()
    args = read_config_from_file(args, parser)
    if os.environ.get("STANDIN_FAIL"):
        log("Traceback (most recent call last):")
        log("  File \"sdxl_train.py\", line 1, in <module>")
        log("RuntimeError: stand-in told to fail (STANDIN_FAIL)")
        return int(os.environ["STANDIN_FAIL"])
    if args.full_bf16:
        assert args.mixed_precision == "bf16", "full_bf16 requires mixed precision='bf16'"
    if args.cache_text_encoder_outputs:
        assert not args.shuffle_caption and not args.caption_dropout_rate, "cache_text_encoder_outputs does not support shuffle_caption / caption_dropout_rate"
    if not args.output_dir:
        raise SystemExit("output_dir is required")
    if script == "sdxl_train_network" and not args.network_module:
        raise SystemExit("network_module is required")
    if args.tokenizer_cache_dir:
        for name in ("openai_clip-vit-large-patch14", "laion_CLIP-ViT-bigG-14-laion2B-39B-b160k"):
            (pathlib.Path(args.tokenizer_cache_dir) / name).mkdir(parents=True, exist_ok=True)

    summary = dataset_summary(args)
    # Real tier: tests/real/test_chain.py::test_sd_scripts_finding_no_data_is_an_error_not_a_success
    # runs the real sdxl_train_network.py into this exit (log line, exit 0, no model).
    if summary["images"] == 0 or os.environ.get("STANDIN_NO_OUTPUT"):
        log("No data found. Please verify arguments (train_data_dir must be the parent of folders with images) / "
            "画像がありません。引数指定を確認してください（train_data_dirには画像があるフォルダではなく、画像があるフォルダの親フォルダを指定する必要があります）")
        return 0
    check_scheduler(args)

    trainer = Trainer(script, args)
    trainer.load_base()
    pathlib.Path(args.output_dir).mkdir(parents=True, exist_ok=True)
    steps_per_epoch = math.ceil(summary["batches"] / args.gradient_accumulation_steps)
    if args.max_train_epochs is not None:
        args.max_train_steps = args.max_train_epochs * steps_per_epoch
        log(f"override steps. steps for {args.max_train_epochs} epochs is / 指定エポックまでのステップ数: {args.max_train_steps}")

    steps_from_state = trainer.load_state(args.resume) if args.resume else None
    epoch_to_start = 0
    if trainer.lora:
        initial_step = 0
        if args.initial_epoch is not None or args.initial_step is not None:
            initial_step = args.initial_step if args.initial_step is not None else (args.initial_epoch - 1) * steps_per_epoch
        elif steps_from_state is not None:
            initial_step = steps_from_state
        if initial_step > 0:
            assert args.max_train_steps > initial_step, f"max_train_steps should be greater than initial step: {args.max_train_steps} vs {initial_step}"
            epoch_to_start = initial_step // steps_per_epoch

    num_train_epochs = math.ceil(args.max_train_steps / steps_per_epoch)
    log("running training / 学習開始")
    log(f"  num train images * repeats / 学習画像の数×繰り返し回数: {summary['images']}")
    log(f"  num batches per epoch / 1epochのバッチ数: {summary['batches']}")
    log(f"  num epochs / epoch数: {num_train_epochs}")
    log(f"  gradient accumulation steps / 勾配を合計するステップ数 = {args.gradient_accumulation_steps}")
    # Real tier: test_base_trains_the_unet_from_the_checkpoint reads the same line from the real
    # sdxl_train.py (run.json schedule.total_steps).
    log(f"  total optimization steps / 学習ステップ数: {args.max_train_steps}")

    name = args.output_name
    step_seconds = float(os.environ.get("STANDIN_STEP_SECONDS", "0") or 0)
    hang_at = int(os.environ.get("STANDIN_HANG_AT_EPOCH", "0") or 0)
    crash_at = int(os.environ.get("STANDIN_CRASH_AT_EPOCH", "0") or 0)
    global_step = 0
    if args.sample_at_first:
        trainer.sample("000000")
    for epoch in range(epoch_to_start, num_train_epochs):
        log(f"\nepoch {epoch + 1}/{num_train_epochs}")
        if crash_at == epoch + 1:
            write_truncated(pathlib.Path(args.output_dir) / f"{name or 'last'}.safetensors")
            raise RuntimeError("CUDA error: an illegal memory access was encountered (stand-in crash)")
        if hang_at == epoch + 1:
            wait_for_sigint(trainer, epoch, global_step)
        for _ in range(steps_per_epoch):
            if step_seconds:
                time.sleep(step_seconds)
            trainer.step()
            global_step += 1
            if args.save_every_n_steps and global_step % args.save_every_n_steps == 0:
                trainer.save_model(f"{name or 'at'}-step{global_step:08d}", epoch + 1, global_step)
                if args.save_state:
                    trainer.save_state(f"{name or 'at'}-step{global_step:08d}-state", epoch + 1, global_step)
            if global_step >= args.max_train_steps:
                break
        log(f"steps: {global_step}/{args.max_train_steps}")
        # Real tier: test_ft_is_interrupted_after_a_saved_state_and_resumes_on_the_same_schedule finds the
        # real ft-000001.safetensors and ft-000001-state/ (random_states_0.pkl last) under these names.
        if args.save_every_n_epochs and (epoch + 1) % args.save_every_n_epochs == 0 and epoch + 1 < num_train_epochs:
            trainer.save_model(f"{name or 'epoch'}-{epoch + 1:06d}", epoch + 1, global_step)
            if args.save_state:
                trainer.save_state(f"{name or 'epoch'}-{epoch + 1:06d}-state", epoch + 1, global_step)
        if args.sample_every_n_epochs and (epoch + 1) % args.sample_every_n_epochs == 0:
            trainer.sample(f"e{epoch + 1:06d}")
        if global_step >= args.max_train_steps:
            break

    final = pathlib.Path(args.output_dir) / f"{name or 'last'}{trainer.extension()}"
    if os.environ.get("STANDIN_CORRUPT_OUTPUT"):
        write_truncated(final)
        log("standin: wrote a truncated model and exits 0")
        return 0
    # Real tier: the final <output_name>.safetensors of every real run is what train verifies and
    # places; with save_state the real sdxl_train.py also writes <output_name>-state/ at the end.
    trainer.save_model(name or "last", num_train_epochs, global_step)
    if args.save_state or args.save_state_on_train_end:
        trainer.save_state(f"{name or 'last'}-state", num_train_epochs, global_step)
    log(f"standin: {global_step} steps trained in this run")
    log("model saved.")
    return 0


def main(script: str) -> None:
    raise SystemExit(train(script))
