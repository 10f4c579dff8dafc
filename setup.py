"""The compiled modules of mm-bronze, both parts of the validation fast paths: the FHIR XML
walk (``xml_walk.c``) and the search for repeated JSON keys (``repeated_keys.c``).

Everything else is in pyproject.toml. Both are optional: where one cannot be built (no C
compiler, or no ``expat.h``), mm-bronze installs without it and works as before it, slower
but with the same verdicts (the detailed walker decides every FHIR XML payload; repeated
keys are looked for by re-encoding the decoded documents).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "mm_bronze.formats.fhir.xml_walk",
            sources=["mm_bronze/formats/fhir/xml_walk.c"],
            optional=True,
        ),
        Extension(
            "mm_bronze.formats.fhir.fast.repeated_keys",
            sources=["mm_bronze/formats/fhir/fast/repeated_keys.c"],
            optional=True,
        ),
    ]
)
