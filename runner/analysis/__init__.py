"""From runs to verdicts: the statistics (verdicts), the report of a sweep (report), the results page
(results) and their tables and curves (render)."""
