"""The examples of a conformance run as JUnit XML: one test case per example, numbered as on the console."""

from __future__ import annotations

from xml.etree import ElementTree

from .campaign import ConformReport


def junit_xml(report: ConformReport) -> str:
    """The outcomes as JUnit XML (shrinking runs are no examples and are not listed)."""
    suite = ElementTree.Element("testsuite", name="abi-harness conform", tests=str(len(report.outcomes)),
                                failures=str(report.failed), time=f"{sum(o.seconds for o in report.outcomes):.3f}")
    for i, outcome in enumerate(report.outcomes, 1):
        # Numbered in the whole campaign: the cases of its shards add up to those of one run.
        number = outcome.number or i
        case = ElementTree.SubElement(suite, "testcase", classname="conform",
                                      name=f"example {number}: {outcome.example.describe()}", time=f"{outcome.seconds:.3f}")
        if outcome.problems:
            failure = ElementTree.SubElement(case, "failure", message=outcome.problems[0])
            failure.text = "\n".join(outcome.problems)
    if report.interrupted:
        ElementTree.SubElement(suite, "system-err").text = "interrupted: only the examples above ran"
    return ElementTree.tostring(suite, encoding="unicode", xml_declaration=True)
