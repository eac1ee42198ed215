"""Report: the seed's figure and HTML/Markdown reports."""
