"""Presenting evaluations and training runs: the console table and metrics JSON, the report folder
(PR curves, confusion matrix, per-class table, error breakdown and galleries), ``report.html``, run
comparisons and training curves. Reads what ``detkit.evaluation`` computes; computes no metric itself."""

from detkit.reporting.galleries import write_error_galleries
from detkit.reporting.html_compare import write_comparison_html
from detkit.reporting.html_report import write_html_report
from detkit.reporting.report import (
    default_report_dir,
    evaluate_with_report,
    format_metrics_table,
    save_metrics,
    write_evaluation_report,
)

__all__ = [
    "default_report_dir",
    "evaluate_with_report",
    "format_metrics_table",
    "save_metrics",
    "write_comparison_html",
    "write_error_galleries",
    "write_evaluation_report",
    "write_html_report",
]
