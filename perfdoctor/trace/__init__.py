"""Reading torch.profiler / Kineto traces fast, and the analyses perfdoctor runs on them.

Never imports torch. ``read_trace(path)`` gives a :class:`Trace` of numpy columns; the
analysis modules (:mod:`.steps`, :mod:`.cpu`, :mod:`.gpu`, :mod:`.comm`) are pure functions
over it.
"""

from perfdoctor.trace.categories import Category
from perfdoctor.trace.errors import TraceError
from perfdoctor.trace.model import SkippedInput, Trace, TraceMetadata
from perfdoctor.trace.reader import read_trace

__all__ = ["Category", "SkippedInput", "Trace", "TraceError", "TraceMetadata", "read_trace"]
