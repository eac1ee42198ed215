"""Report: what several commands' reports share, the teaching case's figure and the HTML/Markdown writer.

Each command's own report lives with the command (``klugerhans.audit.report``, ``klugerhans.fix.report``).
"""

from klugerhans.report.figures import FigureRow, SeedRow, draw_seed_figure, explain_rows, pick_seed_rows
from klugerhans.report.five import FiveEvidence, digit_masks, measure_five, negative_share
from klugerhans.report.html import Report, Section, write_report

__all__ = [
    "FigureRow",
    "FiveEvidence",
    "Report",
    "Section",
    "SeedRow",
    "digit_masks",
    "draw_seed_figure",
    "explain_rows",
    "measure_five",
    "negative_share",
    "pick_seed_rows",
    "write_report",
]
