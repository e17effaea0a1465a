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

from veeam_efficiency.contract import DOCUMENT_FIELDS, JOB_FIELDS, REPOSITORY_FIELDS, SESSION_FIELDS

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
        body = next((child for child in literal.children if child.type == "hash_literal_body"), None)
        if body is None:  # an empty [ordered]@{} filled later
            continue
        entries = [entry for entry in body.children if entry.type == "hash_entry"]
        found.append([unquote(text(entry.child(0))) for entry in entries])
    return found


DIAGNOSTICS_FIELDS = [
    "powershell_version", "powershell_edition", "module_source", "session_path", "session_path_reason",
    "missing_queries", "sessions_read", "sessions_by_job_type", "skipped", "timings_s", "missing",
]  # fmt: skip


def test_emitted_fields_are_exactly_the_contract(tree: Node) -> None:
    """Session, document (v2), job and repository (plain and scale-out) records, and the diagnostics."""
    expected = [
        list(SESSION_FIELDS), list(DOCUMENT_FIELDS), list(JOB_FIELDS),
        list(REPOSITORY_FIELDS), list(REPOSITORY_FIELDS), DIAGNOSTICS_FIELDS,
    ]  # fmt: skip
    assert sorted(ordered_hash_keys(tree)) == sorted(expected)
    assert "jobs" in DOCUMENT_FIELDS and "object_name" in SESSION_FIELDS


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
        "AllowFullSessionScan": (["[switch]"], False),  # off unless the DAG's allow_full_session_scan is set
        "Diagnose": (["[switch]"], False),
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
    assert {
        "GetByTypeAndTimeInterval", "GetAllSessionsByPolicyJobAndTimeRange", "GetByJobAndTimeRangeWithLog", "GetByJob",
    } <= probed  # fmt: skip
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


# --- issue 13: what a real VBR 12.3 / 13 server needs ---------------------------------------


def functions(root: Node) -> dict[str, Node]:
    """Function name -> its script block."""
    found = {}
    for node in walk(root):
        if node.type == "function_statement":
            name = next(child for child in node.children if child.type == "function_name")
            found[text(name)] = next(child for child in node.children if child.type == "script_block")
    return found


def if_statements(node: Node) -> list[tuple[str, str, Node]]:
    """(condition text, body text, node) of every if statement under ``node``."""
    found = []
    for current in walk(node):
        if current.type == "if_statement":
            condition = next(child for child in current.children if child.type == "pipeline")
            body = next(child for child in current.children if child.type == "statement_block")
            found.append((text(condition), text(body), current))
    return found


def calls(node: Node, name: str) -> list[Node]:
    """Command invocations of ``name`` (case-insensitive) under ``node``, in source order."""
    return [
        current
        for current in walk(node)
        if current.type == "command"
        and (command := current.child_by_field_name("command_name")) is not None
        and text(command).lower() == name.lower()
    ]


def main_body(root: Node) -> Node:
    """The statements of the script's one top-level try."""
    top = next(child for child in root.children if child.type == "statement_list")
    return next(node for node in top.children if node.type == "try_statement")


def tls_problems(root: Node) -> list[str]:
    body = functions(root).get("Connect-LocalVbrServer")
    if body is None:
        return ["no Connect-LocalVbrServer"]
    problems = []
    guards = [
        (condition, block) for condition, block, _ in if_statements(body)
        if "Parameters.ContainsKey('ForceAcceptTlsCertificate')" in condition
    ]  # fmt: skip
    if not any("$connect['ForceAcceptTlsCertificate'] = $true" in block for _, block in guards):
        problems.append("-ForceAcceptTlsCertificate is not set under a check that the cmdlet has it")
    connects = calls(root, "Connect-VBRServer")
    if [" ".join(arguments) for name, arguments in commands(root) if name == "connect-vbrserver"] != ["@connect"]:
        problems.append("Connect-VBRServer must be called once, with the splatted @connect")
    if connects and guards and connects[0].start_byte < max(node.end_byte for _, _, node in if_statements(body)):
        problems.append("Connect-VBRServer runs before the parameter check")
    return problems


