"""Payments business logic, usable from plain Python, Apache Beam and PyFlink.

Pure modules (no Beam, no Flink import; importing `transforms` never starts a JVM):

* `transforms.lines`      - the line-level checks every job shares: strict UTF-8 decoding, a
  JSON object without duplicate keys, required and string fields, identifiers, and the
  `LineRejected` exception with its reason codes; storable forms of a refused line.
* `transforms.currencies` - the supported-currency table (data you can extend).
* `transforms.payments`   - the rules: parse/validate a raw line, minor-unit conversion,
  fingerprint, duplicate classification, ledger and balance rows, reason codes.
* `transforms.reference`  - `process_lines()`: the whole business step in plain Python.
* `transforms.sample_data` - deterministic sample JSON-lines generator.
* `transforms.outputs`    - the output file format (JSON lines) and `load_outputs()`.

Runner layers (import them explicitly):

* `transforms.beam`           - DoFns, CombineFn and PTransforms over the pure rules.
* `transforms.pipeline`       - the Beam batch pipeline (`python -m transforms.pipeline`).
* `transforms.flink_adapters` - run Beam DoFns / CombineFns inside PyFlink DataStreams, and a
  job's rule on numbered lines (`parse_lines`); knows nothing of payments.
* `transforms.payments_flink` - the payments job's PyFlink row types and steps.

See `transforms/README.md` ("Editing a transform").
"""
