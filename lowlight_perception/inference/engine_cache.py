"""TensorRT engine cache: build a plan once per model, TensorRT version, GPU, precision and
shape profile.

Why: building an engine takes seconds to minutes, and a plan only runs on the TensorRT version
and GPU it was built for. Isaac ROS rebuilds on every start by default; we key each plan on what
makes it valid (the ONNX file's sha256, the TensorRT version, the GPU's name and compute
capability, the precision, the optimisation profile's min / opt / max frame shapes, and our
metadata format) and reuse it until one of those changes. What happens when no valid plan is
found is the build policy: ``if_missing`` (default) builds it, with one log line saying why;
``never`` refuses with an error naming the command that builds it (a read-only drone image
never builds by surprise in the air); ``always`` rebuilds. A failing build is an error.

Two processes starting at once (a node and ``lowlight build-engine``, two nodes) take a lock
file beside the plan, so one builds and the other then finds its plan: never plan A with the
sidecar of B.

Files, next to the ONNX by default (or, when that directory is read-only, in the user cache
``$XDG_CACHE_HOME/lowlight_perception/engines``, after looking next to the ONNX), or in a cache
directory::

    <onnx stem>.<precision>.sm<XY>.<12 hex of the key>.engine       the serialized plan
    <onnx stem>.<precision>.sm<XY>.<12 hex of the key>.engine.json  its sidecar

The plan is written atomically (a temporary file in the same directory, then ``os.replace``),
the sidecar after it. The sidecar carries the full key, the model's ``ModelMetadata`` (so an
engine alone knows its classes, palette and sizes), the plan's sha256 and size (a truncated or
damaged plan is caught before TensorRT sees it), the build time and the TensorRT version.

Pure Python: no TensorRT here. The build and deserialize steps are passed in as callables, so
the cache logic is tested on machines without a GPU.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from .. import atomic
from ..errors import one_line
from ..metadata import FORMAT_VERSION, MetadataError, ModelMetadata
from .backend import BackendError

CACHE_FORMAT = 3  # bump when the file naming, the sidecar layout or the key's fields change
PRECISIONS = ("fp16", "fp32")
BUILD_POLICIES = ("never", "if_missing", "always")
ENGINE_SUFFIXES = (".engine", ".plan")
SIDECAR_SUFFIX = ".json"
KEY_HASH_CHARS = 12

logger = logging.getLogger("lowlight_perception.inference")
T = TypeVar("T")


def sha256_file(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks (ONNX files can be hundreds of MB).

    Raises:
        OSError: if the file cannot be read.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class EngineKey:
    """Everything a serialized TensorRT plan is valid for.

    Attributes:
        onnx_sha256: hex sha256 of the ONNX file the plan was built from.
        trt_version: ``tensorrt.__version__`` of the builder (plans are not portable across it).
        gpu_name: the CUDA device's name, e.g. "NVIDIA H100 80GB HBM3".
        compute_capability: (major, minor), e.g. (9, 0); the file name shows it as "sm90".
        precision: "fp16" or "fp32".
        profile: the optimisation profile's (min, opt, max) input shapes (H, W, 3) for an
            any-size graph; empty for a graph of fixed size.
        metadata_format: ``metadata.FORMAT_VERSION`` of the sidecar's metadata.
        cache_format: ``CACHE_FORMAT`` of this module.
    """

    onnx_sha256: str
    trt_version: str
    gpu_name: str
    compute_capability: tuple[int, int]
    precision: str
    profile: tuple[tuple[int, ...], ...] = ()
    metadata_format: int = FORMAT_VERSION
    cache_format: int = CACHE_FORMAT

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise BackendError(
                f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
                + (" (INT8 is not supported)" if str(self.precision).lower() == "int8" else "")
            )
        cc = tuple(int(v) for v in self.compute_capability)
        if len(cc) != 2:
            raise BackendError(f"compute capability must be (major, minor), got {cc}")
        object.__setattr__(self, "compute_capability", cc)
        profile = tuple(tuple(int(d) for d in shape) for shape in self.profile)
        if profile and len(profile) != 3:
            raise BackendError(f"a shape profile is (min, opt, max), got {profile}")
        object.__setattr__(self, "profile", profile)

    @classmethod
    def for_onnx(
        cls,
        onnx_path: str | Path,
        *,
        trt_version: str,
        gpu_name: str,
        compute_capability: tuple[int, int],
        precision: str,
        profile: tuple[tuple[int, ...], ...] = (),
    ) -> EngineKey:
        """The key of ``onnx_path`` (hashed here) on the given TensorRT and GPU."""
        return cls(
            onnx_sha256=sha256_file(onnx_path),
            trt_version=trt_version,
            gpu_name=gpu_name,
            compute_capability=compute_capability,
            precision=precision,
            profile=profile,
        )

    @property
    def sm(self) -> str:
        """Compute capability as in CUDA arch names: (8, 7) -> "sm87"."""
        return f"sm{self.compute_capability[0]}{self.compute_capability[1]}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (compute capability as a list)."""
        doc = asdict(self)
        doc["compute_capability"] = list(self.compute_capability)
        doc["profile"] = [list(shape) for shape in self.profile]
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> EngineKey:
        """Inverse of ``to_dict``.

        Raises:
            KeyError, TypeError, ValueError, BackendError: if ``doc`` is not a key.
        """
        return cls(
            onnx_sha256=str(doc["onnx_sha256"]),
            trt_version=str(doc["trt_version"]),
            gpu_name=str(doc["gpu_name"]),
            compute_capability=tuple(doc["compute_capability"]),
            precision=str(doc["precision"]),
            profile=tuple(tuple(shape) for shape in doc["profile"]),
            metadata_format=int(doc["metadata_format"]),
            cache_format=int(doc["cache_format"]),
        )

    def digest(self) -> str:
        """Hex sha256 of the canonical JSON of the key."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def differences(self, other: EngineKey) -> list[str]:
        """Human-readable ``field: mine -> other`` for every field that differs."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [f"{k}: {mine[k]} -> {theirs[k]}" for k in mine if mine[k] != theirs[k]]


