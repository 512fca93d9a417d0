"""binder/ describes an environment Binder can build: a Python it has, and an install of this project."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_binder_installs_the_project_on_python_311():
    assert (ROOT / "binder/runtime.txt").read_text().strip() == "python-3.11"
    post = ROOT / "binder/postBuild"
    assert post.stat().st_mode & 0o111, "postBuild must be executable"
    assert 'pip install --no-cache-dir -e ".[test]"' in post.read_text()
