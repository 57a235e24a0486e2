"""The README stays true to the code: commands, error codes, make targets, config keys."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pg_mcp.cli.main import COMMANDS, build_parser
from pg_mcp.core.errors import CODES

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_cli_command_is_in_the_readme(command: str) -> None:
    assert f"pg-mcp {command}" in README, f"README does not mention `pg-mcp {command}`"


@pytest.mark.parametrize("code", sorted(CODES))
def test_every_error_code_is_in_the_readme_table(code: str) -> None:
    assert re.search(rf"^\|\s*`{code}`\s*\|", README, re.MULTILINE), (
        f"{code} missing from the error table"
    )


def test_readme_error_table_has_no_unknown_codes() -> None:
    section = README.split("## Error codes", 1)[1].split("\n## ", 1)[0]
    table_codes = set(re.findall(r"^\|\s*`([A-Z_]+)`\s*\|", section, re.MULTILINE))
    assert table_codes <= set(CODES), (
        f"README lists codes the code does not have: {table_codes - set(CODES)}"
    )


def test_quick_start_is_two_commands() -> None:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```(?:sh|bash|shell)?\n(.*?)```", section, re.DOTALL)
    assert block, "Quick start has no code block"
    commands = [
        ln for ln in block.group(1).splitlines() if ln.strip() and not ln.strip().startswith("#")
    ]
    assert commands == ["make demo", "make test"]


def test_every_make_target_is_documented() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = re.findall(r"^([a-z][a-z-]*):.*## ", makefile, re.MULTILINE)
    missing = [t for t in targets if f"make {t}" not in README]
    assert not missing, f"make targets missing from README: {missing}"


def test_cli_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert command in out


def test_every_config_section_is_documented() -> None:
    from pg_mcp.core.settings import _FILE_KEYS

    for section, keys in _FILE_KEYS.items():
        assert f"[{section}]" in README, f"[{section}] missing from the configuration reference"
        for key in keys:
            assert key in README, f"config key {section}.{key} missing from README"


def test_every_environment_variable_is_documented() -> None:
    from pg_mcp.core.settings import _ENV_KEYS

    missing = [
        var for var in (*_ENV_KEYS, "PG_MCP_CONFIG", "PG_MCP_TEST_DSN") if f"`{var}`" not in README
    ]
    assert not missing, f"environment variables missing from README: {missing}"


LAYERS = ("core", "db", "refs", "ask", "server", "cli")


def _layout_block() -> str:
    start = README.index("Layout: the packages are the layers")
    begin = README.index("```", start)
    return README[begin : README.index("```", begin + 3)]


@pytest.mark.parametrize("layer", LAYERS)
def test_the_readme_layout_names_every_module_of_each_layer(layer: str) -> None:
    """The README's map matches the tree: every module and subpackage of a layer is named."""
    block = _layout_block()
    assert f"{layer}/" in block
    package = ROOT / "src" / "pg_mcp" / layer
    for path in sorted(package.iterdir()):
        if path.name.startswith(("_", ".")) or path.name == "__pycache__":
            continue
        name = path.name if path.suffix == ".py" else f"{path.name}/"
        assert name in block, f"README layout does not name {layer}/{name}"


def test_every_layer_says_what_it_may_import() -> None:
    for layer in LAYERS:
        doc = (ROOT / "src" / "pg_mcp" / layer / "__init__.py").read_text(encoding="utf-8")
        assert "import" in doc, f"pg_mcp.{layer}'s docstring says nothing about its imports"
