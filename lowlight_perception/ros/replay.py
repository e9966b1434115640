"""Live replay: publish a bag's camera messages over real DDS into a perception node with their
original timing (or at a rate factor) and measure what comes back: end-to-end latency (colour
published -> labels received), throughput and drops; and a peak-throughput search that raises
the rate until the node starts dropping frames (in the spirit of ros2_benchmark).

The bag's raw CDR bytes are deserialised by rclpy itself, so the node receives exactly what
``ros2 bag play`` would publish. A bag recorded with image_transport's compressed streams
instead (``.../compressed``, ``.../compressedDepth``) is decoded first and published raw, as
image_transport's ``republish`` would: the node subscribes to raw images.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rclpy
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from ..bags import BagError, bag_dir, open_bag
from ..errors import LowlightError
from ..imagemsg import compressed_depth_to_numpy, compressed_rgb
from ..latency import p50_p99
from ..topics import (
    CAMERA_INFO_TOPIC,
    COLOR_TOPIC,
    COLOUR_TRANSPORT,
    DEPTH_TOPIC,
    DEPTH_TRANSPORT,
    camera_topic,
)
from .codecs import ImageError, numpy_to_image
from .loopback import LoopbackClient, Spinner, new_context, stamp_key, start_node

TYPES = {
    "sensor_msgs/msg/Image": Image,
    "sensor_msgs/msg/CameraInfo": CameraInfo,
    "sensor_msgs/msg/CompressedImage": CompressedImage,
}


class ReplayError(LowlightError):
    """The bag cannot be replayed (missing, unreadable, no colour topic) or no node answered."""


@dataclass
class Recorded:
    """One input message from the bag: when it was recorded and the rclpy message."""

    topic: str
    t_ns: int
    msg: object


def _camera_topics(topics: set[str]) -> dict[str, str]:
    """Bag topic -> the node's input topic it is published on: the raw camera topics, or
    image_transport's compressed / compressedDepth ones where the raw topic is absent."""
    out = {CAMERA_INFO_TOPIC: CAMERA_INFO_TOPIC}
    for base, transport in ((COLOR_TOPIC, COLOUR_TRANSPORT), (DEPTH_TOPIC, DEPTH_TRANSPORT)):
        topic = camera_topic(topics, base, transport)
        if topic is not None:
            out[topic] = base
    return out


def _decompressed(msg: CompressedImage, topic: str) -> Image:
    """The raw Image the node subscribes to, as image_transport's subscriber decodes it: rgb8
    colour; 16UC1 (mm) or 32FC1 (m, NaN holes) depth; the header kept as recorded.

    Raises:
        ImageError: a frame that does not decode (the decoders name why).
    """
    if topic == COLOR_TOPIC:
        return numpy_to_image(compressed_rgb(msg), "rgb8", msg.header)
    encoding, depth = compressed_depth_to_numpy(msg)
    return numpy_to_image(depth, encoding, msg.header)


