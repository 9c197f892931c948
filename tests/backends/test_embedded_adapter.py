"""The embedded backend on a LoRA adapter folder: the base model found from ``adapter_config.json``
(or, when that folder is not on this machine, the embedded default the adapter records), the
adapter merged in at load, and the specs ``embedded`` (the default model plus gtalign's shipped
adapter, when there is one) and ``embedded:base`` (always the plain default model).

The adapter is made here: rank 2 on the real SmolLM2-135M-Instruct, its weights perturbed so its
greedy text differs from the base model's. Generations are a few tokens, in fp32, on one thread.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch", reason="the embedded backend needs torch: pip install 'gtalign[embedded]'")
pytest.importorskip("transformers", reason="the embedded backend needs transformers: pip install 'gtalign[embedded]'")
pytest.importorskip("peft", reason="a LoRA adapter needs peft: pip install 'gtalign[train]'")

from gtalign.backends import _model_store  # noqa: E402
from gtalign.backends._base import SamplingParams  # noqa: E402
from gtalign.backends._model_store import (  # noqa: E402
    ADAPTER_BASE_RECORD,
    DEFAULT_MODEL_NAME,
    ModelStoreError,
    default_adapter,
    default_gguf,
    embedded_model,
    ensure_converted,
    read_adapter,
    write_adapter_base,
)

ASK = [{"role": "user", "content": "What is the capital of France?"}]
GREEDY = SamplingParams(max_tokens=6, temperature=0.0)


def make_adapter(base: Path, folder: Path, *, seed: int = 0, scale: float = 0.3) -> Path:
    """A rank-2 LoRA adapter on ``base`` with random (non-zero) A and B, saved with the tokenizer
    into ``folder``; its ``adapter_config.json`` names ``base`` as peft records it."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32),
                           LoraConfig(r=2, lora_alpha=4, lora_dropout=0.0, target_modules=["q_proj", "v_proj"],
                                      task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_" in name:
                param.normal_(0.0, scale)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(base).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def base() -> Path:
    try:
        return ensure_converted(default_gguf()).path
    except ModelStoreError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def adapter(base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_adapter(base, tmp_path_factory.mktemp("sft") / "final")


@pytest.fixture(autouse=True)
def one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def greedy(model: Any) -> str:
    from gtalign.backends._embedded import EmbeddedBackend

    backend = EmbeddedBackend(model, dtype="float32", threads=1)
    try:
        [result] = backend.generate_batch([(ASK, "")], GREEDY)
    finally:
        backend.close()
    assert result.ok, result.reason
    return result.text


@pytest.fixture(scope="module")
def base_text(base: Path) -> str:
    return greedy(None)


def test_an_adapter_folder_loads_on_its_base_and_changes_the_answer(adapter: Path, base: Path, base_text: str) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from gtalign.backends._embedded import EmbeddedBackend

    backend = EmbeddedBackend(adapter, dtype="float32", threads=1)
    assert backend.model == f"{DEFAULT_MODEL_NAME}+sft0/final"  # the base named before the load, from the adapter
    try:
        info = backend.load()
        [result] = backend.generate_batch([(ASK, "")], GREEDY)
        merged = backend._load().model
        assert info.source.path == base and info.adapter is not None and info.adapter.path == adapter
        assert backend.model == f"{DEFAULT_MODEL_NAME}+sft0/final"
        assert type(merged).__name__ == "LlamaForCausalLM"  # merged and unloaded: no peft wrapper left at decode time
        ids = torch.tensor([[1, 2, 3, 4]])
        reference = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32), adapter)
        with torch.no_grad():
            torch.testing.assert_close(merged(ids).logits, reference(ids).logits, atol=1e-3, rtol=0)
    finally:
        backend.close()
    assert result.ok and result.text and result.text != base_text


def test_loading_an_adapter_shows_no_deprecation_noise_from_the_libraries(adapter: Path) -> None:
    """peft's load reads ``is_gradient_checkpointing``, which transformers deprecates with a
    FutureWarning on every adapter load; a user of ``--model ADAPTER`` can do nothing about it."""
    import warnings

    from gtalign.backends._embedded import EmbeddedBackend

    backend = EmbeddedBackend(adapter, dtype="float32", threads=1)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            backend.load()
    finally:
        backend.close()
    assert not [w for w in caught if "is_gradient_checkpointing" in str(w.message)]


