"""Sphinx configuration of the softrank_ad site: ``python -m sphinx -W -b html docs docs/_build``."""

from __future__ import annotations

import softrank_ad

project = "softrank_ad"
author = "the softrank_ad developers"
copyright = "2026, the softrank_ad developers"  # noqa: A001
release = version = softrank_ad.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax served from the site itself: it reads offline too
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
# The README is the package index page's text; the site has its own home page.
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3

# Docstrings are Google style (Args, Returns, Shape, Example) with reST roles and math.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_custom_sections = [("Shape", "params_style"), ("Reference", "notes_style")]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"
autodoc_preserve_defaults = False
autodoc_default_options = {"members": True}
# A reference that does not resolve is an error in the strict build.
nitpicky = True
nitpick_ignore_regex = [
    (
        r"py:class",
        r"(torch|nn|typing|collections|types|pathlib|Path|Tensor|Module|Literal|Callable|Iterator|optional|T)(\..*)?",
    ),
    (
        r"py:class",
        r"softrank_ad\..*\.(Scale|Backend|View|RankAxis|PositionWeights|KLReduction|AttackMode|Start|"
        r"Parts|LayerSpec|CAMTarget|TargetSpec|OutputSize|ReshapeTransform|Normalization|"
        r"TeacherTraining)",
    ),
    (
        r"py:class",
        r"(Scale|Backend|View|RankAxis|PositionWeights|KLReduction|AttackMode|Start|Parts|LayerSpec|"
        r"CAMTarget|TargetSpec|OutputSize|ReshapeTransform|Normalization|MappingProxyType|Term|Batch|"
        r"AttributionAlignmentLoss|AlignmentResult|GammaReport|DistillationObjective|Attack|Inputs|"
        r"Preset|Method|Sum)",
    ),
    (
        r"py:obj",
        r"softrank_ad\..*\.(loss|student_logits|teacher_logits|gamma|gammas|live_pairs|rho_gap|start|y|"
        r"epoch|attack|check_finite|kl_reduction)",
    ),
]

html_theme = "furo"
html_title = f"softrank_ad {release}"

html_static_path = ["_static"]
html_favicon = "_static/favicon.svg"
