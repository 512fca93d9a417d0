"""The Voila and JupyterLab command lines: 127.0.0.1 only, culling that survives a background updater, clear errors."""

from __future__ import annotations

import pytest

from workbench.apps import lab_command, voila_command
from workbench.cli import main
from workbench.exceptions import ConfigError


def test_voila_serves_on_loopback_with_culling_that_ignores_widget_traffic():
    cmd = voila_command("dashboard", port=9999, cull_idle_s=30)
    assert cmd[3].endswith("03_monitoring_dashboard.ipynb")
    assert "--port=9999" in cmd and "--Voila.ip=127.0.0.1" in cmd and "--no-browser" in cmd
    assert "--MappingKernelManager.cull_idle_timeout=30" in cmd
    untracked = {c.split("=", 1)[1] for c in cmd if c.startswith("--MappingKernelManager.untracked_message_types=")}
    assert {"comm_msg", "execute_request", "status", "kernel_info_request"} <= untracked


def test_an_unknown_app_or_a_missing_notebook_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown app"):
        voila_command("nope")
    with pytest.raises(ConfigError, match="not found"):
        voila_command(str(tmp_path / "missing.ipynb"))


def test_lab_opens_the_notebooks_on_loopback():
    cmd = lab_command(port=8899, open_browser=False)
    assert "--ServerApp.ip=127.0.0.1" in cmd and "--no-browser" in cmd and any("notebooks" in c for c in cmd)


def test_attaching_without_a_token_is_refused(capsys, monkeypatch):
    monkeypatch.delenv("WORKBENCH_CONTROL_TOKEN", raising=False)
    assert main(["dashboard", "--control", "ws://127.0.0.1:1/"]) == 2
    assert "token" in capsys.readouterr().err
