"""Sphinx configuration for gazeback's documentation site (Markdown through MyST).

Build: sphinx-build -W --keep-going -b html docs docs/_build/html
"""

project = "gazeback"
author = "gazeback developers"
copyright = "gazeback developers, GPL-3.0-or-later"
extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
myst_heading_anchors = 3
myst_enable_extensions = ["deflist"]
html_theme = "furo"
html_title = "gazeback"
# Pages are read offline too: no external fonts or scripts beyond the theme's own files.
html_static_path: list[str] = []
