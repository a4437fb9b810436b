import pytest

from worker.testing import build_test_model


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """(base, adapter) folders of the tiny random Llama, built once per test run."""
    base, adapter = build_test_model(tmp_path_factory.mktemp("tiny-model"))
    return base, adapter
