"""Test helpers shipped with gtalign: a scripted OpenAI-compatible server with injected faults."""

from gtalign.testing.fake_openai import FakeOpenAI, FakeRequest, Fault, Reply, Script, echo_script

__all__ = ["FakeOpenAI", "FakeRequest", "Fault", "Reply", "Script", "echo_script"]