def full_scan_problems(root: Node) -> list[str]:
    body = functions(root).get("Read-RawSessions")
    if body is None:
        return ["no Read-RawSessions"]
    refusals = [
        node for condition, block, node in if_statements(body)
        if condition == "-not $AllowFullSessionScan" and "throw ($missing" in block
    ]  # fmt: skip
    scans = calls(body, "Get-VBRBackupSession")
    if not refusals or not scans:
        return ["no refusal of the full session scan without -AllowFullSessionScan"]
    if scans[0].start_byte < refusals[0].end_byte:
        return ["Get-VBRBackupSession runs before the -AllowFullSessionScan check"]
    return []


def skip_problems(root: Node) -> list[str]:
    """The main loop checks a session's shape before reading any of its properties."""
    loop = next(
        (node for node in walk(main_body(root)) if node.type == "foreach_statement" and "in $raw)" in text(node)), None
    )
    if loop is None:
        return ["no loop over the raw sessions"]
    statements = next(child for child in loop.children if child.type == "statement_block").children[1]
    first = [child for child in statements.children if child.type not in ("empty_statement",)][:2]
    problems = []
    if not text(first[0]).startswith("$shape = Get-SessionShapeProblem -Session $s"):
        problems.append(f"the loop starts with {text(first[0])!r}, not the shape check")
    if not (first[1].type == "if_statement" and "continue" in text(first[1]) and "$null -ne $shape" in text(first[1])):
        problems.append("a session with a shape problem is not counted and skipped")
    checker = text(functions(root).get("Get-SessionShapeProblem") or first[0])
    if "PSObject.Properties[$name]" not in checker or not all(
        f"'{name}'" in checker for name in ("BackupStats", "Info")
    ):
        problems.append("Get-SessionShapeProblem does not look BackupStats and Info up without reading them")
    return problems


@pytest.mark.parametrize(
    ("check", "intact", "broken"),
    [
        (tls_problems, b"if ((Get-Command -Name Connect-VBRServer).Parameters.ContainsKey(", b"if (($true) -or ("),
        (full_scan_problems, b"if (-not $AllowFullSessionScan) {", b"if ($false) {"),
        (skip_problems, b"        $shape = Get-SessionShapeProblem -Session $s\n", b""),
    ],
)
def test_structure_checks_can_fail(check, intact: bytes, broken: bytes) -> None:
    """Each structural check below finds the problem in a copy where the guard is removed."""
    source = SCRIPT.read_bytes()
    assert intact in source
    assert check(parse(source.replace(intact, broken, 1)))


def test_tls_certificate_is_accepted_where_the_cmdlet_has_the_parameter(tree: Node) -> None:
    """Point 1: VBR 13 asks to accept the certificate; v12's cmdlet has no such parameter."""
    assert tls_problems(tree) == []


def test_heartbeat_goes_to_stderr_at_least_every_60_seconds(tree: Node) -> None:
    """Point 2: a second runspace writes to stderr while the main one blocks in a long query."""
    interval = next(
        text(node) for node in walk(tree) if node.type == "pipeline" and text(node).startswith("$HeartbeatSeconds = ")
    )
    assert 0 < int(interval.split("=")[1].split("#")[0]) <= 60
    heartbeat = text(functions(tree)["Start-Heartbeat"])
    assert "[powershell]::Create()" in heartbeat and ".BeginInvoke()" in heartbeat
    assert "while ($true)" in heartbeat and "[Console]::Error.WriteLine(" in heartbeat
    assert "Start-Sleep -Seconds $Seconds" in heartbeat
    body = main_body(tree)
    start = calls(body, "Start-Heartbeat")[0]
    assert start.start_byte < calls(body, "Import-VeeamModule")[0].start_byte  # running before any Veeam call
    assert len(calls(tree, "Stop-Heartbeat")) == 2  # on success and on failure


