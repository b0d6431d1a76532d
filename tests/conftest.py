import os

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


def pytest_collection_modifyitems(items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
