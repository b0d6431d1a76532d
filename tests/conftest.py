import importlib.util
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a model hub

import pytest
import torch

from seal_kit.data import QA, Passage
from seal_kit.models import load_model


@pytest.fixture(scope="session")
def tiny():
    """A tiny random Llama with the embedded model's tokenizer: trains in a second on CPU."""
    torch.set_num_threads(2)
    return load_model("tiny", seed=0)


@pytest.fixture
def passage():
    return Passage("p0", "Velmora Island", "Velmora Island lies in the Sorrel Sea. Its capital is Pellin Harbour.",
                   (QA("What is the capital of Velmora Island?", "Pellin Harbour"),
                    QA("In which sea does Velmora Island lie?", "Sorrel Sea")))


CHROMIUM = Path(os.environ.get("SEAL_KIT_CHROMIUM", "/usr/bin/chromium"))


def browser_missing() -> str | None:
    """Why the `browser` tests cannot run here, or None when they can."""
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed (pip install -e '.[test]')"
    return None


def pytest_runtest_setup(item):
    # CI installs Chromium first, so there a missing browser is an error, never a quiet skip.
    if "browser" in item.keywords and (reason := browser_missing()):
        if os.environ.get("SEAL_KIT_REQUIRE_BROWSER") == "1" or os.environ.get("CI") == "true":
            pytest.fail(f"browser test required here (CI or SEAL_KIT_REQUIRE_BROWSER=1) but {reason}")
        pytest.skip(reason)


def pytest_collection_modifyitems(items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
