"""Stage 4: compose data, model and device into measured results.

The pytest plugin, budgets, the results store, reports, run comparison and the variant -> .tflite ->
firmware pipeline. May import harness.data, harness.model, harness.device and the floor; never
harness.figures or harness.commands.
"""

__all__ = ["budgets", "compare", "exports", "history", "html_report", "pipeline", "pytestplugin", "report", "results"]
