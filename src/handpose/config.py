"""params.yaml -> a typed, validated config (pydantic); one variant's resolved config.

Every stage loads params.yaml through `load_params`, so a typo in a section fails at once naming its
key (`train.lrr: unknown key`). Loss terms are known here by name only: `load_params` accepts any
well-formed name under `loss:`, and the `configure` stage checks the names against the registry
(`configure.check_terms`: `loss.coss: unknown key`), so that no other stage depends on the terms' code.
The schema below is the one statement of every key's type, range and allowed values; rules that tie
keys together are checked in `_check_relations`.
"""

from __future__ import annotations

import os
import reprlib
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator


class ConfigError(ValueError):
    """A bad value in params.yaml or a variant config; the message names the key."""


def _number(value: Any) -> Any:
    # bool is an int in Python, so `true` would pass as 1; and `dvc exp run -S train.lr=1e-5` writes
    # `1e-05`, which a YAML 1.1 loader reads as a string.
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"expected a number, got {value!r}") from None
    return value


def _listed(value: Any) -> Any:
    return value if isinstance(value, list) else [value]


Number = Annotated[float, Field(allow_inf_nan=False), BeforeValidator(_number)]
Int = Annotated[int, Field(strict=True)]
Positive = Annotated[Number, Field(gt=0)]
PositiveInt = Annotated[Int, Field(gt=0)]
BatchSize = Annotated[Int, Field(ge=2)]  # BatchNorm needs more than one sample
Weight = Annotated[Number, Field(ge=0, le=1e6)]  # larger overflows float32 losses
# It names files, stages or modules: `.<name>.tmp.json` and DVC's stage names stay far below 255 bytes.
Name = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)]
Fraction = Annotated[Number, Field(ge=0, le=1)]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")]
VariantName = Name


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(Section):
    source: Name  # a module of handpose.data.sources: synthetic (the offline renderer) | freihand (its layout)
    n_synthetic: PositiveInt  # poses the renderer writes (synthetic only)
    synthetic_versions: Annotated[Int, Field(ge=1, le=16)]  # renderings of each pose (FreiHAND: 4)
    freihand_path: str  # FreiHAND_pub_v2.zip or the folder it unzips to (freihand only)
    freihand_url: str  # where to download the zip from when freihand_path does not exist
    freihand_sha256: Sha256 | None  # checked on download and on every run of the `data` stage
    freihand_versions: PositiveInt  # images of each pose at freihand_path (FreiHAND v2: 4; `handpose convert`: 1)
    freihand_eval_path: str  # FreiHAND_pub_v2_eval.zip or its folder (test_on: freihand_eval)
    freihand_eval_url: str
    freihand_eval_sha256: Sha256 | None
    test_on: Literal["split", "freihand_eval"]  # held-out training poses (the paper) | the evaluation set
    n_train: PositiveInt | Literal["all"]  # all: every pose the test does not use
    n_test: PositiveInt
    seed: Int
    split: Literal["random", "paper"]  # poses drawn by seed | the paper's: the first n_train, then n_test
    versions: Literal["all"] | Annotated[list[Annotated[Int, Field(ge=0)]], Field(min_length=1)]  # of each pose

    @field_validator("versions")
    @classmethod
    def _unique(cls, versions: str | list[int]) -> str | list[int]:
        if isinstance(versions, list) and len(set(versions)) != len(versions):
            raise ValueError(f"a version listed twice would train each of its images twice, got {versions}")
        return versions

    @property
    def versions_per_pose(self) -> int:
        """Images of each training pose in the dataset that `source` writes or links."""
        return self.synthetic_versions if self.source == "synthetic" else self.freihand_versions


class PretrainConfig(Section):
    n_hands: Annotated[Int, Field(ge=0)]  # 0 = no pretraining
    passes: PositiveInt  # over the hands, each at a new random roll of the camera
    roll: Annotated[Number, Field(ge=0, le=180)]  # that roll: up to +-this many degrees (0 = none)
    seed: Int  # the renderer's seed for these hands; must differ from data.seed
    batch_size: BatchSize
    lr: Positive
    average_from: Annotated[Number, Field(ge=0, le=1)]  # saved: the mean weights from this fraction of the steps


