"""JUnit XML: one ``<testsuite>`` per file and one failing ``<testcase>`` per finding, for CI
systems that show test reports (a clean run is one passing test case)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from fp16lint.findings import Finding
from fp16lint.formatters import FormatContext, location, with_help


def format_junit(findings: list[Finding], ctx: FormatContext) -> str:
    root = ET.Element("testsuites", name="fp16lint", tests=str(max(1, len(findings))))
    root.set("failures", str(len(findings)))
    root.set("errors", "0")
    by_path: dict[str, list[Finding]] = {}
    for finding in findings:
        by_path.setdefault(finding.path, []).append(finding)
    for path, items in by_path.items():
        suite = ET.SubElement(root, "testsuite", name=path, tests=str(len(items)))
        suite.set("failures", str(len(items)))
        suite.set("errors", "0")
        for finding in items:
            case = ET.SubElement(suite, "testcase", name=f"fp16lint.{finding.code}", classname=path)
            if finding.span.cell is None:
                case.set("line", str(finding.span.start.line))
            failure = ET.SubElement(case, "failure", message=finding.message, type=finding.code)
            failure.text = f"{location(path, finding.span)}: {finding.code} {with_help(finding)}"
    if not findings:
        suite = ET.SubElement(
            root, "testsuite", name="fp16lint", tests="1", failures="0", errors="0"
        )
        ET.SubElement(suite, "testcase", name="No findings", classname="fp16lint")
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{body}\n'