def load_inputs(
    bag: Path, max_frames: int | None = None, skipped: dict[str, int] | None = None
) -> list[Recorded]:
    """The camera messages of ``bag`` in recording order (up to ``max_frames`` colour frames).

    The node takes raw images, so a bag recorded with image_transport's compressed streams
    (``<colour>/compressed`` JPEG or PNG, ``<depth>/compressedDepth``; read only where the
    raw topic is absent) is decoded here and published as raw Images on the raw topics. A
    compressed frame that does not decode is left out and counted in ``skipped`` (reason ->
    count), never fatal.

    Bags are opened as ``lowlight eval`` opens them (``bags.open_bag``): a bag
    directory, a storage file in it, or a cut-off recording, salvaged.

    Raises:
        ReplayError: missing or unreadable bag, or no colour topic in it.
    """
    skipped = skipped if skipped is not None else {}
    out: list[Recorded] = []
    colours = 0
    try:
        with open_bag(bag_dir(Path(bag))) as reader:
            topics = _camera_topics({c.topic for c in reader.connections})
            if COLOR_TOPIC not in topics.values():
                have = ", ".join(sorted({c.topic for c in reader.connections})) or "none"
                raise ReplayError(
                    f"{bag} has no {COLOR_TOPIC} (nor {COLOR_TOPIC}/{COLOUR_TRANSPORT}) "
                    f"(topics: {have})"
                )
            connections = [c for c in reader.connections if c.topic in topics]
            for connection, t_ns, raw in reader.messages(connections=connections):
                msg_type = TYPES.get(connection.msgtype)
                if msg_type is None:
                    continue
                topic = topics[connection.topic]
                if topic == COLOR_TOPIC and max_frames is not None and colours >= max_frames:
                    break
                msg = deserialize_message(bytes(raw), msg_type)
                if msg_type is CompressedImage:
                    try:
                        msg = _decompressed(msg, topic)
                    except ImageError as err:
                        reason = f"{connection.topic}: {err}"
                        skipped[reason] = skipped.get(reason, 0) + 1
                        continue
                if topic == COLOR_TOPIC:
                    colours += 1
                out.append(Recorded(topic, t_ns, msg))
    except ReplayError:
        raise
    except BagError as err:  # not found, not a bag, unreadable: already one line
        raise ReplayError(str(err)) from None
    except Exception as err:  # rosbags raises several types for broken bags
        if not out:
            raise ReplayError(f"cannot read {bag}: {err}") from err
    return out


def play(client: LoopbackClient, inputs: list[Recorded], rate: float) -> dict:
    """Publish ``inputs`` at ``rate`` x their recorded timing; returns send times by stamp."""
    publishers = {
        COLOR_TOPIC: client.color,
        DEPTH_TOPIC: client.depth,
        CAMERA_INFO_TOPIC: client.info,
    }
    sent: dict[tuple[int, int], float] = {}
    t0_bag = inputs[0].t_ns
    t0 = time.monotonic()
    for item in inputs:
        due = t0 + (item.t_ns - t0_bag) / 1e9 / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        if item.topic == COLOR_TOPIC:
            sent[stamp_key(item.msg.header)] = time.monotonic()
        publishers[item.topic].publish(item.msg)
    return {"sent": sent}


def _rate(times: list[float]) -> float | None:
    """Events per second: N events span N - 1 intervals (30 frames 1/30 s apart are 30 FPS,
    not 31); None for fewer than two."""
    if len(times) < 2 or max(times) <= min(times):
        return None
    return round((len(times) - 1) / (max(times) - min(times)), 2)


def summarize(client: LoopbackClient, sent: dict, rate: float) -> dict:
    """Latency, throughput and drops of one replay pass."""
    time.sleep(0.5)  # the last answers
    with client.lock:
        arrivals = dict(client.arrivals["labels"])
    latency = np.array([1000 * (arrivals[k] - t) for k, t in sent.items() if k in arrivals])
    answered = len(latency)
    answers = [arrivals[k] for k in sent if k in arrivals]
    return {
        "rate": rate,
        "sent": len(sent),
        "answered": answered,
        "dropped": len(sent) - answered,
        "input_fps": _rate(list(sent.values())),
        "output_fps": _rate(answers),
        "latency_ms_p50": p50_p99(latency)[0] if answered else None,
        "latency_ms_p99": p50_p99(latency)[1] if answered else None,
    }


