"""Opt-in encoder backends for the embedding handler (``EMBEDDING_BACKEND``).

``inference.embed`` plans sub-batches, pads them and pools; what turns a padded
``[batch, width]`` block of token ids into ``last_hidden_state`` is an
:class:`Encoder`. The default, ``exact``, is the fp32 PyTorch module as loaded.
The others trade a measured, small amount of accuracy for CPU speed
(benchmarks/model_throughput.py and docs/model-server.md have the numbers):

* ``bf16``: the same module run under ``torch.autocast`` in bfloat16. On CPUs
  with AMX (Intel Sapphire Rapids and later: the ml.c7i / ml.m7i / ml.r7i
  families) oneDNN runs the matrix products on the AMX tiles; elsewhere bf16 is
  emulated and *slower* than fp32, so this backend refuses to start without
  AMX instead of silently slowing the endpoint down. Needs nothing beyond the
  torch already in the DLC.
* ``onnx-int8``: the module exported to ONNX at start-up (into a temporary
  directory, from the weights just loaded), its linear layers' weights
  quantized to int8 per output channel with dynamic activation quantization
  (``onnxruntime.quantization.quantize_dynamic``, MatMul only: embeddings,
  LayerNorm and softmax stay fp32), run by ONNX Runtime. Needs ``onnxruntime``
  and ``onnx`` installed at start (the model package's fast-path requirements).
* ``onnx-fp32``: the same export without quantization (a control: what ONNX
  Runtime alone gains).
* ``torch-compile``: the fp32 module through ``torch.compile(dynamic=True)``
  (Inductor's C++ kernels). Measured for issue 10, not offered to deployments
  (``stacks/config.py`` allows ``exact`` and ``bf16``): the first requests pay
  tens of seconds of compilation per new shape class and it needs a C++
  compiler in the container, for a small gain (docs/model-server.md).

Pooling (masked mean) and normalisation stay in ``inference.embed`` for every
backend, so batch invariance is the same property everywhere; a backend only
changes the arithmetic inside the encoder.

Runtime code: imports only the standard library, torch, and (for the ONNX
backends, lazily) onnx/onnxruntime.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)

ENV_BACKEND = "EMBEDDING_BACKEND"
BACKENDS = ("exact", "bf16", "onnx-int8", "onnx-fp32", "torch-compile")
DEFAULT_BACKEND = "exact"

# (input_ids, attention_mask) -> last_hidden_state, float32 [batch, width, dim]
Encoder = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class BackendError(ValueError):
    """The configured backend cannot run here (named in the message with the reason)."""


def parse_backend(raw: str | None) -> str:
    """Validate an ``EMBEDDING_BACKEND`` value; empty or unset means ``exact``."""
    value = (raw or "").strip().lower() or DEFAULT_BACKEND
    if value not in BACKENDS:
        raise BackendError(f"{ENV_BACKEND}: {raw!r} is not one of {', '.join(BACKENDS)}")
    return value


def cpu_has_amx(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU advertises AMX bf16 tiles (what makes bf16 faster than fp32)."""
    try:
        flags = cpuinfo.read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    return "amx_bf16" in flags.split()


def build_encoder(
    backend: str, model: torch.nn.Module, threads: int, *, amx: bool | None = None
) -> Encoder:
    """The encoder for ``backend`` over the loaded fp32 ``model``; raises BackendError."""
    backend = parse_backend(backend)
    if backend == "exact":
        return _torch_encoder(model)
    if backend == "bf16":
        if not (cpu_has_amx() if amx is None else amx):
            raise BackendError(
                f"{ENV_BACKEND}=bf16 needs a CPU with AMX (ml.c7i, ml.m7i, ml.r7i); this CPU "
                "has none, and emulated bf16 is slower than the exact fp32 path"
            )
        return _bf16_encoder(model)
    if backend == "torch-compile":
        return _torch_encoder(torch.compile(model, dynamic=True))
    return _onnx_encoder(model, threads, quantize=backend == "onnx-int8")


def _torch_encoder(model: torch.nn.Module) -> Encoder:
    def encode(input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return model(input_ids=input_ids, attention_mask=mask).last_hidden_state

    return encode


# Below this many padded tokens in a pass (a single query, say) bf16 gains nothing
# over fp32 and its casts cost a little: measured single-query p50 17.1 ms bf16 vs
# 16.2 ms fp32 on MiniLM, 1 thread. Such passes run exact.
BF16_MIN_TOKENS = 128


def _bf16_encoder(model: torch.nn.Module) -> Encoder:
    """Autocast keeps LayerNorm, softmax and the residual sums in fp32 (its op lists)."""

    def encode(input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if input_ids.numel() < BF16_MIN_TOKENS:
            return model(input_ids=input_ids, attention_mask=mask).last_hidden_state
        with torch.autocast("cpu", dtype=torch.bfloat16):
            hidden = model(input_ids=input_ids, attention_mask=mask).last_hidden_state
        return hidden.float()

    return encode


def _onnx_encoder(model: torch.nn.Module, threads: int, *, quantize: bool) -> Encoder:
    try:
        import onnxruntime
    except ImportError:
        raise BackendError(
            f"{ENV_BACKEND}: onnxruntime is not installed; deploy the fast-path model package "
            "(its code/requirements.txt installs onnxruntime and onnx at start)"
        ) from None
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="embedding-onnx-"))
    exported = export_onnx(model, workdir / "encoder.onnx")
    path = quantize_int8(exported, workdir / "encoder-int8.onnx") if quantize else exported
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    logger.info(
        "ONNX encoder ready in %.1f s (%s, %.1f MB)",
        time.perf_counter() - started,
        "int8" if quantize else "fp32",
        path.stat().st_size / 1e6,
    )

    def encode(input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        (hidden,) = session.run(
            ["last_hidden_state"],
            {"input_ids": input_ids.numpy(), "attention_mask": mask.numpy()},
        )
        return torch.from_numpy(hidden)

    return encode


class _LastHidden(torch.nn.Module):
    """Exports only ``last_hidden_state`` (no pooler: we pool ourselves)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Any:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def export_onnx(model: torch.nn.Module, path: Path) -> Path:
    """Export with dynamic batch and sequence axes (TorchScript exporter, opset 17)."""
    sample = torch.ones((2, 8), dtype=torch.long)
    with torch.inference_mode(False), torch.no_grad():
        torch.onnx.export(
            _LastHidden(model).eval(),
            (sample, sample),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["last_hidden_state"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                "last_hidden_state": {0: "batch", 1: "sequence"},
            },
            opset_version=17,
            dynamo=False,
        )
    return path


def quantize_int8(source: Path, target: Path) -> Path:
    """int8 weights per output channel, activations quantized per call; MatMul only."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(source),
        str(target),
        op_types_to_quantize=["MatMul"],
        per_channel=True,
        weight_type=QuantType.QInt8,
    )
    return target
