"""Message <-> numpy codecs and the semantic point cloud, on the real sensor_msgs classes.

Why: these conversions sit on every frame the node handles; a wrong step, byte order, channel
order or field offset silently corrupts everything downstream (or RViz's view of it).
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from std_msgs.msg import Header

from lowlight_perception.camera import Intrinsics
from lowlight_perception.classes import load_classes
from lowlight_perception.errors import LowlightError
from lowlight_perception.ros.codecs import (
    ENCODINGS,
    CameraInfoError,
    ImageError,
    camera_info_to_intrinsics,
    depth_to_metres,
    distortion_warning,
    image_to_numpy,
    numpy_to_image,
    rgb_view,
)
from lowlight_perception.ros.pointcloud import (
    POINT_DTYPE,
    PointCloudError,
    pack_rgb,
    pointcloud2_to_numpy,
    semantic_points,
    to_pointcloud2,
)

HOST_BIG = sys.byteorder == "big"


def header() -> Header:
    return Header(stamp=Time(sec=1700000000, nanosec=123456789), frame_id="camera_color_optical")


def sample(encoding: str, h: int = 5, w: int = 7) -> np.ndarray:
    dtype, channels = ENCODINGS[encoding]
    shape = (h, w) if channels == 1 else (h, w, channels)
    rng = np.random.default_rng(0)
    if dtype == np.float32:
        return rng.uniform(0.1, 9.0, shape).astype(np.float32)
    return rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)


def raw_image(
    array: np.ndarray, encoding: str, *, pad: int = 0, bigendian: bool = HOST_BIG
) -> Image:
    """An Image built by hand (not by the codec under test), rows padded with garbage bytes."""
    wire = array.astype(array.dtype.newbyteorder(">" if bigendian else "<"))
    rows = wire.reshape(array.shape[0], -1).view(np.uint8)
    garbage = np.full((rows.shape[0], pad), 0xAB, dtype=np.uint8)
    data = np.concatenate([rows, garbage], axis=1)
    return Image(
        header=header(),
        height=array.shape[0],
        width=array.shape[1],
        encoding=encoding,
        is_bigendian=int(bigendian),
        step=data.shape[1],
        data=data.tobytes(),
    )


# --- images ------------------------------------------------------------------------------------


def test_rclpy_image_data_is_an_array_of_bytes():
    msg = Image(data=b"\x01\x02")
    assert msg.data.typecode == "B"  # what the codecs rely on: a writable buffer


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_round_trip_every_encoding(encoding):
    array = sample(encoding)
    msg = numpy_to_image(array, encoding, header())
    _, channels = ENCODINGS[encoding]
    assert (msg.height, msg.width, msg.encoding) == (5, 7, encoding)
    assert msg.step == 7 * channels * array.dtype.itemsize
    assert len(msg.data) == msg.step * msg.height
    assert msg.is_bigendian == int(HOST_BIG and array.dtype.itemsize > 1)
    back = image_to_numpy(msg)
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)
    assert np.shares_memory(back, np.frombuffer(msg.data, np.uint8))


@pytest.mark.parametrize("encoding", ["rgb8", "bgra8", "mono8", "16UC1", "32FC1"])
def test_step_padding_is_ignored_and_zero_copy(encoding):
    array = sample(encoding)
    msg = raw_image(array, encoding, pad=5)
    view = image_to_numpy(msg)
    np.testing.assert_array_equal(view, array)
    assert np.shares_memory(view, np.frombuffer(msg.data, np.uint8))
    assert view.strides[0] == msg.step


@pytest.mark.parametrize("encoding", ["16UC1", "mono16", "32FC1"])
def test_other_endian_data_is_swapped(encoding):
    array = sample(encoding)
    msg = raw_image(array, encoding, pad=2, bigendian=not HOST_BIG)
    decoded = image_to_numpy(msg)
    assert decoded.dtype.isnative
    np.testing.assert_array_equal(decoded, array)


def test_big_endian_16uc1_bytes():
    msg = Image(
        height=1, width=2, encoding="16UC1", is_bigendian=1, step=4, data=b"\x01\x02\x00\x05"
    )
    np.testing.assert_array_equal(image_to_numpy(msg), [[0x0102, 5]])


def test_big_endian_32fc1_bytes():
    data = np.array([1.5, -2.0], dtype=">f4").tobytes()
    msg = Image(height=1, width=2, encoding="32FC1", is_bigendian=1, step=8, data=data)
    np.testing.assert_array_equal(image_to_numpy(msg), [[1.5, -2.0]])


def good_image() -> Image:
    return raw_image(sample("rgb8"), "rgb8")


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"encoding": "yuv422"}, ["'yuv422'", "unsupported"]),
        ({"width": 0}, ["zero size", "0x5"]),
        ({"height": 0}, ["zero size", "7x0"]),
        ({"step": 20}, ["step 20", "smaller than a row", "21"]),
        ({"data": bytes(21 * 5 - 1)}, ["truncated", "104 bytes", "105"]),
        ({"data": b""}, ["truncated", "0 bytes"]),
    ],
)
def test_bad_images_are_rejected_naming_the_problem(change, words):
    msg = good_image()
    for key, value in change.items():
        setattr(msg, key, value)
    with pytest.raises(ImageError) as err:
        image_to_numpy(msg)
    assert isinstance(err.value, LowlightError)
    for word in words:
        assert word in str(err.value)


def test_rgb_view_channel_order():
    rgb = sample("rgb8")
    rgba = np.concatenate([rgb, np.full((*rgb.shape[:2], 1), 7, np.uint8)], axis=2)
    cases = {
        "rgb8": rgb,
        "bgr8": rgb[..., ::-1],
        "rgba8": rgba,
        "bgra8": rgba[..., [2, 1, 0, 3]],
    }
    for encoding, wire in cases.items():
        msg = raw_image(np.ascontiguousarray(wire), encoding, pad=3)
        view = rgb_view(msg)
        np.testing.assert_array_equal(view, rgb, err_msg=encoding)
        assert np.shares_memory(view, np.frombuffer(msg.data, np.uint8)), encoding


def test_rgb_view_refuses_mono_and_unknown():
    with pytest.raises(ImageError, match="'mono8' is not colour"):
        rgb_view(raw_image(sample("mono8"), "mono8"))
    msg = good_image()
    msg.encoding = "yuv422"
    with pytest.raises(ImageError, match="unsupported image encoding 'yuv422'"):
        rgb_view(msg)
    with pytest.raises(ImageError, match="unsupported image encoding 'yuv422'"):
        depth_to_metres(msg)


def test_depth_16uc1_millimetres_zero_invalid():
    mm = np.array([[0, 1, 2000], [65535, 500, 0]], dtype=np.uint16)
    metres = depth_to_metres(raw_image(mm, "16UC1", pad=4))
    assert metres.dtype == np.float32
    np.testing.assert_allclose(metres, [[0, 0.001, 2.0], [65.535, 0.5, 0]], rtol=1e-7)
    assert metres[0, 2] == 2.0 and metres[0, 0] == 0.0


def test_depth_32fc1_invalid_values_become_zero():
    m = np.array([[1.25, np.nan, np.inf], [-np.inf, -0.5, 0.0]], dtype=np.float32)
    msg = raw_image(m, "32FC1")
    metres = depth_to_metres(msg)
    np.testing.assert_array_equal(metres, [[1.25, 0, 0], [0, 0, 0]])
    assert np.isnan(image_to_numpy(msg)[0, 1])  # the message itself is untouched


def test_depth_refuses_colour():
    with pytest.raises(ImageError, match="'rgb8' is not depth"):
        depth_to_metres(good_image())


def test_numpy_to_image_keeps_header_and_accepts_views():
    rgb = sample("rgb8", 48, 64)
    h = header()
    msg = numpy_to_image(rgb[..., ::-1], "bgr8", h)  # a non-contiguous view
    assert msg.header.stamp == h.stamp and msg.header.frame_id == "camera_color_optical"
    np.testing.assert_array_equal(rgb_view(msg), rgb)
    depth = numpy_to_image(sample("16UC1")[..., None], "16UC1", h)  # (H, W, 1) accepted
    assert depth.step == 14


@pytest.mark.parametrize(
    ("array", "encoding", "words"),
    [
        (np.zeros((4, 4, 3), np.uint8), "yuv422", "'yuv422'"),
        (np.zeros((4, 4), np.uint8), "rgb8", "shape (H, W, 3)"),
        (np.zeros((4, 4, 3), np.float32), "rgb8", "uint8"),
        (np.zeros((4, 4), np.float64), "32FC1", "float32"),
        (np.zeros((0, 4), np.uint8), "mono8", "zero size"),
    ],
)
def test_numpy_to_image_rejects(array, encoding, words):
    with pytest.raises(ImageError, match=words.replace("(", r"\(").replace(")", r"\)")):
        numpy_to_image(array, encoding, header())


# --- camera_info -------------------------------------------------------------------------------


def camera_info(k: list[float], width: int = 640, height: int = 480) -> CameraInfo:
    return CameraInfo(
        header=header(),
        width=width,
        height=height,
        distortion_model="plumb_bob",
        d=[0.0] * 5,
        k=[float(v) for v in k],
    )


def test_camera_info_to_intrinsics():
    msg = camera_info([615.5, 0, 321.25, 0, 614.75, 240.5, 0, 0, 1])
    assert camera_info_to_intrinsics(msg) == Intrinsics(640, 480, 615.5, 614.75, 321.25, 240.5)
    d435i = Intrinsics.d435i()
    np.testing.assert_array_equal(
        camera_info_to_intrinsics(camera_info(d435i.matrix.ravel().tolist())).matrix, d435i.matrix
    )


@pytest.mark.parametrize(
    ("k", "size", "words"),
    [
        ([0.0] * 9, (640, 480), "all zeros"),
        ([-600, 0, 320, 0, 600, 240, 0, 0, 1], (640, 480), "fx=-600"),
        ([600, 0, 320, 0, math.nan, 240, 0, 0, 1], (640, 480), "finite"),
        ([600, 0, 320, 0, 600, 240, 0, 0, 1], (0, 480), "zero size"),
        ([1e-40, 0, 320, 0, 1e-40, 240, 0, 0, 1], (640, 480), "not a calibration"),
        ([600, 0, 320, 0, 0.5, 240, 0, 0, 1], (640, 480), "fy=0.5"),
    ],
)
def test_bad_camera_info_rejected(k, size, words):
    with pytest.raises(CameraInfoError, match=words):
        camera_info_to_intrinsics(camera_info(k, *size))


@pytest.mark.parametrize(
    ("model", "d", "warned"),
    [
        ("plumb_bob", [0.1, -0.05, 0.001, 0.0, 0.0], False),  # realsense-ros 4.58.3 colour
        ("equidistant", [0.0, 0.0, 0.0, 0.0], False),  # all-zero: a pinhole whatever the name
        ("equidistant", [0.2, 0.01, 0.0, 0.0], True),  # a fisheye (Kannala-Brandt) lens
        ("rational_polynomial", [0.1] * 8, False),
    ],
)
def test_distortion_models_the_pinhole_cloud_cannot_honour_are_named(model, d, warned):
    """realsense-ros (realsenseai/realsense-ros r/4.58.3, realsense2_camera/src/
    base_realsense_node.cpp) publishes "plumb_bob", or "equidistant" for Kannala-Brandt."""
    msg = camera_info([600, 0, 320, 0, 600, 240, 0, 0, 1])
    msg.distortion_model, msg.d = model, d
    note = distortion_warning(msg)
    assert (note is not None) == warned
    if warned:
        assert model in note and "pinhole" in note


# --- semantic points ---------------------------------------------------------------------------


def plane_inputs(h: int = 30, w: int = 41, depth: float = 2.0):
    camera = Intrinsics.d435i(w, h)
    depth_m = np.full((h, w), depth, np.float32)
    labels = (np.arange(h * w).reshape(h, w) % 14).astype(np.uint8)
    confidence = np.full((h, w), 255, np.uint8)
    return depth_m, labels, confidence, camera


@pytest.mark.parametrize("d", [1, 3, 4, 8])
def test_plane_at_two_metres(d):
    depth_m, labels, confidence, camera = plane_inputs()
    depth_m[0, 0] = 0.0  # invalid: dropped (pixel (0, 0) is on every decimated grid)
    palette = load_classes().palette
    points = semantic_points(depth_m, labels, confidence, camera, palette, decimation=d)
    assert points.dtype == POINT_DTYPE
    assert points.size == math.ceil(30 / d) * math.ceil(41 / d) - 1
    assert np.all(points["z"] == 2.0)
    expected = camera.backproject(depth_m)[::d, ::d].reshape(-1, 3)[1:]
    np.testing.assert_allclose(points["x"], expected[:, 0], rtol=1e-6)
    np.testing.assert_allclose(points["y"], expected[:, 1], rtol=1e-6)
    np.testing.assert_array_equal(points["label"], labels[::d, ::d].ravel()[1:])
    rgb = points["rgb"].view(np.uint32)
    unpacked = np.stack([(rgb >> 16) & 255, (rgb >> 8) & 255, rgb & 255], axis=1)
    np.testing.assert_array_equal(unpacked, palette[points["label"]])
    np.testing.assert_array_equal(points["confidence"], 1.0)


def test_optical_frame_axes():
    depth_m, labels, confidence, camera = plane_inputs()
    points = semantic_points(depth_m, labels, confidence, camera, load_classes().palette)
    first, last = points[0], points[-1]  # top-left and bottom-right pixels
    assert first["x"] < 0 and first["y"] < 0 and last["x"] > 0 and last["y"] > 0


def test_filters_confidence_and_depth():
    depth_m, labels, confidence, camera = plane_inputs()
    depth_m[:, :20] = 12.0  # beyond max_depth
    depth_m[:5] = np.nan
    confidence[:, 30:] = 100  # 0.392
    palette = load_classes().palette
    points = semantic_points(
        depth_m, labels, confidence, camera, palette, decimation=1, min_confidence=0.5
    )
    assert points.size == (30 - 5) * (30 - 20)
    assert points["z"].max() == 2.0 and points["confidence"].min() == 1.0
    far = semantic_points(depth_m, labels, confidence, camera, palette, decimation=1, max_depth=20)
    assert far.size == 25 * 41
    np.testing.assert_allclose(np.unique(far["confidence"]), [100 / 255, 1.0])


def test_organised_cloud_keeps_every_pixel_and_marks_invalid_depth_nan():
    depth_m, labels, confidence, camera = plane_inputs()
    depth_m[:, :3] = 0.0
    depth_m[4, 7] = np.nan
    depth_m[:, 20:] = 50.0  # beyond max_depth: kept, the organised cloud filters nothing
    confidence[:2] = 0
    points = semantic_points(
        depth_m,
        labels,
        confidence,
        camera,
        load_classes().palette,
        decimation=4,
        min_confidence=0.9,
        max_depth=10.0,
        organized=True,
    )
    assert points.shape == (30, 41)
    invalid = ~(depth_m > 0)
    assert np.isnan(points["z"][invalid]).all() and np.isnan(points["y"][invalid]).all()
    np.testing.assert_array_equal(points["z"][~invalid], depth_m[~invalid])
    expected = camera.backproject(np.nan_to_num(depth_m))
    np.testing.assert_allclose(points["x"][~invalid], expected[..., 0][~invalid], rtol=1e-6)
    np.testing.assert_array_equal(points["label"], labels)
    msg = to_pointcloud2(points, header())
    assert (msg.height, msg.width, msg.row_step) == (30, 41, 41 * 24) and not msg.is_dense
    back = pointcloud2_to_numpy(msg).reshape(30, 41)
    np.testing.assert_array_equal(back["label"], labels)


def test_unorganised_cloud_drops_points_that_would_not_be_finite():
    depth_m, labels, confidence, camera = plane_inputs()
    huge = Intrinsics(camera.width, camera.height, 1e-3, 1e-3, 0.0, 0.0)  # rays overflow
    depth_m[:] = 3e37
    points = semantic_points(
        depth_m, labels, confidence, huge, load_classes().palette, max_depth=np.inf
    )
    assert all(np.isfinite(points[c]).all() for c in ("x", "y", "z"))
    assert to_pointcloud2(points, header()).is_dense


def test_ids_outside_palette_take_void_colour():
    depth_m, labels, confidence, camera = plane_inputs()
    labels[:] = 200
    palette = load_classes().palette
    points = semantic_points(depth_m, labels, confidence, camera, palette)
    assert np.all(points["label"] == 200)
    assert np.all(points["rgb"] == pack_rgb(palette[:1])[0])


def test_semantic_points_rejects_mismatches():
    depth_m, labels, confidence, camera = plane_inputs()
    palette = load_classes().palette
    with pytest.raises(PointCloudError, match="labels is"):
        semantic_points(depth_m, labels[1:], confidence, camera, palette)
    with pytest.raises(PointCloudError, match="confidence must be uint8"):
        semantic_points(depth_m, labels, confidence / 255, camera, palette)
    with pytest.raises(PointCloudError, match="decimation"):
        semantic_points(depth_m, labels, confidence, camera, palette, decimation=0)


def test_pointcloud2_layout_and_round_trip():
    depth_m, labels, confidence, camera = plane_inputs()
    points = semantic_points(depth_m, labels, confidence, camera, load_classes().palette)
    h = header()
    msg = to_pointcloud2(points, h)
    assert isinstance(msg, PointCloud2)
    assert msg.header.stamp == h.stamp and msg.header.frame_id == h.frame_id
    layout = [(f.name, f.offset, f.datatype, f.count) for f in msg.fields]
    assert layout == [
        ("x", 0, PointField.FLOAT32, 1),
        ("y", 4, PointField.FLOAT32, 1),
        ("z", 8, PointField.FLOAT32, 1),
        ("rgb", 12, PointField.FLOAT32, 1),
        ("label", 16, PointField.UINT8, 1),
        ("confidence", 20, PointField.FLOAT32, 1),
    ]
    assert (msg.height, msg.width, msg.point_step) == (1, points.size, 24)
    assert msg.row_step == 24 * points.size == len(msg.data)
    assert msg.is_dense and msg.is_bigendian == HOST_BIG
    back = pointcloud2_to_numpy(msg)
    assert back.dtype == POINT_DTYPE
    np.testing.assert_array_equal(back, points)


def test_empty_cloud():
    msg = to_pointcloud2(np.empty(0, POINT_DTYPE), header())
    assert (msg.width, msg.row_step, len(msg.data)) == (0, 0, 0)
    assert pointcloud2_to_numpy(msg).size == 0


def test_pointcloud2_to_numpy_reads_foreign_clouds():
    """Big-endian, padded rows, a count-3 field: the general reader path."""
    dtype = np.dtype({"names": ["xyz", "i"], "formats": [(">f4", (3,)), ">u2"],
                      "offsets": [0, 12], "itemsize": 16})  # fmt: skip
    rows = np.zeros((2, 3), dtype)
    rows["xyz"] = np.arange(18).reshape(2, 3, 3)
    rows["i"] = [[1, 2, 3], [4, 5, 6]]
    data = np.concatenate(
        [rows.view(np.uint8).reshape(2, 48), np.full((2, 8), 0xEE, np.uint8)], axis=1
    )
    msg = PointCloud2(
        height=2, width=3, is_bigendian=True, point_step=16, row_step=56, data=data.tobytes(),
        fields=[PointField(name="xyz", offset=0, datatype=PointField.FLOAT32, count=3),
                PointField(name="i", offset=12, datatype=PointField.UINT16, count=1)],
    )  # fmt: skip
    points = pointcloud2_to_numpy(msg)
    np.testing.assert_array_equal(points["xyz"], np.arange(18).reshape(6, 3))
    np.testing.assert_array_equal(points["i"], [1, 2, 3, 4, 5, 6])
    assert points["i"].dtype.isnative
    msg.data = data.tobytes()[:-1]
    with pytest.raises(PointCloudError, match="truncated"):
        pointcloud2_to_numpy(msg)


# --- vision_msgs/LabelInfo ---------------------------------------------------------------------

# ros-perception/vision_msgs, branch ros2 (4.1.1, released for Humble and Jazzy): the fields of
# msg/LabelInfo.msg and msg/VisionClass.msg (comments left out). vision_msgs has no PyPI wheel,
# so the node's message is checked against these definitions with rosbags' CDR serialiser.
VISION_CLASS_MSG = "uint16 class_id\nstring class_name\n"
LABEL_INFO_MSG = "std_msgs/Header header\nvision_msgs/VisionClass[] class_map\nfloat32 threshold\n"


def test_label_info_fits_the_vision_msgs_definition_and_lists_every_class():
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    from lowlight_perception.ros.node import LABEL_INFO_QOS, label_info

    store = get_typestore(Stores.ROS2_JAZZY)
    store.register(get_types_from_msg(VISION_CLASS_MSG, "vision_msgs/msg/VisionClass"))
    store.register(get_types_from_msg(LABEL_INFO_MSG, "vision_msgs/msg/LabelInfo"))
    LabelInfo = store.types["vision_msgs/msg/LabelInfo"]
    VisionClass = store.types["vision_msgs/msg/VisionClass"]
    Header = store.types["std_msgs/msg/Header"]
    Stamp = store.types["builtin_interfaces/msg/Time"]
    names = load_classes().names

    def empty() -> object:
        return LabelInfo(
            header=Header(stamp=Stamp(sec=0, nanosec=0), frame_id=""), class_map=[], threshold=1.0
        )

    msg = label_info(names, empty, VisionClass)
    raw = store.serialize_cdr(msg, "vision_msgs/msg/LabelInfo")
    back = store.deserialize_cdr(raw, "vision_msgs/msg/LabelInfo")
    assert [(c.class_id, c.class_name) for c in back.class_map] == list(enumerate(names))
    assert back.threshold == 0.0
    # Nav2's semantic segmentation layer (kiwicampus, humble and jazzy) subscribes reliable +
    # transient_local: a volatile publisher would never match it
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

    assert LABEL_INFO_QOS.reliability == ReliabilityPolicy.RELIABLE
    assert LABEL_INFO_QOS.durability == DurabilityPolicy.TRANSIENT_LOCAL


# --------------------------------------------------------------------------- serialized messages
# The node publishes bytes (rclpy humble / jazzy, rclpy/publisher.py: ``publish_raw`` for bytes)
# and reads its camera topics raw. The counterpart is the RMW's own serializer and
# deserializer (rclpy.serialization, rmw_fastrtps_cpp here): the same length, and what it
# decodes from our bytes is the message we mean. Padding bytes are not compared: the RMW leaves
# whatever was in memory there (seen: 0x6f 0x73 0x69 after an empty frame_id).


def _cdr_header(frame_id: str) -> Header:
    return Header(stamp=Time(sec=1_700_000_123, nanosec=33_333_333), frame_id=frame_id)


@pytest.mark.parametrize("frame_id", ["", "a", "camera_color_optical_frame", "abc"])
@pytest.mark.parametrize(
    ("encoding", "array"),
    [
        ("mono8", np.arange(35, dtype=np.uint8).reshape(5, 7)),
        ("rgb8", np.arange(45, dtype=np.uint8).reshape(3, 5, 3)),
        ("bgra8", np.arange(8, dtype=np.uint8).reshape(1, 2, 4)),
        ("16UC1", np.arange(12, dtype=np.uint16).reshape(4, 3) * 999),
        ("32FC1", np.linspace(0.1, 9.0, 6, dtype=np.float32).reshape(2, 3)),
    ],
)
def test_image_bytes_are_what_the_rmw_reads_and_writes(frame_id, encoding, array):
    from rclpy.serialization import deserialize_message, serialize_message

    from lowlight_perception.ros.codecs import image_cdr, image_from_cdr

    header = _cdr_header(frame_id)
    msg = numpy_to_image(array, encoding, header)
    ours = image_cdr(array, encoding, header)
    theirs = serialize_message(msg)
    assert isinstance(ours, bytes) and len(ours) == len(theirs)
    assert deserialize_message(ours, Image) == msg
    for data in (ours, theirs):  # and the raw reader takes the RMW's bytes as its own
        read = image_from_cdr(data)
        assert (read.header.stamp.sec, read.header.stamp.nanosec) == (1_700_000_123, 33_333_333)
        assert read.header.frame_id == frame_id
        assert (read.height, read.width, read.encoding, read.step) == (
            msg.height,
            msg.width,
            encoding,
            msg.step,
        )
        np.testing.assert_array_equal(image_to_numpy(read), array)


@pytest.mark.parametrize("shape", [(5,), (2, 3), (0,)])
def test_pointcloud_bytes_are_what_the_rmw_reads(shape):
    from rclpy.serialization import deserialize_message, serialize_message

    from lowlight_perception.ros.pointcloud import pointcloud2_cdr

    points = np.zeros(shape, POINT_DTYPE)
    points["x"] = np.arange(points.size).reshape(shape)
    points["label"] = 3
    header = _cdr_header("camera_color_optical_frame")
    msg = to_pointcloud2(points, header)
    ours = pointcloud2_cdr(points, header)
    assert len(ours) == len(serialize_message(msg))
    assert deserialize_message(ours, PointCloud2) == msg


def test_bad_bytes_are_an_image_error_not_a_crash():
    from rclpy.serialization import serialize_message

    from lowlight_perception.ros.codecs import image_from_cdr
    from lowlight_perception.ros.loopback import cdr_stamp

    data = serialize_message(numpy_to_image(np.zeros((4, 4), np.uint8), "mono8", _cdr_header("f")))
    assert cdr_stamp(data) == (1_700_000_123, 33_333_333)
    for cut in (0, 3, 10, 30, len(data) - 20):
        with pytest.raises(ImageError, match=r"truncated|not a serialized"):
            image_from_cdr(data[:cut])
    with pytest.raises(ImageError, match="not a serialized"):
        image_from_cdr(b"\x07\x07\x00\x00" + data[4:])
