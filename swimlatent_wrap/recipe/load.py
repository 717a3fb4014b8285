"""Load a recipe: read TOML, resolve `extends`, validate everything, report every problem at once.

A problem is reported as ``<file>: <table.key>: <message>``, where <file> is the recipe file that
set the key (with `extends`, that may be a parent), so the user edits the right file.
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, cast

from swimlatent_wrap.errors import UserError
from swimlatent_wrap.recipe import rules
from swimlatent_wrap.recipe.model import ModelRef, Recipe, parse_model_ref
from swimlatent_wrap.recipe.schema import REQUIRED, STR, Choice, Field, KindError, PathKind, Table
from swimlatent_wrap.recipe.types import TABLE_TYPES, Captions, Checks, Dataset, Modelspec, Sample, Sweep, TableValues
from swimlatent_wrap.recipe.tables import WRAPPER_TABLES
from swimlatent_wrap.sdscripts.manifest import TRAINING_SCRIPTS, load_manifest

KeyPath = tuple[str, ...]

TOP_LEVEL = Table(
    name="",
    help="Top-level keys of every recipe.",
    fields=[
        Field("name", STR, REQUIRED, "the stage this recipe trains (base, ft, lora, …); other recipes refer to its output as stage:<name>"),
        Field("extends", STR, None, "a recipe this one inherits from (path relative to this file); keys set here win"),
        Field("model", STR, REQUIRED, "what the stage starts from: a path, hf:<owner>/<repo>/<file>, or stage:<name>"),
        Field("script", Choice(TRAINING_SCRIPTS), REQUIRED, "sd-scripts training script: sdxl_train (fine-tune) or sdxl_train_network (LoRA)"),
        Field("description", STR, "", "one line saying what this stage is for"),
    ],
)

SDSCRIPTS_TABLES = {
    "args": "sd-scripts options of the recipe's script, by their own names (written to args.toml for --config_file)",
    "dataset_config": "sd-scripts dataset-config keys (written to dataset.toml [general])",
}


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    key: str
    message: str
    warning: bool = False  # printed by `validate`, but the recipe loads

    def __str__(self) -> str:
        return f"{self.file}: {self.key}: {'warning: ' if self.warning else ''}{self.message}"


class RecipeError(UserError):
    """One or more problems in a recipe; each printed as its own line, `<file>: <table.key>: <message>`."""

    label = ""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__(*(str(p) for p in problems))


def display_path(path: Path) -> str:
    """How a file is named in messages: relative to the current folder when it is below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _suggest(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _leaves(data: dict[str, Any], prefix: KeyPath = ()) -> Iterable[KeyPath]:
    for key, value in data.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, prefix + (key,))
        else:
            yield prefix + (key,)


