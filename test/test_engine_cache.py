"""Engine cache logic on real files: hits, rebuild reasons, atomic writes, sidecar metadata.

TensorRT cannot run here, so the builder and deserializer are plain functions that make and
parse bytes: this tests the cache (keys, paths, sidecars, corruption handling), not TensorRT.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from lowlight_perception.inference.backend import BackendError
from lowlight_perception.inference.engine_cache import (
    EngineKey,
    cache_dirs,
    engine_path,
    load_engine_file,
    load_or_build,
    read_engine_metadata,
    read_onnx_metadata,
    read_sidecar,
    sha256_file,
    sidecar_path,
)
from lowlight_perception.metadata import MetadataError, ModelMetadata

META = ModelMetadata(
    model="lisu-tiny",
    class_names=("void", "bed", "wall"),
    palette=((0, 0, 0), (200, 10, 10), (10, 200, 10)),
    camera_size=(160, 120),
    net_size=(96, 64),
    training="random init",
)


class FakeTRT:
    """A builder that makes ``PLAN:<n>`` bytes and a deserializer that parses them."""

    def __init__(self) -> None:
        self.builds = 0
        self.logs: list[str] = []

    def build(self) -> bytes:
        self.builds += 1
        return b"PLAN:%d:" % self.builds + bytes(range(256))

    @staticmethod
    def deserialize(data: bytes) -> dict:
        if not data.startswith(b"PLAN:"):
            raise ValueError("magic tag mismatch")
        return {"engine": data.split(b":")[1].decode()}

    def load(self, onnx: Path, key: EngineKey, **kwargs):
        return load_or_build(
            onnx,
            key,
            build=self.build,
            deserialize=self.deserialize,
            metadata=META,
            log=self.logs.append,
            **kwargs,
        )


@pytest.fixture
def onnx(tmp_path: Path) -> Path:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"fake onnx bytes v1")
    return path


def make_key(onnx: Path, **changes) -> EngineKey:
    fields = dict(
        trt_version="10.3.0",
        gpu_name="NVIDIA Jetson Orin NX",
        compute_capability=(8, 7),
        precision="fp16",
    )
    fields.update(changes)
    return EngineKey.for_onnx(onnx, **fields)


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_second_call_hits_the_cache_and_builds_once(onnx):
    fake, key = FakeTRT(), make_key(onnx)
    engine, event = fake.load(onnx, key)
    assert str(event) == "built (missing)" and event.build_seconds >= 0 and event.cached
    assert engine == {"engine": "1"} and fake.builds == 1
    assert len(fake.logs) == 1 and "missing" in fake.logs[0]
    assert re.fullmatch(r"model\.fp16\.sm87\.[0-9a-f]{12}\.engine", event.path.name)
    assert event.path.parent == onnx.parent and sidecar_path(event.path).is_file()

    engine, again = fake.load(onnx, key)
    assert str(again) == "hit" and again.build_seconds == 0.0 and again.path == event.path
    assert engine == {"engine": "1"} and fake.builds == 1 and len(fake.logs) == 1


def test_sidecar_records_key_metadata_and_plan_checksum(onnx):
    fake, key = FakeTRT(), make_key(onnx)
    _, event = fake.load(onnx, key)
    info = read_sidecar(event.path)
    plan = event.path.read_bytes()
    assert info.key == key and info.trt_version == "10.3.0"
    assert info.engine_sha256 == hashlib.sha256(plan).hexdigest()
    assert info.engine_bytes == len(plan) and info.onnx_path == str(onnx)
    doc = json.loads(sidecar_path(event.path).read_text())
    assert doc["key"]["onnx_sha256"] == hashlib.sha256(onnx.read_bytes()).hexdigest()
    assert doc["key"]["compute_capability"] == [8, 7] and doc["built_at"]


def test_metadata_is_read_back_from_the_sidecar_alone(onnx, tmp_path):
    fake = FakeTRT()
    _, event = fake.load(onnx, make_key(onnx), cache_dir=tmp_path / "engines")
    onnx.unlink()  # the engine alone must carry classes, palette and sizes
    assert read_engine_metadata(event.path) == META


def test_changed_onnx_bytes_give_a_new_engine(onnx):
    fake = FakeTRT()
    _, first = fake.load(onnx, make_key(onnx))
    onnx.write_bytes(b"fake onnx bytes v2 (re-exported)")
    engine, second = fake.load(onnx, make_key(onnx))
    assert second.path != first.path and str(second) == "built (missing)"
    assert engine == {"engine": "2"} and fake.builds == 2


@pytest.mark.parametrize(
    "change",
    [
        {"precision": "fp32"},
        {"gpu_name": "NVIDIA H100 80GB HBM3", "compute_capability": (9, 0)},
        {"gpu_name": "NVIDIA Jetson AGX Orin"},
        {"trt_version": "10.8.0"},
        {"profile": ((32, 32, 3), (480, 640, 3), (1080, 1920, 3))},
    ],
)
def test_any_key_change_rebuilds(onnx, change):
    fake = FakeTRT()
    _, first = fake.load(onnx, make_key(onnx))
    _, second = fake.load(onnx, make_key(onnx, **change))
    assert fake.builds == 2 and second.status == "built" and second.path != first.path
    _, third = fake.load(onnx, make_key(onnx, **change))
    assert str(third) == "hit" and fake.builds == 2


def test_precision_and_sm_are_readable_in_the_file_name(onnx):
    key = make_key(onnx, precision="fp32", compute_capability=(9, 0))
    assert engine_path(onnx, key).name.startswith("model.fp32.sm90.")


def test_sidecar_key_mismatch_rebuilds_with_one_line_naming_the_field(onnx):
    fake, key = FakeTRT(), make_key(onnx)
    _, event = fake.load(onnx, key)
    side = sidecar_path(event.path)
    doc = json.loads(side.read_text())
    doc["key"]["trt_version"] = "10.0.1"
    side.write_text(json.dumps(doc))
    fake.logs.clear()
    _, again = fake.load(onnx, key)
    assert str(again) == "built (mismatch)" and fake.builds == 2
    assert len(fake.logs) == 1 and "trt_version: 10.0.1 -> 10.3.0" in fake.logs[0]
    assert read_sidecar(event.path).key == key  # the rebuilt plan's sidecar is the new key


def test_truncated_engine_is_rebuilt_with_one_log_line(onnx):
    fake, key = FakeTRT(), make_key(onnx)
    _, event = fake.load(onnx, key)
    plan = event.path.read_bytes()
    event.path.write_bytes(plan[: len(plan) // 2])
    fake.logs.clear()
    engine, again = fake.load(onnx, key)
    assert str(again) == "built (corrupt)" and "truncated" in again.detail
    assert engine == {"engine": "2"} and len(fake.logs) == 1 and "corrupt" in fake.logs[0]
    assert "truncated" in fake.logs[0]
    assert str(fake.load(onnx, key)[1]) == "hit"


def test_damaged_engine_of_the_same_size_is_caught_by_its_checksum(onnx):
    fake, key = FakeTRT(), make_key(onnx)
    _, event = fake.load(onnx, key)
    plan = bytearray(event.path.read_bytes())
    plan[-1] ^= 0xFF
    event.path.write_bytes(bytes(plan))
    fake.logs.clear()
    _, again = fake.load(onnx, key)
    assert str(again) == "built (corrupt)" and "sha256" in again.detail and len(fake.logs) == 1


def _replace_plan(path: Path, data: bytes) -> None:
    """Swap the plan and re-stamp its sidecar, as if TensorRT itself had written bad bytes."""
    path.write_bytes(data)
    side = sidecar_path(path)
    doc = json.loads(side.read_text())
    doc["engine_sha256"] = hashlib.sha256(data).hexdigest()
    doc["engine_bytes"] = len(data)
    side.write_text(json.dumps(doc))


def test_engine_the_deserializer_rejects_is_rebuilt(onnx):
    fake, key = FakeTRT(), make_key(onnx)
    _, event = fake.load(onnx, key)
    _replace_plan(event.path, b"garbage that is not a plan")
    fake.logs.clear()
    _, again = fake.load(onnx, key)
    assert str(again) == "built (corrupt)" and fake.builds == 2
    assert len(fake.logs) == 1 and "magic tag mismatch" in fake.logs[0]


def test_deserializer_returning_none_counts_as_corrupt(onnx):
    fake, key = FakeTRT(), make_key(onnx)
    fake.load(onnx, key)
    engine, event = load_or_build(
        onnx,
        key,
        build=fake.build,
        deserialize=lambda data: None if fake.builds == 1 else fake.deserialize(data),
        metadata=META,
        log=fake.logs.append,
    )
    assert str(event) == "built (corrupt)" and engine == {"engine": "2"}
    assert "returned no engine" in event.detail


@pytest.mark.parametrize("sidecar", ["{not json", "", '{"key": {}}', None])
def test_corrupt_or_missing_sidecar_rebuilds(onnx, sidecar):
    fake, key = FakeTRT(), make_key(onnx)
    _, event = fake.load(onnx, key)
    side = sidecar_path(event.path)
    if sidecar is None:
        side.unlink()
    else:
        side.write_text(sidecar)
    fake.logs.clear()
    _, again = fake.load(onnx, key)
    assert str(again) == "built (corrupt)" and fake.builds == 2
    assert len(fake.logs) == 1 and "sidecar" in fake.logs[0]
    assert read_sidecar(event.path).key == key


def test_policy_always_rebuilds_a_valid_engine(onnx):
    fake, key = FakeTRT(), make_key(onnx)
    fake.load(onnx, key)
    engine, event = fake.load(onnx, key, policy="always")
    assert str(event) == "built (always)" and engine == {"engine": "2"} and fake.builds == 2


def test_policy_never_loads_a_valid_engine_and_refuses_to_build(onnx):
    """A read-only drone image: the engine was built ahead; a stale one is an error naming the
    command that builds it, never a build in the air."""
    fake, key = FakeTRT(), make_key(onnx)
    with pytest.raises(
        BackendError,
        match=r"missing: .*build policy is never.*lowlight "
        r"build-engine --onnx .*model\.onnx --precision fp16",
    ):
        fake.load(onnx, key, policy="never")
    assert fake.builds == 0 and not list(onnx.parent.glob("*.engine"))
    fake.load(onnx, key)
    engine, event = fake.load(onnx, key, policy="never")
    assert str(event) == "hit" and engine == {"engine": "1"} and fake.builds == 1
    with pytest.raises(BackendError, match="build policy is never"):
        fake.load(onnx, make_key(onnx, trt_version="10.8.0"), policy="never")
    with pytest.raises(BackendError, match="policy must be one of never, if_missing, always"):
        fake.load(onnx, key, policy="sometimes")
    assert fake.builds == 1


def test_build_failure_raises_and_leaves_no_temp_files_nor_damage(onnx):
    fake, key = FakeTRT(), make_key(onnx)
    _, event = fake.load(onnx, key)
    before = event.path.read_bytes()

    def failing_build() -> bytes:
        raise BackendError("TensorRT could not build model.onnx: out of workspace")

    with pytest.raises(BackendError, match="out of workspace"):
        load_or_build(
            onnx,
            key,
            build=failing_build,
            deserialize=fake.deserialize,
            metadata=META,
            policy="always",
            log=fake.logs.append,
        )
    assert event.path.read_bytes() == before and leftovers(onnx.parent) == []

    def crashing_build() -> bytes:
        raise RuntimeError("segment\nfault")

    with pytest.raises(BackendError, match="RuntimeError: segment fault"):
        load_or_build(
            onnx,
            make_key(onnx, precision="fp32"),
            build=crashing_build,
            deserialize=fake.deserialize,
            metadata=META,
            log=fake.logs.append,
        )
    assert leftovers(onnx.parent) == []
    names = sorted(p.name.split(".")[-1] for p in onnx.parent.iterdir())
    assert names == ["engine", "json", "lock", "lock", "onnx"]  # one lock per plan built


def test_a_fresh_plan_that_does_not_deserialize_is_an_error(onnx):
    with pytest.raises(BackendError, match="does not load"):
        load_or_build(
            onnx,
            make_key(onnx),
            build=lambda: b"not a plan",
            deserialize=FakeTRT.deserialize,
            metadata=META,
            log=lambda _: None,
        )
    assert not list(onnx.parent.glob("*.engine"))


def test_unwritable_cache_still_returns_the_engine(onnx, tmp_path):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where the cache dir should be")
    fake = FakeTRT()
    engine, event = fake.load(onnx, make_key(onnx), cache_dir=blocker / "engines")
    assert engine == {"engine": "1"} and event.status == "built" and not event.cached
    assert len(fake.logs) == 2 and "is not cached" in fake.logs[1]
    assert "rebuilt on every start" in fake.logs[1] and "build policy never" in fake.logs[1]


def _read_only_scenario(root: str) -> None:
    """Plans of an ONNX in a read-only ``root/models``; XDG cache in ``root/xdg``."""
    models, onnx = Path(root) / "models", Path(root) / "models" / "model.onnx"
    os.environ["XDG_CACHE_HOME"] = str(Path(root) / "xdg")
    assert not os.access(models, os.W_OK)
    assert cache_dirs(onnx) == [models, Path(root) / "xdg" / "lowlight_perception" / "engines"]
    fake, key = FakeTRT(), make_key(onnx)
    _, event = fake.load(onnx, key)  # the plan built ahead, at image build time
    assert str(event) == "hit" and event.path.parent == models and fake.builds == 0
    _, built = fake.load(onnx, make_key(onnx, trt_version="10.8.0"))
    assert built.cached and built.path.parent == cache_dirs(onnx)[1] and fake.builds == 1
    _, again = fake.load(onnx, make_key(onnx, trt_version="10.8.0"))
    assert str(again) == "hit" and fake.builds == 1


def _as_nobody(root: str) -> None:
    os.setgid(65534)
    os.setuid(65534)  # root ignores permissions; the user a drone's node runs as does not
    _read_only_scenario(root)


def test_a_read_only_onnx_directory_caches_in_the_user_cache(tmp_path):
    """An installed package (share/lowlight_perception/models is root-owned, read-only): a
    plan built ahead next to the ONNX is found; a new one goes to
    $XDG_CACHE_HOME/lowlight_perception/engines and is found there next time."""
    root = Path(tempfile.mkdtemp(dir="/tmp"))  # reachable by another user (tmp_path is 0700)
    try:
        models = root / "models"
        models.mkdir()
        onnx = models / "model.onnx"
        onnx.write_bytes(b"fake onnx bytes v1")
        FakeTRT().load(onnx, make_key(onnx))  # built while the directory was writable
        models.chmod(0o555)
        (root / "xdg").mkdir()
        root.chmod(0o755)
        if os.geteuid() != 0:
            _read_only_scenario(str(root))
            return
        os.chown(root / "xdg", 65534, 65534)
        child = multiprocessing.get_context("fork").Process(target=_as_nobody, args=(str(root),))
        child.start()
        child.join(30)
        assert child.exitcode == 0
    finally:
        models.chmod(0o755)
        shutil.rmtree(root, ignore_errors=True)


def test_engines_go_to_the_cache_dir_when_given(onnx, tmp_path):
    fake = FakeTRT()
    _, event = fake.load(onnx, make_key(onnx), cache_dir=tmp_path / "cache" / "trt")
    assert event.path.parent == tmp_path / "cache" / "trt"
    assert not list(onnx.parent.glob("*.engine"))


def test_load_engine_file_checks_runtime_and_integrity(onnx):
    fake, key = FakeTRT(), make_key(onnx)
    _, event = fake.load(onnx, key)
    warnings: list[str] = []
    engine, info = load_engine_file(
        event.path,
        fake.deserialize,
        trt_version="10.3.0",
        compute_capability=(8, 7),
        gpu_name="NVIDIA Jetson AGX Orin",
        log=warnings.append,
    )
    assert engine == {"engine": "1"} and info.metadata == META
    assert len(warnings) == 1 and "Jetson Orin NX" in warnings[0]

    with pytest.raises(BackendError, match=r"built with TensorRT 10\.3\.0 for sm87.*build-engine"):
        load_engine_file(
            event.path, fake.deserialize, trt_version="10.8.0", compute_capability=(8, 7)
        )
    with pytest.raises(BackendError, match="sm90"):
        load_engine_file(
            event.path, fake.deserialize, trt_version="10.3.0", compute_capability=(9, 0)
        )
    event.path.write_bytes(event.path.read_bytes()[:10])
    with pytest.raises(BackendError, match="corrupt"):
        load_engine_file(
            event.path, fake.deserialize, trt_version="10.3.0", compute_capability=(8, 7)
        )


def test_engine_without_sidecar_says_how_to_build_one(tmp_path):
    plan = tmp_path / "model.engine"
    plan.write_bytes(b"PLAN:1:")
    with pytest.raises(BackendError, match="lowlight build-engine"):
        read_engine_metadata(plan)


def test_key_validation_and_digest(onnx):
    with pytest.raises(BackendError, match="INT8 is not supported"):
        make_key(onnx, precision="int8")
    a, b = make_key(onnx), make_key(onnx)
    assert a == b and a.digest() == b.digest() and a.sm == "sm87"
    assert EngineKey.from_dict(json.loads(json.dumps(a.to_dict()))) == a
    assert make_key(onnx, trt_version="10.4.0").digest() != a.digest()


def test_sha256_file_streams_in_chunks(tmp_path):
    path = tmp_path / "big.bin"
    data = bytes(range(256)) * 5000
    path.write_bytes(data)
    assert sha256_file(path, chunk_bytes=4096) == hashlib.sha256(data).hexdigest()


def _tiny_onnx(path: Path, props: dict[str, str]) -> Path:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["frame"], ["labels"])],
        "g",
        [helper.make_tensor_value_info("frame", TensorProto.UINT8, [4, 4])],
        [helper.make_tensor_value_info("labels", TensorProto.UINT8, [4, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    for k, v in props.items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(path))
    return path


def test_read_onnx_metadata(tmp_path):
    path = _tiny_onnx(tmp_path / "m.onnx", META.to_props())
    assert read_onnx_metadata(path) == META
    bare = _tiny_onnx(tmp_path / "bare.onnx", {})
    with pytest.raises(MetadataError, match=r"bare\.onnx"):
        read_onnx_metadata(bare)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00\x01 definitely not protobuf \xff" * 10)
    with pytest.raises(BackendError, match="not a readable ONNX"):
        read_onnx_metadata(junk)
    with pytest.raises(BackendError, match="not found"):
        read_onnx_metadata(tmp_path / "missing.onnx")


def _build_in_process(onnx: str, out: str, start: float) -> None:
    """One of two processes starting together (a node and `lowlight build-engine`)."""
    onnx_path = Path(onnx)
    key = make_key(onnx_path)

    def slow_build() -> bytes:
        with open(out, "a") as handle:
            handle.write(f"{os.getpid()}\n")
        time.sleep(0.5)  # long enough for the other process to arrive mid-build
        return b"PLAN:%d:" % os.getpid() + bytes(range(256))

    while time.time() < start:
        time.sleep(0.005)
    engine, event = load_or_build(
        onnx_path,
        key,
        build=slow_build,
        deserialize=FakeTRT.deserialize,
        metadata=META,
        log=lambda _: None,
    )
    with open(out, "a") as handle:
        handle.write(f"{event.status} {engine['engine']}\n")


def test_two_processes_starting_together_build_once_and_agree(onnx, tmp_path):
    """Real processes: without the lock both built, and plan A could meet sidecar B."""
    out = tmp_path / "events.txt"
    start = time.time() + 0.3
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_build_in_process, args=(str(onnx), str(out), start)) for _ in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    lines = out.read_text().split()
    builders = [line for line in out.read_text().splitlines() if line.isdigit()]
    results = sorted(out.read_text().splitlines()[len(builders) :])
    assert len(builders) == 1, lines  # one build
    assert [r.split()[0] for r in results] == ["built", "hit"]
    assert {r.split()[1] for r in results} == {builders[0]}  # both run the same plan
    (plan,) = onnx.parent.glob("*.engine")
    info = read_sidecar(plan)
    assert info.engine_sha256 == hashlib.sha256(plan.read_bytes()).hexdigest()
