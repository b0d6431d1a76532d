import contextlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a model hub
# DTYPE="auto" computes in float32 in the suite on every CPU (a bf16-capable CI machine would otherwise switch
# every test and notebook run to bf16); tests of bf16 ask for it by name, tests of "auto" unset this.
os.environ.setdefault("SEAL_KIT_AUTO_DTYPE", "float32")

import pytest
import torch

from seal_kit.knowledge.data import QA, Passage
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
    # vLLM lives in its own environment (`make test-vllm`, which sets SEAL_KIT_REQUIRE_VLLM): skipped elsewhere.
    if "vllm" in item.keywords and importlib.util.find_spec("vllm") is None:
        if os.environ.get("SEAL_KIT_REQUIRE_VLLM") == "1":
            pytest.fail("vLLM test required here (SEAL_KIT_REQUIRE_VLLM=1) but vllm is not installed: make vllm-env")
        pytest.skip("needs vLLM: make test-vllm runs these in .venv-vllm")


def pytest_collection_modifyitems(items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def open_elsewhere():
    """`with open_elsewhere(run_dir, name, config):` a second process has the run open (start_run) until the
    block ends, when it is killed (SIGKILL: no clean-up of its own runs, as when a kernel dies)."""
    @contextlib.contextmanager
    def holding(run_dir, name, config):
        code = ("import json, sys\nfrom seal_kit.runs import start_run\n"
                "start_run(sys.argv[2], sys.argv[1], config=json.loads(sys.argv[3]))\nprint('open', flush=True)\n"
                "sys.stdin.read()\n")
        holder = subprocess.Popen([sys.executable, "-c", code, str(run_dir), name, json.dumps(config)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline().strip() == "open"
            yield holder
        finally:
            holder.kill()
            holder.wait()
    return holding
