"""Test helpers shipped with gtalign: a scripted OpenAI-compatible server with injected faults, and a
scripted chat backend for code above the model."""

from gtalign.testing.fake_openai import FakeOpenAI, FakeRequest, Fault, Reply, Script, echo_script
from gtalign.testing.scripted_backend import BackendCall, ScriptedBackend, ScriptedConstrainingBackend

__all__ = ["BackendCall", "FakeOpenAI", "FakeRequest", "Fault", "Reply", "Script", "ScriptedBackend", "ScriptedConstrainingBackend",
           "echo_script"]
