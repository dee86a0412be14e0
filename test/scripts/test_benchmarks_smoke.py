# Owner(s): ["module: inductor"]
"""Smoke test of the benchmarks: the quick CPU runs of bench_range_dispatch.py and
bench_switch_vs_cond.py complete and write their JSON reports."""

import json
import pathlib
import subprocess
import sys
import tempfile
import unittest

import torch


REPO = pathlib.Path(__file__).resolve().parents[2]
# What bench_switch_vs_cond.py needs (PyTorch >= 2.15), checked as it checks it.
HAS_SWITCH = hasattr(torch.ops.higher_order, "switch")


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

    def run_switch_vs_cond(self, out: pathlib.Path) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(REPO / "benchmarks" / "bench_switch_vs_cond.py")]
            + ["--quick", "--out", str(out)],
            capture_output=True,
            text=True,
        )

    @unittest.skipUnless(HAS_SWITCH, "the Switch HOP is new in 2.15")
    def test_switch_vs_cond_quick_run_writes_its_report(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            out = pathlib.Path(tmp) / "report.json"
            result = self.run_switch_vs_cond(out)
            self.assertEqual(result.returncode, 0, result.stderr[-2000:])
            (row,) = json.loads(out.read_text())["switch_vs_cond"]
            self.assertEqual(row["groups"], 2)
            self.assertGreater(row["switch_compile_s"], 0)

    @unittest.skipIf(HAS_SWITCH, "2.15 has the Switch HOP")
    def test_switch_vs_cond_says_what_it_needs(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            result = self.run_switch_vs_cond(pathlib.Path(tmp) / "report.json")
        self.assertEqual(result.returncode, 2)
        self.assertIn("needs PyTorch >= 2.15 (the Switch HOP)", result.stderr)


if __name__ == "__main__":
    unittest.main()