def replay(
    bag: Path,
    *,
    model: Path | None = None,
    rate: float = 1.0,
    peak: bool = False,
    max_frames: int | None = None,
    threads: int = 0,
    node_params: dict | None = None,
    outputs: tuple[str, ...] = ("labels",),
    record: bool = False,
    connect_timeout: float = 60.0,
    log=print,
) -> dict:
    """Replay ``bag`` into a perception node and measure it.

    Args:
        bag: rosbag2 directory (mcap or sqlite3) with the RealSense topics.
        model: start ``perception_node`` with this model in its own process (on the shipped
            Fast DDS profile and this process's ROS_DOMAIN_ID); None drives a node that is
            already running on the ROS graph.
        rate: playback rate factor (1.0 = recorded timing).
        peak: after the pass at ``rate``, double the rate until fewer than 95 % of frames are
            answered; reports the highest rate and output FPS without drops.
        max_frames: replay at most this many colour frames.
        node_params: extra parameters for the started node.
        outputs: the node outputs to subscribe to (the node computes only those).
        record: also return ``recorded``: {bag stamp ns: {output: message}} of the first pass.

    Raises:
        ReplayError: unreadable bag, or no node connected within ``connect_timeout``.
    """
    skipped: dict[str, int] = {}
    inputs = load_inputs(bag, max_frames, skipped)
    if skipped:
        log(f"skipped {sum(skipped.values())} undecodable compressed frames: {skipped}")
    has_depth = any(r.topic == DEPTH_TOPIC for r in inputs)
    domain = int(os.environ.get("ROS_DOMAIN_ID", "0"))
    node = None
    if model is not None:
        params = {"use_depth": has_depth, "threads": threads, **(node_params or {})}
        node = start_node(Path(model), domain, **params)
    context = new_context(domain)
    client = LoopbackClient(context, outputs=outputs)
    spinner = Spinner(context, client)
    passes = []
    recorded = None
    try:
        try:
            client.wait_connected(timeout=connect_timeout)
        except TimeoutError as err:
            detail = ""
            if node is not None and node.poll() is not None:
                detail = f"; the node exited: {(node.stderr.read() or '').strip()[-500:]}"
            raise ReplayError(f"{err}{detail}") from None
        play(client, inputs[: min(len(inputs), 10)], rate=50.0)  # warm-up, not measured
        time.sleep(0.5)
        run = play(client, _shift(inputs), rate)
        passes.append(summarize(client, run["sent"], rate))
        log(_line(passes[-1]))
        recorded = _recorded(client, SHIFT_S) if record else None
        if peak:
            factor = rate
            while passes[-1]["answered"] >= 0.95 * passes[-1]["sent"] and factor < 256:
                factor *= 2
                run = play(client, _shift(inputs), factor)
                passes.append(summarize(client, run["sent"], factor))
                log(_line(passes[-1]))
    finally:
        spinner.stop()
        client.destroy_node()
        rclpy.shutdown(context=context)
        if node is not None:
            node.send_signal(signal.SIGINT)
            try:
                node.wait(timeout=30)
            except Exception:
                node.kill()
    result = {
        "bag": str(bag),
        "frames": sum(r.topic == COLOR_TOPIC for r in inputs),
        "skipped": skipped,
        "passes": passes,
    }
    if record:
        result["recorded"] = recorded
    if peak:
        clean = [p for p in passes if p["answered"] >= 0.95 * p["sent"]]
        best = max(clean, key=lambda p: p["output_fps"], default=None)
        result["peak"] = (
            None if best is None else {"rate": best["rate"], "output_fps": best["output_fps"]}
        )
    return result


SHIFT_S = 10_000


def _recorded(client: LoopbackClient, shift_s: int) -> dict[int, dict[str, object]]:
    """What the node published in the first pass, by the bag's original stamp (ns)."""
    out: dict[int, dict[str, object]] = {}
    with client.lock:
        for name, messages in client.received.items():
            for msg in messages:
                sec, nsec = stamp_key(msg.header)
                if sec >= shift_s:
                    out.setdefault((sec - shift_s) * 1_000_000_000 + nsec, {})[name] = msg
    return out


def _shift(inputs: list[Recorded], seconds: int = SHIFT_S) -> list[Recorded]:
    """Move every stamp forward, in place, so the answers of each pass are told apart (the
    node itself takes repeated or older stamps: it resets its stamp order)."""
    for item in inputs:
        item.msg.header.stamp.sec += seconds
    return inputs


def _line(p: dict) -> str:
    return (
        f"rate x{p['rate']:g}: answered {p['answered']}/{p['sent']}, "
        f"{p['output_fps']} FPS out of {p['input_fps']} in, latency p50 "
        f"{p['latency_ms_p50']} ms (p99 {p['latency_ms_p99']})"
    )
