"""FHIR: JSON, XML and bulk NDJSON validators checked against the declared version's model."""
