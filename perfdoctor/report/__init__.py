"""The renderers: one output each (report.json, report.html, the console summary, TensorBoard
scalars), made from the typed report of an analysed run (renderer.py); perfdoctor/pipeline.py
loops over them."""