def _merge(parent: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """Child keys win; tables merge key by key; arrays (also arrays of tables) are replaced whole."""
    out = dict(parent)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _blank(cls: type[TableValues]) -> TableValues:
    """A table that was not a table at all: every value None (already reported; never returned)."""
    return cls(**{f.name: None for f in dataclasses.fields(cls)})


def _jsonable(value: Any) -> Any:
    if isinstance(value, TableValues):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


class _Loader:
    def __init__(self, path: Path) -> None:
        self.leaf = path.resolve()
        self.problems: list[Problem] = []
        self.origins: dict[KeyPath, Path] = {}

    # -- reporting ------------------------------------------------------------------------------

    def problem(self, file: Path, key: str, message: str, warning: bool = False) -> None:
        self.problems.append(Problem(display_path(file), key, message, warning))

    def file_of(self, keypath: KeyPath) -> Path:
        """The recipe file that set ``keypath`` (or the closest enclosing key); else this recipe."""
        for end in range(len(keypath), 0, -1):
            found = self.origins.get(keypath[:end])
            if found is not None:
                return found
        # a table whose keys came from several files: the first key's file
        for path, origin in self.origins.items():
            if path[: len(keypath)] == keypath:
                return origin
        return self.leaf

    # -- reading and extends ----------------------------------------------------------------------

    def read(self, path: Path, chain: list[Path], referrer: Path | None) -> tuple[dict[str, Any], list[Path]] | None:
        if path in chain:
            cycle = " → ".join(display_path(p) for p in chain + [path])
            self.problem(chain[-1], "extends", f"cycle in extends: {cycle}")
            return None
        if not path.is_file():
            if referrer is None:
                self.problem(path, "(file)", "recipe file not found")
            else:
                self.problem(referrer, "extends", f"file not found: {display_path(path)}")
            return None
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as error:
            self.problem(path, "(toml)", f"invalid TOML: {error}")
            return None
        except (OSError, UnicodeDecodeError) as error:
            self.problem(path, "(file)", f"cannot read: {error}")
            return None
        for keypath in _leaves(data):
            self.origins.setdefault(keypath, path)  # deeper files are read later: the child's origin stays
        extends = data.pop("extends", None)
        if extends is None:
            return data, [path]
        if not isinstance(extends, str) or not extends:
            self.problem(path, "extends", f"expected a path (string) relative to this file, got {extends!r}")
            return data, [path]
        parent = self.read((path.parent / extends).resolve(), chain + [path], path)
        if parent is None:
            return None
        parent_data, parent_chain = parent
        return _merge(parent_data, data), [path] + parent_chain

    # -- validation ------------------------------------------------------------------------------

    def convert_field(self, field: Field, value: Any, keypath: KeyPath, label: str | None = None) -> Any:
        """``value`` converted and checked; ``label`` names it in messages (with an array index: splits[2].share)."""
        key = label or ".".join(keypath)
        try:
            converted = field.kind.convert(value)
        except KindError as error:
            self.problem(self.file_of(keypath), key, str(error))
            return None
        if isinstance(field.kind, PathKind):
            converted = (self.file_of(keypath).parent / Path(converted).expanduser()).resolve()
            if field.kind.must_exist:
                if field.kind.folder and not converted.is_dir():
                    self.problem(self.file_of(keypath), key, f"folder not found: {converted}")
                    return None
                if not field.kind.folder and not converted.is_file():
                    self.problem(self.file_of(keypath), key, f"file not found: {converted}")
                    return None
        if field.check is not None and converted is not None:
            message = field.check(converted)
            if message:
                self.problem(self.file_of(keypath), key, message)
                return None
        return converted

    def section(self, table: Table, value: Any, keypath: KeyPath, label: str) -> TableValues | None:
        """The table's typed values (TABLE_TYPES; a value that was refused is None in it), or None
        when ``value`` is not a table at all."""
        if not isinstance(value, dict):
            self.problem(self.file_of(keypath), label, f"expected a table, got {value!r}")
            return None
        fields, subtables = table.field_map(), table.subtable_map()
        values: dict[str, Any] = {}
        for key, item in value.items():
            sub_label = f"{label}.{key}" if label else key
            if key in fields:
                values[key] = self.convert_field(fields[key], item, keypath + (key,), sub_label)
            elif key in subtables:
                sub = subtables[key]
                if sub.array:
                    if not isinstance(item, list) or not all(isinstance(i, dict) for i in item):
                        self.problem(self.file_of(keypath + (key,)), sub_label, f"expected an array of tables ([[{sub_label}]])")
                        continue
                    values[key] = tuple(self.section(sub, entry, keypath + (key,), f"{sub_label}[{n + 1}]") for n, entry in enumerate(item))
                else:
                    values[key] = self.section(sub, item, keypath + (key,), sub_label)
            else:
                where = f"[{label}]" if label else "the top level"
                self.problem(self.file_of(keypath + (key,)), sub_label, f"unknown key in {where}" + _suggest(key, table.keys()))
        for field in table.fields:
            if field.name not in value:
                if field.required:
                    self.problem(self.file_of(keypath) if keypath else self.leaf, f"{label}.{field.name}" if label else field.name,
                                 f"required: {field.help}")
                values[field.name] = None if field.required else field.default
        for sub in table.subtables:
            values.setdefault(sub.name, () if sub.array else None)
        if table.check is not None:
            for key, message in table.check(values):
                self.problem(self.file_of(keypath + (key,)), f"{label}.{key}" if label else key, message)
        qualified = ".".join(keypath)
        return TABLE_TYPES[qualified](**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    def validate(self, data: dict[str, Any], chain: list[Path]) -> Recipe | None:
        known = [f.name for f in TOP_LEVEL.fields] + list(WRAPPER_TABLES) + list(SDSCRIPTS_TABLES)
        top: dict[str, Any] = {}
        for key in list(data):
            if key in WRAPPER_TABLES or key in SDSCRIPTS_TABLES or key in TOP_LEVEL.field_map():
                continue
            message = f"unknown table [{key}]" if isinstance(data[key], dict) else "unknown top-level key"
            self.problem(self.file_of((key,)), key, message + _suggest(key, known))
        fields = TOP_LEVEL.field_map()
        for field in TOP_LEVEL.fields:
            if field.name == "extends":
                continue
            if field.name in data:
                top[field.name] = self.convert_field(field, data[field.name], (field.name,))
            elif field.required:
                self.problem(self.leaf, field.name, f"required: {field.help}")
                top[field.name] = None
            else:
                top[field.name] = field.default
        del fields
        if "name" in data and self.file_of(("name",)) != self.leaf:
            self.problem(self.leaf, "name", f"must be set in this file: it names this recipe's stage "
                         f"(it would inherit {data['name']!r} from {display_path(self.file_of(('name',)))})")

        tables: dict[str, TableValues] = {}
        for name, table in WRAPPER_TABLES.items():
            section = self.section(table, data.get(name, {}), (name,), name)
            tables[name] = section if section is not None else _blank(TABLE_TYPES[name])

        model = self.model_ref(top.get("model"), top.get("name"))
        args, dataset_config = self.sdscripts_tables(data, top.get("script"), tables)
        self.recipe_rules(top, model, tables)

        if any(not p.warning for p in self.problems):
            return None
        resolved = {
            "name": top["name"], "script": top["script"], "model": top["model"], "description": top["description"],
            **{name: _jsonable(section) for name, section in tables.items()},
            "args": args, "dataset_config": dataset_config,
        }
        assert model is not None  # a recipe without a usable model was reported above
        return Recipe(
            path=self.leaf, chain=tuple(chain), name=top["name"], script=top["script"], model=model,
            description=top["description"], args=args, dataset_config=dataset_config, _resolved=_jsonable(resolved),
            **tables,  # type: ignore[arg-type]  # each table's TABLE_TYPES class, by its name
        )

    def model_ref(self, text: str | None, own_name: str | None) -> ModelRef | None:
        if text is None:
            return None
        origin = self.file_of(("model",))
        try:
            ref = parse_model_ref(text, origin.parent)
        except ValueError as error:
            self.problem(origin, "model", str(error))
            return None
        if ref.kind == "path" and not ref.path.is_file():
            self.problem(origin, "model", f"file not found: {ref.path}")
        if ref.kind == "stage":
            if ref.stage == own_name:
                self.problem(origin, "model", f"stage:{ref.stage} is this recipe's own output")
            else:
                # the stages beside this recipe, or beside the recipe that wrote this `model`
                names = sibling_stage_names(self.leaf.parent) | sibling_stage_names(origin.parent)
                if ref.stage not in names:
                    have = ", ".join(sorted(names)) or "none"
                    self.problem(origin, "model", f"no recipe named {ref.stage!r} beside this one (have: {have})" + _suggest(ref.stage, names))
        return ref

    def sdscripts_tables(self, data: dict[str, Any], script: str | None,
                         tables: dict[str, TableValues]) -> tuple[dict[str, Any], dict[str, Any]]:
        from swimlatent_wrap.sdscripts import checks

        raw_args, raw_dataset = data.get("args", {}), data.get("dataset_config", {})
        for name, raw in (("args", raw_args), ("dataset_config", raw_dataset)):
            if not isinstance(raw, dict):
                self.problem(self.file_of((name,)), name, f"expected a table [{name}]")
        if not isinstance(raw_args, dict) or not isinstance(raw_dataset, dict) or script is None:
            return {}, {}
        manifest = load_manifest()
        dataset, captions, allowed = cast(Dataset, tables["dataset"]), cast(Captions, tables["captions"]), cast(Checks, tables["checks"])
        finetuning = dataset.metadata_file is not None
        args, issues = checks.check_args(manifest, script, raw_args)
        dataset_config, more = checks.check_dataset_config(manifest, raw_dataset, finetuning=finetuning)
        issues += more
        issues += checks.check_combination(manifest, script, args, dataset_config, finetuning=finetuning,
                                           prefix_tags=len(captions.prefix or ()),
                                           caption_files_from_tagger=dataset.source in ("danbooru", "selection"),
                                           allow_rounded_updates=bool(allowed.allow_rounded_updates))
        reported: set[tuple[str, str]] = set()
        for issue in issues:
            # one line per key: a value that is already wrong is not also reported as missing
            if (issue.table, issue.key) in reported:
                continue
            reported.add((issue.table, issue.key))
            self.problem(self.file_of((issue.table, issue.key)), f"{issue.table}.{issue.key}", issue.message)
        return args, dataset_config

    def recipe_rules(self, top: dict[str, Any], model: ModelRef | None, tables: dict[str, TableValues]) -> None:
        """The rules across tables (recipe.rules), each reported once, where its key was set."""
        script = top.get("script")
        dataset, sample = cast(Dataset, tables["dataset"]), cast(Sample, tables["sample"])
        findings = rules.name_findings(top.get("name"))
        if script is not None:
            manifest = load_manifest()
            releases = script == "sdxl_train_network" and model is not None and model.kind == "stage"
            findings += rules.sample_findings(manifest, script, sample)
            findings += rules.sweep_findings(manifest, cast(Sweep, tables["sweep"]), sample, releases=releases)
        if dataset.name is not None:  # None: [dataset] itself is missing or not a table (reported)
            danbooru_ok = not any(p.key.startswith("dataset.danbooru") for p in self.problems)
            findings += rules.dataset_findings(dataset, plan_searches=danbooru_ok)
        findings += rules.modelspec_findings(cast(Modelspec, tables["modelspec"]), cast(Captions, tables["captions"]))
        reported = {p.key for p in self.problems}
        for finding in findings:
            key = f"{finding.table}.{finding.key}" if finding.table else finding.key
            if key in reported:
                continue  # one line per key: a value already refused is not refused again
            reported.add(key)
            keypath: KeyPath = (*finding.table.split("."), finding.key) if finding.table else (finding.key,)
            self.problem(self.file_of(keypath), key, finding.message, finding.warning)


def sibling_stage_names(folder: Path) -> set[str]:
    """Names of the recipes in ``folder``: what `stage:<name>` may refer to."""
    names = set()
    for candidate in sorted(folder.glob("*.toml")):
        try:
            name = tomllib.loads(candidate.read_text(encoding="utf-8")).get("name")
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            continue
        if isinstance(name, str):
            names.add(name)
    return names


def check_recipe(path: str | Path) -> tuple[Recipe | None, list[Problem]]:
    """Load and validate; never raises for recipe problems."""
    loader = _Loader(Path(path))
    loaded = loader.read(loader.leaf, [], None)
    if loaded is None:
        return None, loader.problems
    data, chain = loaded
    recipe = loader.validate(data, chain)
    return recipe, loader.problems


def load_recipe(path: str | Path) -> Recipe:
    """The resolved, validated recipe; raises RecipeError listing every problem (warnings do not count)."""
    recipe, problems = check_recipe(path)
    if recipe is None:
        raise RecipeError([p for p in problems if not p.warning])
    return recipe
