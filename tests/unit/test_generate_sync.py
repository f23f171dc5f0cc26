"""The sync modules are generated from the asyncio sources, and kept in step."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "generate_sync", ROOT / "scripts" / "generate_sync.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


gen = _generator()


@pytest.mark.skipif(
    sys.version_info[:2] != (3, 11) or importlib.util.find_spec("ruff") is None,
    reason="the generator runs on the development Python (3.11) with the dev extra's ruff",
)
def test_every_generated_module_matches_its_source() -> None:
    for source, target in gen.MODULES.items():
        wanted = gen.generate(gen.PACKAGE / source)
        current = (gen.PACKAGE / target).read_text()
        assert current == wanted, f"src/que/{target} is stale: run scripts/generate_sync.py"
        assert current.startswith(f"# Generated from {source} ")


def test_keywords_go_and_names_are_renamed() -> None:
    source = (
        "async def f(client: AsyncClient) -> None:\n"
        '    """Uses an ``AsyncClient``; ``async with`` it."""\n'
        "    async with client.connections.cursor() as cur:\n"
        "        await cur.execute('SELECT 1')  # AsyncJob here\n"
        "    async for note in conn.notifies():\n"
        "        x = (await (await conn.execute(q)).fetchone())\n"
        "    asyncio_name = 'await'\n"
    )
    assert gen._rewrite_tokens(source) == (
        "def f(client: Client) -> None:\n"
        '    """Uses an ``Client``; ``with`` it."""\n'
        "    with client.connections.cursor() as cur:\n"
        "        cur.execute('SELECT 1')  # Job here\n"
        "    for note in conn.notifies():\n"
        "        x = ((conn.execute(q)).fetchone())\n"
        "    asyncio_name = 'await'\n"
    )


def test_if_async_blocks_keep_the_sync_branch() -> None:
    source = (
        "class C:\n"
        "    if ASYNC:\n"
        "\n"
        "        def f(self) -> int:\n"
        "            return 1\n"
        "\n"
        "    else:\n"
        "\n"
        "        def f(self) -> int:\n"
        "            return 2\n"
        "\n"
        "    def g(self) -> None:\n"
        "        if ASYNC:\n"
        "            pass\n"
        "        x = 3\n"
    )
    assert gen._keep_sync_branches(source) == (
        "class C:\n"
        "\n"
        "    def f(self) -> int:\n"
        "        return 2\n"
        "\n"
        "    def g(self) -> None:\n"
        "        x = 3\n"
    )
