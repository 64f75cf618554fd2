"""The typed model of one run, shared from analysis to rules, renderers and gates.

One module per section of report.json (`perfdoctor.report/1`, docs/contracts.md): the analysis
builds these sections, the rules read them, the renderers draw them, and `check`, `diff` and the
pytest plugin decode report.json back into them (:func:`perfdoctor.model.report.decode_report`).
msgspec Structs: typed attributes in Python, strict validation when decoding, and the JSON
Schema in docs/report.schema.json generated from the same classes.

Imports nothing but msgspec: the gates load it without torch, numpy or jinja2.
"""
