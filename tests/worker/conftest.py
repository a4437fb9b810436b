import pytest

from worker.testing import build_test_model


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """(base, adapter) folders of the tiny random Llama, built once per test run."""
    base, adapter = build_test_model(tmp_path_factory.mktemp("tiny-model"))
    return base, adapter


@pytest.fixture(scope="session")
def tiny_gguf(tiny_model, tmp_path_factory):
    """The tiny model with its adapter merged, in float32, as GGUF for llama.cpp."""
    try:
        import gguf  # noqa: F401
    except ImportError as exc:
        from .llama_server import unavailable

        unavailable(f"the gguf package is missing ({exc}): make install")
    from transformers import AutoTokenizer

    from worker.gguf_export import export_gguf, merged_model

    base, adapter = tiny_model
    path = tmp_path_factory.mktemp("tiny-gguf") / "tiny-appreciation-f32.gguf"
    return export_gguf(merged_model(base, adapter), AutoTokenizer.from_pretrained(adapter), path)


@pytest.fixture(scope="session")
def llama_server(tiny_gguf):
    """llama-cpp-python's OpenAI-compatible server on 127.0.0.1, serving the tiny model."""
    from .llama_server import LlamaServer, unavailable

    try:
        import llama_cpp.server  # noqa: F401
    except ImportError as exc:
        unavailable(f"llama-cpp-python[server] is missing ({exc}): make install")
    server = LlamaServer(tiny_gguf).start()
    yield server
    server.kill()
