"""Installs the ccekit_torch package that `ccekit emit --target torch` wrote next to this file: its Python
sources, the emitted kernels (CUDA C++ compiled at first use with NVRTC, Triton tile kernels), manifest.json and
tuning.json, plan_model.json. The version is the code generator's, from manifest.json."""
import json
import os

from setuptools import setup

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "ccekit_torch", "manifest.json")) as f:
    version = json.load(f)["version"]

setup(
    name="ccekit-torch",
    version=version,
    packages=["ccekit_torch"],
    package_data={"ccekit_torch": ["manifest.json", "tuning.json", "plan_model.json", "kernels/*.cu", "triton/*.py"]},
    install_requires=["torch>=1.13"],
)
