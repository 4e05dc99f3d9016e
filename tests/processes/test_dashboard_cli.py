"""``pubsub-jobs dashboard`` refuses to listen beyond loopback without access control."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from tests.unit.dashboard.test_views import ANYWHERE

ROOT = Path(__file__).resolve().parents[2]


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


KEY, OTHER = _key(), _key()


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PUBSUB_JOBS_DASHBOARD")}
    return subprocess.run(
        [sys.executable, "-m", "pubsub_jobs", "dashboard", *args], cwd=ROOT,
        env={**environ, "PUBSUB_JOBS_PROJECT_ID": "p", **env},
        capture_output=True, text=True, timeout=60, check=False,
    )


def test_the_command_refuses_to_listen_elsewhere_without_access_control() -> None:
    refused = _cli("--queue", "default", "--host", ANYWHERE)
    assert refused.returncode == 2
    assert "without access control" in refused.stderr and "--token" in refused.stderr
    weak = _cli("--queue", "default", "--host", ANYWHERE, "--token", "abc")
    assert weak.returncode == 2 and "shorter than 16" in weak.stderr
    both = _cli("--queue", "default", "--host", ANYWHERE,
                PUBSUB_JOBS_DASHBOARD_TOKEN="t" * 20, PUBSUB_JOBS_DASHBOARD_IAP_AUDIENCE="a")
    assert both.returncode == 2 and "not both" in both.stderr
    helped = subprocess.run([sys.executable, "-m", "pubsub_jobs", "dashboard", "--help"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert "--iap-audience" in helped.stdout and "--port" in helped.stdout
