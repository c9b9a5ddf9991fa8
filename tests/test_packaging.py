"""What the project installs and ships in the task image: product code only.

The wheel is built from every file git tracks (not from a hand-picked copy),
so a package added to setup.py by mistake, or a `find_packages()` that would
sweep in the stand-ins, the benchmarks or the tests, shows in its file list.
"""

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from standins import task_image

REPO = Path(__file__).resolve().parents[1]
# The layers of docs/architecture.md, bottom to top: what setup.py installs.
PRODUCT_PACKAGES = {
    "settings",
    "models",
    "data",
    "serving",
    "components",
    "pipeline",
    "feedback",
    "reporting",
    "tracking",
    "runners",
}
NOT_PRODUCT = {"standins", "bench", "tests", "notebooks", "scripts", "docs"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel `pip install .` builds from every tracked file (the one the
    KFP stand-in's task image installs)."""
    return task_image.build_wheel(tmp_path_factory.mktemp("wheel"))


def test_setup_installs_exactly_the_product_packages():
    assert set(task_image.product_packages()) == PRODUCT_PACKAGES


def test_the_wheel_holds_product_code_and_its_data_only(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == PRODUCT_PACKAGES
    assert not [name for name in names if "standin" in name]
    for shipped in (
        "models/preprocessing.py",
        "components/idempotent_pusher.py",
        "pipeline/pipeline.py",
        "runners/node_launcher.py",
        "feedback/logging_proxy.py",
        "data/raw/complaints_2015-01_2015-03.csv.gz",
        "data/curated_schema.pbtxt",
    ):
        assert shipped in names


@pytest.mark.parametrize(
    "image, lock",
    [
        ("Dockerfile", "requirements-task.lock"),  # Kubeflow tasks
        ("Dockerfile.airflow", "requirements.lock"),  # Airflow's scheduler and Celery workers
    ],
)
def test_the_images_copy_the_product_packages_and_nothing_else(image, lock):
    dockerfile = (REPO / image).read_text()
    copied = set(re.findall(r"^COPY (\w+) \./\1$", dockerfile, re.M))
    assert copied == PRODUCT_PACKAGES
    assert not copied & NOT_PRODUCT
    assert f"COPY {lock} ./" in dockerfile and "TF_USE_LEGACY_KERAS=1" in dockerfile


def test_an_installed_wheel_finds_its_data_from_an_empty_folder(wheel, tmp_path):
    """A pure-Python wheel installs by unpacking; run from an empty folder, as
    in the image, the defaults and a compiled, project-relative schema path
    find the installed package data, not a checkout or the working directory."""
    installed, elsewhere = tmp_path / "site-packages", tmp_path / "workdir"
    zipfile.ZipFile(wheel).extractall(installed)
    elsewhere.mkdir()
    check = (
        "import os, sys; sys.path.insert(0, sys.argv[1]); "
        "from settings.configs import PipelineConfig; "
        "from components import curated_schema; "
        "config = PipelineConfig(); "
        "paths = [config.schema_path, config.raw_data_dir, "
        "         curated_schema.resolve(curated_schema.project_relative(config.schema_path))]; "
        "assert all(p.startswith(sys.argv[1]) and os.path.exists(p) for p in paths), paths; "
        "print(curated_schema.project_relative(config.schema_path))"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", check, str(installed)],
        cwd=elsewhere,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "data/curated_schema.pbtxt"
