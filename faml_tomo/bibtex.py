# -*- coding: utf-8 -*-
# ruff: noqa: E501  (bibtex entries are not wrapped)
"""
@article{Zhao2018,
  title = {An integration of fast alignment and maximum-likelihood methods for electron subtomogram averaging and classification},
  author = {Zhao, Yixiu and Zeng, Xiangrui and Guo, Qiang and Xu, Min},
  journal = {Bioinformatics},
  volume = {34},
  number = {13},
  pages = {i227--i236},
  year = {2018},
  doi = {10.1093/bioinformatics/bty267}
}

@article{deIsidroGomez2024,
  title = {A deep learning approach to the automatic detection of alignment errors in cryo-electron tomographic reconstructions},
  author = {de Isidro-G{\\'o}mez, Federico P. and Vilas, Jose L. and Losana, Patricia and Carazo, Jose M. and Sorzano, Carlos O. S.},
  journal = {Journal of Structural Biology},
  volume = {216},
  number = {1},
  pages = {108056},
  year = {2024},
  doi = {10.1016/j.jsb.2023.108056}
}

@article{Xu2012,
  title = {High-throughput subtomogram alignment and classification by Fourier space constrained fast volumetric matching},
  author = {Xu, Min and Beck, Martin and Alber, Frank},
  journal = {Journal of Structural Biology},
  volume = {178},
  number = {2},
  pages = {152--164},
  year = {2012},
  doi = {10.1016/j.jsb.2012.02.014}
}

@article{Scheres2009,
  title = {Averaging of electron subtomograms and random conical tilt reconstructions through likelihood optimization},
  author = {Scheres, Sjors H. W. and Melero, Roberto and Valle, Mikel and Carazo, Jose-Maria},
  journal = {Structure},
  volume = {17},
  number = {12},
  pages = {1563--1572},
  year = {2009},
  doi = {10.1016/j.str.2009.10.009}
}

@article{Kovacs2002,
  title = {Fast rotational matching},
  author = {Kovacs, Julio A. and Wriggers, Willy},
  journal = {Acta Crystallographica Section D},
  volume = {58},
  number = {8},
  pages = {1282--1286},
  year = {2002},
  doi = {10.1107/S0907444902009794}
}
"""
