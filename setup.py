"""The one compiled module of mm-bronze: the FHIR XML fast path's walk (``xml_walk.c``).

Everything else is in pyproject.toml. The module is optional: where it cannot be built (no C
compiler, or no ``expat.h``), mm-bronze installs without it and the detailed walker decides
every FHIR XML payload, slower but with the same verdicts.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "mm_bronze.formats.fhir.xml_walk",
            sources=["mm_bronze/formats/fhir/xml_walk.c"],
            optional=True,
        )
    ]
)
