"""Names shared by the plugin class, protocols and the command line."""

import os

PLUGIN_NAME = "faml_tomo"
DISTRIBUTION = "scipion-em-faml-tomo"

# Scipion variable: folder with the trained misalignment networks.  Defaults
# to the weights shipped inside the package.
MODELS_DIR_VAR = "FAML_TOMO_MODELS"
DEFAULT_MODELS_DIR = os.path.join(os.path.dirname(__file__), "models")

# Bibtex keys (faml_tomo/bibtex.py)
CITE_FAML = "Zhao2018"
CITE_MISALIGNMENT = "deIsidroGomez2024"
CITE_FAST_ALIGN = "Xu2012"
CITE_ML = "Scheres2009"
CITE_ROT_MATCH = "Kovacs2002"