def test_an_adapter_whose_base_folder_is_gone_falls_back_to_the_default_it_was_trained_on(
    adapter: Path, base: Path, tmp_path: Path
) -> None:
    config = json.loads((adapter / "adapter_config.json").read_text())
    copy = Path(shutil.copytree(adapter, tmp_path / "copy"))

    # recorded on another machine, in an unknown folder: refused, naming the folder
    (copy / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": "/nowhere/my-model"}))
    assert read_adapter(copy).base == "/nowhere/my-model"
    with pytest.raises(ModelStoreError, match="the base model of the adapter .*/nowhere/my-model"):
        greedy(copy)
    # ... unless gtalign recorded that it is the embedded default
    write_adapter_base(copy, base, DEFAULT_MODEL_NAME)
    assert json.loads((copy / ADAPTER_BASE_RECORD).read_text())["embedded_default"] is True
    found = read_adapter(copy)
    assert (found.base, found.base_name, found.display_name) == (None, DEFAULT_MODEL_NAME, f"{DEFAULT_MODEL_NAME}+copy")

    # the default's conversion folder under another cache (another machine) is recognised by its name
    (copy / ADAPTER_BASE_RECORD).unlink()
    other = f"/home/someone/.cache/gtalign/models/{base.name}"
    (copy / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": other}))
    assert read_adapter(copy).base is None
    # and the recorded folder, where it exists, is used as it is (not the cache of this process)
    assert read_adapter(adapter).base == str(base) and read_adapter(adapter).base_name == DEFAULT_MODEL_NAME


def test_without_peft_an_adapter_says_which_extra_to_install(adapter: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gtalign.backends._embedded import EmbeddedBackend

    monkeypatch.setitem(sys.modules, "peft", None)
    with pytest.raises(ImportError, match=r"LoRA adapter .*final needs peft .*pip install 'gtalign\[train\]'"):
        EmbeddedBackend(adapter).load()


def test_embedded_base_ignores_the_shipped_adapter_that_embedded_uses(
    adapter: Path, base_text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gtalign.cli._chat import build_backend as chat_backend
    from gtalign.eval._setup import build_eval_backend

    assert default_adapter() is None  # nothing is shipped yet: "embedded" is the plain default model
    assert embedded_model("") is None and embedded_model("base") is None and embedded_model("/m") == "/m"
    monkeypatch.setattr(_model_store, "default_adapter", lambda: adapter)
    assert embedded_model("") == adapter and embedded_model("base") is None

    for build in (build_eval_backend, chat_backend):
        assert build("embedded").model == f"{DEFAULT_MODEL_NAME}+sft0/final"  # type: ignore[operator]
        assert build("embedded:base").model == DEFAULT_MODEL_NAME  # type: ignore[operator]
        assert build("embedded", model="base").model == DEFAULT_MODEL_NAME  # type: ignore[operator]
        assert build(f"embedded:{adapter}").model == f"{DEFAULT_MODEL_NAME}+sft0/final"  # type: ignore[operator]
    shipped = greedy(embedded_model(""))
    assert shipped != base_text and greedy(embedded_model("base")) == base_text


def test_the_server_spec_loads_the_shipped_adapter_or_the_plain_model(
    adapter: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gtalign.server._backend import build_backend
    from gtalign.server._config import ServerConfig

    monkeypatch.setattr(_model_store, "default_adapter", lambda: adapter)
    for spec, name in (("embedded", f"{DEFAULT_MODEL_NAME}+sft0/final"), ("embedded:base", DEFAULT_MODEL_NAME)):
        backend = build_backend(ServerConfig(backend=spec))
        try:
            assert backend.model == name
            assert (backend.load().adapter is not None) == (spec == "embedded")  # type: ignore[attr-defined]
        finally:
            backend.close()  # type: ignore[attr-defined]
