"""``dgreg info``: the environment dgreg sees and what each operation resolves to on it.

Versions (dgreg, Python, torch and its CUDA build), the GPU (or its absence), nvcc, the
``DGREG_ARCH`` override, the plugins, and for every operation's default spec the kernel
that would serve it on the current device, or why none does.
"""

from __future__ import annotations

import argparse
import platform
import re
import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING, Any

from dgreg.cli.plugins_cmd import (
    PLUGIN_HEADERS,
    TABLE_WIDTH,
    format_table,
    known_plugins,
    plugin_row,
    print_json,
)

if TYPE_CHECKING:
    from dgreg.device import Device
    from dgreg.dispatch import Resolution

__all__ = ["add_parser", "gather", "nvcc_info", "run"]

NO_GPU = "no GPU: calls run on the torch reference path"
_NVCC_TIMEOUT_S = 10


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "info", help="versions, GPU, nvcc, plugins and what each operation resolves to",
        description="Report the environment dgreg runs in and, for every operation's default "
                    "spec, which kernel serves it on the current device (or why none does).")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(func=run)


# -- facts ------------------------------------------------------------------------------------

def nvcc_info() -> dict[str, Any]:
    """The nvcc the JIT would use and its version, or why there is none (never raises)."""
    from dgreg.errors import DgregError
    from dgreg.jit.compiler import find_nvcc as jit_find_nvcc

    try:
        path = jit_find_nvcc()
    except DgregError as exc:
        return {"path": None, "version": None, "problem": str(exc)}
    try:
        proc = subprocess.run([path, "--version"], capture_output=True, text=True,
                              timeout=_NVCC_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return {"path": path, "version": None, "problem": f"`{path} --version` failed: {exc}"}
    match = re.search(r"release \S+, V(\S+)", proc.stdout)
    if proc.returncode != 0 or not match:
        return {"path": path, "version": None,
                "problem": f"`{path} --version` exited {proc.returncode} without a version"}
    return {"path": path, "version": match.group(1), "problem": None}


def _gpu(torch: Any) -> dict[str, Any]:
    from dgreg.device import detect

    if not torch.cuda.is_available():
        return {"present": False, "note": NO_GPU}
    device = detect()
    return {"present": True, "count": torch.cuda.device_count(), "index": device.index,
            "name": device.name, "arch": device.arch, "capability": list(device.capability),
            "sm_count": device.sm_count, "smem_per_block": device.smem_per_block,
            "l2_bytes": device.l2_bytes}


def _resolution_device() -> tuple[Device, str | None]:
    """The device resolution uses (DGREG_ARCH-aware); a bad DGREG_ARCH is reported, not fatal."""
    from dgreg.device import current_device, detect
    from dgreg.errors import DgregError

    try:
        return current_device(), None
    except DgregError as exc:
        return detect(), f"DGREG_ARCH ignored: {exc}"


def _op_entry(op: str, device: Device, gpu_present: bool) -> dict[str, Any]:
    from dgreg.dispatch import resolve
    from dgreg.errors import DgregError
    from dgreg.spec import spec_for

    spec = spec_for(op)
    entry: dict[str, Any] = {"op": op, "spec": spec.name, "chosen": None, "plugin": None,
                             "distribution": None, "fallback": False, "reason": None}
    # a real device resolves as a real call would (CUDA-only kernels need a GPU); a simulated
    # one as `dgreg explain --device` does
    tensors_on = None if device.simulated else ("cuda" if device.is_gpu else "cpu")
    try:
        res = resolve(spec, device, tensors_on=tensors_on)
    except DgregError as exc:
        entry["reason"] = f"error: {exc}".splitlines()[0]
        return entry
    chosen = res.chosen
    if chosen is not None:
        entry.update(chosen=chosen.kernel_id, plugin=chosen.plugin,
                     distribution=chosen.distribution, fallback=chosen.fallback)
    entry["reason"] = _why(res, device, gpu_present)
    return entry


def _why(res: Resolution, device: Device, gpu_present: bool) -> str | None:
    """Why no accelerated kernel serves the spec (None when one does)."""
    if res.chosen is not None and not res.chosen.fallback:
        return None
    rejected = [f"{d.candidate.kernel_id}: {d.reason}" for d in res.decisions
                if d.status == "rejected" and not d.candidate.fallback]
    if rejected:
        return "; ".join(rejected)
    if not device.is_gpu:
        return "resolving for the CPU (DGREG_ARCH=cpu)" if gpu_present else "no GPU is present"
    return f"no plugin offers an accelerated kernel for {device.arch}"


def gather() -> dict[str, Any]:
    """Everything ``dgreg info`` reports, as plain data (the ``--json`` document)."""
    import torch

    import dgreg
    from dgreg import config
    from dgreg.spec import OPS

    plugins = known_plugins()
    device, arch_problem = _resolution_device()
    return {
        "dgreg": dgreg.__version__,
        "python": {"version": platform.python_version(), "executable": sys.executable},
        "torch": {"version": torch.__version__, "cuda": torch.version.cuda},
        "gpu": _gpu(torch),
        "nvcc": nvcc_info(),
        "arch_override": config.get("DGREG_ARCH"),
        "arch_override_problem": arch_problem,
        "resolution_device": {"arch": device.arch, "name": device.name,
                              "sm_count": device.sm_count, "simulated": device.simulated,
                              "repr": repr(device)},
        "plugins": [p.as_dict() for p in plugins],
        "ops": [_op_entry(op, device, torch.cuda.is_available()) for op in OPS],
    }


# -- text -------------------------------------------------------------------------------------

def _gpu_line(gpu: dict[str, Any]) -> str:
    if not gpu["present"]:
        return gpu["note"]
    return (f"{gpu['name']} ({gpu['arch']}, compute capability "
            f"{'.'.join(map(str, gpu['capability']))}), {gpu['sm_count']} SMs, "
            f"{gpu['smem_per_block'] // 1024} KiB shared memory per block, "
            f"{gpu['l2_bytes'] // 2**20} MiB L2" + (f"; {gpu['count']} GPUs" if gpu["count"] > 1
                                                    else ""))


def _environment_rows(facts: dict[str, Any]) -> list[list[str]]:
    nvcc = facts["nvcc"]
    rows = [
        ["dgreg", facts["dgreg"]],
        ["python", f"{facts['python']['version']} ({facts['python']['executable']})"],
        ["torch", facts["torch"]["version"]],
        ["torch CUDA build", facts["torch"]["cuda"] or "none (CPU-only torch)"],
        ["GPU", _gpu_line(facts["gpu"])],
        ["nvcc", f"{nvcc['version']} ({nvcc['path']})" if nvcc["version"] else nvcc["problem"]],
        ["DGREG_ARCH", facts["arch_override"] or "unset"],
    ]
    if facts["arch_override_problem"]:
        rows.append(["", facts["arch_override_problem"]])
    rows.append(["resolving for", facts["resolution_device"]["repr"]])
    return rows


def _op_table(ops: list[dict[str, Any]]) -> str:
    """One row per op; why an op is not served by an accelerated kernel goes in a footnote,
    numbered once per distinct reason (on a CPU or a GPU without kernels they are all one)."""
    notes: dict[str, int] = {}
    rows = []
    for entry in ops:
        mark = ""
        if entry["reason"] is not None:
            mark = f"[{notes.setdefault(entry['reason'], len(notes) + 1)}]"
        if entry["chosen"] is None:
            status = f"NO KERNEL {mark}"
        else:
            status = f"reference fallback {mark}" if entry["fallback"] else "accelerated"
        rows.append([entry["spec"], entry["chosen"] or "-", entry["plugin"] or "-", status])
    lines = [format_table(("DEFAULT SPEC", "KERNEL", "PLUGIN", "PATH"), rows)]
    for reason, number in notes.items():
        lines.append(textwrap.fill(reason, TABLE_WIDTH, initial_indent=f"[{number}] ",
                                   subsequent_indent="    "))
    return "\n".join(lines)


def _print_text(facts: dict[str, Any]) -> None:
    from dgreg.registry import PluginInfo

    print(format_table(("ITEM", "VALUE"), _environment_rows(facts), wrap_last=True))
    print()
    plugins = [PluginInfo(**p) for p in facts["plugins"]]
    print(format_table(PLUGIN_HEADERS, [plugin_row(p) for p in plugins], wrap_last=True))
    print()
    print(f"What each operation resolves to on {facts['resolution_device']['repr']}:")
    print(_op_table(facts["ops"]))


def run(args: argparse.Namespace) -> int:
    facts = gather()
    if args.json:
        print_json(facts)
    else:
        _print_text(facts)
    return 0
