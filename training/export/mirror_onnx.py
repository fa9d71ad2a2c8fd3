"""Wrap an exported ONNX graph so its output is the mean of the frame's and the mirrored frame's.

The ONNX twin of ``training.model.MirrorAveraged``. paddle2onnx cannot convert ``paddle.flip``
along a dynamic axis, and its conversions of the workarounds (gathers over ``arange`` of a
shape, batch slices) come out as graphs that ONNX Runtime's own optimiser breaks (Slice "Starts
must be a 1-D array", Add "Can broadcast 0 by 0 or 1"). So the network is converted plain and
wrapped here with ONNX's own ops: a Slice with step -1 mirrors the width whatever it is, and a
Split into two outputs halves the batch whatever it is.

    x -> Concat(x, mirror(x)) on the batch -> network -> Split in two -> (a + mirror(b)) * 0.5
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

_INT64_MIN = np.iinfo(np.int64).min


def mirror_average_graph(model) -> None:
    """Rewrite ``model`` (an ``onnx.ModelProto`` with one input and one output, NCHW) in place."""
    from onnx import helper, numpy_helper

    graph = model.graph
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise ValueError("expected a graph with one input and one output")
    x, y = graph.input[0].name, graph.output[0].name
    both_in, net_out = f"{x}.and_mirrored", f"{y}.of_both"
    for node in graph.node:
        node.input[:] = [both_in if i == x else i for i in node.input]
        node.output[:] = [net_out if o == y else o for o in node.output]
    consts = {"mirror.starts": [-1], "mirror.ends": [_INT64_MIN], "mirror.axes": [3], "mirror.steps": [-1]}
    graph.initializer.extend(numpy_helper.from_array(np.array(v, np.int64), k) for k, v in consts.items())
    graph.initializer.append(numpy_helper.from_array(np.array(0.5, np.float32), "mirror.half"))
    mirror_args = list(consts)

    def mirror(src: str, dst: str):
        return helper.make_node("Slice", [src, *mirror_args], [dst], name=f"mirror.{dst}")

    head = [mirror(x, f"{x}.mirrored"),
            helper.make_node("Concat", [x, f"{x}.mirrored"], [both_in], axis=0, name="mirror.concat")]
    tail = [helper.make_node("Split", [net_out], [f"{y}.plain", f"{y}.of_mirrored"], axis=0, name="mirror.split"),
            mirror(f"{y}.of_mirrored", f"{y}.mirrored_back"),
            helper.make_node("Add", [f"{y}.plain", f"{y}.mirrored_back"], [f"{y}.sum"], name="mirror.add"),
            helper.make_node("Mul", [f"{y}.sum", "mirror.half"], [y], name="mirror.mean")]
    nodes = head + list(graph.node) + tail
    del graph.node[:]
    graph.node.extend(nodes)


def add_mirror_average(path: str | Path) -> None:
    """Rewrite the ONNX file at ``path`` in place (see the module docstring)."""
    import onnx

    model = onnx.load(str(path))
    mirror_average_graph(model)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    log.info("ONNX graph wrapped: output = mean of the frame's and the mirrored frame's")
