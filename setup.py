"""Packs the repository's top-level models/ and splits/ into the wheel as polypvision/_data/.

Everything else is in pyproject.toml. The files stay where developers keep them (models/ and
splits/ at the top of the repository, which a source checkout reads directly); a built wheel
carries copies, read-only data that polypvision.paths finds. Editable installs copy nothing.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED = {"models": ("*.onnx", "manifest.json", "README.md"), "splits": ("*.json",)}


class build_py_with_data(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for folder, patterns in SHIPPED.items():
            dest = Path(self.build_lib) / "polypvision" / "_data" / folder
            if dest.exists():
                shutil.rmtree(dest)
            dest.mkdir(parents=True)
            for pattern in patterns:
                for src in sorted((ROOT / folder).glob(pattern)):
                    shutil.copy2(src, dest / src.name)
            if folder == "models" and not (dest / "manifest.json").is_file():
                raise SystemExit(
                    f"{ROOT / folder} has no manifest.json: the wheel would ship no models"
                )


setup(cmdclass={"build_py": build_py_with_data})
