"""Turn an exported model (``model.json`` + ``model.pdiparams``) back into training weights.

    python tools/weights_from_export.py --model-dir models/portrait_bisenetv2 \
        --out training/runs/v3.0_edge.pdparams

(v2.0, where the v3 fine-tune starts, is in git: ``git archive abf3efb models/portrait_bisenetv2``,
see the README's Model section.)

Training runs live outside git, so a fresh clone may have only the shipped files. Those hold
every weight the export wrapper uses (the network, its main head and any edge head; not the four
auxiliary heads, which only training uses, and which are left as a new network builds them),
named after the layers as built. ``training.export`` builds its network under a fresh
``unique_name`` scope, so those names are the same in every process, and this builds one the
same way to read them back.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 2))

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

log = logging.getLogger("weights_from_export")


def _saved_params(prefix: str | Path) -> dict[str, np.ndarray]:
    """The saved parameters by the names their layers had when the model was built."""
    import paddle

    # loaded tensors are named after the program's parameters plus "_<n>", n counting the loads
    return {t.name.rsplit("_", 1)[0]: t.numpy() for t in paddle.jit.load(str(prefix)).state_dict().values()}


def weights_from_export(model_dir: str | Path) -> dict:
    """The dynamic-graph state (``build_model`` names) of the model exported to ``model_dir``:
    the network with an edge head (to 1/2 or 1/4) or without, whichever the export holds."""
    import paddle

    from training.model import build_model

    model_dir = Path(model_dir)
    if not (model_dir / "model.json").is_file():
        raise FileNotFoundError(f"{model_dir / 'model.json'} not found: give the folder training.export wrote")
    saved = _saved_params(model_dir / "model")
    shapes = [(head, half, lambd) for lambd in (0.25, 0.5)
              for head, half in ((True, True), (True, False), (False, True))]
    for head, half, lambd in shapes:
        with paddle.utils.unique_name.guard():      # the layer names a fresh process gives, as in training.export
            params = build_model(edge_head=head, half_res=half, lambd=lambd).state_dict()
        state = {k: v.numpy() for k, v in params.items()}
        found = {k: saved[v.name] for k, v in params.items() if v.name in saved}
        exported = [k for k in params if not k.startswith("aux_head")]     # the export wrapper's
        if len(found) == len(saved) == len(exported) and all(found[k].shape == state[k].shape for k in found):
            state.update(found)
            log.info("%s: %d tensors recovered (semantic width %g, edge head: %s)", model_dir, len(found), lambd,
                     ("to 1/2" if half else "to 1/4") if head else "none")
            return state
    raise ValueError(f"{model_dir} was not exported from this project's BiSeNetV2 (with or without an edge head) "
                     "by training.export")


def main(argv: list[str] | None = None) -> None:
    import paddle

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", default="models/portrait_bisenetv2")
    ap.add_argument("--out", required=True, help="the .pdparams file to write")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        state = weights_from_export(args.model_dir)
    except (FileNotFoundError, ValueError) as e:
        ap.error(str(e))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    paddle.save({k: paddle.to_tensor(v) for k, v in state.items()}, args.out)
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
