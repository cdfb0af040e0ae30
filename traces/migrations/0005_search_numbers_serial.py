from django.db import migrations

# PostgreSQL only (SQLite needs none of this to stay correct):
# - assessment_valid_number_idx: valid assessments' (kind, name, numeric value, trace), the numeric
#   value being exactly ``traces.search.expressions.JSONNumber`` (NULL unless a JSON number), so
#   that ``feedback.<name> = 5`` / ``> 3`` / ``IN (4, 5)`` can read a range of it, with statistics on
#   the same columns so that the planner knows how many traces match (and walks the time index
#   instead of sorting every match, or the other way round);
# - parallel_workers = 0 on traces_trace and traces_search_document: a list page is a LIMIT, and
#   the planner's parallel plans for it were the slow ones. With workers it chose a parallel seq
#   scan of every search document for ``span.content LIKE`` (the heap is 60 MB: the planner does
#   not see the 8 GB of TOASTed text each row's check reads, 8 s), and a Gather Merge of the
#   time index for ``feedback.helpfulness = 5`` whose workers read ahead several times the rows
#   the page needs;
# - statistics target 1000 (from 100) on tags and trace_metadata: ``@>`` is estimated from the
#   sampled values, and a sample of 30,000 rows put 1 trace in 1,000 (``customer=cust-42``) at 1
#   in 100 after one ANALYZE and not another, so that the page walked 45,000 rows of the time
#   index (40 ms) instead of reading the 1,000 from the GIN index (5 ms).
JSON_NUMBER = "(CASE WHEN jsonb_typeof(value) = 'number' THEN (value #>> '{}')::double precision END)"

FORWARDS = [
    f"CREATE INDEX assessment_valid_number_idx ON traces_assessment (kind, name, {JSON_NUMBER}, trace_id) WHERE valid",
    f"CREATE STATISTICS assessment_number_stats (mcv) ON kind, name, {JSON_NUMBER} FROM traces_assessment",
    "ALTER TABLE traces_trace SET (parallel_workers = 0)",
    "ALTER TABLE traces_search_document SET (parallel_workers = 0)",
    "ALTER TABLE traces_trace ALTER COLUMN tags SET STATISTICS 1000",
    "ALTER TABLE traces_trace ALTER COLUMN trace_metadata SET STATISTICS 1000",
    "ANALYZE traces_assessment",
    "ANALYZE traces_trace (tags, trace_metadata)",
]

BACKWARDS = [
    "ALTER TABLE traces_trace ALTER COLUMN tags SET STATISTICS -1",
    "ALTER TABLE traces_trace ALTER COLUMN trace_metadata SET STATISTICS -1",
    "ALTER TABLE traces_search_document RESET (parallel_workers)",
    "ALTER TABLE traces_trace RESET (parallel_workers)",
    "DROP STATISTICS IF EXISTS assessment_number_stats",
    "DROP INDEX IF EXISTS assessment_valid_number_idx",
]


def _run(statements: list[str]):  # type: ignore[no-untyped-def]
    def run(apps, schema_editor):  # type: ignore[no-untyped-def]
        if schema_editor.connection.vendor != "postgresql":
            return
        with schema_editor.connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("traces", "0004_search_indexes"),
    ]

    operations = [
        migrations.RunPython(_run(FORWARDS), _run(BACKWARDS)),
    ]