class HeatmapConfig(Section):
    # Gaussian sd in heatmap cells (the heatmap side is derived: model.heatmap_size). Below 0.25, a joint
    # between cells gets a heatmap of almost zeros: exp(-0.5 / (2 * 0.25^2)) = 0.018 at its nearest cell.
    sigma: Annotated[Number, Field(ge=0.25)]


def heatmap_side(input_size: int) -> int:
    """The side of every backbone's heatmaps: a quarter of the input's."""
    return input_size // 4


class ModelConfig(Section):
    # Beside these keys: each backbone's settings, a mapping under its name (model.hourglass), checked
    # against the backbone's own schema (handpose.model) by the stages that build it.
    model_config = ConfigDict(extra="allow")

    input_size: Annotated[Int, Field(ge=16)]  # heatmaps >= 4x4: the latent net pools them to 4x4
    backbone: Name  # a module of handpose.model: maps images to per-stack heatmaps and features
    mlp_depth: Annotated[Int, Field(ge=0)]
    mlp_width: PositiveInt
    dropout: list[Annotated[Number, Field(ge=0, lt=1)]]
    uv: Literal["soft_argmax", "argmax"]

    @property
    def heatmap_size(self) -> int:
        return heatmap_side(self.input_size)

    @property
    def backbone_settings(self) -> dict[str, Any]:
        """The settings of the chosen backbone (the mapping under its name)."""
        return (self.model_extra or {}).get(self.backbone, {})

    def with_only_its_backbone(self, settings: dict[str, Any]) -> ModelConfig:
        """This config with `settings` as its backbone's, and without the settings of backbones it does
        not use (so that changing those leaves a variant's config, and so its DVC stage, as it is)."""
        own = {k: v for k, v in self.model_dump().items() if k in type(self).model_fields}
        return ModelConfig.model_validate({**own, self.backbone: settings})


class TrainConfig(Section):
    epochs: PositiveInt
    batch_size: BatchSize
    lr: Positive
    lr_drop_at: Fraction  # of the epochs (1: never)
    # x lr for a pretrained backbone; checkpoints from before this key trained at 1
    backbone_lr_factor: Annotated[Number, Field(ge=0)] = 1.0
    seed: Annotated[list[Int], Field(min_length=1), BeforeValidator(_listed)]  # one model per seed
    channels_last: bool
    bf16: Literal["auto"] | bool  # auto: where the device computes in bf16 natively (device.uses_bf16)
    device: Literal["auto", "cpu", "cuda"]
    threads: Annotated[Int, Field(ge=0)]  # CPU threads; 0 = torch's default (all cores)
    nproc: PositiveInt  # training processes on this node, under torchrun (DistributedDataParallel)

    @field_validator("seed")
    @classmethod
    def _distinct(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"a list of seeds must be without repeats, got {seeds}")
        return seeds


class EvalSetConfig(Section):
    """One extra test set (`eval_sets:`), tested with every variant beside the test split."""

    path: str  # a folder in FreiHAND's layout, as `handpose convert` writes it
    hand: Literal["right", "left"] | None = None  # every image's; unset: the set's training_hand.json, else right


class EvaluateConfig(Section):
    """How the `evaluate` stage sees each test image: through every (roll, zoom) of the camera, the 3D
    joints averaged (inference.infer). The default is the image alone, as the paper."""

    rolls: Annotated[list[Annotated[Number, Field(ge=-180, le=180)]], Field(min_length=1)] = [0.0]  # degrees
    zooms: Annotated[list[Annotated[Number, Field(ge=0.25, le=4)]], Field(min_length=1)] = [1.0]

    @property
    def views(self) -> list[tuple[float, float]]:
        return [(roll, zoom) for roll in self.rolls for zoom in self.zooms]


