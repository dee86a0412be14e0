# Owner(s): ["module: inductor"]
"""Smoke test of the benchmarks: the quick CPU run of bench_range_dispatch.py
completes and writes its JSON report."""

import json
import pathlib
import subprocess
import sys
import tempfile
import unittest


REPO = pathlib.Path(__file__).resolve().parents[2]


class TestBenchmarksSmoke(unittest.TestCase):
    def test_quick_cpu_run_writes_its_report(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            out = pathlib.Path(tmp) / "report.json"
            result = subprocess.run(
                [sys.executable, str(REPO / "benchmarks" / "bench_range_dispatch.py")]
                + ["--quick", "--device", "cpu", "--out", str(out)],
                capture_output=True,
                text=True,
            )
            self.assertEqual(result.returncode, 0, result.stderr[-2000:])
            self.assertTrue(json.loads(out.read_text()))


if __name__ == "__main__":
    unittest.main()
