"""Scipion glue for whole workflows: faml_tomo's workflow templates, headless
Scipion projects built from them, and the end-to-end demo.

* :mod:`.env` -- the Scipion environment variables a headless run needs;
* :mod:`.templates` -- the shipped templates (``faml_tomo/templates``) and
  filling their fields;
* :mod:`.project` -- creating a project from workflow files and running it
  (synchronously, or with Scipion's ``create`` / ``schedule`` scripts);
* :mod:`.results` -- summaries, outputs and viewer figures of a finished
  project;
* :mod:`.runner` -- ``python -m faml_tomo.workflow NAME WORKFLOW.json ...``;
* :mod:`.demo` -- what ``faml-tomo demo`` runs, with :mod:`.demo_data` (the
  simulated data set) and :mod:`.demo_report` (agreement with the truth, the
  report).

Unlike the compute packages this package uses pyworkflow, imported inside
the functions that need it.
"""
