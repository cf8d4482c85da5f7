"""The ``reproduce`` pipeline: presets, stages (data, teacher, cache, students), the job scheduler,
evaluation of every model and the report (Table 1, Figure 2).
"""
