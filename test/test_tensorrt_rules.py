"""Graph conformance: every registry model's export (both upsample modes) and the shipped model
keep TensorRT 10's ONNX-parser rules, written from onnx/onnx-tensorrt branch 10.1-GA:
docs/operators.md (operator matrix, types, opset 9..20, "UINT8 is only supported as network
input or output tensor types"), ModelImporter.cpp ("TensorRT does not support UINT8 types for
intermediate tensors!"), onnxOpImporters.cpp ("Clip min value must be an initializer!"), and
NVIDIA/TensorRT#3985 (a UINT8 input feeds a Cast directly). TensorRT itself cannot run here;
each rule is also shown to catch the graph that breaks it."""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper

from lowlight_perception.config import demo_model
from lowlight_perception.models import export as ex
from lowlight_perception.models import tensorrt_rules
from lowlight_perception.models.registry import MODEL_NAMES

NET = (64, 48)  # small: tracing cost is the weights, not the size


@pytest.mark.parametrize("upsample", ["labels", "logits"])
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_registry_export_keeps_tensorrt_rules(name, upsample, tmp_path):
    model = ex.random_init_model(name, seed=0)
    fused = ex.FusedGraph(model, NET, upsample).eval()
    meta = ex.build_metadata(model, (640, 480), NET, upsample, "conformance")
    path = tmp_path / f"{name}.onnx"
    ex.write_graph(fused, path, meta, ex.MIN_OPSET)  # refuses a rule-breaking graph itself
    proto = onnx.load(str(path))
    assert tensorrt_rules.problems(proto) == []
    (frame,) = proto.graph.input
    assert [n.op_type for n in proto.graph.node if frame.name in n.input] == ["Cast"]
    makers = {o: n.op_type for n in proto.graph.node for o in n.output}
    assert all(makers[o.name] == "Cast" for o in proto.graph.output)


def test_the_shipped_model_keeps_tensorrt_rules():
    proto = onnx.load(str(demo_model()))
    assert tensorrt_rules.problems(proto) == []


def _model(nodes, inputs, outputs, initializers=(), opset=17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _value(name: str, kind: int, shape: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, kind, shape)


def test_uint8_transpose_before_the_cast_is_named():
    """The shape of our graphs before the rule: uint8 frame -> Transpose -> Cast."""
    nodes = [
        helper.make_node("Transpose", ["frame"], ["hwc"], perm=[2, 0, 1], name="t"),
        helper.make_node("Cast", ["hwc"], ["labels"], to=TensorProto.FLOAT, name="c"),
    ]
    proto = _model(
        nodes,
        [_value("frame", TensorProto.UINT8, [4, 4, 3])],
        [_value("labels", TensorProto.FLOAT, [3, 4, 4])],
    )
    assert tensorrt_rules.problems(proto) == [
        "uint8 tensor 'frame' feeds Transpose 't'",
        "uint8 tensor 'hwc' made by Transpose 't'",
        "uint8 tensor 'hwc' feeds Cast 'c'",
    ]


def test_control_flow_unknown_ops_and_bad_types_are_named():
    then = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["a"])],
        "then",
        [],
        [_value("a", TensorProto.FLOAT, [2])],
    )
    nodes = [
        helper.make_node("Cast", ["x"], ["d"], to=TensorProto.DOUBLE, name="to_double"),
        helper.make_node("Cast", ["d"], ["y"], to=TensorProto.FLOAT, name="back"),
        helper.make_node("If", ["flag"], ["z"], then_branch=then, else_branch=then, name="if"),
        helper.make_node("Det", ["m"], ["det"], name="det"),
    ]
    proto = _model(
        nodes,
        [
            _value("x", TensorProto.FLOAT, [2]),
            _value("flag", TensorProto.BOOL, []),
            _value("m", TensorProto.FLOAT, [2, 2]),
        ],
        [
            _value("y", TensorProto.FLOAT, [2]),
            _value("z", TensorProto.FLOAT, [2]),
            _value("det", TensorProto.FLOAT, []),
        ],
    )
    found = tensorrt_rules.problems(proto)
    assert "tensor 'd' is DOUBLE" in found
    assert "If 'if': control flow" in found
    assert "Det 'det': not in the checked TensorRT operator list" in found


def test_computed_axes_clip_bounds_and_resize_modes_are_named():
    """operators.md: Unsqueeze `axes` must be a constant tensor; onnxOpImporters.cpp: Clip
    min must be an initializer; Resize takes nearest / linear only, no antialias."""
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [0])
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"], name="shape"),
        helper.make_node("Unsqueeze", ["x", "axes"], ["ok"], name="const_axes"),
        helper.make_node("Unsqueeze", ["x", "shape"], ["bad"], name="computed_axes"),
        helper.make_node("ReduceMax", ["x"], ["low"], keepdims=0, name="max"),
        helper.make_node("Clip", ["x", "low"], ["clipped"], name="clip"),
        helper.make_node(
            "Resize", ["img", "", "scales"], ["big"], mode="cubic", antialias=1, name="resize"
        ),
    ]
    scales = helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, 2, 2])
    proto = _model(
        nodes,
        [_value("x", TensorProto.FLOAT, [1]), _value("img", TensorProto.FLOAT, [1, 1, 2, 2])],
        [
            _value("ok", TensorProto.FLOAT, None),
            _value("bad", TensorProto.FLOAT, None),
            _value("clipped", TensorProto.FLOAT, [1]),
            _value("big", TensorProto.FLOAT, None),
        ],
        initializers=[axes, scales],
        opset=19,
    )
    found = tensorrt_rules.problems(proto)
    assert found == [
        "Unsqueeze 'computed_axes': input 1 ('shape') must be an initializer",
        "Clip 'clip': input 1 ('low') must be an initializer",
        "Resize 'resize': mode='cubic' (TensorRT takes nearest, linear)",
        "Resize 'resize': antialias=1 (not supported)",
    ]


def test_an_opset_newer_than_tensorrt_takes_is_named():
    proto = _model(
        [helper.make_node("Relu", ["x"], ["y"])],
        [_value("x", TensorProto.FLOAT, [1])],
        [_value("y", TensorProto.FLOAT, [1])],
        opset=21,
    )
    assert tensorrt_rules.problems(proto) == ["opset 21 outside TensorRT's 9...20"]


def test_export_refuses_a_graph_that_breaks_the_rules(tmp_path, monkeypatch):
    """Every export runs the check: with Conv taken off the list (as for a TensorRT that lacked
    it), exporting fails naming the node and leaves no file to ship."""
    model = ex.random_init_model("lisu-tiny", seed=0)
    monkeypatch.setattr(
        tensorrt_rules, "OPS", {k: v for k, v in tensorrt_rules.OPS.items() if k != "Conv"}
    )
    out = tmp_path / "m.onnx"
    with pytest.raises(ex.ExportError, match=r"Conv .*not in the checked TensorRT operator list"):
        ex.export_onnx(model, out, camera_size=(160, 120), net_size=NET, frames=1)
    assert list(tmp_path.iterdir()) == []
