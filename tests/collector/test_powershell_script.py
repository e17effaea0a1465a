"""Static checks of include/get_efficiency_data.ps1, read as a tree-sitter-powershell syntax tree.

There is no PowerShell on this machine, so the collector is checked as code: it parses, it
emits exactly the contract's fields, its parameters are typed, it loads Veeam's module and
probes the fast session queries, it keeps stdout for the JSON document, and it never turns
a string into code.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import tree_sitter_powershell
from tree_sitter import Language, Node, Parser

from veeam_efficiency.contract import DOCUMENT_FIELDS, SESSION_FIELDS

SCRIPT = Path(__file__).resolve().parents[2] / "include" / "get_efficiency_data.ps1"
POWERSHELL = Language(tree_sitter_powershell.language())  # the package exposes a PyCapsule via language()


def parse(source: bytes) -> Node:
    return Parser(POWERSHELL).parse(source).root_node


def walk(node: Node) -> Iterator[Node]:
    """Every node, depth first; iterative because expression nesting runs deep."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.children))


def text(node: Node) -> str:
    return node.text.decode() if node.text is not None else ""


def syntax_problems(root: Node) -> list[str]:
    return [
        f"{'MISSING' if node.is_missing else 'ERROR'} at line {node.start_point[0] + 1}: {text(node)[:60]!r}"
        for node in walk(root)
        if node.type == "ERROR" or node.is_missing
    ]


def commands(root: Node) -> list[tuple[str, list[str]]]:
    """(lower-case command name, argument tokens) for every command invocation."""
    found = []
    for node in walk(root):
        if node.type == "command" and (name := node.child_by_field_name("command_name")) is not None:
            elements = node.child_by_field_name("command_elements")
            children = elements.children if elements is not None else []
            arguments = [text(child) for child in children if child.type != "command_argument_sep"]
            found.append((text(name).lower(), arguments))
    return found


def unquote(value: str) -> str:
    return value.strip("'\"")


@pytest.fixture(scope="module")
def tree() -> Node:
    return parse(SCRIPT.read_bytes())


def test_script_parses_without_errors(tree: Node) -> None:
    assert syntax_problems(tree) == []


@pytest.mark.parametrize(
    ("intact", "broken"),
    [
        (b"function Write-Diagnostic {", b"function Write-Diagnostic {{"),  # unbalanced brace
        (b"$sessions.ToArray()", b"$sessions.ToArray("),  # unclosed call
    ],
)
def test_the_parse_check_can_fail(intact: bytes, broken: bytes) -> None:
    """A damaged copy must produce ERROR/MISSING nodes, or the test above proves nothing."""
    source = SCRIPT.read_bytes()
    assert intact in source
    assert syntax_problems(parse(source.replace(intact, broken, 1)))


def test_script_is_ascii() -> None:
    """Windows PowerShell 5.1 reads a BOM-less script as ANSI: keep it plain ASCII."""
    SCRIPT.read_bytes().decode("ascii")


def ordered_hash_keys(root: Node) -> list[list[str]]:
    """Keys of every ``[ordered]@{...}`` literal, in order (nested literals not mixed in)."""
    found = []
    for node in walk(root):
        if node.type != "cast_expression" or text(node.children[0]).replace(" ", "").lower() != "[ordered]":
            continue
        literal = next(child for child in node.children[1].children if child.type == "hash_literal_expression")
        body = next(child for child in literal.children if child.type == "hash_literal_body")
        entries = [entry for entry in body.children if entry.type == "hash_entry"]
        found.append([unquote(text(entry.child(0))) for entry in entries])
    return found


def test_emitted_fields_are_exactly_the_contract(tree: Node) -> None:
    assert sorted(ordered_hash_keys(tree)) == sorted([list(SESSION_FIELDS), list(DOCUMENT_FIELDS)])


def test_param_block_declares_typed_parameters(tree: Node) -> None:
    """Typed parameters: a caller's value is data bound to a parameter, never script text."""
    block = next(child for child in tree.children if child.type == "param_block")
    declared = {}
    for parameter in (node for node in walk(block) if node.type == "script_parameter"):
        name = text(next(child for child in parameter.children if child.type == "variable")).lstrip("$")
        attributes = [text(node).replace(" ", "") for node in walk(parameter) if node.type == "attribute"]
        types = [attribute.lower() for attribute in attributes if not attribute.startswith("[Parameter")]
        mandatory = any(attribute.startswith("[Parameter(Mandatory=$true") for attribute in attributes)
        declared[name] = (types, mandatory)
    assert declared == {
        "From": (["[datetime]"], True),
        "To": (["[datetime]"], True),
        "JobName": (["[string[]]"], False),
        "JobNameBase64": (["[string]"], False),
    }


def test_loads_the_veeam_module(tree: Node) -> None:
    imports = [arguments for name, arguments in commands(tree) if name == "import-module"]
    assert any("Veeam.Backup.PowerShell" in arguments for arguments in imports)


def test_probes_the_indexed_queries_and_keeps_the_cmdlet_fallback(tree: Node) -> None:
    probed = set()
    for node in walk(tree):
        if node.type == "invokation_expression" and any(
            child.type == "member_name" and text(child) == "GetMethod" for child in node.children
        ):
            first = next(n for n in walk(node.children[-1]) if n.type == "string_literal")
            probed.add(unquote(text(first)))
    assert {"GetByTypeAndTimeInterval", "GetByJobAndTimeRangeWithLog", "GetByJob"} <= probed
    assert "get-vbrbackupsession" in {name for name, _ in commands(tree)}


def test_nothing_executes_strings(tree: Node) -> None:
    names = {name for name, _ in commands(tree)}
    assert not names & {"invoke-expression", "iex", "invoke-command", "icm", "start-process", "start-job"}
    nodes = list(walk(tree))
    assert not [text(n) for n in nodes if n.type == "command_invokation_operator"]  # & $x, . $x
    assert not {text(n) for n in nodes if n.type == "member_name"} & {"InvokeScript", "NewScriptBlock"}
    assert not [text(n) for n in nodes if n.type == "type_literal" and text(n).lower() == "[scriptblock]"]


def test_stdout_is_kept_for_the_document(tree: Node) -> None:
    """Under ``powershell.exe -File`` the host and warning streams land on stdout too."""
    names = {name for name, _ in commands(tree)}
    talkers = {"write-host", "write-output", "echo", "write-warning", "write-information", "write-verbose", "out-host"}
    assert not names & talkers
    assert [args[-1].lower() for name, args in commands(tree) if name == "set-strictmode"] == ["latest"]


def test_any_failure_exits_non_zero(tree: Node) -> None:
    """The main body is one top-level try whose catch ends in ``exit 1``."""
    top = next(child for child in tree.children if child.type == "statement_list")
    tries = [node for node in top.children if node.type == "try_statement"]
    assert len(tries) == 1
    exits = [text(node) for node in walk(tries[0]) if node.type == "flow_control_statement"]
    assert exits[-1] == "exit 1"
