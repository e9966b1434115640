"""Running labels + confidence alone: the graph cut from the serialized model without the onnx
package, checked against onnx's own extractor (onnx/onnx main, onnx/utils.py
``extract_model``: the nodes on the paths from the inputs to the chosen outputs, their
initializers), and the ONNX Runtime session of it that the node uses while nobody subscribes
to the restored images."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from lowlight_perception.camera import Intrinsics
from lowlight_perception.data.synthetic import random_view
from lowlight_perception.inference import Segmenter
from lowlight_perception.inference.backend import CORE_OUTPUTS
from lowlight_perception.inference.graph_subset import subset_model
from lowlight_perception.inference.onnxruntime_backend import OnnxRuntimeBackend
from lowlight_perception.models.export import export_onnx, random_init_model

CAMERA = (160, 120)


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    """Exports of a graph with reflectance + illumination and of one without."""
    root = tmp_path_factory.mktemp("subset")
    out = {}
    for name in ("lisu-tiny", "lisu-seg"):
        path = root / f"{name}.onnx"
        export_onnx(random_init_model(name), path, camera_size=CAMERA, net_size=(64, 48), frames=1)
        out[name] = path
    return out


def test_the_cut_is_what_onnx_extracts(graphs, tmp_path):
    path = graphs["lisu-tiny"]
    ours = onnx.load_from_string(subset_model(path.read_bytes(), CORE_OUTPUTS))
    onnx.checker.check_model(ours)
    onnx.utils.extract_model(str(path), str(tmp_path / "ref.onnx"), ["frame"], list(CORE_OUTPUTS))
    ref = onnx.load(str(tmp_path / "ref.onnx"))
    assert [n.name for n in ours.graph.node] == [n.name for n in ref.graph.node]
    assert {i.name for i in ours.graph.initializer} == {i.name for i in ref.graph.initializer}
    assert [o.name for o in ours.graph.output] == list(CORE_OUTPUTS)
    whole = onnx.load(str(path))
    assert len(ours.graph.node) < len(whole.graph.node)
    # everything outside the graph is kept: the metadata the backends read, the opsets
    assert ours.metadata_props == whole.metadata_props
    assert ours.opset_import == whole.opset_import


def test_the_core_session_answers_as_the_whole_graph_does(graphs):
    frame = random_view(4, 0, Intrinsics.d435i(*CAMERA)).low
    backend = OnnxRuntimeBackend(graphs["lisu-tiny"])
    assert backend._core is not None
    whole = backend.execute(frame)
    core = backend.execute(frame, CORE_OUTPUTS)
    assert set(whole) == {"labels", "confidence", "reflectance", "illumination"}
    assert set(core) == set(CORE_OUTPUTS)
    for name in CORE_OUTPUTS:
        np.testing.assert_array_equal(core[name], whole[name])
    assert set(backend.execute(frame, ("labels", "reflectance"))) == set(whole)
    # a graph of labels + confidence only needs no second session
    assert OnnxRuntimeBackend(graphs["lisu-seg"])._core is None


def test_segmenter_leaves_out_what_was_not_asked_for(graphs):
    frame = random_view(4, 1, Intrinsics.d435i(*CAMERA)).low
    with Segmenter(graphs["lisu-tiny"], "onnxruntime", "cpu") as seg:
        seg.warm_up()
        core = seg.segment(frame, outputs=CORE_OUTPUTS)
        whole = seg.segment(frame)
    assert core.reflectance is None and core.illumination is None
    assert whole.reflectance is not None and whole.illumination is not None
    np.testing.assert_array_equal(core.labels, whole.labels)


def test_refusals(graphs):
    data = graphs["lisu-tiny"].read_bytes()
    with pytest.raises(ValueError, match="not graph outputs: overlay"):
        subset_model(data, ("labels", "overlay"))
    with pytest.raises(ValueError, match="truncated"):
        subset_model(data[: len(data) // 2], CORE_OUTPUTS)
    # a node with a subgraph (If): its implicit inputs are not traced, so no cut
    branch = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "b",
        [],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    graph = helper.make_graph(
        [helper.make_node("If", ["c"], ["labels"], then_branch=branch, else_branch=branch)],
        "g",
        [
            helper.make_tensor_value_info("c", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1]),
        ],
        [helper.make_tensor_value_info("labels", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph).SerializeToString()
    with pytest.raises(ValueError, match="subgraph"):
        subset_model(model, ("labels",))


def test_spin_off_is_what_the_session_gets(graphs):
    """spin=False (the node's spin_wait false): the sessions do not spin-wait between frames
    (ONNX Runtime's session option
    session.intra_op.allow_spinning: microsoft/onnxruntime main,
    include/onnxruntime/core/session/onnxruntime_session_options_config_keys.h)."""
    backend = OnnxRuntimeBackend(graphs["lisu-tiny"], spin=False)
    for session in (backend._full.session, backend._core.session):
        options = session.get_session_options()
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    default = OnnxRuntimeBackend(graphs["lisu-tiny"])._full.session.get_session_options()
    with pytest.raises(RuntimeError, match="does not have configuration"):
        default.get_session_config_entry("session.intra_op.allow_spinning")  # unset: spins
