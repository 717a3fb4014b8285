"""The LoRA ratio sweep: the same prompts and seeds drawn at each LoRA multiplier, so the merge
ratio can be picked by eye (seed: "generate it several times to find the right ratio").

One run of sd-scripts' `sdxl_gen_img.py` draws every image: the LoRA is loaded once (not merged)
and each prompt line sets its own multiplier with `--am`, its seed with `--d` and its size with
`--w/--h`. `--sequential_file_name` names the images im_000001.png … in prompt-file order, which
is how each file is mapped back to its (prompt, seed, ratio) cell.
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from swimlatent_wrap import prompts
from swimlatent_wrap.errors import UserError
from swimlatent_wrap.recipe import Recipe
from swimlatent_wrap.sdscripts.command import command_argv
from swimlatent_wrap.sdscripts.manifest import load_manifest

GEN_SCRIPT = "sdxl_gen_img"


@dataclass(frozen=True)
class Cell:
    index: int  # 1-based position in the prompt file = sd-scripts' sequential file number
    row: int  # prompt × seed
    column: int  # ratio
    prompt: str
    seed: int
    ratio: float

    @property
    def file_name(self) -> str:
        return f"im_{self.index:06d}.png"


def read_prompts(path: Path) -> list[str]:
    """The sweep's prompts; the file is read when the sweep runs (it may have changed since `validate`)."""
    try:
        return prompts.read_prompts(path)
    except prompts.PromptFileError as error:
        raise UserError(f"{path}: {error}") from None


def sweep_prompts_file(recipe: Recipe) -> Path:
    """[sweep] prompts, else [sample] prompts (`validate` refuses a swept recipe that has neither)."""
    path = recipe.sweep.prompts or recipe.sample.prompts
    if path is None:
        raise UserError(f"{recipe.path}: sweep.prompts: no prompts for the sweep; set [sweep] prompts (or [sample] prompts)")
    return Path(path)


def cells(recipe: Recipe) -> list[Cell]:
    """One cell per prompt × seed × ratio ([sweep] ratios and seeds are never empty: `validate`)."""
    sweep = recipe.sweep
    out, index = [], 0
    rows = [(prompt, seed) for prompt in read_prompts(sweep_prompts_file(recipe)) for seed in sweep.seeds]
    for row, (prompt, seed) in enumerate(rows):
        for column, ratio in enumerate(sweep.ratios):
            index += 1
            out.append(Cell(index, row, column, prompt, seed, float(ratio)))
    return out


def prompt_file_text(recipe: Recipe, grid: list[Cell]) -> str:
    sweep = recipe.sweep
    lines = []
    for cell in grid:
        line = (f"{cell.prompt} --w {sweep.width} --h {sweep.height} --s {sweep.steps} --l {sweep.scale:g} "
                f"--d {cell.seed} --am {cell.ratio!r}")
        if sweep.negative_prompt:
            line += f" --n {sweep.negative_prompt}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def gen_argv(recipe: Recipe, *, python: str, sd_scripts: Path, model: Path, lora: Path, prompts: Path, outdir: Path,
             tokenizer_cache: Path) -> list[str]:
    """sdxl_gen_img.py's command line; every option checked against the manifest."""
    manifest = load_manifest()
    precision = recipe.args.get("mixed_precision")
    options = {
        "ckpt": model, "network_module": [recipe.args.get("network_module", "networks.lora")],
        "network_weights": [lora], "network_mul": [1.0], "from_file": prompts, "outdir": outdir,
        "sequential_file_name": True, "sampler": recipe.sweep.sampler, "images_per_prompt": 1, "batch_size": 1,
        "tokenizer_cache_dir": tokenizer_cache, "sdpa": True,
        "bf16": precision == "bf16", "fp16": precision == "fp16", "no_half_vae": bool(recipe.args.get("no_half_vae")),
    }
    return command_argv(manifest, GEN_SCRIPT, python=python, sd_scripts=sd_scripts, options=options)


