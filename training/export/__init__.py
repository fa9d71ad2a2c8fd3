"""Export trained weights for both runtimes and write the metadata the app reads.

    python -m training.export --weights training/runs/portrait_bisenetv2/best.pdparams \
        --out models/portrait_bisenetv2 --input-size 256 \
        --calibration-list ../shared/data/portrait/train.txt

Writes ``model.json`` + ``model.pdiparams`` (``paddle.jit.save``, output = person
probability), ``model.onnx`` (``paddle2onnx``, its resizes given fixed scales: see
``training.export.resize_scales``; its channel-multiplying depthwise convs made plain depthwise
convs: see ``training.export.depthwise_repeat``) and ``meta.json``, then checks that
Paddle Inference and ONNX Runtime agree on the exported files. With a calibration
list it also writes ``model.int8.onnx`` (see ``training.export.quantize``), which ONNX
Runtime uses on the CPU.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 2))

import argparse
import contextlib
import logging
import tempfile
from pathlib import Path

import numpy as np

from bgswap.inference.model_meta import INT8_FILE, ONNX_FILE, PADDLE_FILES, ModelMeta
from training.export.depthwise_repeat import rewrite_depthwise
from training.export.mirror_onnx import add_mirror_average
from training.export.quantize import quantize_int8
from training.export.resize_scales import fix_resize_scales

log = logging.getLogger("training.export")


def export(weights: str | Path | None, out_dir: str | Path, input_size: int = 256, version: str = "0",
           extra: dict | None = None, opset: int = 13, edge_head: bool = False, half_res: bool = True,
           mirror_average: bool = False, frame_aspect: bool = False,
           shape_rule: tuple[float, int] | None = None) -> Path:
    """Export ``weights`` (a ``.pdparams`` or training ``.pdckpt``; None = random init) to ``out_dir``.

    Weights that hold an ``edge_head.*`` part are exported with it; ``edge_head`` (and ``half_res``)
    ask for one in a random network. ``mirror_average`` exports the mean of the network's output
    and its output for the mirrored input (``training.model.MirrorAveraged``), flagged in ``meta.json``.
    ``frame_aspect`` marks weights trained on inputs shaped like the frame (a config's ``aspects``): the
    runtime then feeds each frame so (``ModelMeta.input_shape``), with ``shape_rule``'s short-side floor and
    step when given (a config's ``short_side_floor`` and ``short_side_step``). Weights of PP-HumanSegV2-Lite's
    network (``training.mobileseg``) are exported as that network, and ``meta.json`` names it.
    """
    import paddle
    import paddle2onnx

    from training.model import (MirrorAveraged, PersonProbability, build_model, edge_head_in, lambd_of, load_weights,
                                network_of_state)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paddle.seed(0)
    state, lambd = None, 0.25
    network = "bisenetv2"
    if weights is not None:
        state = load_weights(weights)
        network = network_of_state(state)
    if network == "mobileseg":
        from training.mobileseg import build_mobileseg, exportable

        model = exportable(build_mobileseg())
        model.set_state_dict(state)
        log.info("loaded %s (PP-HumanSegV2-Lite's network)", weights)
    else:
        if state is not None:
            edge_head, half_res = edge_head_in(state)
            lambd = lambd_of(state)
        with paddle.utils.unique_name.guard():   # layer names as in a fresh process: tools/weights_from_export.py
            model = build_model(edge_head=edge_head, half_res=half_res, lambd=lambd)
        if state is not None:
            model.set_state_dict(state)
            log.info("loaded %s (semantic width %g, edge head: %s)", weights, lambd,
                     ("to 1/2" if half_res else "to 1/4") if edge_head else "none")
    net = PersonProbability(model)
    net.eval()
    spec = [paddle.static.InputSpec([None, 3, None, None], "float32", ModelMeta.input_name)]
    out_dir = out_dir.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        plain = _jit_save(net, Path(tmp) / "plain", spec)
        with contextlib.chdir(tmp):          # paddle2onnx leaves temp files in cwd
            paddle2onnx.export(*(str(p) for p in plain), save_file=str(out_dir / ONNX_FILE),
                               opset_version=opset, enable_onnx_checker=True)
        shipped = _jit_save(MirrorAveraged(net), Path(tmp) / "mirror", spec) if mirror_average else plain
        for path, name in zip(shipped, PADDLE_FILES):
            os.replace(path, out_dir / name)
    fix_resize_scales(out_dir / ONNX_FILE)
    rewrite_depthwise(out_dir / ONNX_FILE)
    if mirror_average:
        add_mirror_average(out_dir / ONNX_FILE)
    meta = ModelMeta(name=f"portrait_{network}", version=version, input_size=(input_size, input_size),
                     mirror_averaged=mirror_average, frame_aspect=frame_aspect, network=network, extra=extra or {})
    if network == "mobileseg":
        meta.derives_from = "PP-HumanSegV2-Lite (PaddleSeg, Apache-2.0)"
    if shape_rule is not None:
        meta.short_side_floor, meta.short_side_step = float(shape_rule[0]), int(shape_rule[1])
    meta.save(out_dir)
    write_lineage(out_dir, network)
    (out_dir / INT8_FILE).unlink(missing_ok=True)   # an int8 file of earlier weights must not linger
    log.info("exported to %s", out_dir)
    return out_dir


LINEAGE = Path(__file__).resolve().parent / "lineage"


def write_lineage(out_dir: Path, network: str) -> None:
    """A model that derives from released weights ships their licence and a NOTICE beside its files
    (PP-HumanSegV2-Lite, Apache-2.0); one trained here from nothing ships neither."""
    for name in ("LICENSE", "NOTICE"):
        (out_dir / name).unlink(missing_ok=True)
    if network == "mobileseg":
        (out_dir / "LICENSE").write_text((LINEAGE / "LICENSE-Apache-2.0").read_text())
        (out_dir / "NOTICE").write_text((LINEAGE / "NOTICE-mobileseg").read_text())


def _jit_save(net, prefix: Path, spec) -> tuple[Path, Path]:
    """``paddle.jit.save`` ``net``; returns its ``model.json`` and ``model.pdiparams`` paths."""
    import paddle

    paddle.jit.save(net, str(prefix), input_spec=spec)
    files = (prefix.with_suffix(".json"), prefix.with_suffix(".pdiparams"))
    if not files[0].is_file():
        raise RuntimeError(f"paddle.jit.save wrote {sorted(p.name for p in prefix.parent.iterdir())}, "
                           "expected a .json program (Paddle 3 PIR)")
    return files


def parity(model_dir: str | Path, frames: list[np.ndarray] | None = None) -> float:
    """Largest absolute difference between Paddle Inference and ONNX Runtime probabilities."""
    from bgswap.inference import Segmenter

    if frames is None:
        rng = np.random.default_rng(0)
        frames = [rng.integers(0, 256, hw + (3,), dtype=np.uint8) for hw in ((480, 640), (720, 1280), (640, 480))]
    a = Segmenter(model_dir, backend="onnxruntime", compute="cpu", precision="fp32")
    b = Segmenter(model_dir, backend="paddle", compute="cpu")
    return max(float(np.abs(a.predict_lowres(f) - b.predict_lowres(f)).max()) for f in frames)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m training.export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", help="best.pdparams or last.pdckpt from training (omit with --random)")
    ap.add_argument("--random", action="store_true", help="export an untrained network (for wiring tests)")
    ap.add_argument("--out", default="models/portrait_bisenetv2")
    ap.add_argument("--input-size", type=int, default=256)
    ap.add_argument("--version", default="0")
    ap.add_argument("--mirror-average", action="store_true",
                    help="export the mean of the network on the frame and on its mirror image (two passes in one call)")
    ap.add_argument("--frame-aspect", action="store_true",
                    help="the weights were trained on inputs shaped like the frame (a config's aspects): feed them so")
    ap.add_argument("--short-side-floor", type=float, default=None,
                    help="with --frame-aspect: the short side is at least this share of the long (a config's "
                         "short_side_floor; default 0.75)")
    ap.add_argument("--short-side-step", type=int, default=None,
                    help="with --frame-aspect: the short side is a multiple of this (a config's short_side_step; "
                         "default 32)")
    ap.add_argument("--skip-parity", action="store_true")
    ap.add_argument("--calibration-list", help="file list of real photos: also write the int8 ONNX model")
    ap.add_argument("--calibration-images", type=int, default=64)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if not args.random and not args.weights:
        ap.error("give --weights FILE, or --random for an untrained network")
    if args.weights and not Path(args.weights).is_file():
        ap.error(f"weights file {args.weights} not found")
    if args.calibration_list and not Path(args.calibration_list).is_file():
        ap.error(f"calibration list {args.calibration_list} not found")
    shape_rule = None
    if args.short_side_floor is not None or args.short_side_step is not None:
        shape_rule = (0.75 if args.short_side_floor is None else args.short_side_floor,
                      32 if args.short_side_step is None else args.short_side_step)
    out = export(None if args.random else args.weights, args.out, args.input_size, args.version,
                 mirror_average=args.mirror_average, frame_aspect=args.frame_aspect, shape_rule=shape_rule)
    if not args.skip_parity:
        diff = parity(out)
        log.info("parity Paddle vs ONNX Runtime: max |diff| = %.2e", diff)
        if diff > 1e-3:
            raise SystemExit(f"Paddle and ONNX outputs differ by {diff:.2e}: export is broken")
    if args.calibration_list:
        quantize_int8(out, args.calibration_list, images=args.calibration_images)
    else:
        log.info("no --calibration-list: no int8 model, ONNX Runtime will run fp32")