@dataclass(frozen=True)
class EngineInfo:
    """The sidecar of a plan (``<engine>.json``).

    Attributes:
        key: what the plan is valid for.
        metadata: the model's metadata (classes, palette, camera and net sizes).
        engine_sha256: hex sha256 of the plan bytes.
        engine_bytes: size of the plan in bytes.
        built_at: ISO 8601 UTC time of the build.
        build_seconds: how long the build took.
        trt_version: TensorRT version of the builder (also in ``key``; kept at top level for
            people reading the file).
        onnx_path: the ONNX the plan was built from, as given at build time (informative).
    """

    key: EngineKey
    metadata: ModelMetadata
    engine_sha256: str
    engine_bytes: int
    built_at: str
    build_seconds: float
    trt_version: str
    onnx_path: str = ""

    def to_json(self) -> str:
        """The sidecar's text."""
        doc = {
            "key": self.key.to_dict(),
            "metadata": self.metadata.to_props(),
            "engine_sha256": self.engine_sha256,
            "engine_bytes": self.engine_bytes,
            "built_at": self.built_at,
            "build_seconds": round(self.build_seconds, 3),
            "trt_version": self.trt_version,
            "onnx_path": self.onnx_path,
        }
        return json.dumps(doc, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> EngineInfo:
        """Parse a sidecar.

        Raises:
            ValueError, KeyError, TypeError, BackendError, MetadataError: malformed sidecar.
        """
        doc = json.loads(text)
        return cls(
            key=EngineKey.from_dict(doc["key"]),
            metadata=ModelMetadata.from_props(doc["metadata"]),
            engine_sha256=str(doc["engine_sha256"]),
            engine_bytes=int(doc["engine_bytes"]),
            built_at=str(doc["built_at"]),
            build_seconds=float(doc["build_seconds"]),
            trt_version=str(doc["trt_version"]),
            onnx_path=str(doc.get("onnx_path", "")),
        )


@dataclass(frozen=True)
class CacheEvent:
    """What ``load_or_build`` did.

    Attributes:
        status: "hit" or "built".
        reason: why it built: "missing", "mismatch", "corrupt" or "always" (the build
            policy; "" on a hit).
        detail: the specifics of ``reason`` (which key fields changed, what was corrupt).
        build_seconds: time spent in the builder (0 on a hit).
        path: the plan's path.
        cached: False when a built plan could not be written (it is rebuilt next time).
    """

    status: str
    path: Path
    reason: str = ""
    detail: str = ""
    build_seconds: float = 0.0
    cached: bool = True

    def __str__(self) -> str:
        return self.status if self.status == "hit" else f"{self.status} ({self.reason})"


def engine_path(onnx_path: str | Path, key: EngineKey, cache_dir: str | Path | None = None) -> Path:
    """Where the plan of ``onnx_path`` under ``key`` lives.

    Args:
        onnx_path: the source ONNX.
        key: its engine key.
        cache_dir: directory for plans; default: the ONNX file's directory.

    Returns:
        ``<dir>/<onnx stem>.<precision>.<sm>.<12 hex of the key>.engine``.
    """
    onnx_path = Path(onnx_path)
    directory = Path(cache_dir) if cache_dir is not None else onnx_path.parent
    name = f"{onnx_path.stem}.{key.precision}.{key.sm}.{key.digest()[:KEY_HASH_CHARS]}.engine"
    return directory / name


def sidecar_path(engine: str | Path) -> Path:
    """The sidecar of a plan: ``x.engine`` -> ``x.engine.json``."""
    engine = Path(engine)
    return engine.with_name(engine.name + SIDECAR_SUFFIX)


def read_sidecar(engine: str | Path) -> EngineInfo:
    """Read the sidecar of a plan.

    Raises:
        BackendError: missing (with how to make one) or unreadable sidecar.
    """
    path = sidecar_path(engine)
    if not path.is_file():
        raise BackendError(
            f"{path.name} not found next to {Path(engine).name}: an engine needs the sidecar "
            "that `lowlight build-engine --onnx MODEL.onnx` writes (classes, palette, sizes, "
            "build key); build the engine with it"
        )
    try:
        return EngineInfo.from_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError, LookupError, MetadataError) as err:
        raise BackendError(f"unreadable engine sidecar {path}: {one_line(err)}") from err
    except BackendError as err:
        raise BackendError(f"unreadable engine sidecar {path}: {err}") from err