def collect_images(outdir: Path, grid: list[Cell]) -> None:
    missing = [cell.file_name for cell in grid if not (outdir / cell.file_name).is_file()]
    if missing:
        raise UserError(f"{outdir}: sdxl_gen_img.py wrote {len(grid) - len(missing)} of {len(grid)} images "
                        f"(missing e.g. {missing[0]}); see the log in that folder")


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def grid_image(outdir: Path, recipe: Recipe, grid: list[Cell], target: Path, cell_size: int = 256) -> tuple[int, int]:
    """A labelled grid: one column per ratio, one row per (prompt, seed)."""
    from PIL import Image, ImageDraw

    ratios = list(recipe.sweep.ratios)
    rows = max(cell.row for cell in grid) + 1
    header, margin = 36, 260
    width, height = margin + cell_size * len(ratios), header + cell_size * rows
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    font = _font(18)
    for column, ratio in enumerate(ratios):
        draw.text((margin + column * cell_size + 8, 8), f"LoRA ratio {ratio:g}", fill="black", font=font)
    for cell in grid:
        with Image.open(outdir / cell.file_name) as image:
            thumb = image.convert("RGB")
            thumb.thumbnail((cell_size, cell_size))
        x, y = margin + cell.column * cell_size, header + cell.row * cell_size
        canvas.paste(thumb, (x + (cell_size - thumb.width) // 2, y + (cell_size - thumb.height) // 2))
        if cell.column == 0:
            label = f"seed {cell.seed}\n" + "\n".join(_wrap(cell.prompt, 30)[:8])
            draw.multiline_text((8, y + 8), label, fill="black", font=_font(14))
    from swimlatent_wrap.atomic import atomic_open

    with atomic_open(target, "wb") as handle:
        canvas.save(handle, format="PNG")
    return width, height


def _wrap(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + ([line] if line else [])


def html_page(recipe: Recipe, grid: list[Cell]) -> str:
    ratios = list(recipe.sweep.ratios)
    head = "".join(f"<th>LoRA ratio {ratio:g}</th>" for ratio in ratios)
    rows: dict[int, list[Cell]] = {}
    for cell in grid:
        rows.setdefault(cell.row, []).append(cell)
    body = []
    for row_cells in rows.values():
        first = row_cells[0]
        images = "".join(f'<td><a href="{c.file_name}"><img src="{c.file_name}" width="256" loading="lazy" '
                         f'alt="ratio {c.ratio:g}"></a></td>' for c in row_cells)
        body.append(f"<tr><th class=prompt>seed {first.seed}<br>{html.escape(first.prompt)}</th>{images}</tr>")
    return ("<!doctype html><meta charset=utf-8><title>LoRA sweep: " + html.escape(recipe.name) + "</title>"
            "<style>body{font-family:sans-serif}td,th{padding:4px;vertical-align:top}th.prompt{max-width:260px;"
            "text-align:left;font-weight:normal}</style>"
            f"<h1>LoRA ratio sweep — {html.escape(recipe.name)}</h1>"
            "<p>Pick the ratio whose column looks right, then set it as <code>[merge] ratio</code> in "
            f"<code>{html.escape(str(recipe.path))}</code> and run <code>swimlatent merge</code>.</p>"
            f"<p><img src=grid.png alt=grid style='max-width:100%'></p><table><tr><th></th>{head}</tr>"
            + "".join(body) + "</table>\n")


def sweep_record(recipe: Recipe, grid: list[Cell], argv: list[str], model: Path, lora: Path) -> str:
    sweep = recipe.sweep
    record = {
        "recipe": str(recipe.path), "recipe_sha256": recipe.digest(), "model": str(model), "lora": str(lora),
        "settings": {"width": sweep.width, "height": sweep.height, "steps": sweep.steps, "scale": sweep.scale,
                     "sampler": sweep.sampler, "negative_prompt": sweep.negative_prompt},
        "argv": argv,
        "images": [{**asdict(cell), "file": cell.file_name} for cell in grid],
    }
    return json.dumps(record, indent=1, ensure_ascii=False) + "\n"
