# Owner(s): ["module: inductor"]
"""The series tooling: scripts/apply_and_build.sh (apply, check, revert, --source)
and scripts/check_series.sh, on scratch copies of the torch files and synthetic
series."""

import hashlib
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import unittest
from typing import Any

import torch
import torch._inductor.kernel.custom_op as custom_op
from torch._inductor.test_case import TestCase, run_tests


REPO = pathlib.Path(__file__).resolve().parents[2]
APPLY = REPO / "scripts" / "apply_and_build.sh"
# The release of this torch (no local suffix such as +cu130) and its series.
TORCH_BASE = torch.__version__.split("+")[0]
SERIES_DIR = REPO / "patches" / f"v{TORCH_BASE}"


def _sha256(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _git(cwd: pathlib.Path, *args: str) -> str:
    identity = ["-c", "user.name=t", "-c", "user.email=t@invalid"]
    return subprocess.run(
        ["git", *identity, *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


@unittest.skipUnless(shutil.which("git"), "needs git")
class TestPatchScripts(TestCase):
    """scripts/apply_and_build.sh on a synthetic series, torch tree and checkout."""

    def setUp(self) -> None:
        super().setUp()
        self.tmp = pathlib.Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.tmp)
        self.version_py = pathlib.Path(torch.__file__).with_name("version.py")
        self.files = {
            "torch/alpha.py": "a = 1\nb = 2\n",
            "torch/sub/beta.py": "def f():\n    return 1\n",
        }
        # The series: one patch made with git format-patch from a scratch repo.
        scratch = self.make_checkout(self.tmp / "scratch")
        (scratch / "torch/alpha.py").write_text("a = 1\nb = 3\n")
        (scratch / "torch/sub/beta.py").write_text("def f():\n    return 2\n")
        _git(scratch, "commit", "-qam", "[test] Change alpha and beta")
        self.patches = self.tmp / "patches"
        self.patches.mkdir()
        _git(scratch, "format-patch", "-q", "-o", str(self.patches), "HEAD~1")
        (self.patches / "series").write_text(
            "".join(p.name + "\n" for p in sorted(self.patches.glob("*.patch")))
        )
        self.write_base(self.patches, self.commit_of(self.version_py))
        self.overlay = self.tmp / "overlay"
        (self.overlay / "torch/testing").mkdir(parents=True)
        (self.overlay / "torch/testing/helper.py").write_text("HELPER = 1\n")
        self.site = self.tmp / "site"
        self.make_tree(self.site)

    # -- fixtures
    def commit_of(self, version_py: pathlib.Path) -> str:
        return re.search(r"git_version = '(\w+)'", version_py.read_text()).group(1)

    def write_base(self, patches: pathlib.Path, commit: str) -> None:
        lines = [f"version {TORCH_BASE}", f"commit {commit}"]
        lines += [
            f"sha256 {hashlib.sha256(text.encode()).hexdigest()} {rel}"
            for rel, text in self.files.items()
        ]
        (patches / "BASE").write_text("\n".join(lines) + "\n")

    def make_tree(self, root: pathlib.Path) -> None:
        for rel, text in self.files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text)
        shutil.copy(self.version_py, root / "torch/version.py")

    def make_checkout(self, root: pathlib.Path) -> pathlib.Path:
        self.make_tree(root)
        _git(root, "init", "-q")
        _git(root, "add", ".")
        _git(root, "commit", "-qm", "base")
        return root

    def run_script(self, *args: str, env: Any = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", str(APPLY), "--patches", str(self.patches)]
            + ["--overlay", str(self.overlay), "--no-demo", *args],
            capture_output=True,
            text=True,
            env=env,
        )

    def tree_shas(self, root: pathlib.Path) -> dict[str, str]:
        return {
            str(p.relative_to(root)): _sha256(p) for p in root.rglob("*") if p.is_file()
        }

    # -- installed-wheel target
    def test_apply_twice_second_is_noop(self) -> None:
        first = self.run_script("--torch-dir", str(self.site / "torch"))
        self.assertEqual(first.returncode, 0, first.stderr)
        self.assertEqual((self.site / "torch/alpha.py").read_text(), "a = 1\nb = 3\n")
        self.assertEqual(
            (self.site / "torch/testing/helper.py").read_text(), "HELPER = 1\n"
        )
        applied = self.tree_shas(self.site)
        second = self.run_script("--torch-dir", str(self.site / "torch"))
        self.assertEqual(second.returncode, 0, second.stderr)
        self.assertIn("already applied", second.stdout)
        self.assertEqual(self.tree_shas(self.site), applied)

    def test_revert_restores_checksums(self) -> None:
        pristine = self.tree_shas(self.site)
        self.assertEqual(
            self.run_script("--torch-dir", str(self.site / "torch")).returncode, 0
        )
        revert = self.run_script("--torch-dir", str(self.site / "torch"), "--revert")
        self.assertEqual(revert.returncode, 0, revert.stderr)
        self.assertIn("match the sha256 in BASE", revert.stdout)
        self.assertEqual(self.tree_shas(self.site), pristine)

    def add_patch_creating(self, rel: str, text: str) -> None:
        """A second patch that creates ``rel`` (a whole file, not an upstream one),
        on top of setUp's scratch repository."""
        scratch = self.tmp / "scratch"
        (scratch / rel).parent.mkdir(parents=True, exist_ok=True)
        (scratch / rel).write_text(text)
        _git(scratch, "add", rel)
        _git(scratch, "commit", "-qm", "[test] Add a whole file")
        _git(
            scratch,
            "format-patch",
            "-q",
            "--start-number",
            "2",
            "-o",
            str(self.patches),
            "HEAD~1",
        )
        (self.patches / "series").write_text(
            "".join(p.name + "\n" for p in sorted(self.patches.glob("*.patch")))
        )

    def test_a_file_the_series_creates_is_installed_and_reverted(self) -> None:
        # The series' own whole files (a test utility under torch/testing) are
        # installed with the patched upstream files, verified, and removed by
        # --revert; before, the staged file never reached the torch tree.
        rel = "torch/testing/_internal/created.py"
        self.add_patch_creating(rel, "CREATED = 1\n")
        pristine = self.tree_shas(self.site)
        apply = self.run_script("--torch-dir", str(self.site / "torch"))
        self.assertEqual(apply.returncode, 0, apply.stderr)
        self.assertEqual((self.site / rel).read_text(), "CREATED = 1\n")
        again = self.run_script("--torch-dir", str(self.site / "torch"))
        self.assertIn("already applied", again.stdout)
        revert = self.run_script("--torch-dir", str(self.site / "torch"), "--revert")
        self.assertEqual(revert.returncode, 0, revert.stderr)
        self.assertFalse((self.site / rel).exists())
        self.assertEqual(self.tree_shas(self.site), pristine)

    def test_check_says_it_would_apply(self) -> None:
        pristine = self.tree_shas(self.site)
        check = self.run_script("--torch-dir", str(self.site / "torch"), "--check")
        self.assertEqual(check.returncode, 0, check.stderr)
        self.assertIn("would apply cleanly", check.stdout)
        self.assertEqual(self.tree_shas(self.site), pristine)

    def test_check_on_modified_file_fails_clearly(self) -> None:
        (self.site / "torch/sub/beta.py").write_text("edited\n")
        check = self.run_script("--torch-dir", str(self.site / "torch"), "--check")
        self.assertEqual(check.returncode, 1)
        self.assertRegex(
            check.stderr,
            r"^apply_and_build.sh: error: .*torch/sub/beta.py matches neither the base "
            rf"\({re.escape(TORCH_BASE)}\) nor the patched state",
        )
        self.assertEqual(len(check.stderr.strip().splitlines()), 1)

    def test_nothing_half_applied_when_a_patch_fails(self) -> None:
        # alpha.py is pristine but beta.py is not: refused before anything is written.
        (self.site / "torch/sub/beta.py").write_text("edited\n")
        before = self.tree_shas(self.site)
        result = self.run_script("--torch-dir", str(self.site / "torch"))
        self.assertEqual(result.returncode, 1)
        self.assertEqual(self.tree_shas(self.site), before)

    def test_wrong_torch_version_is_refused(self) -> None:
        self.set_torch_version("2.10.0")
        result = self.run_script("--torch-dir", str(self.site / "torch"))
        self.assertEqual(result.returncode, 4)
        self.assertIn("is version '2.10.0", result.stderr)
        self.assertIn(f"the series needs {TORCH_BASE}", result.stderr)

    # -- one series per base, picked by the torch's version
    def repo_with_two_bases(self) -> pathlib.Path:
        """A copy of the scripts beside two synthetic series, patches/v9.1.0 (made
        for this torch's files) and patches/v9.0.0 (a copy), with no --patches."""
        repo = self.tmp / "repo"
        shutil.copytree(REPO / "scripts", repo / "scripts")
        for version in ["9.1.0", "9.0.0"]:
            series = repo / "patches" / f"v{version}"
            shutil.copytree(self.patches, series)
            base = (series / "BASE").read_text()
            (series / "BASE").write_text(base.replace(TORCH_BASE, version, 1))
        return repo

    def set_torch_version(self, version: str) -> None:
        version_py = self.site / "torch/version.py"
        version_py.write_text(
            re.sub(
                r"^__version__ = '.*'$",
                f"__version__ = '{version}'",
                version_py.read_text(),
                flags=re.MULTILINE,
            )
        )

    def run_in(self, repo: pathlib.Path, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", str(repo / "scripts" / "apply_and_build.sh"), "--no-demo", *args],
            capture_output=True,
            text=True,
        )

    def test_series_is_picked_by_the_torch_version(self) -> None:
        repo = self.repo_with_two_bases()
        # Only v9.0.0 would apply: v9.1.0's patch is emptied of its changes.
        (repo / "patches/v9.1.0" / self.series()[0]).write_text("not a patch\n")
        self.set_torch_version("9.0.0+cpu")
        result = self.run_in(repo, "--check", "--torch-dir", str(self.site / "torch"))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("would apply cleanly", result.stdout)

    def test_unsupported_torch_is_refused_naming_the_bases(self) -> None:
        repo = self.repo_with_two_bases()
        self.set_torch_version("9.0.5")
        before = self.tree_shas(self.site)
        result = self.run_in(repo, "--torch-dir", str(self.site / "torch"))
        self.assertEqual(result.returncode, 4)
        self.assertIn(
            "is version '9.0.5'; the series supports torch "
            "9.1.0 (patches/v9.1.0), 9.0.0 (patches/v9.0.0)",
            result.stderr,
        )
        self.assertEqual(self.tree_shas(self.site), before)

    def test_base_option_names_the_supported_bases(self) -> None:
        repo = self.repo_with_two_bases()
        result = self.run_in(repo, "--base", "9.2.0", "--check")
        self.assertEqual(result.returncode, 2)
        self.assertIn(
            "--base 9.2.0: no series for it; supported: 9.1.0 (patches/v9.1.0), "
            "9.0.0 (patches/v9.0.0)",
            result.stderr,
        )

    def test_missing_git_is_reported(self) -> None:
        bin_dir = self.tmp / "bin"
        bin_dir.mkdir()
        for tool in [
            "bash",
            "awk",
            "sed",
            "grep",
            "sha256sum",
            "mktemp",
            "rm",
            "find",
            "sort",
            "head",
            "tr",
            "cat",
            "dirname",
            "mkdir",
            "cp",
            "cmp",
            "mv",
        ]:
            os.symlink(shutil.which(tool), bin_dir / tool)
        env = {**os.environ, "PATH": str(bin_dir)}
        result = self.run_script("--torch-dir", str(self.site / "torch"), env=env)
        self.assertEqual(result.returncode, 3)
        self.assertIn("'git' is required but not on PATH", result.stderr)

    def test_no_room_for_the_torch_install_is_said_before_pip(self) -> None:
        # The default mode checks this before pip starts a multi-GB download.
        def require(gb: int) -> subprocess.CompletedProcess:
            script = 'PROG=t.sh; . "$1"; require_free_space "$2" "$3" "pip install X"'
            lib = str(REPO / "scripts" / "lib.sh")
            return subprocess.run(
                ["bash", "-c", script, "-", lib, str(self.tmp), str(gb)],
                capture_output=True,
                text=True,
            )

        self.assertEqual(require(0).returncode, 0)
        result = require(10**9)
        self.assertEqual(result.returncode, 3)
        self.assertRegex(
            result.stderr,
            rf"^t\.sh: error: pip install X needs about 1000000000 GB free on the "
            rf"filesystem of {re.escape(str(self.tmp))}; \d+ GB free$",
        )

    # -- scripts/check_series.sh
    def add_patch(self, rel: str, text: str, subject: str) -> None:
        """Append a patch that sets ``rel`` to ``text`` on top of the series."""
        scratch = self.make_checkout(self.tmp / f"scratch_{len(self.series())}")
        for patch in self.series():
            _git(scratch, "am", "-q", str(self.patches / patch))
        (scratch / rel).parent.mkdir(parents=True, exist_ok=True)
        (scratch / rel).write_text(text)
        _git(scratch, "add", "-A")
        _git(scratch, "commit", "-qm", subject)
        number = str(len(self.series()) + 1)
        _git(scratch, "format-patch", "-q", "-1", "--start-number", number)
        made = max(scratch.glob("*.patch"))
        shutil.move(made, self.patches / made.name)
        (self.patches / "series").write_text(
            "".join(p + "\n" for p in [*self.series(), made.name])
        )

    def series(self) -> list[str]:
        return (self.patches / "series").read_text().split()

    def check_series(self, *args: str) -> subprocess.CompletedProcess:
        """check_series.sh against the synthetic torch tree, through an interpreter
        that finds that tree first; the tree must come back byte for byte."""
        (self.site / "torch/__init__.py").touch()
        python = self.tmp / "python"
        python.write_text(
            f"#!/bin/sh\nPYTHONDONTWRITEBYTECODE=1 PYTHONPATH={self.site} "
            f'exec {sys.executable} "$@"\n'
        )
        python.chmod(0o755)
        before = self.tree_shas(self.site)
        result = subprocess.run(
            ["bash", str(REPO / "scripts" / "check_series.sh"), "--python", str(python)]
            + ["--patches", str(self.patches), "--overlay", str(self.overlay), *args],
            capture_output=True,
            text=True,
        )
        self.assertEqual(self.tree_shas(self.site), before)
        return result

    def test_check_series_reports_each_prefix(self) -> None:
        self.add_patch("torch/alpha.py", "a = 1\nb = 4\n", "[test] Second")
        result = self.check_series()
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(
            [line.split()[-1] for line in result.stdout.splitlines()[:2]], ["ok", "ok"]
        )
        self.assertIn("all 2 prefixes apply and import", result.stdout)

    def test_check_series_runs_the_command_on_each_prefix(self) -> None:
        # The command sees the prefix installed: after patch 1, alpha's b is 3, so a
        # probe for patch 2's b = 4 fails there, and the check stops at prefix 1.
        self.add_patch("torch/alpha.py", "a = 1\nb = 4\n", "[test] Second")
        probe = (
            f"import sys; sys.path.insert(0, {str(self.site)!r}); "
            "import torch.alpha as alpha; sys.exit(alpha.b != 4)"
        )
        result = self.check_series("--run", shlex.join([sys.executable, "-c", probe]))
        self.assertEqual(result.returncode, 1)
        self.assertEqual(
            [line.split()[-1] for line in result.stdout.splitlines()], ["(--run)"]
        )
        self.assertIn("prefix 1: '", result.stderr)

    def test_check_series_runs_each_prefixs_own_tests(self) -> None:
        # Patch 2 adds a test of alpha.b == 3 (true after patch 1); patch 3 sets b to
        # 4: --tests passes prefix 2 with its one test and stops at prefix 3.
        probe = (
            "import unittest\n\nimport torch.alpha as alpha\n\n\n"
            "class TestProbe(unittest.TestCase):\n"
            "    def test_b(self):\n"
            "        self.assertEqual(alpha.b, 3)\n"
        )
        self.add_patch("test/test_probe.py", probe, "[test] Test alpha")
        self.add_patch("torch/alpha.py", "a = 1\nb = 4\n", "[test] Change alpha")
        result = self.check_series("--tests")
        self.assertEqual(result.returncode, 1, result.stderr)
        lines = result.stdout.splitlines()
        self.assertTrue(lines[0].endswith(" ok"), lines)
        self.assertRegex(lines[1], r" ok \(1 passed in [\d.]+s\)$")
        self.assertTrue(lines[2].endswith("FAIL (tests)"), lines)
        self.assertIn("prefix 3: its tests fail", result.stderr)
        self.assertIn("test_probe.py::TestProbe::test_b", result.stderr)

    def test_check_series_stops_at_the_first_broken_prefix(self) -> None:
        self.add_patch("torch/alpha.py", "a = (\n", "[test] Break alpha")
        self.add_patch("torch/alpha.py", "a = 1\n", "[test] Mend alpha")
        result = self.check_series()
        self.assertEqual(result.returncode, 1)
        self.assertEqual(
            [line.split()[-1] for line in result.stdout.splitlines()],
            ["ok", "(import)"],
        )
        self.assertIn("prefix 2: import failed", result.stderr)
        self.assertIn("SyntaxError", result.stderr)

    def test_help(self) -> None:
        result = subprocess.run(
            ["bash", str(APPLY), "--help"], capture_output=True, text=True
        )
        self.assertEqual(result.returncode, 0)
        for option in ["--python", "--check", "--revert", "--source", "--build"]:
            self.assertIn(option, result.stdout)
        bad = subprocess.run(
            ["bash", str(APPLY), "--bogus"], capture_output=True, text=True
        )
        self.assertEqual(bad.returncode, 2)

    # -- source-checkout target
    def source_checkout(self) -> pathlib.Path:
        checkout = self.make_checkout(self.tmp / "pytorch")
        self.write_base(self.patches, _git(checkout, "rev-parse", "HEAD"))
        return checkout

    def test_source_applies_with_git_am(self) -> None:
        checkout = self.source_checkout()
        result = self.run_script("--source", str(checkout))
        self.assertEqual(result.returncode, 0, result.stderr)
        subjects = _git(checkout, "log", "--format=%s", "-3").splitlines()
        self.assertEqual(
            subjects,
            [
                "[test] Change alpha and beta",
                "Add torch_overlay files of the custom-op range series",
                "base",
            ],
        )
        self.assertEqual(
            (checkout / "torch/sub/beta.py").read_text(), "def f():\n    return 2\n"
        )
        again = self.run_script("--source", str(checkout))
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertIn("already applied", again.stdout)
        self.assertEqual(len(_git(checkout, "log", "--format=%s").splitlines()), 3)

    def test_source_refuses_dirty_tree(self) -> None:
        checkout = self.source_checkout()
        (checkout / "torch/alpha.py").write_text("dirty\n")
        result = self.run_script("--source", str(checkout))
        self.assertEqual(result.returncode, 1)
        self.assertIn("has uncommitted changes", result.stderr)

    def test_source_refuses_wrong_head(self) -> None:
        checkout = self.source_checkout()
        (checkout / "torch/alpha.py").write_text("later\n")
        _git(checkout, "commit", "-qam", "later")
        result = self.run_script("--source", str(checkout))
        self.assertEqual(result.returncode, 4)
        self.assertIn("the series needs the base commit", result.stderr)

    def test_source_build_dry_run(self) -> None:
        checkout = self.source_checkout()
        env = {**os.environ, "MAX_JOBS": "3", "USE_CUDA": "0"}
        result = self.run_script(
            "--source", str(checkout), "--build", "--dry-run", env=env
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertRegex(
            result.stdout,
            r"would run in .*pytorch: env USE_CUDA=0 MAX_JOBS=3 \S*python\S* -m pip install "
            r"-e \. -v --no-build-isolation",
        )

    def test_real_series_applies_to_checkout_of_wheel_files(self) -> None:
        # Pristine copies of the files the real series touches, from this torch
        # (reverted in a scratch tree when it is patched), committed as a checkout.
        real_patches = SERIES_DIR
        touched = [
            line.split()[2]
            for line in (real_patches / "BASE").read_text().splitlines()
            if line.startswith("sha256 ")
        ]
        site = pathlib.Path(torch.__file__).parents[1]
        checkout = self.tmp / "pytorch"
        overlay_files = [
            str(p.relative_to(REPO / "torch_overlay"))
            for p in (REPO / "torch_overlay").rglob("*.py")
        ]
        # Whole files the series adds to torch (the codegen-only test helper).
        created = [
            m.group(1)
            for p in sorted(real_patches.glob("*.patch"))
            for m in re.finditer(
                r"^diff --git a/(torch/\S+) b/\S+\nnew file mode", p.read_text(), re.M
            )
        ]
        for rel in ["torch/version.py", *touched, *overlay_files, *created]:
            if (site / rel).exists():
                (checkout / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(site / rel, checkout / rel)
        subprocess.run(
            ["bash", str(APPLY), "--torch-dir", str(checkout / "torch"), "--revert"],
            check=True,
            capture_output=True,
        )
        _git(checkout, "init", "-q")
        _git(checkout, "add", ".")
        _git(checkout, "commit", "-qm", "base")
        patches = self.tmp / "real_patches"
        shutil.copytree(real_patches, patches)
        base = (patches / "BASE").read_text()
        (patches / "BASE").write_text(
            re.sub(
                r"^commit \w+",
                f"commit {_git(checkout, 'rev-parse', 'HEAD')}",
                base,
                flags=re.MULTILINE,
            )
        )
        result = subprocess.run(
            ["bash", str(APPLY), "--patches", str(patches), "--source", str(checkout)],
            capture_output=True,
            text=True,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        again = subprocess.run(
            ["bash", str(APPLY), "--patches", str(patches), "--source", str(checkout)],
            capture_output=True,
            text=True,
        )
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertIn("already applied", again.stdout)
        series = (patches / "series").read_text().split()
        # The base, the overlay's commit (when there is an overlay), the patches.
        self.assertEqual(
            len(_git(checkout, "log", "--format=%s").splitlines()),
            1 + bool(overlay_files) + len(series),
        )
        if hasattr(custom_op, "_build_torch_cond_dispatch"):  # this torch is patched
            for rel in touched + overlay_files + created:
                self.assertEqual(_sha256(checkout / rel), _sha256(site / rel), msg=rel)


if __name__ == "__main__":
    run_tests()