def read_engine_metadata(engine: str | Path) -> ModelMetadata:
    """The ``ModelMetadata`` of a plan, from its sidecar alone (no TensorRT needed).

    Raises:
        BackendError: missing or unreadable sidecar.
    """
    return read_sidecar(engine).metadata


def read_onnx_metadata(onnx_path: str | Path) -> ModelMetadata:
    """The ``ModelMetadata`` stored in an exported ONNX's ``metadata_props``.

    Reads with the ``onnx`` package when installed (no session is built), else with ONNX
    Runtime on the CPU.

    Raises:
        BackendError: missing or unreadable file, or neither onnx nor onnxruntime installed.
        MetadataError: the file carries no (or incompatible) lowlight metadata.
    """
    path = Path(onnx_path)
    if not path.is_file():
        raise BackendError(f"model not found: {path}")
    try:
        props = _onnx_props(path)
    except BackendError:
        raise
    except Exception as err:  # protobuf / ORT raise many types for a bad file
        raise BackendError(
            f"{path} is not a readable ONNX model: {type(err).__name__}: {one_line(err)}"
        ) from err
    try:
        return ModelMetadata.from_props(props)
    except MetadataError as err:
        raise MetadataError(f"{path}: {err}") from err


def _onnx_props(path: Path) -> dict[str, str]:
    try:
        import onnx
    except ImportError:
        onnx = None
    if onnx is not None:
        model = onnx.load(str(path), load_external_data=False)
        return {p.key: p.value for p in model.metadata_props}
    try:
        import onnxruntime as ort
    except ImportError as err:
        raise BackendError(
            "reading ONNX metadata needs onnx or onnxruntime (pip install onnxruntime)"
        ) from err
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(session.get_modelmeta().custom_metadata_map)


