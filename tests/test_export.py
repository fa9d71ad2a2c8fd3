"""Export: the wrapper, the edge head, fixed-scale resizes, plain depthwise convs, the mirror pass, recovery (needs paddle)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from training.config import load_config
from training.data import read_file_list

from .training_data import CONFIGS, make_dataset

pytestmark = pytest.mark.slow        # real processes or training: 'pytest -m "not slow"' skips them


def test_export_wrapper_gives_the_softmax_person_probability():
    import paddle

    from training.model import PersonProbability, build_model

    paddle.seed(0)
    model = build_model()
    model.eval()
    x = paddle.randn([2, 3, 96, 128])
    want = paddle.nn.functional.softmax(model(x)[0], axis=1)[:, 1:2].numpy()
    got = PersonProbability(model)(x).numpy()
    assert got.shape == (2, 1, 96, 128)
    assert np.abs(got - want).max() < 1e-5 and want.std() > 1e-3     # an untrained net still varies


def test_edge_head_learns_resumes_and_exports(tmp_path):
    pytest.importorskip("paddle")
    import paddle

    from training import evaluate, export, train
    from training.model import build_model, person_margin
    from training.train_edge_head import backbone_outputs, train_head

    root = make_dataset(tmp_path / "d")
    cfg = load_config(CONFIGS / "portrait_bisenetv2.yml")
    cfg.update(data_root=str(root), cache_dir=str(tmp_path / "cache"), cache_long_side=96)
    paddle.seed(0)
    net = build_model()                  # an untrained backbone: its margin says nothing, the photo does
    paddle.save(net.state_dict(), str(tmp_path / "net.pdparams"))
    run = tmp_path / "run"
    args = dict(cfg=cfg, weights=tmp_path / "net.pdparams", run_dir=run, cache_dir=tmp_path / "views",
                size=64, augmented=1, batch=4, lr=1e-2)
    assert train_head(epochs=10, **args)["epoch"] >= 1
    best = train_head(epochs=12, **args)                 # resumes after epoch 10
    val = [json.loads(line) for line in (run / "val.jsonl").read_text().splitlines()]
    assert [v["epoch"] for v in val] == list(range(13))  # epoch 0: the new head, which adds nothing
    assert best["miou"] == max(v["miou"] for v in val[1:]) and best["miou"] > val[0]["miou"] + 0.1

    started = dict(args, run_dir=tmp_path / "run_from", head_from=run / "best.pdparams")
    train_head(epochs=1, **started)        # a head taken from other weights: it starts where that one ended
    first = json.loads((tmp_path / "run_from" / "val.jsonl").read_text().splitlines()[0])
    assert abs(first["miou"] - best["miou"]) < 1e-6
    with pytest.raises(ValueError, match="no edge head"):
        train_head(epochs=1, **dict(started, run_dir=tmp_path / "run_none", head_from=tmp_path / "net.pdparams"))

    state = paddle.load(str(run / "best.pdparams"))
    assert any(k.startswith("edge_head.") for k in state)
    assert all(np.array_equal(state[k].numpy(), v.numpy()) for k, v in net.state_dict().items())  # frozen

    model = build_model(edge_head=True)
    model.set_state_dict(state)
    model.eval()
    imgs = np.stack([cv2.resize(cv2.imread(str(p)), (64, 64), interpolation=cv2.INTER_AREA)
                     for p, _ in read_file_list(root / "val.txt")])
    margin8, detail4 = backbone_outputs(model, imgs)     # what the head was trained on ...
    from training.data import to_chw_rgb

    x = paddle.to_tensor(to_chw_rgb(imgs))
    with paddle.no_grad():
        trained_on = model.edge_head(paddle.to_tensor(margin8.astype(np.float32)),
                                     paddle.to_tensor(detail4.astype(np.float32)), x).numpy()
        exported = person_margin(model, x).numpy()      # ... is what the exported network computes
    assert np.abs(trained_on - exported).max() < 0.02 * max(1.0, np.abs(exported).max())

    out = export.export(run / "best.pdparams", tmp_path / "model", input_size=64, version="head")
    assert export.parity(out) < 1e-4
    plain = export.export(tmp_path / "net.pdparams", tmp_path / "plain", input_size=64, version="plain")
    with_head = evaluate.evaluate(root / "val.txt", out)
    without = evaluate.evaluate(root / "val.txt", plain)
    assert with_head["person_iou"] > without["person_iou"] + 0.1

    # fine-tuning the network and its head together, from those weights
    cfg.update(run_dir=str(tmp_path / "joint"), edge_head=True, init_weights=str(run / "best.pdparams"),
               resume_from=None, batch_size=2, stages=[[2, 64]], val_every=2, save_every=2, log_every=1)
    cfg["optimizer"]["warmup_iters"] = 1
    train.train(cfg)
    joint = paddle.load(str(tmp_path / "joint" / "last.pdckpt"))["model"]
    assert joint["edge_head.out.weight"].shape == state["edge_head.out.weight"].shape
    assert not np.array_equal(joint["edge_head.out.weight"].numpy(), state["edge_head.out.weight"].numpy())
    assert not np.array_equal(joint["head.conv_1x1.weight"].numpy(), state["head.conv_1x1.weight"].numpy())
    assert "starting from the weights in" in (tmp_path / "joint" / "train.log").read_text()


def _resize_graph(sizes_from_shape: bool):
    """x (1x1xHxW) -> Resize to twice its size, or to a fixed 16 x 16, with the sizes computed
    at run time from Shape/Slice/Concat as paddle2onnx writes them."""
    from onnx import TensorProto, helper, numpy_helper

    c = lambda name, v: numpy_helper.from_array(np.array(v, np.int64), name)  # noqa: E731
    nodes = [helper.make_node("Shape", ["x"], ["shape"]),
             helper.make_node("Slice", ["shape", "s0", "s2"], ["nc"]),
             helper.make_node("Slice", ["shape", "s2", "s4"], ["hw"])]
    if sizes_from_shape:
        nodes.append(helper.make_node("Mul", ["hw", "two"], ["hw_out"]))
    else:
        nodes.append(helper.make_node("Identity", ["fixed"], ["hw_out"]))
    nodes += [helper.make_node("Concat", ["nc", "hw_out"], ["sizes"], axis=0),
              helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="linear",
                               coordinate_transformation_mode="half_pixel")]
    inits = [c("s0", [0]), c("s2", [2]), c("s4", [4]), c("two", [2, 2]), c("fixed", [16, 16])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, None, None])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, None, None])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize("sizes_from_shape", [True, False])
def test_resize_scales_are_fixed_only_where_the_ratio_is(tmp_path, sizes_from_shape):
    import onnx
    import onnxruntime as ort

    from training.export.resize_scales import fix_resize_scales

    path = tmp_path / "m.onnx"
    onnx.save(_resize_graph(sizes_from_shape), str(path))
    before = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert fix_resize_scales(path) == (1 if sizes_from_shape else 0)
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert ops == (["Resize"] if sizes_from_shape else ["Shape", "Slice", "Identity", "Concat", "Resize"])
    after = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for h, w in ((32, 32), (64, 96), (8, 40)):
        x = rng.standard_normal((1, 1, h, w)).astype(np.float32)
        want, got = before.run(None, {"x": x})[0], after.run(None, {"x": x})[0]
        assert got.shape == want.shape == ((1, 1, 2 * h, 2 * w) if sizes_from_shape else (1, 1, 16, 16))
        assert np.abs(got - want).max() < 1e-5


def _weights_with_a_working_head(path, seed: int):
    """Random weights with an edge head whose output convs are not zero (so it changes the output)."""
    import paddle

    from training.model import build_model

    paddle.seed(seed)
    state = build_model(edge_head=True).state_dict()
    for name in ("edge_head.out.weight", "edge_head.half_out.weight"):
        state[name].set_value(paddle.randn(state[name].shape) * 0.5)
    paddle.save(state, str(path))
    return path


def test_exported_resizes_have_fixed_scales_and_agree_with_paddle_at_other_sizes(tmp_path):
    import onnx

    from bgswap.inference import Segmenter
    from training import export

    out = export.export(_weights_with_a_working_head(tmp_path / "w.pdparams", seed=3), tmp_path / "model",
                        input_size=64, version="scales")
    graph = onnx.load(str(out / "model.onnx")).graph
    inits = {i.name for i in graph.initializer}
    resizes = [n for n in graph.node if n.op_type == "Resize"]
    assert len(resizes) == 8 and all(len(n.input) == 3 and n.input[2] in inits for n in resizes)
    assert not [n for n in graph.node if n.op_type == "Shape"]
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    for size in ((64, 64), (96, 128), (160, 96)):
        a = Segmenter(out, backend="onnxruntime", compute="cpu", precision="fp32", input_size=size)
        b = Segmenter(out, backend="paddle", compute="cpu", input_size=size)
        pa, pb = a.predict_lowres(frame), b.predict_lowres(frame)
        assert pa.shape == size and pb.std() > 1e-3
        assert np.abs(pa - pb).max() < 1e-4


@pytest.mark.parametrize("edge_head, mirror_average", [(True, True), (False, False)])
def test_weights_come_back_from_an_export(tmp_path, edge_head, mirror_average):
    import paddle

    from training import export
    from training.model import build_model
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
    from weights_from_export import weights_from_export

    paddle.seed(5)
    model = build_model(edge_head=edge_head)
    state = model.state_dict()
    for name in [k for k in state if k.startswith("edge_head.") and "out" in k]:   # a head that is not zero
        state[name].set_value(paddle.randn(state[name].shape))
    paddle.save(state, str(tmp_path / "w.pdparams"))
    out = export.export(tmp_path / "w.pdparams", tmp_path / "model", input_size=64, version="w",
                        mirror_average=mirror_average)
    back = weights_from_export(out)
    assert set(back) == set(state)
    exported = [k for k in state if not k.startswith("aux_head")]
    assert all(np.array_equal(back[k], state[k].numpy()) for k in exported)
    assert any("edge_head" in k for k in back) == edge_head
    with pytest.raises(FileNotFoundError, match="model.json"):
        weights_from_export(tmp_path)


def test_depthwise_convs_that_multiply_channels_become_plain_depthwise_with_the_same_output(tmp_path):
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from training.export.depthwise_repeat import rewrite_depthwise

    rng = np.random.default_rng(0)
    w = lambda *shape: numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), f"w{len(shape)}{shape[0]}")
    inits = [w(12, 1, 3, 3), w(4, 1, 3, 3), w(8, 2, 3, 3)]
    names = [i.name for i in inits]
    nodes = [helper.make_node("Conv", ["x", names[0]], ["a"], group=4, pads=[1, 1, 1, 1], strides=[2, 2]),  # x3
             helper.make_node("Conv", ["x", names[1]], ["b"], group=4, pads=[1, 1, 1, 1]),   # plain depthwise
             helper.make_node("Conv", ["x", names[2]], ["c"], group=2, pads=[1, 1, 1, 1])]   # 2 channels per group
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, None, None, None]) for n in "abc"]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, None, None])],
                              outs, inits)
    path = tmp_path / "dw.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    x = rng.standard_normal((1, 4, 10, 14)).astype(np.float32)
    run = lambda: ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    before = run()
    assert rewrite_depthwise(path) == 1
    convs = [n for n in onnx.load(str(path)).graph.node if n.op_type == "Conv"]
    assert [next(a.i for a in n.attribute if a.name == "group") for n in convs] == [12, 4, 2]
    for want, got in zip(before, run()):
        assert want.shape == got.shape and np.abs(want - got).max() < 1e-5


@pytest.mark.parametrize("size", [(64, 64), (96, 128)])
def test_a_mirror_averaged_export_is_the_mean_of_both_passes_in_every_runtime(tmp_path, size):
    import onnx

    from bgswap.inference import ModelMeta, Segmenter
    from training import export

    weights = _weights_with_a_working_head(tmp_path / "w.pdparams", seed=11)
    plain_dir = export.export(weights, tmp_path / "plain", input_size=64, version="plain")
    both_dir = export.export(weights, tmp_path / "both", input_size=64, version="both", mirror_average=True)
    assert ModelMeta.load(both_dir).mirror_averaged and not ModelMeta.load(plain_dir).mirror_averaged
    for d in (plain_dir, both_dir):       # no conv is left widening channels inside its groups
        graph = onnx.load(str(d / "model.onnx")).graph
        weights = {i.name: i.dims for i in graph.initializer}
        assert all(weights[n.input[1]][0] == next(a.i for a in n.attribute if a.name == "group")
                   for n in graph.node if n.op_type == "Conv" and weights[n.input[1]][1] == 1)
    frame = np.random.default_rng(2).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    mirror = np.ascontiguousarray(frame[:, ::-1])
    plain = Segmenter(plain_dir, backend="onnxruntime", compute="cpu", input_size=size)
    a, b = plain.predict_lowres(frame), plain.predict_lowres(mirror)[:, ::-1]
    assert np.abs(a - b).max() > 1e-3                                     # the network alone is not symmetric
    for backend in ("onnxruntime", "paddle"):
        both = Segmenter(both_dir, backend=backend, compute="cpu", input_size=size)
        avg = both.predict_lowres(frame)
        assert avg.shape == size and np.abs(avg - (a + b) / 2).max() < 1e-4
        assert np.abs(both.predict_lowres(mirror)[:, ::-1] - avg).max() < 1e-4
