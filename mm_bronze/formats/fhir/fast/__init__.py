"""The compiled fast path of FHIR JSON validation.

``r4``, ``r4b`` and ``r5`` hold msgspec ``Struct`` types generated from the shipped structure
definitions by ``tools/generate_fhir_structs.py``; ``primitives`` holds the hand-written
primitive types they use; ``formats`` checks their string formats in batches; ``decider``
decodes a payload into them and says whether it is valid. The walker (``json_tree``)
explains what the fast path rejects.
"""