def user_cache_dir() -> Path:
    """Where plans go when the ONNX's own directory is read-only (an installed package)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lowlight_perception" / "engines"


def cache_dirs(onnx_path: str | Path, cache_dir: str | Path | None = None) -> list[Path]:
    """The directories a plan of ``onnx_path`` is looked for in, in order; a new plan goes to
    the first writable one: ``cache_dir`` alone when given, else the ONNX's directory, then
    the user cache."""
    if cache_dir is not None:
        return [Path(cache_dir)]
    return [Path(onnx_path).parent, user_cache_dir()]


def load_or_build(
    onnx_path: str | Path,
    key: EngineKey,
    *,
    build: Callable[[], bytes],
    deserialize: Callable[[bytes], T | None],
    metadata: ModelMetadata | None = None,
    cache_dir: str | Path | None = None,
    policy: str = "if_missing",
    log: Callable[[str], None] | None = None,
) -> tuple[T, CacheEvent]:
    """Load the cached plan of ``onnx_path`` under ``key``, or build, cache and load it.

    A plan that is missing, whose sidecar key differs from ``key`` (mismatch), or that cannot
    be used (corrupt: missing or unreadable sidecar, size or sha256 differing from the
    sidecar, ``deserialize`` raising or returning None) is built when ``policy`` allows it,
    with exactly one log line saying why. Building holds a lock file beside the plan, and
    looks again once it holds it, so processes starting together build once. A plan that
    cannot be written (no writable directory) is still returned, with a warning that it will
    be rebuilt on every start.

    Args:
        onnx_path: the source ONNX.
        key: what the plan must be valid for (see ``EngineKey.for_onnx``).
        build: returns the serialized plan; raises ``BackendError`` with the builder's message.
        deserialize: turns plan bytes into the runtime engine; may raise or return None.
        metadata: written to the sidecar; default: read from ``onnx_path``.
        cache_dir: directory for plans (created if needed); default: see ``cache_dirs``.
        policy: "if_missing" (build when no valid plan is cached), "never" (no valid plan is
            an error) or "always" (rebuild).
        log: where the one line goes; default: the package logger (info for missing or
            always, warning for mismatch or corrupt).

    Returns:
        (the deserialized engine, what happened).

    Raises:
        BackendError: unknown policy; no valid plan under policy "never"; the build failed,
            or a freshly built plan does not deserialize.
    """
    if policy not in BUILD_POLICIES:
        raise BackendError(
            f"engine build policy must be one of {', '.join(BUILD_POLICIES)}, got {policy!r}"
        )
    onnx_path = Path(onnx_path)
    dirs = cache_dirs(onnx_path, cache_dir)
    reason, detail = "always", "the build policy is always"
    if policy != "always":
        engine, path, reason, detail = _find_cached(onnx_path, key, dirs, deserialize)
        if engine is not None:
            return engine, CacheEvent("hit", path)
    if policy == "never":
        where = f" --cache-dir {cache_dir}" if cache_dir is not None else ""
        raise BackendError(
            f"no usable TensorRT engine for {onnx_path.name} ({reason}: {detail}) and the "
            f"build policy is never: build it on this machine with `lowlight build-engine "
            f"--onnx {onnx_path} --precision {key.precision}{where}`"
        )
    target = _writable(dirs)
    path = engine_path(onnx_path, key, target or dirs[0])
    with _build_lock(path if target else None, log or logger.info):
        if policy != "always":  # another process may have built it while we waited
            engine, _, _ = _try_cached(path, key, deserialize)
            if engine is not None:
                return engine, CacheEvent("hit", path)
        if metadata is None:
            metadata = read_onnx_metadata(onnx_path)
        line = f"TensorRT engine {path.name}: building ({reason}: {detail})"
        if log is not None:
            log(line)
        elif reason in ("missing", "always"):
            logger.info(line)
        else:
            logger.warning(line)
        engine, info, plan = _build(onnx_path, key, build, deserialize, metadata)
        problem = (
            _store(path, plan, info)
            if target
            else (f"no writable directory among {', '.join(str(d) for d in dirs)}")
        )
    if problem:
        (log or logger.warning)(
            f"TensorRT engine {path.name} is not cached ({problem}): it is rebuilt on every "
            "start; give a writable engine cache directory, or build it once with `lowlight "
            "build-engine` and run with the build policy never"
        )
    return engine, CacheEvent("built", path, reason, detail, info.build_seconds, not problem)


def _find_cached(
    onnx_path: Path, key: EngineKey, dirs: list[Path], deserialize: Callable[[bytes], T | None]
) -> tuple[T | None, Path, str, str]:
    """The first usable plan in ``dirs``: (engine, path, "", ""), else (None, the first
    directory's path, reason, detail), the reason being the most telling one found."""
    first = engine_path(onnx_path, key, dirs[0])
    found = ("missing", f"no engine at {first}")
    for directory in dirs:
        path = engine_path(onnx_path, key, directory)
        engine, reason, detail = _try_cached(path, key, deserialize)
        if engine is not None:
            return engine, path, "", ""
        if reason != "missing" and found[0] == "missing":
            found = (reason, detail)
    return None, first, *found


def _writable(dirs: list[Path]) -> Path | None:
    """The first of ``dirs`` that exists (or can be made) and can be written, else None."""
    for directory in dirs:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(directory, os.W_OK | os.X_OK):
            return directory
    return None


@contextlib.contextmanager
def _build_lock(path: Path | None, log: Callable[[str], None]):
    """Hold ``<plan>.lock`` (an advisory ``flock``) while building ``path``; without a
    writable directory there is nothing to share, so no lock."""
    if path is None:
        yield
        return
    try:
        handle = open(path.with_name(path.name + ".lock"), "a+b")
    except OSError:
        yield
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"TensorRT engine {path.name}: another process is building it; waiting")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(
    onnx_path: Path,
    key: EngineKey,
    build: Callable[[], bytes],
    deserialize: Callable[[bytes], T | None],
    metadata: ModelMetadata,
) -> tuple[T, EngineInfo, bytes]:
    """Run the builder and check its plan loads: (engine, sidecar, plan bytes)."""
    start = time.perf_counter()
    try:
        plan = build()
    except BackendError:
        raise
    except Exception as err:  # a builder wrapper may raise anything; report it in one line
        raise BackendError(
            f"building the TensorRT engine for {onnx_path.name} failed: "
            f"{type(err).__name__}: {one_line(err)}"
        ) from err
    seconds = time.perf_counter() - start
    plan = bytes(plan) if plan is not None else b""
    if not plan:
        raise BackendError(f"building the TensorRT engine for {onnx_path.name} gave no plan")
    engine, problem = _deserialize(plan, deserialize)
    if problem:
        raise BackendError(f"the engine just built for {onnx_path.name} does not load: {problem}")
    info = EngineInfo(
        key=key,
        metadata=metadata,
        engine_sha256=hashlib.sha256(plan).hexdigest(),
        engine_bytes=len(plan),
        built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        build_seconds=seconds,
        trt_version=key.trt_version,
        onnx_path=str(onnx_path),
    )
    return engine, info, plan


