"""Packaging for scipion-em-faml-tomo.

This file is the single place where dependencies are pinned.  The pins follow
Scipion 3's own (numpy 1.26.x, scipy 1.10.x, mrcfile <= 1.4.3) so that one pip
resolver run installs the plugin, Scipion and TensorFlow together.
"""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(
    r'^__version__ = "([^"]+)"', (HERE / "faml_tomo" / "__init__.py").read_text(), re.M
).group(1)

INSTALL_REQUIRES = [
    "scipion-pyworkflow>=3.11,<4",
    "scipion-em>=3.11,<4",
    "scipion-em-tomo>=3.12,<4",
    "numpy>=1.26.1,<2",
    "scipy>=1.10,<1.11",
    "mrcfile>=1.4,<=1.4.3",
    "scikit-image>=0.22,<0.25",
    "matplotlib>=3.7,<4",
    # Compiled inner loops of the fast alignment (faml_tomo/averaging/kernels.py).
    "numba>=0.59,<0.69",
    "tensorflow-cpu>=2.16,<2.22; platform_machine=='x86_64'",
    "tensorflow>=2.16,<2.22; platform_machine!='x86_64'",
]

EXTRAS = {
    # MPI across ranks on clusters: mpi4py binary wheel plus an MPI runtime.
    "mpi": ["mpi4py>=4.0,<5", "mpich>=4.1; sys_platform=='linux'"],
    "test": [
        "pytest>=7.4,<9",
        "pytest-timeout>=2.2",
        "pytest-xdist>=3.5,<4",
        "ruff>=0.17,<0.18",
        "mypy>=1.10,<3",
    ],
    # The `scipion3` launcher and the module the project GUI imports
    # (`make screenshots` opens the demo project in the GUI).
    "gui": ["scipion-app>=3.8,<4"],
    # Regenerates the first-principles gold table (faml_tomo/simulation/data/
    # gold_table.npz) by multislice; data-making only, never imported at run time.
    "gold": ["abtem==1.0.9"],
}
EXTRAS["dev"] = EXTRAS["mpi"] + EXTRAS["test"] + EXTRAS["gui"]

setup(
    name="scipion-em-faml-tomo",
    version=VERSION,
    description="FAML subtomogram averaging and classification, gold fiducial "
    "detection and tilt-series misalignment detection for Scipion 3",
    long_description=(HERE / "README.md").read_text() if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    author="faml_tomo developers",
    license="GPLv3",
    python_requires=">=3.11",
    packages=find_packages(include=["faml_tomo", "faml_tomo.*"]),
    include_package_data=True,
    package_data={
        "faml_tomo": [
            "protocols.conf",
            "*.png",
            "models/*.keras",
            "models/*.md",
            "models/*.json",
            "templates/*.json.template",
            "simulation/data/*.npz",
        ],
    },
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    entry_points={
        "pyworkflow.plugin": ["faml_tomo = faml_tomo"],
        "console_scripts": ["faml-tomo = faml_tomo.cli:main"],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.11",
        "Topic :: Scientific/Engineering :: Bio-Informatics",
    ],
)
