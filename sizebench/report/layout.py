"""The report's sections, in the order report.md shows them: one line registers a section, a function of the page
(sizebench.report.page.Page) that returns its Markdown, or "" where the runs hold nothing for it."""

from __future__ import annotations

from sizebench.report import (
    agreement_section,
    cost_section,
    precision_section,
    preference_section,
    sections,
    serving_section,
    speed,
    summary,
    verdict_section,
)
from sizebench.report.page import Page


def title(p: Page) -> str:
    return "# sizebench report"


SECTIONS = (
    title,
    verdict_section.page_verdict,
    preference_section.page_preference,
    sections.page_metadata,
    summary.page_summary,
    verdict_section.page_evidence,
    cost_section.page_cost,
    cost_section.page_scaling,
    sections.page_conclusion,
    precision_section.page_precision,
    agreement_section.page_agreement,
    sections.page_tasks,
    sections.page_published,
    sections.page_scaling_plots,
    serving_section.page_serving,
    verdict_section.page_flips,
    sections.page_answers,
    speed.page_speed,
    sections.page_protocol,
)


def markdown(page: Page) -> str:
    return "\n\n".join(text for text in (section(page) for section in SECTIONS) if text) + "\n"