def _store(path: Path, plan: bytes, info: EngineInfo) -> str:
    """Write plan then sidecar (each atomically): "" or why it failed."""
    try:
        atomic.write_bytes(path, plan)
        try:
            atomic.write_text(sidecar_path(path), info.to_json())
        except OSError:
            path.unlink(missing_ok=True)  # a plan without its sidecar is useless
            raise
    except OSError as err:
        return one_line(err)
    return ""


def load_engine_file(
    engine: str | Path,
    deserialize: Callable[[bytes], T | None],
    *,
    trt_version: str,
    compute_capability: tuple[int, int],
    gpu_name: str = "",
    log: Callable[[str], None] | None = None,
) -> tuple[T, EngineInfo]:
    """Load a plan given directly (no ONNX to rebuild from): every problem is an error.

    Args:
        engine: the ``.engine`` / ``.plan`` file; its sidecar must sit next to it.
        deserialize: turns plan bytes into the runtime engine; may raise or return None.
        trt_version: this machine's TensorRT version (must equal the builder's).
        compute_capability: this GPU's (major, minor) (must equal the builder's).
        gpu_name: this GPU's name; a different name with the same compute capability only
            logs a warning (TensorRT runs it, possibly slower).
        log: where that warning goes; default: the package logger.

    Returns:
        (the deserialized engine, its sidecar).

    Raises:
        BackendError: missing sidecar, built for another TensorRT or GPU, corrupt file.
    """
    engine = Path(engine)
    info = read_sidecar(engine)
    here = (trt_version, tuple(compute_capability))
    built = (info.key.trt_version, info.key.compute_capability)
    if here != built:
        source = info.onnx_path or "MODEL.onnx"
        raise BackendError(
            f"{engine.name} was built with TensorRT {built[0]} for sm{built[1][0]}{built[1][1]}; "
            f"this machine has TensorRT {here[0]} on sm{here[1][0]}{here[1][1]}: rebuild it "
            f"here with `lowlight build-engine --onnx {source}`"
        )
    if gpu_name and info.key.gpu_name != gpu_name:
        (log or logger.warning)(
            f"{engine.name} was built on {info.key.gpu_name}, running on {gpu_name} "
            "(same compute capability): it may run slower than an engine built here"
        )
    try:
        data = engine.read_bytes()
    except OSError as err:
        raise BackendError(f"cannot read engine {engine}: {one_line(err)}") from err
    problem = _check_plan(data, info)
    if problem:
        raise BackendError(f"engine {engine} is corrupt: {problem}; rebuild it")
    loaded, problem = _deserialize(data, deserialize)
    if problem:
        raise BackendError(f"engine {engine} does not load: {problem}; rebuild it")
    return loaded, info


