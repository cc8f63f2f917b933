"""The weekly assessment (周考核) and the monthly bulletin (月通报): rates against targets, on-time closure,
the ranking of districts, overdue faults and the trend over the period, as HTML with inline SVG charts and
as CSV files.

Pure: ``period`` (the ISO week or calendar month in the city's clock), ``model`` (``Report`` built from a
``RateSource`` and an ``AlertSource``), ``tables`` (the report as named tables), ``svg`` and ``html``
(rendering). Adapters: ``influx`` (the nightly KPI series from InfluxDB) and ``files`` (writing
report.html and one CSV per table). ``citywatch report weekly|monthly`` is the composition root.

Exceptions::

    ReportError          the period cannot be reported (it has not begun), or a CSV does not match its table
"""


class ReportError(Exception):
    """A report cannot be built or read back."""
