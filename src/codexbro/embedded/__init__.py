"""Local, in-process models (the embedded provider of issue 8): grammar, parsing, engine."""
