"""What the benchmarks say about the machine they ran on."""

import platform
import subprocess


def cpu_model() -> str:
    """`lscpu`'s model name ("AMD EPYC"): platform.processor() is often empty on Linux."""
    try:
        output = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return platform.processor()
    for line in output.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor()
