"""Maps the repository's top-level folders into the single ``smartcity`` import package.

``src/smartcity`` is the root (shared runtime, plugin host, CLI, generated protobuf code);
``services/``, ``agents/``, ``plugins/`` and ``operators/`` become ``smartcity.<folder>``.
Sub-packages are discovered, so a new module or package needs no edit here.
"""

from setuptools import find_packages, setup

AREAS = ("services", "agents", "plugins", "operators")

package_dir = {"": "src"}
packages = find_packages("src")
for area in AREAS:
    package_dir[f"smartcity.{area}"] = area
    packages.append(f"smartcity.{area}")
    packages.extend(f"smartcity.{area}.{sub}" for sub in find_packages(area))

setup(package_dir=package_dir, packages=packages)
