"""The wheel carries the shipped recipes and trained-here weights as package data (`ssld_zoo/_shipped/`); see
`ssld_zoo/shipped.py`. An editable install reads them from the checkout instead."""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SHIPPED = {"recipes": ("*.yaml", "*.md"), "weights": ("*.safetensors", "*.md")}


class BuildPyWithShipped(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        root = Path(__file__).resolve().parent
        for folder, patterns in SHIPPED.items():
            for pattern in patterns:
                for source in (root / folder).rglob(pattern):
                    target = Path(self.build_lib) / "ssld_zoo" / "_shipped" / source.relative_to(root)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(source, target)


setup(cmdclass={"build_py": BuildPyWithShipped})
