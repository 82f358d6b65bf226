"""VrewCraft: the small, real, instrumented video backend the course monitors.

Modules, one job each: ``settings`` (configuration), ``metrics`` (every catalog metric),
``middleware`` (HTTP metrics), ``media`` (ffmpeg), ``cache`` (LRU/Redis), ``storage``
(SQLite pool), ``uploads`` (streaming multipart), ``thumbnails``, ``jobs`` (trims),
``faults`` (the fault switch) and ``app`` (``make_app``, the FastAPI app).

>>> from course_lib.service.settings import Settings
>>> Settings().sample_count
4
"""