class Params(Section):
    """params.yaml, whole. Loss terms are by name here (`loss:` their weights, `variants:` which each
    variant uses); handpose.losses registers them and `configure` checks these names against it.
    Beside the sections below, a loss term with settings of its own has a section of its name (`asm:`)."""

    model_config = ConfigDict(extra="allow")

    data: DataConfig
    pretrain: PretrainConfig
    heatmap: HeatmapConfig
    model: ModelConfig
    train: TrainConfig
    loss: dict[Name, Weight]  # the weight of each term whenever a variant uses it
    variants: Annotated[dict[VariantName, Annotated[list[Name], Field(min_length=1)]], Field(min_length=1)]
    variant_train: dict[str, dict[str, Any]]  # per-variant changes to `train:`, checked in _check_relations
    eval_sets: dict[Name, EvalSetConfig] = {}  # name: the set; each variant is also tested on each
    evaluate: EvaluateConfig = EvaluateConfig()

    def train_of(self, variant: str) -> TrainConfig:
        """`train:` with the variant's own changes from `variant_train:`."""
        overrides = self.variant_train.get(variant, {})
        try:
            return TrainConfig.model_validate({**self.train.model_dump(), **overrides})
        except ValidationError as err:
            raise ConfigError(describe(err, prefix=f"variant_train.{variant}", model=TrainConfig)) from None

    @property
    def sections(self) -> dict[str, Any]:
        """The sections beside the schema's own: the settings of loss terms (checked by `configure`)."""
        return dict(self.model_extra or {})


class VariantConfig(Section):
    """Everything training and evaluation need for one variant (configs/<variant>.json), written by
    the `configure` stage."""

    variant: VariantName
    # The variant's own terms and their weights. `configure` builds them in TERMS order but writes the
    # JSON with sort_keys=True, so as read back they are in alphabetical order, and that is the order in
    # which `step.train_step` sums the weighted terms (it computes the terms themselves in TERMS order).
    losses: dict[Name, float]
    term_settings: dict[Name, dict[str, Any]] = {}  # the own settings of those of its terms that have any
    model: ModelConfig
    train: TrainConfig


def describe(err: ValidationError, prefix: str = "", model: type[BaseModel] = Params) -> str:
    """pydantic's first error as `key.path[i]: what is wrong`."""
    errors = err.errors()
    # A union (e.g. `all` or a list) reports one error per member: keep the one that got furthest.
    first = max((e for e in errors if e["loc"][:2] == errors[0]["loc"][:2]), key=lambda e: len(e["loc"]))
    key = prefix
    for part in first["loc"]:
        if isinstance(part, int):
            key += f"[{part}]"
        elif part == "[key]":  # the mapping's key itself is bad, e.g. a variant name
            return f"{key}: not a valid name (letters, digits and _ only, at most 64; it names files and stages)"
        elif not part.startswith(("function-", "list[", "literal[", "int", "float")):  # wrappers, not keys
            key += f".{part}" if key else part
    if first["type"] == "extra_forbidden":
        known = _known_keys(model, first["loc"][:-1])
        return f"{key}: unknown key" + (f" (known: {', '.join(known)})" if known else "")
    if first["type"] == "missing":
        return f"{key}: missing"
    message = first["msg"].removeprefix("Value error, ")
    return f"{key}: {message}, got {_short(first['input'])}" if "got" not in message else f"{key}: {message}"


def _short(value: Any) -> str:
    """A bounded repr: a value built of YAML aliases can be gigabytes long when written out in full."""
    short = reprlib.Repr()  # Python 3.11's takes no arguments
    short.maxlevel, short.maxlist, short.maxdict, short.maxstring, short.maxother = 3, 6, 6, 60, 60
    return short.repr(value)


def _known_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    for part in loc:
        annotation = model.model_fields[part].annotation if part in model.model_fields else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _physical_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


RESERVED_BYTES = 2 << 30  # the interpreter, torch, the model and its batches (~1 GB at the paper's size)
LABEL_BYTES = 21 * 3 * 4 + 9 * 4  # a hand's xyz (21 joints) and K, float32


