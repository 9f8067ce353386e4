#!/usr/bin/env python
"""Screenshots of the demo project in the real Scipion GUI (``make screenshots``).

Opens the project that ``faml-tomo demo`` made (``<demo>/faml_tomo_demo``)
in Scipion's project window on a virtual screen (Xvfb), and captures, with
ImageMagick's ``import``:

* the project window with each protocol selected (graph, summary panel);
* each protocol's form, one image per tab (as "Edit" opens it);
* each faml_tomo viewer: its form ("Analyze results") and every plot it
  opens;
* the window ``scipion3 template`` opens for each of faml_tomo's workflow
  templates.

The GUI is driven through its own Tk objects (select a box, open the form,
open the viewer), not by clicking at pixel positions, so the script does not
depend on the graph layout.  Needs ``xvfb`` and ``imagemagick``
(``apt-get install -y xvfb imagemagick``) and the ``scipion`` module of
scipion-app (``pip install -e '.[gui]'``).  Without ``--display`` an Xvfb
server is started and stopped.

Usage::

    python tools/screenshots.py --demo results/demo [--out results/demo/screenshots]
"""

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _load_env_module():
    """faml_tomo.workflow.env, loaded by path: importing faml_tomo would
    import pyworkflow (and read its configuration) before the variables
    are set."""
    spec = importlib.util.spec_from_file_location(
        "_faml_tomo_env", REPO / "faml_tomo" / "workflow" / "env.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _free_display():
    for n in range(77, 120):
        if not os.path.exists(f"/tmp/.X11-unix/X{n}") and not os.path.exists(f"/tmp/.X{n}-lock"):
            return f":{n}"
    raise SystemExit("no free X display number between :77 and :119")


def start_xvfb(size):
    """Start Xvfb on a free display; returns (process, display)."""
    if shutil.which("Xvfb") is None:
        raise SystemExit("Xvfb not found: apt-get install -y xvfb imagemagick")
    display = _free_display()
    proc = subprocess.Popen(
        ["Xvfb", display, "-screen", "0", f"{size}x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(50):
        if os.path.exists(f"/tmp/.X11-unix/X{display[1:]}"):
            break
        time.sleep(0.1)
    time.sleep(0.5)
    return proc, display


class Shooter:
    """Captures Tk windows of the running GUI with ImageMagick's ``import``."""

    def __init__(self, out, root):
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.files = []
        self.sizes = {}  # screenshot -> (width, height) of the window

    def settle(self, seconds=0.6, *windows):
        end = time.time() + seconds
        while time.time() < end:
            for w in (self.root,) + windows:
                try:
                    w.update()
                except Exception:  # window closed meanwhile
                    pass
            time.sleep(0.05)

    def shot(self, widget, name):
        widget.update()
        x, y = widget.winfo_rootx(), widget.winfo_rooty()
        w, h = widget.winfo_width(), widget.winfo_height()
        path = self.out / f"{name}.png"
        subprocess.run(
            ["import", "-window", "root", "-crop", f"{w}x{h}+{x}+{y}", "+repage", str(path)],
            check=True,
        )
        self.files.append(path)
        self.sizes[path] = (w, h)
        print(f"screenshot {path} ({w}x{h})", flush=True)
        return path


def _slug(text):
    return "".join(c if c.isalnum() else "_" for c in text.lower()).strip("_")


def _notebooks(widget):
    from tkinter import ttk

    found = []
    for child in widget.winfo_children():
        if isinstance(child, ttk.Notebook):
            found.append(child)
        found.extend(_notebooks(child))
    return found


def _present(window, shooter, seconds=1.0):
    """What ``Window.show`` does, without entering a nested main loop."""
    from pyworkflow.gui import centerWindows

    centerWindows(
        window.root,
        dim=window.desiredDimensions(),
        refWindows=window.master.getRoot() if window.master else None,
    )
    window.root.deiconify()
    window.root.lift()
    shooter.settle(seconds, window.root)


def shoot_form(view, win, prot, shooter, stem):
    """The protocol's form, one screenshot per tab."""
    from pyworkflow.gui.form import FormWindow

    form = FormWindow(
        "Protocol Run: " + prot.getClassName(),
        prot,
        view._executeSaveProtocol,
        win,
        updateProtocolCallback=view._updateProtocol,
    )
    form.adjustSize()
    _present(form, shooter)
    books = _notebooks(form.root)
    tabs = books[0].tabs() if books else [None]
    for i, tab in enumerate(tabs):
        if tab is not None:
            books[0].select(tab)
            shooter.settle(0.4, form.root)
            name = _slug(books[0].tab(tab, "text"))
            shooter.shot(form.root, f"{stem}_form" + (f"_{name}" if len(tabs) > 1 else ""))
        else:
            shooter.shot(form.root, f"{stem}_form")
    form.close()
    shooter.settle(0.3)


def shoot_viewers(win, prot, shooter, stem):
    """faml_tomo's viewer of the protocol: its form and each of its plots."""
    import matplotlib.pyplot as plt
    from pyworkflow.gui.form import FormWindow
    from pyworkflow.viewer import DESKTOP_TKINTER

    project = win.project
    for viewer_cls in project.getDomain().findViewers(prot, DESKTOP_TKINTER):
        if not viewer_cls.__module__.startswith("faml_tomo."):
            continue
        viewer = viewer_cls(project=project, protocol=prot, parent=win)
        viewer.setProtocol(prot)
        form = FormWindow(
            "Protocol Viewer: " + viewer.getClassName(),
            viewer,
            viewer._viewAll,
            win,
            visualizeMode=True,
            visualizeDict={k: viewer._visualizeParam for k in viewer._getVisualizeDict()},
        )
        form.visualizeMode = True
        _present(form, shooter)
        shooter.shot(form.root, f"{stem}_viewer")
        for key, show in viewer._getVisualizeDict().items():
            try:
                views = show(key)
            except Exception as exc:  # keep the other plots
                print(f"viewer {viewer_cls.__name__} {key}: {exc}", flush=True)
                continue
            for i, v in enumerate(views or []):
                if not hasattr(v, "getFigure"):
                    continue
                v.show()
                fig = v.getFigure()
                manager = fig.canvas.manager
                window = getattr(manager, "window", None)
                if window is None:
                    continue
                shooter.settle(1.0, window)
                shooter.shot(window, f"{stem}_plot_{_slug(key)}" + (f"_{i + 1}" if i else ""))
                plt.close(fig)
                shooter.settle(0.2)
        form.close()
        shooter.settle(0.3)


def select(view, win, prot):
    """Select a protocol's box in the graph, as a click does."""
    for node in win.project.getRunsGraph().getNodes():
        if (
            node.run is not None
            and node.run.getObjId() == prot.getObjId()
            and hasattr(node, "item")
        ):
            view._runItemClick(node.item)
            return
    view._selectItemProtocol(prot)


def drive(project_path, out, geometry):
    """Open the project window and take every screenshot."""
    from pyworkflow.gui.project import ProjectWindow

    win = ProjectWindow(project_path)
    win.root.geometry(f"{geometry}+0+0")
    shooter = Shooter(out, win.root)

    def run():
        try:
            win.root.geometry(f"{geometry}+0+0")  # show() centred it
            shooter.settle(3.0)
            view = win.viewWidget
            runs = sorted(win.project.getRuns(), key=lambda p: p.getObjId())
            # the graph with nothing selected, then with each protocol selected
            shooter.shot(win.root, "project")
            for i, prot in enumerate(runs, 1):
                stem = f"{i:02d}_{_slug(prot.getObjLabel() or prot.getClassName())}"
                select(view, win, prot)
                shooter.settle(1.0)
                shooter.shot(win.root, f"{stem}_summary")
                shoot_form(view, win, prot, shooter, stem)
                if prot.getClassName().startswith("Prot") and type(prot).__module__.startswith(
                    "faml_tomo."
                ):
                    shoot_viewers(win, prot, shooter, stem)
        except Exception:
            import traceback

            traceback.print_exc()
            shooter.failed = True
        finally:
            win.root.quit()

    shooter.failed = False
    win.root.after(500, run)
    win.show()  # enters Tk's main loop until run() quits it
    try:
        win.root.destroy()
    except Exception:  # already gone
        pass
    return shooter


#: screenshots copied by ``--docs`` (README images): name in docs -> screenshot
DOCS = {
    "project_window": "05_faml_classes_summary",
    "faml_form": "05_faml_classes_form_optimisation",
    "misalignment_form": "03_misalignment_form_decision",
    "misalignment_scores": "03_misalignment_plot_showhistograms",
    "fiducials": "02_gold_fiducials_plot_displayslab",
    "faml_averages": "05_faml_classes_plot_showaverages",
}
DOCS_MAX_BYTES = 300_000


def copy_to_docs(shots, docs):
    """Copy the README's screenshots as 256-colour PNGs (< 300 KB each)."""
    docs = Path(docs)
    docs.mkdir(parents=True, exist_ok=True)
    for name, stem in DOCS.items():
        src = shots / f"{stem}.png"
        if not src.is_file():
            print(f"docs: {src} missing, {name}.png not updated", flush=True)
            continue
        dst = docs / f"{name}.png"
        scale = 100
        while True:
            subprocess.run(
                ["convert", str(src), "-resize", f"{scale}%", "-colors", "256", f"PNG8:{dst}"],
                check=True,
            )
            if dst.stat().st_size <= DOCS_MAX_BYTES or scale <= 40:
                break
            scale -= 15
        print(f"docs: {dst} ({dst.stat().st_size // 1024} KB)", flush=True)


TEMPLATE_IDS = ("faml_tomo-faml_tomo_misalignment", "faml_tomo-faml_tomo_classify")


def shoot_templates(out, sizes):
    """The window ``scipion3 template <id>`` opens for each of faml_tomo's
    templates (fields to fill before the project is created); their window
    sizes are added to ``sizes``."""
    from pyworkflow.template import TemplateList
    from scipion.scripts.kickoff import KickoffWindow

    files = []
    for tid in TEMPLATE_IDS:
        found = TemplateList()
        found.addPluginTemplates(tid)
        if not found.templates:
            print(f"template {tid} not found", flush=True)
            continue
        template = found.templates[0]
        template.replaceEnvVariables()
        template.parseContent()
        win = KickoffWindow(
            template=template,
            argsList=[],
            showScheduleOption=True,
            schedule=True,
            showProjectOption=True,
            showProject=True,
            showProjectName=True,
        )
        shooter = Shooter(out, win.root)

        def shoot(win=win, shooter=shooter, tid=tid):
            try:
                shooter.settle(1.5)
                shooter.shot(win.root, f"template_{tid.split('-', 1)[1]}")
            finally:
                win.root.quit()

        win.root.after(500, shoot)
        win.show()
        try:
            win.root.destroy()
        except Exception:  # already gone
            pass
        files += shooter.files
        sizes.update(shooter.sizes)
    return files


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--demo", default="results/demo", help="results folder of `faml-tomo demo` (results/demo)"
    )
    p.add_argument("--project", default="faml_tomo_demo", help="project folder name")
    p.add_argument("--out", help="screenshots folder (<demo>/screenshots)")
    p.add_argument("--display", help="use this X display instead of starting Xvfb")
    p.add_argument("--size", default="1280x800", help="project window size (1280x800)")
    p.add_argument(
        "--screen",
        default="1280x800",
        help="every window must fit this screen (1280x800); larger ones are listed and fail",
    )
    p.add_argument(
        "--docs", help="also copy the README's screenshots into this folder (e.g. docs/images)"
    )
    args = p.parse_args(argv)
    demo = Path(args.demo).resolve()
    project = demo / args.project
    if not (project / "project.sqlite").is_file():
        print(
            f"{project}: no Scipion project; run `make demo` (or faml-tomo demo --out "
            f"{args.demo}) first",
            file=sys.stderr,
        )
        return 2
    if shutil.which("import") is None:
        print("ImageMagick's `import` not found: apt-get install -y imagemagick", file=sys.stderr)
        return 2
    out = Path(args.out).resolve() if args.out else demo / "screenshots"
    docs = Path(args.docs).resolve() if args.docs else None  # the GUI changes the cwd
    _load_env_module().scipion_environment(demo / "scipion")
    os.environ["MPLBACKEND"] = "TkAgg"  # plots in windows, as a user sees them
    xvfb = None
    if args.display:
        os.environ["DISPLAY"] = args.display
    else:
        w, h = (int(v) for v in args.size.split("x"))
        xvfb, os.environ["DISPLAY"] = start_xvfb(f"{w + 200}x{h + 200}")
    try:
        shooter = drive(str(project), out, args.size)
        shooter.files += shoot_templates(out, shooter.sizes)
    finally:
        if xvfb is not None:
            xvfb.terminate()
            xvfb.wait(10)
    print(f"{len(shooter.files)} screenshots in {out}")
    too_big = oversized(shooter.sizes, args.screen)
    for path, (w, h) in too_big.items():
        print(f"{path.name}: {w}x{h} does not fit a {args.screen} screen", file=sys.stderr)
    if docs and not shooter.failed:
        copy_to_docs(out, docs)
    return 1 if shooter.failed or not shooter.files or too_big else 0


def oversized(sizes, screen):
    """The windows (screenshot -> size) larger than ``screen`` ("WxH")."""
    sw, sh = (int(v) for v in screen.split("x"))
    return {p: (w, h) for p, (w, h) in sizes.items() if w > sw or h > sh}


if __name__ == "__main__":
    sys.exit(main())
