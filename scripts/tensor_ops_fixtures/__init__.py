"""The cases of ``tests/fixtures/tensor_ops.safetensors``, by op family; run
``scripts/gen_fixtures.py`` to write the file."""
