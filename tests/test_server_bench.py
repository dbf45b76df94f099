import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_http_benchmark_runs_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENGINE_", "OTEL_"))}
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "http.py"), "--requests", "300", "--duration", "2", "--warmup", "0.1",
         "--rounds", "1", "--batch", "20", "--connections", "4", "--json", str(out)],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "/decide throughput is" in result.stdout
    figures = json.loads(out.read_text())
    for name in ("bare", "decide", "batch"):
        assert figures[name]["requests"] > 0 and figures[name]["errors"] == 0
    assert figures["batch"]["decisions_per_s"] > figures["batch"]["requests_per_s"]
