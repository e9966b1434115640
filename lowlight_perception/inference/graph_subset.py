"""The part of an exported graph that computes some of its outputs, cut from the serialized
ONNX model without the ``onnx`` package (a ROS install has only onnxruntime).

Why: ONNX Runtime runs every node of a session, whatever outputs a run asks for (measured:
asking for labels only costs as much as all four outputs). A graph with reflectance and
illumination spends most of a near-free network's time upsampling them to the frame's size,
so the node runs a second session of labels + confidence alone while nobody subscribes to
the others: 4.9 -> 2.0 ms at 640x480 on a 2-core Xeon (``bench/results/node_stages.md``).

The model is read as protobuf wire format (field numbers of onnx/onnx.proto, main: ModelProto
graph = 7; GraphProto node = 1, initializer = 5, input = 11, output = 12, value_info = 13;
NodeProto input = 1, output = 2, attribute = 5; AttributeProto g = 6, graphs = 11;
TensorProto and ValueInfoProto name = 8 and 1); kept fields are copied byte for byte.
"""

from __future__ import annotations

from collections.abc import Collection

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5

MODEL_GRAPH = 7
GRAPH_NODE, GRAPH_INITIALIZER, GRAPH_OUTPUT, GRAPH_VALUE_INFO = 1, 5, 12, 13
NODE_INPUT, NODE_OUTPUT, NODE_ATTRIBUTE = 1, 2, 5
ATTRIBUTE_GRAPH, ATTRIBUTE_GRAPHS = 6, 11
TENSOR_NAME, VALUE_INFO_NAME = 8, 1


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _fields(data: bytes) -> list[tuple[int, bytes, bytes]]:
    """(field number, the field's whole encoding, its payload if length-delimited else b"")."""
    out = []
    pos = 0
    while pos < len(data):
        start = pos
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        payload = b""
        if wire == _VARINT:
            _, pos = _varint(data, pos)
        elif wire == _I64:
            pos += 8
        elif wire == _I32:
            pos += 4
        elif wire == _LEN:
            size, pos = _varint(data, pos)
            payload = data[pos : pos + size]
            pos += size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if pos > len(data):
            raise ValueError("truncated protobuf")
        out.append((number, data[start:pos], payload))
    return out


def _strings(message: bytes, number: int) -> list[str]:
    return [payload.decode() for n, _, payload in _fields(message) if n == number]


def _has_subgraph(node: bytes) -> bool:
    for number, _, attribute in _fields(node):
        if number == NODE_ATTRIBUTE and any(
            n in (ATTRIBUTE_GRAPH, ATTRIBUTE_GRAPHS) for n, _, _ in _fields(attribute)
        ):
            return True
    return False


def subset_model(model: bytes, outputs: Collection[str]) -> bytes:
    """The serialized model reduced to the nodes, initializers and value infos that
    ``outputs`` need, with only those graph outputs; everything else (opsets, metadata, inputs)
    unchanged.

    Raises:
        ValueError: a name in ``outputs`` is not a graph output, a node holds a subgraph (its
            implicit inputs cannot be traced here), or the bytes are not a valid model.
    """
    top = _fields(model)
    graphs = [payload for number, _, payload in top if number == MODEL_GRAPH]
    if len(graphs) != 1:
        raise ValueError("not an ONNX model (no graph)")
    graph = _fields(graphs[0])
    present = {
        _strings(payload, VALUE_INFO_NAME)[0]
        for number, _, payload in graph
        if number == GRAPH_OUTPUT
    }
    missing = set(outputs) - present
    if missing:
        raise ValueError(f"not graph outputs: {', '.join(sorted(missing))}")
    need = set(outputs)
    kept: set[int] = set()
    for index in range(len(graph) - 1, -1, -1):  # nodes are topologically sorted
        number, _, node = graph[index]
        if number != GRAPH_NODE:
            continue
        if need.intersection(_strings(node, NODE_OUTPUT)):
            if _has_subgraph(node):
                raise ValueError("a node holds a subgraph")
            kept.add(index)
            need.update(name for name in _strings(node, NODE_INPUT) if name)
    body = bytearray()
    for index, (number, whole, payload) in enumerate(graph):
        if number == GRAPH_NODE and index not in kept:
            continue
        if number == GRAPH_OUTPUT and _strings(payload, VALUE_INFO_NAME)[0] not in outputs:
            continue
        if number == GRAPH_INITIALIZER and _strings(payload, TENSOR_NAME)[0] not in need:
            continue
        if number == GRAPH_VALUE_INFO and _strings(payload, VALUE_INFO_NAME)[0] not in need:
            continue
        body += whole
    key = _encode_varint(MODEL_GRAPH << 3 | _LEN)
    graph_field = key + _encode_varint(len(body)) + bytes(body)
    return b"".join(graph_field if number == MODEL_GRAPH else whole for number, whole, _ in top)
