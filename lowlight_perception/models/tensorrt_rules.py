"""TensorRT 10's ONNX-parser rules, checked on an exported graph without TensorRT.

Why: ONNX Runtime runs graphs that TensorRT's parser refuses (uint8 intermediates, If nodes
whose branches differ in rank, computed ``axes``), and TensorRT cannot be installed on the
machines that export and test. So every export is checked against the rules as onnx-tensorrt
writes them down. Source: onnx/onnx-tensorrt branch ``10.1-GA`` (the newest release branch; the
support matrix is that of TensorRT 10.x):

* ``docs/operators.md``: the operator support matrix (op, supported input types,
  restrictions), "TensorRT 10.0 supports operators in the inclusive range of opset 9 to opset
  20", the data types it takes, "UINT8 is only supported as network input or output tensor
  types";
* ``ModelImporter.cpp``: "TensorRT does not support UINT8 types for intermediate tensors!"
  for any node output of type UINT8 that is not a graph output;
* ``onnxOpImporters.cpp``: "Clip min value must be an initializer!", "Squeeze axes input must
  be an initializer!" (a Constant node's output is an initializer there: its importer returns
  weights; an Identity of one is not);
* NVIDIA/TensorRT#3985: a UINT8 network input must feed a Cast directly.

Beyond the parser, this project also refuses If / Loop / Scan: control flow has no place in a
per-frame segmentation graph, and an If from a traced ``squeeze`` has branches of different rank.

``OPS`` holds only the operators our exporter writes or could plausibly write; an operator not in
it is reported, so a new one is looked up in the matrix before it ships.
"""

from __future__ import annotations

from typing import Any

SOURCE = "onnx/onnx-tensorrt 10.1-GA (docs/operators.md, ModelImporter.cpp, onnxOpImporters.cpp)"
OPSET_RANGE = (9, 20)  # docs/operators.md: "inclusive range of opset 9 to opset 20"

_F = ("FLOAT", "FLOAT16", "BFLOAT16")
_I = ("INT32", "INT64")
_B = ("BOOL",)

# op -> the types its first input may have (docs/operators.md, "Supported Types" column)
OPS: dict[str, tuple[str, ...]] = {
    **{
        op: _F + _I
        for op in (
            "Abs",
            "Add",
            "ArgMax",
            "ArgMin",
            "DepthToSpace",
            "Div",
            "Equal",
            "Greater",
            "GreaterOrEqual",
            "Less",
            "LessOrEqual",
            "Max",
            "Min",
            "Mod",
            "Mul",
            "Neg",
            "Pad",
            "Range",
            "ReduceL1",
            "ReduceL2",
            "ReduceMax",
            "ReduceMean",
            "ReduceMin",
            "ReduceProd",
            "ReduceSum",
            "ReduceSumSquare",
            "Relu",
            "Sign",
            "SpaceToDepth",
            "Sub",
            "Sum",
        )
    },
    **{
        op: _F + _I + _B
        for op in (
            "Concat",
            "Constant",
            "ConstantOfShape",
            "Expand",
            "Flatten",
            "Gather",
            "GatherElements",
            "GatherND",
            "Identity",
            "Reshape",
            "Shape",
            "Size",
            "Slice",
            "Split",
            "Squeeze",
            "Tile",
            "Transpose",
            "Unsqueeze",
            "Where",
        )
    },
    **{
        op: _F
        for op in (
            "AveragePool",
            "BatchNormalization",
            "Ceil",
            "Clip",
            "Conv",
            "ConvTranspose",
            "Dropout",
            "Elu",
            "Erf",
            "Exp",
            "Floor",
            "Gemm",
            "GlobalAveragePool",
            "GlobalMaxPool",
            "HardSigmoid",
            "HardSwish",
            "InstanceNormalization",
            "LayerNormalization",
            "LeakyRelu",
            "Log",
            "LogSoftmax",
            "MatMul",
            "MaxPool",
            "Pow",
            "PRelu",
            "Reciprocal",
            "Resize",
            "Round",
            "Sigmoid",
            "Softmax",
            "Softplus",
            "Sqrt",
            "Tanh",
        )
    },
    **{op: _B for op in ("And", "Not", "Or", "Xor")},
    "Cast": _F + _I + ("UINT8",) + _B,
}

# op -> indices of inputs that must be initializers (or Constant outputs), when present
CONSTANT_INPUTS: dict[str, tuple[int, ...]] = {
    "Clip": (1, 2),  # onnxOpImporters.cpp: "Clip min value must be an initializer!"
    "Dropout": (2,),  # operators.md: `is_training` must be an initializer
    "Pad": (3,),  # operators.md: `axes` must be an initializer
    "Slice": (3,),
    "Squeeze": (1,),
    "Unsqueeze": (1,),  # operators.md: `axes` must be a constant tensor
    **{op: (1,) for op in OPS if op.startswith("Reduce")},
}

