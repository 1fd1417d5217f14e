"""`handpose <stage>`: the pipeline's stages (see dvc.yaml) and a few tools.

Argument parsing only: each command imports its stage's module and calls one function, so a stage
loads only the code it runs (tests/test_dvc_deps.py checks dvc.yaml's deps against these imports).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from handpose.atomic import DISK_FULL

PARAMS_HELP = "the pipeline's params.yaml (default: %(default)s)"


def cmd_configure(args: argparse.Namespace) -> None:
    from handpose.config import load_params
    from handpose.configure import configure

    for path in configure(load_params(args.params), args.out):
        print(f"wrote {path}")


def cmd_data(args: argparse.Namespace) -> None:
    from handpose.config import load_params
    from handpose.data.sources import prepare

    prepare(load_params(args.params).data, args.out, progress=not args.quiet)


def cmd_convert(args: argparse.Namespace) -> None:
    from handpose.data.convert import convert

    n = convert(args.images, args.labels, args.out, progress=not args.quiet)
    print(f"wrote {args.out}: {n} images in the FreiHAND v2 layout (read it with data.source: freihand)")


def cmd_split(args: argparse.Namespace) -> None:
    from handpose.config import load_params
    from handpose.data.split import write_split

    params = load_params(args.params)
    write_split(args.dataset, args.out, params.data, params.model.input_size, progress=not args.quiet)


def cmd_eval_set(args: argparse.Namespace) -> None:
    from handpose.config import ConfigError, load_params
    from handpose.data.split import write_eval_set

    params = load_params(args.params)
    if args.name not in params.eval_sets:
        known = ", ".join(params.eval_sets) or "none"
        raise ConfigError(f"eval_sets.{args.name}: no such set in {args.params} (known: {known})")
    write_eval_set(args.name, params.eval_sets[args.name], args.out, params.model.input_size, progress=not args.quiet)


def cmd_heatmaps(args: argparse.Namespace) -> None:
    from handpose.config import load_params
    from handpose.data.split import load_split
    from handpose.heatmap_targets import write_heatmaps

    params = load_params(args.params)
    split = load_split(args.split, "train")
    write_heatmaps(split, args.out, params.model.heatmap_size, params.heatmap.sigma, progress=not args.quiet)


def cmd_train(args: argparse.Namespace) -> None:
    from handpose.config import read_variant_config
    from handpose.distributed import relaunch_under_torchrun
    from handpose.train import train_variant

    config = read_variant_config(args.config)
    relaunch_under_torchrun(config.train.nproc)  # train.nproc > 1: this command again, in N processes
    train_variant(
        config,
        args.split,
        args.heatmaps,
        args.models,
        args.live,
        args.timings,
        resume=args.resume,
        progress=not args.quiet,
        pretrained=args.pretrained,
    )


def cmd_pretrain(args: argparse.Namespace) -> None:
    from handpose.config import load_params
    from handpose.pretrain import pretrain

    pretrain(load_params(args.params), args.out, args.live, args.timings, progress=not args.quiet)


def cmd_evaluate(args: argparse.Namespace) -> None:
    from handpose.config import load_params
    from handpose.evaluate import evaluate

    dataset = None if args.dataset == "none" else args.dataset
    views = load_params(args.params).evaluate.views
    evaluate(args.models, args.split, dataset, args.metrics, args.predictions, args.timings, views)


def cmd_report(args: argparse.Namespace) -> None:
    from handpose.config import load_params
    from handpose.report import report

    params = load_params(args.params)
    report(
        list(params.variants), args.predictions, args.logs, args.split, args.dataset, args.summary, args.markdown,
        args.figures, args.comparison, tuple(params.eval_sets), args.sets_metrics, args.metrics,
    )  # fmt: skip


def cmd_download(args: argparse.Namespace) -> None:
    from handpose.data.download import download

    print(f"wrote {download(args.url, args.out, args.size, args.sha256, progress=not args.quiet)}")


def cmd_contact_sheet(args: argparse.Namespace) -> None:
    from handpose.data.contact_sheet import write_contact_sheet

    write_contact_sheet(args.dataset, args.out, n=args.n, cols=args.cols, seed=args.seed, beside=args.beside)
    print(f"wrote {args.out}")


def cmd_plots_template(args: argparse.Namespace) -> None:
    from handpose.plots_template import write_offline_template

    print(f"wrote {write_offline_template(args.out)}")


def cmd_predict(args: argparse.Namespace) -> None:
    from handpose.config import load_params
    from handpose.predict import predict_images

    lengths = {key: value for key in ("root_depth", "scale") if (value := getattr(args, key)) is not None}
    predict_images(
        args.model, args.images, args.models_dir, args.K, out=args.out, overlay_dir=args.overlay_dir,
        hand=args.hand, box=args.box, views=load_params(args.params).evaluate.views, **lengths,
    )  # fmt: skip


def arg(*flags: str, **settings: Any) -> tuple[tuple[str, ...], dict[str, Any]]:
    """One argument of a command, as `add_argument` takes it; a default is shown in its help."""
    if settings.get("default") is not None and "%(default)s" not in settings.get("help", ""):
        settings["help"] = f"{settings.get('help', '')} (default: %(default)s)".lstrip()
    return flags, settings


@dataclass(frozen=True)
class Command:
    run: Callable[[argparse.Namespace], None]
    help: str
    args: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = ()
    params: bool = True  # takes --params (params.yaml)


SPLIT = arg("--split", default="data/split", help="the split folder")
LIVE = "dvclive folder of "  # `--live`, not `--log`: torchrun, which parses train's line too, has --log-dir

# The pipeline's stages (dvc.yaml), then the tools beside it.
COMMANDS: dict[str, Command] = {
    "configure": Command(cmd_configure, "validate params.yaml and write one resolved config per variant", (
        arg("--out", default="configs", help="folder for <variant>.json"),
    )),
    "data": Command(cmd_data, "write the dataset data.source names, in FreiHAND v2's layout (render or fetch it)", (
        arg("--out", default="data/dataset", help="dataset folder"),
    )),
    "split": Command(cmd_split, "choose the train/test poses and decode their images into arrays", (
        arg("--dataset", default="data/dataset", help="a FreiHAND-layout folder"),
        arg("--out", default="data/split", help="folder for train.npz and test.npz"),
    )),
    "eval-set": Command(cmd_eval_set, "decode an extra test set (eval_sets: in params.yaml), left hands mirrored", (
        arg("--name", required=True, help="the set's name under eval_sets:"),
        arg("--out", required=True, help="folder for its test.npz, e.g. data/eval_sets/<name>"),
    )),
    "heatmaps": Command(cmd_heatmaps, "Gaussian heatmap targets for the training split", (
        SPLIT,
        arg("--out", default="data/heatmaps", help="folder for train.npy"),
    )),
    "pretrain": Command(cmd_pretrain, "pretrain the hourglass on L_hm over freshly rendered hands (pretrain:)", (
        arg("--out", default="models/pretrain.pt", help="hourglass weights to write"),
        arg("--live", default="plots/pretrain", help=LIVE + "the held-out 2D error"),
        arg("--timings", default="timings/pretrain.json", help="JSON of wall time (not a result)"),
    )),
    "train": Command(cmd_train, "train one variant from its resolved config", params=False, args=(
        arg("--config", required=True, help="configs/<variant>.json from `handpose configure`"),
        SPLIT,
        arg("--heatmaps", default="data/heatmaps", help="the heatmaps folder"),
        arg("--models", required=True, help="folder for seed<k>.pt checkpoints, e.g. models/<variant>"),
        arg("--live", required=True, help=LIVE + "the curves (per epoch, per seed), e.g. plots/train/<variant>"),
        arg("--timings", required=True, help="JSON of wall times (not a result), e.g. timings/train/<variant>.json"),
        arg("--resume", action="store_true", help="continue each seed from its checkpoint if that came from the "
            "same config, data and code (a killed run); otherwise start over"),
        arg("--pretrained", help="start the hourglass from these weights (models/pretrain.pt)"),
    )),
    "evaluate": Command(cmd_evaluate, "score one trained variant on the test split (each image seen as "
                        "evaluate: says)", args=(
        arg("--models", required=True, help="a folder of seed<k>.pt written by `handpose train`"),
        SPLIT,
        arg("--metrics", required=True, help="JSON metrics to write, e.g. metrics/<variant>.json"),
        arg("--predictions", required=True, help="per-sample predictions (.npz) to write"),
        arg("--timings", required=True, help="JSON of inference time (not a result), e.g. "
            "timings/evaluate/<variant>.json"),
        arg("--dataset", default="data/dataset", help="for per-joint visibility (default: %(default)s); none: "
            "--split is an extra test set (eval-set)"),
    )),
    "report": Command(cmd_report, "compare all variants with each other (paired statistics) and the paper's "
                      "Table 1; draw the figures", (
        arg("--predictions", default="predictions", help="folder of <variant>.npz"),
        arg("--logs", default="plots/train", help="folder of each variant's dvclive folder"),
        arg("--dataset", default="data/dataset", help="for the example images"),
        SPLIT,
        arg("--summary", default="metrics/summary.json"),
        arg("--markdown", default="metrics/summary.md"),
        arg("--comparison", default="metrics/comparison.json", help="the paired differences"),
        arg("--figures", default="plots/report", help="folder for the figures and chart tables"),
        arg("--metrics", default="metrics", help="each variant's <variant>.json, as `evaluate` wrote it"),
        arg("--sets-metrics", default="metrics/sets", help="extra test sets' <set>/<variant>.json"),
    )),
    "download": Command(cmd_download, "fetch a dataset archive (e.g. FreiHAND_pub_v2.zip): resumes an "
                        "interrupted transfer, checks size/SHA-256", params=False, args=(
        arg("url", help="http(s) address of the file"),
        arg("--out", required=True, help="where to write it, e.g. data/raw/FreiHAND_pub_v2.zip"),
        arg("--size", type=int, help="expected size in bytes (checked; also tells a finished file)"),
        arg("--sha256", help="expected SHA-256 (checked)"),
    )),
    "contact-sheet": Command(cmd_contact_sheet, "draw dataset samples with their skeletons into one image",
                             params=False, args=(
        arg("--dataset", default="data/dataset", help="a FreiHAND-layout folder"),
        arg("--out", default="docs/contact_sheet.jpg", help="image to write"),
        arg("--n", type=int, default=16, help="samples"),
        arg("--cols", type=int, default=4, help="samples per row"),
        arg("--seed", type=int, default=0, help="which samples"),
        arg("--beside", help="another FreiHAND-layout folder, drawn to the left (e.g. an older renderer's)"),
    )),
    "convert": Command(cmd_convert, "convert a folder of your images and a labels JSON into FreiHAND v2's layout "
                       "(docs/data.md)", params=False, args=(
        arg("--images", required=True, help="the folder holding the images the labels name"),
        arg("--labels", required=True, help='JSON list, one entry per image: {"image": file, "xyz": 21x3 metres, '
            '"K": 3x3, "scale": optional, "hand": "right" (default) or "left"}'),
        arg("--out", required=True, help="the layout folder to write, e.g. data/raw/mydata"),
    )),
    "plots-template": Command(cmd_plots_template, "write the offline HTML page for `dvc plots show`", params=False,
                              args=(arg("--out", default=".dvc/plots/offline.html", help="(see .dvc/config)"),)),
    "predict": Command(cmd_predict, "run a trained model on your own images (seen through params.yaml's "
                       "evaluate views)", args=(
        arg("images", nargs="+", help="image files (any size: the hand is found, then framed as in training)"),
        arg("--model", required=True, help="a variant name (its first seed's model) or a checkpoint (.pt)"),
        arg("--models-dir", default="models", help="where variants' models live"),
        arg("--K", nargs=4, type=float, metavar=("FX", "FY", "CX", "CY"),
            help="camera intrinsics in the image's pixels (default: a FreiHAND-like camera)"),
        arg("--root-depth", type=float, help="wrist depth in metres (default: FreiHAND-like, predict.py)"),
        arg("--scale", type=float, help="hand scale: middle MCP-PIP length in metres (default: FreiHAND-like, "
            "predict.py)"),
        arg("--hand", default="right", help="right or left: a left hand is mirrored in and out"),
        arg("--box", metavar="X,Y,W,H", help="the hand's box in pixels: skips the first pass that finds it "
            "(default: found)"),
        arg("--out", help="write the JSON here instead of printing it"),
        arg("--overlay-dir", help="write <image>_pose.png overlays here"),
    )),
}  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """`handpose`'s parser: a subcommand per entry of COMMANDS, each with -q and, if it reads params, --params."""
    parser = argparse.ArgumentParser(
        prog="handpose",
        description="3D hand pose pipeline: the stages of dvc.yaml (run them with `dvc repro`), then tools.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="STAGE")
    for name, command in COMMANDS.items():
        p = sub.add_parser(name, help=command.help, description=command.help)
        p.set_defaults(func=command.run)
        if command.params:
            p.add_argument("--params", default="params.yaml", help=PARAMS_HELP)
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
        for flags, settings in command.args:
            p.add_argument(*flags, **settings)
    return parser


MAX_MESSAGE = 600  # characters: a refusal is one line a person reads


def refusal(err: BaseException) -> str:
    """One line for a refused input or a resource that ran out: what went wrong, naming the file or key."""
    if isinstance(err, MemoryError):
        text = "out of memory; lower the sizes in params.yaml (data.n_synthetic, pretrain.n_hands, train.batch_size)"
    elif isinstance(err, OSError) and err.errno is not None:  # the system's: name the file
        text = f"{err.filename}: {err.strerror}" if err.filename else f"{err.strerror or err}"
        if err.errno in DISK_FULL:
            text += "; nothing was kept (free some space, then rerun)"
    else:
        text = str(err) or type(err).__name__
    text = " ".join(text.splitlines())  # one line, whatever the message held
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    # Bad input (ConfigError, FreiHANDError, ...), a full disk, a missing file: one line, exit 2.
    except (ValueError, OSError, MemoryError) as err:
        print(f"handpose {args.command}: error: {refusal(err)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
