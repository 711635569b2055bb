import logging
import os
import platform
import subprocess
import sys
import textwrap

import pytest
import torch

from meshseg.logs import log_to
from meshseg.nn import runtime
from meshseg.nn.fusion import fuse_for_inference
from meshseg.nn.models import build_model, model_config


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


@pytest.fixture
def restore_determinism(monkeypatch):
    """Put PyTorch's process-wide determinism flags back after the test."""
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    yield
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2:]


def test_deterministic_flags(restore_determinism):
    torch.backends.cudnn.benchmark = True
    runtime.set_deterministic(True)
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.is_deterministic_algorithms_warn_only_enabled()  # U-Net upsampling on CUDA
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    runtime.set_deterministic(False)
    assert (
        not torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.deterministic
    )


def test_forced_bf16_without_native_bf16_warns_and_runs_unfused(monkeypatch, caplog):
    """An AVX2-only CPU: oneDNN's fused bf16 convolution raises there; the plain one works."""

    def no_bf16_kernel(*args):
        raise RuntimeError("mkldnn_convolution: bf16 path needs the cpu support avx512bw")

    monkeypatch.setattr(runtime, "has_native_bf16", lambda device: False)
    monkeypatch.setattr(torch.ops.mkldnn, "_convolution_pointwise", no_bf16_kernel)
    cpu = torch.device("cpu")
    assert runtime.autocast_dtype(cpu, "auto") is None
    with caplog.at_level(logging.WARNING, logger="meshseg.nn.runtime"):
        assert runtime.autocast_dtype(cpu, "bf16") is torch.bfloat16
    assert "compute.precision: bf16" in caplog.text and "AVX-512" in caplog.text

    torch.manual_seed(0)
    model = build_model(model_config("meshnet", 3)).eval()
    x = torch.rand(2, 1, 12, 12, 12)
    with torch.inference_mode(), runtime.autocast(cpu, torch.bfloat16):
        got, plain = fuse_for_inference(model)(x), model(x)
    assert got.dtype is torch.bfloat16
    torch.testing.assert_close(got.float(), plain.float(), atol=0.05, rtol=0.05)


@pytest.mark.skipif(
    platform.machine() != "x86_64", reason="ONEDNN_MAX_CPU_ISA=AVX2 is an x86 setting"
)
def test_bf16_inference_on_a_cpu_limited_to_avx2():
    """The real thing: oneDNN told to use AVX2 at most (ONEDNN_MAX_CPU_ISA), as such a CPU has."""
    script = textwrap.dedent("""
        import torch
        from meshseg.nn import runtime
        from meshseg.nn.models import build_model, model_config
        from meshseg.nn.whole import predict_whole
        cpu = torch.device("cpu")
        model = build_model(model_config("meshnet", 3)).eval()
        image = torch.rand(20, 20, 20).numpy()
        bf16 = runtime.autocast_dtype(cpu, "bf16")
        predict_whole(model, image, runtime.Compute(cpu, bf16, channels_last=True))
        print("native bf16:", runtime.has_native_bf16(cpu))
    """)
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "native bf16: False" in done.stdout


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


def test_compute_moves_batches_once_and_names_its_device():
    compute = runtime.Compute.from_settings(
        device="cpu", precision="fp32", channels_last=True, threads=1
    )
    assert compute == runtime.Compute(torch.device("cpu"), None, True, 1)
    x = compute.to_device(torch.rand(2, 3, 4, 4, 4))
    assert x.is_contiguous(memory_format=torch.channels_last_3d) and not x.is_contiguous()
    y = compute.to_device(
        torch.zeros(2, 4, 4, 4, dtype=torch.int64)
    )  # labels: not 5-D, as they are
    assert y.is_contiguous() and y.dtype == torch.int64
    assert (
        runtime.Compute(torch.device("cpu"), None)
        .to_device(torch.rand(2, 3, 4, 4, 4))
        .is_contiguous()
    )
    assert compute.describe() == runtime.describe(torch.device("cpu"), None)


@pytest.mark.parametrize(
    "settings, message",
    [
        (("tpu", "auto", 1), "unknown device"),
        (("cpu", "fp8", 1), "unknown precision"),
        (("cpu", "fp32", 0), "threads must be >= 1"),
    ],
)
def test_check_settings_names_the_bad_value(settings, message):
    with pytest.raises(ValueError, match=message):
        runtime.check_settings(*settings)


@pytest.mark.parametrize("chosen, expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_openmp_threads_sleep_when_idle_unless_the_user_chose(chosen, expected):
    """meshseg sets OMP_WAIT_POLICY before torch loads libgomp, and keeps a user's choice."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if chosen:
        env["OMP_WAIT_POLICY"] = chosen
    script = "import os, meshseg.nn.runtime; print(os.environ['OMP_WAIT_POLICY'])"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.strip() == expected


def test_cpu_isa_names_what_decides_the_speed_paths():
    isa = runtime.cpu_isa()
    capability = torch.backends.cpu.get_cpu_capability()
    assert isa.startswith({"AVX512": "AVX-512", "DEFAULT": "no AVX2"}.get(capability, capability))
    native = runtime.has_native_bf16(torch.device("cpu"))
    assert ("no native bf16" not in isa) is native