RESIZE_ATTRIBUTES = {  # operators.md, Resize: the supported modes
    "mode": ("nearest", "linear"),
    "coordinate_transformation_mode": (
        "half_pixel",
        "pytorch_half_pixel",
        "tf_half_pixel_for_nn",
        "asymmetric",
        "align_corners",
    ),
    "nearest_mode": ("floor", "ceil", "round_prefer_floor", "round_prefer_ceil"),
    "keep_aspect_ratio_policy": ("stretch",),
}
RESIZE_DEFAULTS = {
    "mode": "nearest",
    "coordinate_transformation_mode": "half_pixel",
    "nearest_mode": "round_prefer_floor",
    "keep_aspect_ratio_policy": "stretch",
}

# tensor types TensorRT takes (operators.md); DOUBLE is only cast down, quantized types only
# through Q/DQ, so neither belongs in an exported graph of ours
TENSOR_TYPES = ("FLOAT", "FLOAT16", "BFLOAT16", "INT32", "INT64", "UINT8", "BOOL")


def problems(proto: Any) -> list[str]:
    """Every way ``proto`` (an onnx ModelProto) breaks the rules above.

    Returns:
        One readable line per problem; empty when TensorRT 10's parser would take the graph.
    """
    import onnx
    from onnx import helper

    type_name = onnx.TensorProto.DataType.Name
    found = []
    for opset in proto.opset_import:
        if opset.domain in ("", "ai.onnx") and not (
            OPSET_RANGE[0] <= opset.version <= OPSET_RANGE[1]
        ):
            found.append(
                f"opset {opset.version} outside TensorRT's {OPSET_RANGE[0]}...{OPSET_RANGE[1]}"
            )
        elif opset.domain not in ("", "ai.onnx"):
            found.append(f"operator domain {opset.domain!r} (TensorRT needs a plugin for it)")
    graph = onnx.shape_inference.infer_shapes(proto).graph
    types = {
        v.name: v.type.tensor_type.elem_type
        for v in (*graph.input, *graph.output, *graph.value_info)
    }
    types.update({init.name: init.data_type for init in graph.initializer})
    constants = {init.name for init in graph.initializer}
    constants.update(o for n in graph.node if n.op_type == "Constant" for o in n.output)
    inputs = {v.name for v in graph.input}
    outputs = {v.name for v in graph.output}
    for name, kind in sorted(types.items()):
        if kind and type_name(kind) not in TENSOR_TYPES:
            found.append(f"tensor {name!r} is {type_name(kind)}")
    for node in graph.node:
        where = f"{node.op_type} {node.name!r}"
        if node.op_type in ("If", "Loop", "Scan"):
            found.append(f"{where}: control flow")
            continue
        if node.op_type not in OPS:
            found.append(f"{where}: not in the checked TensorRT operator list")
            continue
        first = types.get(node.input[0]) if node.input else None
        uint8 = onnx.TensorProto.UINT8  # its own rule, below
        if first and first != uint8 and type_name(first) not in OPS[node.op_type]:
            found.append(
                f"{where}: input {type_name(first)}, TensorRT takes {', '.join(OPS[node.op_type])}"
            )
        for index in CONSTANT_INPUTS.get(node.op_type, ()):
            if (
                index < len(node.input)
                and node.input[index]
                and (node.input[index] not in constants)
            ):
                found.append(
                    f"{where}: input {index} ({node.input[index]!r}) must be an initializer"
                )
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        attrs = {k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()}
        found += [f"{where}: {p}" for p in _attribute_problems(node.op_type, attrs, node)]
        for name in node.input:
            if types.get(name) == uint8 and not (name in inputs and node.op_type == "Cast"):
                found.append(f"uint8 tensor {name!r} feeds {where}")
        for name in node.output:
            if types.get(name) == uint8 and not (name in outputs and node.op_type == "Cast"):
                found.append(f"uint8 tensor {name!r} made by {where}")
    return found


def _attribute_problems(op: str, attrs: dict[str, Any], node: Any) -> list[str]:
    """The restrictions column of operators.md for the operators that have one we can meet."""
    found = []
    if op == "Resize":
        for key, allowed in RESIZE_ATTRIBUTES.items():
            value = attrs.get(key, RESIZE_DEFAULTS[key])
            if value not in allowed:
                found.append(f"{key}={value!r} (TensorRT takes {', '.join(allowed)})")
        if attrs.get("antialias", 0):
            found.append("antialias=1 (not supported)")
    elif op in ("MaxPool", "AveragePool"):
        kernel = attrs.get("kernel_shape", [])
        if len(kernel) not in (2, 3):
            found.append(f"{len(kernel)}D pooling (2D or 3D only)")
        if any(d != 1 for d in attrs.get("dilations", [])):
            found.append(f"dilations {attrs['dilations']} (must be empty or all ones)")
        if op == "MaxPool" and len([o for o in node.output if o]) > 1:
            found.append("Indices output (unsupported)")
    elif op == "Constant":
        for key in ("sparse_value", "value_string", "value_strings"):
            if key in attrs:
                found.append(f"attribute {key} (unsupported)")
    elif op == "LayerNormalization" and len([o for o in node.output if o]) > 1:
        found.append("outputs beyond Y (only the first is supported)")
    return found
