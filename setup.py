"""Installs the project so TFX executors can import its functions by module path.

Dependencies are pinned in requirements.lock and installed by scripts/setup.sh;
`install_requires` only names the direct ones for people installing elsewhere.
"""

from setuptools import setup

setup(
    name="cfpb-tfx-pipeline",
    version="0.1.0",
    description="Reference TFX pipeline on CFPB consumer complaints",
    python_requires=">=3.9,<3.11",
    # Product packages only: `standins/` (development stand-ins), `bench/` and
    # `tests/` are not installed (tests/test_packaging.py reads the wheel).
    packages=[
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
    ],
    # The bundled exports and the curated schema, so that an installed package
    # (the Kubeflow task image) finds its defaults without a checkout.
    # The model card's template, for the Pusher wherever it runs.
    package_data={
        "data": ["raw/*.csv.gz", "curated_schema.pbtxt"],
        "components": ["model_card.html.j2"],
    },
    install_requires=[
        "tfx[kfp]==1.16.0",
        "apache-beam[gcp]==2.59.0",
        "tf-keras==2.16.0",
        "jinja2>=3.1",
    ],
)
