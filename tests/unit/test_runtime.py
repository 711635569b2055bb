import logging
import os
import sys

import pytest
import torch

from meshseg import runtime
from meshseg.logs import log_to


def test_device_selection():
    assert runtime.select_device("cpu") == torch.device("cpu")
    assert runtime.select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="unknown device"):
        runtime.select_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            runtime.select_device("cuda")


def test_threads_are_capped_by_the_cpus_present():
    available = len(os.sched_getaffinity(0))
    assert runtime.set_threads(1000) == available == torch.get_num_threads()
    assert runtime.set_threads(1) == 1


def test_precision_choice():
    cpu = torch.device("cpu")
    assert runtime.autocast_dtype(cpu, "fp32") is None
    assert runtime.autocast_dtype(cpu, "bf16") is torch.bfloat16
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert runtime.autocast_dtype(cpu, "auto") is (torch.bfloat16 if native else None)
    with pytest.raises(ValueError, match="unknown precision"):
        runtime.autocast_dtype(cpu, "fp8")
    assert runtime.describe(cpu, torch.bfloat16).endswith("bf16")


def test_log_to_sends_records_and_stderr_to_the_file(tmp_path):
    saved = sys.stderr
    try:
        log_to(tmp_path / "job.log")
        logging.getLogger("meshseg.test").info("hello from the job")
        print("progress bar", file=sys.stderr)
    finally:
        sys.stderr.close()
        sys.stderr = saved
        logging.basicConfig(force=True)
    text = (tmp_path / "job.log").read_text()
    assert "hello from the job" in text and "progress bar" in text
