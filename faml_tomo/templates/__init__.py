"""Scipion workflow templates of faml_tomo (``*.json.template``).

Scipion finds them through the plugin (``Plugin.getTemplates``: the
``templates`` folder of the package); :mod:`faml_tomo.workflow.templates`
fills their fields for batch projects.  This file only makes the folder a
regular package so that setuptools ships it with its data.
"""