def test_full_session_scan_only_when_allowed_else_fail_naming_the_missing_call(tree: Node) -> None:
    """Point 2: without -AllowFullSessionScan the run fails, naming what Get-SessionApi found missing."""
    assert full_scan_problems(tree) == []
    api = text(functions(tree)["Get-SessionApi"])
    for signature in (
        "GetByTypeAndTimeInterval(EDbJobType, DateTime, DateTime)",
        "GetAllSessionsByPolicyJobAndTimeRange(Guid, DateTime, DateTime)",
        "GetByJobAndTimeRangeWithLog(Guid, DateTime)",
        "GetByJob(Guid)",
    ):
        assert f"$api.Missing += 'CBackupSession.{signature}'" in api
    assert "($Api.Missing -join '; ')" in text(functions(tree)["Read-RawSessions"])


def test_assemblies_are_probed_after_a_cheap_call(tree: Node) -> None:
    """Point 3: Veeam's assemblies load lazily; probing first would silently pick the slow path."""
    api = functions(tree)["Get-SessionApi"]
    cheap = calls(api, "Get-VBRServer")[0]
    probe = next(node for node in walk(api) if text(node) == "'Veeam.Backup.Core.CBackupSession' -as [type]")
    assert cheap.start_byte < probe.start_byte
    body = main_body(tree)
    order = [
        calls(body, name)[0].start_byte for name in ("Import-VeeamModule", "Connect-LocalVbrServer", "Get-SessionApi")
    ]
    assert order == sorted(order)


def test_module_import_falls_back_to_the_console_folder_and_names_both(tree: Node) -> None:
    """Point 3: by name, then the console's install folder, then one error naming both."""
    body = functions(tree)["Import-VeeamModule"]
    imports = [" ".join(arguments) for name, arguments in commands(body) if name == "import-module"]
    assert [arguments.split()[1] for arguments in imports] == ["Veeam.Backup.PowerShell", "$consolePath"]
    tries = [node for node in walk(body) if node.type == "try_statement"]
    assert len(tries) == 2 and all(calls(node, "Import-Module") for node in tries)
    message = text(body)
    assert (
        "Import-Module Veeam.Backup.PowerShell failed ({0})" in message
        and "Import-Module '{1}' failed ({2})" in message
    )
    assert "throw ($message -f $byName, $consolePath, $_.Exception.Message)" in message
    assert "Console\\Veeam.Backup.PowerShell\\Veeam.Backup.PowerShell.psd1" in text(
        functions(tree)["Get-ConsoleModulePath"]
    )


def test_sessions_without_backup_stats_or_info_are_counted_and_skipped(tree: Node) -> None:
    """Point 4: under StrictMode a wrapper type must not stop the run."""
    assert skip_problems(tree) == []
    assert "$skipped[$shape] += 1; continue" in text(main_body(tree))


def test_child_sessions_are_scored_under_their_parent(tree: Node) -> None:
    """Point 5: Info.PolicyTag/PolicyName name the parent; the machine goes in object_name."""
    parent = text(functions(tree)["Get-ParentJob"])
    assert "Get-OptionalValue $Session.Info 'PolicyTag'" in parent
    assert "Get-OptionalValue $Session.Info 'PolicyName'" in parent
    record = text(functions(tree)["ConvertTo-SessionRecord"])
    assert "$jobId = $Parent[0]" in record and "$name = $Parent[1]" in record and "$objectName = $Parent[2]" in record
    body = text(main_body(tree))
    assert "$ownerName = $parent[1]" in body and "$wanted.Contains($ownerName)" in body  # job_names match parents
    read = text(functions(tree)["Read-RawSessions"])
    assert "$arguments = [object[]] @($job.Id, $QueryFrom, $QueryTo)" in read  # the policy call's (Guid, from, to)