def _try_cached(
    path: Path, key: EngineKey, deserialize: Callable[[bytes], T | None]
) -> tuple[T | None, str, str]:
    """(engine, "", "") for a usable cached plan, else (None, reason, detail)."""
    if not path.is_file():
        return None, "missing", f"no engine at {path}"
    try:
        info = read_sidecar(path)
    except BackendError as err:
        return None, "corrupt", str(err)
    if info.key != key:
        return None, "mismatch", "; ".join(info.key.differences(key))
    try:
        data = path.read_bytes()
    except OSError as err:
        return None, "corrupt", f"cannot read it: {one_line(err)}"
    problem = _check_plan(data, info)
    if problem:
        return None, "corrupt", problem
    engine, problem = _deserialize(data, deserialize)
    if problem:
        return None, "corrupt", problem
    return engine, "", ""


def _check_plan(data: bytes, info: EngineInfo) -> str:
    """An empty string when ``data`` is the plan the sidecar describes, else what differs."""
    if len(data) != info.engine_bytes:
        return f"{len(data)} bytes on disk, sidecar says {info.engine_bytes} (truncated?)"
    if hashlib.sha256(data).hexdigest() != info.engine_sha256:
        return "sha256 differs from the sidecar (file damaged or replaced)"
    return ""


def _deserialize(data: bytes, deserialize: Callable[[bytes], T | None]) -> tuple[T | None, str]:
    """(engine, "") or (None, a one-line reason why ``deserialize`` failed)."""
    try:
        engine = deserialize(data)
    except Exception as err:  # TensorRT's bindings raise various types for a bad plan
        return None, f"deserialization failed: {type(err).__name__}: {one_line(err)}"
    if engine is None:
        return None, "deserialization failed (TensorRT returned no engine; see its log)"
    return engine, ""
