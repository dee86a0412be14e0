# Owner(s): ["module: inductor"]
"""Smoke test of examples/llama_woq_decode.py: the tiny Llama config decodes on CPU
with every variant, its compiled logits match eager's, and the range-dispatched
model compiles once for batches on both sides of a split point."""

import json
import pathlib
import subprocess
import sys
import tempfile
import unittest


REPO = pathlib.Path(__file__).resolve().parents[2]


class TestLlamaExampleSmoke(unittest.TestCase):
    def test_tiny_config_decodes_on_cpu(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            out = pathlib.Path(tmp) / "llama.json"
            result = subprocess.run(
                [sys.executable, str(REPO / "examples" / "llama_woq_decode.py")]
                + ["--size", "tiny", "--device", "cpu", "--batches", "2,3,5"]
                + ["--steps", "2", "--rounds", "1", "--out", str(out)],
                capture_output=True,
                text=True,
            )
            self.assertEqual(result.returncode, 0, result.stderr[-3000:])
            report = json.loads(out.read_text())
        results = report["results"]
        self.assertEqual(
            sorted(results), ["bf16", "dequant_mm", "dispatched", "dispatched_flat"]
        )
        for variant, variant_result in results.items():
            self.assertEqual(sorted(variant_result["per_token_ms"]), ["2", "3", "5"])
            # Batch 2, 3 and 5 (split point 4) share one dynamic graph.
            self.assertEqual(variant_result["compiles"], 1, variant)
        self.assertIn("dispatched: compile", result.stdout)


if __name__ == "__main__":
    unittest.main()