def memory_needed(params: Params) -> dict[str, tuple[int, int]]:
    """key: (its value, the bytes of the in-memory arrays it sizes). The split and the heatmaps are
    memory-mapped files (pages the kernel can drop), so they are bounded by disk, not memory; the
    renderer's labels and the pretraining hands are in memory. Measured against the stages' real
    allocations by tests/test_bad_inputs.py."""
    side = params.model.input_size
    data, n_hands = params.data, params.pretrain.n_hands
    # The data stage holds each pose's labels as arrays, then as Python lists and their JSON text at
    # once: ~5 kB a pose (4.4 kB measured); each further version adds its visibility row.
    per_pose = 6000 + 600 * data.synthetic_versions
    return {
        "data.n_synthetic": (data.n_synthetic, data.n_synthetic * per_pose),
        "pretrain.n_hands": (n_hands, n_hands * (side * side * 3 + LABEL_BYTES)),  # uint8 RGB and labels
    }


def _check_memory(params: Params) -> None:
    """Refuse a request whose largest in-memory arrays would not fit this machine, naming the key that
    sizes them, instead of failing with a MemoryError (or swapping) halfway through a stage."""
    key, (value, size) = max(memory_needed(params).items(), key=lambda item: item[1][1])
    if size + RESERVED_BYTES > _physical_memory():
        raise ConfigError(
            f"{key}: {value} would need {size / 1e9:.1f} GB of memory, and the rest of the stage "
            f"{RESERVED_BYTES / 1e9:.0f} GB; this machine has {_physical_memory() / 1e9:.1f} GB"
        )


PACKAGE = Path(__file__).parent


def _modules(folder: str) -> list[str]:
    """The modules of one of the package's folders (looked up as files: no stage runs their code here)."""
    return sorted(p.stem for p in (PACKAGE / folder).glob("*.py") if not p.stem.startswith("_"))


def _check_relations(params: Params) -> None:
    for key, folder, name in (
        ("data.source", "data/sources", params.data.source),
        ("model.backbone", "model", params.model.backbone),
    ):
        if name not in _modules(folder):
            raise ConfigError(
                f"{key}: no module {name!r} in src/handpose/{folder}/ (known: {', '.join(_modules(folder))})"
            )
    for key, value in [*params.sections.items(), *(params.model.model_extra or {}).items()]:
        where = key if key in params.sections else f"model.{key}"
        if not isinstance(value, dict):  # a section of settings, or a typo of a scalar key
            known = ", ".join(Params.model_fields if where == key else ModelConfig.model_fields)
            raise ConfigError(f"{where}: unknown key (known: {known})")
    if params.model.backbone not in (params.model.model_extra or {}):
        raise ConfigError(
            f"model.{params.model.backbone}: missing (the settings of model.backbone {params.model.backbone!r})"
        )
    data = params.data
    test_poses = data.n_test if data.test_on == "split" else 0  # the evaluation set has poses of its own
    if data.source == "synthetic" and data.n_train != "all" and data.n_train + test_poses > data.n_synthetic:
        raise ConfigError(
            f"data.n_train{' + data.n_test' if test_poses else ''} = {data.n_train + test_poses}: more than the "
            f"data.n_synthetic = {data.n_synthetic} poses generated"
        )
    if data.source == "synthetic" and data.n_train == "all" and test_poses >= data.n_synthetic:
        raise ConfigError(f"data.n_test = {data.n_test} leaves none of the {data.n_synthetic} poses to train on")
    if data.source == "synthetic" and params.pretrain.n_hands and params.pretrain.seed == data.seed:
        raise ConfigError(
            f"pretrain.seed: must differ from data.seed ({data.seed}), or the pretraining hands would be "
            "the dataset's own, test hands included"
        )
    if params.pretrain.n_hands and params.pretrain.n_hands < params.pretrain.batch_size:
        raise ConfigError(
            f"pretrain.n_hands: {params.pretrain.n_hands} hands make no batch of pretrain.batch_size = "
            f"{params.pretrain.batch_size} (0 means no pretraining)"
        )
    # Within the map: 2 sds either side of a centred joint fit in it (its edge is then below e^-2 of
    # the peak), so a target has a peak to find; sigma 1e6 would make every heatmap 1.0.
    widest = params.model.heatmap_size / 4
    if params.heatmap.sigma > widest:
        raise ConfigError(
            f"heatmap.sigma: {params.heatmap.sigma} cells is too wide for {params.model.heatmap_size}x"
            f"{params.model.heatmap_size} heatmaps (model.input_size / 4); at most {widest:.3g}"
        )
    if params.model.input_size % 4:
        raise ConfigError(
            f"model.input_size: must be a multiple of 4 (heatmaps are a quarter of it), got {params.model.input_size}"
        )
    _check_memory(params)
    for variant in params.variant_train:
        if variant not in params.variants:
            raise ConfigError(f"variant_train.{variant}: no such variant (known: {', '.join(params.variants)})")
        params.train_of(variant)
    for variant in params.variants:
        train = params.train_of(variant)
        if train.batch_size % train.nproc:
            raise ConfigError(
                f"train.nproc: {train.nproc} processes cannot share {variant}'s batch of {train.batch_size} "
                "(train.batch_size is the global batch; it must be a multiple of train.nproc)"
            )


