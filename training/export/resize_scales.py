"""Give an exported ONNX graph's Resize nodes fixed scales instead of sizes computed at run time.

paddle2onnx turns every ``interpolate(..., size=paddle.shape(t)[2:])`` into a Resize whose
``sizes`` input is built per call from Shape/Slice/Cast/Concat nodes. For this network every
such size is a fixed multiple of its input's (the input sizes the app allows are multiples of
32, so each grid is exactly 2x, 4x or 8x the next), and ONNX Runtime spends time on those
little chains (0.2-1 ms per frame for the int8 model).
Paddle's own ``scale_factor`` does not survive paddle2onnx under Paddle 3 (PIR stores the
scales as doubles: "the 0th elementwise MUST be ir::FloatAttribute"), so the fix is made on
the ONNX graph: run it at several input sizes, read each Resize's in/out ratio, and where the
ratio is the same exact factor at every size, hand the Resize that factor as ``scales`` and
drop the nodes that only computed its size.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

PROBE_SIZES = ((256, 256), (224, 224), (320, 192))


def _resize_ratios(model, sizes=PROBE_SIZES) -> dict[str, tuple[float, float]]:
    """Each Resize's (height, width) output/input ratio, by its output's name, for those whose
    ratio is an exact, size-independent factor at every probe size."""
    import onnx
    import onnxruntime as ort

    resizes = [n for n in model.graph.node if n.op_type == "Resize" and len(n.input) == 4 and n.input[3]]
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    wanted = sorted({t for n in resizes for t in (n.input[0], n.output[0])})
    known = {o.name for o in probe.graph.output}
    probe.graph.output.extend(onnx.helper.make_empty_tensor_value_info(t) for t in wanted if t not in known)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    name, dims = sess.get_inputs()[0].name, sess.get_inputs()[0].shape
    channels = dims[1] if isinstance(dims[1], int) else 3
    names = [o.name for o in sess.get_outputs()]
    ratios: dict[str, set] = {n.output[0]: set() for n in resizes}
    for h, w in sizes:
        x = np.zeros((1, channels, h, w), np.float32)
        shapes = {k: v.shape for k, v in zip(names, sess.run(names, {name: x}))}
        for n in resizes:
            (ih, iw), (oh, ow) = shapes[n.input[0]][2:], shapes[n.output[0]][2:]
            rh, rw = oh / ih, ow / iw
            exact = int(ih * rh) == oh and int(iw * rw) == ow and shapes[n.input[0]][:2] == shapes[n.output[0]][:2]
            ratios[n.output[0]].add((rh, rw) if exact else None)
    return {k: next(iter(v)) for k, v in ratios.items() if len(v) == 1 and None not in v}


def _drop_dead_nodes(graph) -> int:
    """Remove nodes none of whose outputs is used (by a node or as a graph output)."""
    dropped = 0
    while True:
        used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
        dead = [n for n in graph.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
        dropped += len(dead)
    used = {i for n in graph.node for i in n.input}
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)
    return dropped


def fix_resize_scales(path: str | Path) -> int:
    """Rewrite the ONNX file at ``path`` in place; returns how many Resize nodes got fixed scales."""
    import onnx

    path = Path(path)
    model = onnx.load(str(path))
    ratios = _resize_ratios(model)
    for n in model.graph.node:
        if n.op_type == "Resize" and n.output[0] in ratios:
            rh, rw = ratios[n.output[0]]
            scales = f"{n.output[0]}.fixed_scales"
            model.graph.initializer.append(
                onnx.numpy_helper.from_array(np.array([1.0, 1.0, rh, rw], np.float32), scales))
            n.input[2] = scales
            del n.input[3]
    dropped = _drop_dead_nodes(model.graph)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    log.info("%d Resize nodes given fixed scales (%s); %d size-computing nodes dropped", len(ratios),
             ", ".join(f"{r[0]:g}" for r in ratios.values()), dropped)
    return len(ratios)