def test_every_job_type_with_backup_data_is_collected(tree: Node) -> None:
    """Point 6: agent, plug-in and AHV types; any type whose BackupStats report data; counts per type."""
    listed = next(
        text(node) for node in walk(tree) if node.type == "pipeline" and text(node).startswith("$BackupJobTypes = ")
    )
    for job_type in (
        "EpAgentManagement",
        "OracleRMANBackup",
        "SapHanaBackintBackup",
        "MSSQLPluginBackup",
        "VmbApiPolicyTempJob",
    ):
        assert f"'{job_type}'" in listed
    body = text(main_body(tree))
    assert "$BackupJobTypes -notcontains $type -and [long] $s.BackupStats.DataSize -le 0" in body
    assert "Write-Diagnostic ('sessions emitted per job type: ' + $typeText)" in body
    read = text(functions(tree)["Read-RawSessions"])
    assert "[System.Enum]::GetNames($Api.JobTypeEnum)" in read  # every type the server defines
    assert "Get-VBRComputerBackupJobSession" in read and "Get-VBRUnstructuredBackupSession" in read  # said as missing


def test_pending_and_action_required_are_running_states(tree: Node) -> None:
    """Point 7."""
    states = next(
        text(node) for node in walk(tree) if node.type == "pipeline" and text(node).startswith("$RunningStates = ")
    )
    assert "'Pending'" in states and "'ActionRequired'" in states


def test_job_settings_come_from_each_job_kind_and_never_stop_the_run(tree: Node) -> None:
    """Contract v2: VM jobs, backup copy jobs and agent jobs; repositories plain and scale-out."""
    settings = functions(tree)["Get-JobSettings"]
    assert {name for name, _ in commands(settings)} >= {
        "get-vbrjob",
        "get-vbrbackupcopyjob",
        "get-vbrcomputerbackupjob",
    }
    assert "'Options.BackupStorageOptions'" in text(settings) and "'StgBlockSize'" in text(settings)
    # copy and agent jobs: Veeam's documented VBRBackupCopyJobStorageOptions / VBRStorageOptions names
    for name in ("'StorageOptimizationType'", "'EnableDataDeduplication'", "'EnableEncryption'"):
        assert name in text(settings)
    sizes = text(functions(tree)["ConvertTo-BlockSizeKb"])
    assert "$StorageOptimizationKb.ContainsKey([string] $Value)" in sizes
    repositories = functions(tree)["Get-RepositoryIndex"]
    assert [" ".join(arguments) for name, arguments in commands(repositories) if name == "get-vbrbackuprepository"] == [
        "-WarningAction SilentlyContinue",
        "-ScaleOut -WarningAction SilentlyContinue",
    ]
    guarded = next(
        node for node in walk(main_body(tree)) if node.type == "try_statement" and calls(node, "Get-JobSettings")
    )
    assert "$problems.Add('job settings could not be read" in text(guarded)
    levels = next(
        text(node) for node in walk(tree) if node.type == "pipeline" and text(node).startswith("$CompressionLevels = ")
    )
    for code, name in (
        ("-1", "Auto"),
        ("0", "None"),
        ("4", "DedupeFriendly"),
        ("5", "Optimal"),
        ("6", "High"),
        ("9", "Extreme"),
    ):
        assert f"'{code}' = '{name}'" in levels


def test_the_session_list_is_returned_whole(tree: Node) -> None:
    """``return $list`` unrolls it: no sessions would be $null and one a bare object, whose .Count
    StrictMode refuses; every return of Read-RawSessions keeps the list (``return , $raw``)."""
    returns = [
        text(node) for node in walk(functions(tree)["Read-RawSessions"])
        if node.type == "flow_control_statement" and text(node).startswith("return")
    ]  # fmt: skip
    assert returns and set(returns) == {"return , $raw"}, returns