def validate(raw: Any) -> Params:
    """A params mapping (as read from params.yaml) -> Params, or ConfigError naming the key."""
    if not isinstance(raw, dict):
        raise ConfigError("params.yaml: expected a mapping of sections")
    try:
        params = Params.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(describe(err)) from None
    _check_relations(params)
    return params


MAX_PARAMS_BYTES = 1 << 20  # params.yaml is a few kB; a variant config under one
MAX_YAML_NODES = 100_000  # values after aliases are expanded (params.yaml has ~150)


class _StrictLoader(yaml.SafeLoader):
    """YAML that means one thing: a key given twice (or a second `train:` section) is an error, not
    "the last one wins"."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    problem=f"duplicate key {key!r} (first at line {seen[key] + 1})", problem_mark=key_node.start_mark
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """The number of values `node` stands for once its aliases are expanded (each shared node counted
    once per use, computed once: an alias bomb is measured without being expanded). A value that holds
    itself (`&a [*a]`) has no size: a YAML error at its line."""
    if sizes.get(id(node)) == -1:
        raise yaml.composer.ComposerError(problem="a value holds itself through an alias", problem_mark=node.start_mark)
    if id(node) not in sizes:
        sizes[id(node)] = -1  # in progress
        children = node.value if isinstance(node.value, list) else []
        flat = [n for child in children for n in (child if isinstance(child, tuple) else (child,))]
        sizes[id(node)] = 1 + sum(_expanded_size(child, sizes) for child in flat)
    return sizes[id(node)]


def read_yaml(path: Path) -> Any:
    """A YAML file, refused naming it when it is too large, holds a duplicate key, or expands (through
    aliases) to more than MAX_YAML_NODES values."""
    if path.stat().st_size > MAX_PARAMS_BYTES:
        raise ConfigError(f"{path}: {path.stat().st_size:,} bytes; a params file is at most {MAX_PARAMS_BYTES:,}")
    loader = None
    try:
        loader = _StrictLoader(path.read_bytes())  # bytes: the reader detects the encoding and refuses a bad one
        node = loader.get_single_node()
        if node is not None and (size := _expanded_size(node, {})) > MAX_YAML_NODES:
            raise ConfigError(f"{path}: expands to {size:,} values through its aliases (at most {MAX_YAML_NODES:,})")
        return None if node is None else loader.construct_document(node)
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        raise ConfigError(f"{path}: not valid YAML{at}: {getattr(err, 'problem', None) or err}") from None
    except RecursionError:  # PyYAML composes and constructs recursively
        raise ConfigError(f"{path}: not valid params: nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    return validate(read_yaml(path))


def read_variant_config(path: str | Path) -> VariantConfig:
    """Read a configs/<variant>.json written by the `configure` stage."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: variant config not found (run the `configure` stage)")
    if path.stat().st_size > MAX_PARAMS_BYTES:
        raise ConfigError(f"{path}: {path.stat().st_size:,} bytes; a variant config is at most {MAX_PARAMS_BYTES:,}")
    try:
        return VariantConfig.model_validate_json(path.read_bytes())
    except ValidationError as err:
        raise ConfigError(f"{path}: " + describe(err, model=VariantConfig)) from None
