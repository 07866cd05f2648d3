"""Secrets and local data stay out of git: ``.env`` files in any folder, keys, the embedded
Postgres; the committed examples and every tracked file stay in."""

import shutil
import subprocess

import pytest

from cryptify_pipeline.settings import project_root

ROOT = project_root()
pytestmark = pytest.mark.skipif(
    shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs a git checkout"
)


def ignored(*paths: str) -> set[str]:
    """Which of ``paths`` .gitignore excludes (whether or not they exist)."""
    result = subprocess.run(
        ["git", "check-ignore", "--no-index", "--stdin"],
        cwd=ROOT, input="\n".join(paths), capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode in (0, 1), result.stderr  # 1: none ignored
    return set(result.stdout.split())


def test_env_files_keys_and_local_data_are_ignored_anywhere():
    secrets = [
        ".env", "docker/.env", "deploy/prod/.env", ".env.local", "docker/.env.production",
        "certs/server.key", "certs/server.pem",
    ]  # fmt: skip
    local_data = [".cryptify/pg/PG_VERSION", ".cryptify/pg-test/base/1", "sub/.cryptify/x"]
    assert ignored(*secrets, *local_data) == {*secrets, *local_data}


def test_examples_and_tracked_files_are_kept():
    assert ignored(".env.example", "docker/.env.example") == set()
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=30
    ).stdout.split()
    assert "docker/.env.example" in tracked
    assert ignored(*tracked) == set()
