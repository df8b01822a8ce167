"""An embedded Procore-compatible sandbox: OAuth login host, REST API and a separate storage
host over one in-memory world, with sample construction projects. The demo's backend and the
tests' fake; `dryviq-tui sandbox` serves it."""

from core.sandbox.app import ResponseDropped, create_app
from core.sandbox.samples import DEMO_COMPANY, DEMO_PROJECT, bulk_project, demo_world
from core.sandbox.server import RunningSandbox, SandboxThread, serve
from core.sandbox.world import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SANDBOX_LOGIN,
    SANDBOX_PASSWORD,
    SERVICE_CLIENT_ID,
    SERVICE_CLIENT_SECRET,
    SandboxConfig,
    World,
)

__all__ = [
    "DEMO_COMPANY",
    "DEMO_PROJECT",
    "SANDBOX_CLIENT_ID",
    "SANDBOX_CLIENT_SECRET",
    "SANDBOX_LOGIN",
    "SANDBOX_PASSWORD",
    "SERVICE_CLIENT_ID",
    "SERVICE_CLIENT_SECRET",
    "ResponseDropped",
    "RunningSandbox",
    "SandboxConfig",
    "SandboxThread",
    "World",
    "bulk_project",
    "create_app",
    "demo_world",
    "serve",
]
