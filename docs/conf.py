"""Sphinx configuration of the bayesgmm documentation.

Build (warnings are errors)::

    pip install -e ".[docs]"
    python -m sphinx -W --keep-going -b html docs docs/_build/html

The first page is the README (its quickstart first), the API reference is generated from the
numpydoc docstrings, and the gallery shows the notebooks with the outputs stored in them
(``python -m notebooks.run`` writes those); nothing is executed while the docs are built.
"""

import pathlib
import shutil
import sys

DOCS = pathlib.Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))

import bayesgmm  # noqa: E402

project = "bayesgmm"
author = "bayesgmm developers"
copyright = "bayesgmm developers"  # noqa: A001
release = version = bayesgmm.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_nb",
]

# -- the first page: the README, with links to files of the repository made plain text (they are
# links on GitHub; here the notebooks link goes to the gallery). Every rewritten path must exist.
README = DOCS / "_readme.md"


def _readme_for_docs(text: str) -> str:
    import re

    def link(m):
        label, target = m.group(1), m.group(2)
        if re.match(r"[a-z]+:|#", target) or (DOCS / target).exists():
            return m.group(0)
        if not (ROOT / target).exists():
            raise FileNotFoundError(f"README.md links to {target!r}, which does not exist")
        if target.rstrip("/") == "notebooks":
            return f"[{label}](gallery.md)"
        return label if label.strip("`") == target else f"{label} (`{target}`)"

    text = text.replace("](docs/", "](")  # images and pages of docs/ are beside this file
    return re.sub(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)", link, text)


README.write_text(_readme_for_docs((ROOT / "README.md").read_text(encoding="utf-8")), encoding="utf-8")

# -- the notebooks: copied from notebooks/ into the source tree, rendered from their stored outputs
GALLERY = DOCS / "gallery"
GALLERY.mkdir(exist_ok=True)
for stale in GALLERY.glob("*.ipynb"):
    stale.unlink()
for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
    shutil.copy2(nb, GALLERY / nb.name)
nb_execution_mode = "off"  # never run a notebook at docs build: the committed outputs are shown
nb_merge_streams = True
myst_heading_anchors = 3  # README links such as (#status) resolve
myst_enable_extensions = ["dollarmath"]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "_readme.md", "Thumbs.db", ".DS_Store"]

# -- API reference ----------------------------------------------------------------------------------
autosummary_generate = True
autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "none"  # the numpydoc sections say the types
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# scikit-learn's metadata-routing methods (set_fit_request, ...) are documented by scikit-learn
autodoc_default_options["exclude-members"] = (
    "set_fit_request,set_partial_fit_request,set_score_request,get_metadata_routing"
)

html_theme = "furo"
html_title = f"bayesgmm {release}"
html_static_path = []
