using System.Globalization;
using System.Text.Json;
using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Execution;
using Npgsql;

namespace Gatehouse.Connectors.Postgres;

/// <summary>
/// Reads the statement's rows past the settings row, converting values to JSON-friendly primitives under row and byte caps.
/// The reader is sequential, and each value's size on the wire is checked against the byte cap before it is read, so one
/// huge value (repeat('x', 4e8), an array of 1e8 elements) is skipped rather than held.
/// </summary>
internal static class ResultReader
{
    /// <param name="statement">The batch command whose rows are the statement's: the FETCH of a read's cursor, or the statement itself.</param>
    /// <param name="request">
    /// Its caps, and whether it writes: a write is between two <see cref="FixedStatements.RowsTouched"/> counts, whose
    /// difference the result carries (PostgreSQL's count also holds what earlier transactions of the session did that it
    /// has not yet reported).
    /// </param>
    public static async ValueTask<QueryResult> ReadAsync(NpgsqlDataReader reader, NpgsqlBatchCommand statement, ExecutionRequest request, CancellationToken cancellationToken)
    {
        var (maxRows, maxBytes, countsRowsTouched) = (request.MaxRows, request.MaxBytes, !request.ReadOnly);
        // The first row-returning result is always the settings row (then, for a write, the count before it). The next is the
        // statement's own, unless the statement returns no rows (a write without RETURNING); then it has completed before a
        // later, gateway row (the count after it, the release of advisory locks) is reached. Told apart by position, not by
        // name: an agent may name a column anything.
        var more = await SkipAsync(reader, cancellationToken).ConfigureAwait(false);
        var before = more && countsRowsTouched ? await CountAsync(reader, cancellationToken).ConfigureAwait(false) : null;
        if (before is not null)
        {
            more = await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
        }

        if (!more || statement.StatementType != StatementType.Unknown)
        {
            // A RETURNING that returned nothing: Npgsql has read the statement's end along with its columns, but the reader is
            // still on its empty result, before the count.
            if (more && before is not null && !reader.HasRows)
            {
                more = await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
            }

            var after = more && before is not null ? await CountAsync(reader, cancellationToken).ConfigureAwait(false) : null;
            await DrainAsync(reader, cancellationToken).ConfigureAwait(false);
            return new QueryResult([], [], false, null, null) { RowsTouched = after?.Total - before?.Total, TablesWritten = TouchCount.Written(before, after) };
        }

        var columns = Enumerable.Range(0, reader.FieldCount)
            .Select(i => new ResultColumn(reader.GetName(i), reader.GetDataTypeName(i)))
            .ToList();
        var rows = new List<object?[]>();
        var bytes = 0L;
        string? truncatedBecause = null;
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            if (rows.Count == maxRows)
            {
                truncatedBecause = request.RowCapReason ?? $"row limit of {maxRows} reached";
                break;
            }

            var row = new object?[columns.Count];
            for (var i = 0; i < row.Length && bytes <= maxBytes; i++)
            {
                if (!reader.IsDBNull(i) && bytes + reader.GetBytes(i, 0, null, 0, 0) > maxBytes)
                {
                    bytes = maxBytes + 1L;
                    break;
                }

                TryReadValue(reader, i, out row[i]);
                bytes += ApproximateSize(row[i]);
            }

            if (bytes > maxBytes)
            {
                truncatedBecause = request.ByteCapReason ?? $"result size limit of {maxBytes} bytes reached";
                break;
            }

            rows.Add(row);
        }

        // The count after the write follows its rows (read to their end first, past the caps).
        var counted = before is not null && await reader.NextResultAsync(cancellationToken).ConfigureAwait(false)
            ? await CountAsync(reader, cancellationToken).ConfigureAwait(false)
            : null;

        // What is left of this and later results (at most one extra row for reads), so the batch completes.
        await DrainAsync(reader, cancellationToken).ConfigureAwait(false);
        return new QueryResult(columns, rows, truncatedBecause is not null, truncatedBecause, null)
        {
            Bytes = bytes,
            RowsTouched = counted?.Total - before?.Total,
            TablesWritten = TouchCount.Written(before, counted),
        };
    }

    // The current result is the one-row count of FixedStatements.RowsTouched; null if it is not there.
    private static async ValueTask<TouchCount?> CountAsync(NpgsqlDataReader reader, CancellationToken cancellationToken) =>
        reader.FieldCount == 3 && await reader.ReadAsync(cancellationToken).ConfigureAwait(false)
            ? new TouchCount(reader.GetInt64(0), reader.IsDBNull(1) ? null : reader.GetString(1), reader.GetString(2))
            : null;

    /// <summary>
    /// One <see cref="FixedStatements.RowsTouched"/> row: the rows counted in all, by table, and the tables above a partition
    /// that keeps no such counts (both as JSON).
    /// </summary>
    private sealed record TouchCount(long Total, string? Tables, string Uncounted)
    {
        /// <summary>What the write between two counts wrote to each table: the second count's rows less the first's.</summary>
        public static IReadOnlyList<TableWrites> Written(TouchCount? before, TouchCount? after)
        {
            if (before is null || after?.Tables is null)
            {
                return [];
            }

            var earlier = before.ByTable().ToDictionary(t => t.Table);
            var uncounted = after.UncountedTrees();
            var written = new List<TableWrites>();
            foreach (var table in after.ByTable())
            {
                var (inserted, updated, deleted) = earlier.TryGetValue(table.Table, out var was) ? (was.Inserted, was.Updated, was.Deleted) : (0L, 0L, 0L);
                var diff = table with
                {
                    Inserted = table.Inserted - inserted,
                    Updated = table.Updated - updated,
                    Deleted = table.Deleted - deleted,
                    UncountedPartitions = table.Lineage.Partition && table.Lineage.Ancestors.Any(uncounted.Contains),
                };
                if (diff.Inserted + diff.Updated + diff.Deleted > 0)
                {
                    written.Add(diff);
                }
            }

            return written;
        }

        private IEnumerable<TableWrites> ByTable()
        {
            if (Tables is null)
            {
                yield break;
            }

            using var json = JsonDocument.Parse(Tables);
            foreach (var t in json.RootElement.EnumerateArray())
            {
                var ancestors = t[6].EnumerateArray().Select(a => new RelationName(a[0].GetString()!, a[1].GetString()!)).ToList();
                yield return new TableWrites(
                    new RelationName(t[0].GetString()!, t[1].GetString()!), t[2].GetInt64(), t[3].GetInt64(), t[4].GetInt64(), new RelationLineage(ancestors, t[5].GetBoolean()));
            }
        }

        private HashSet<RelationName> UncountedTrees()
        {
            using var json = JsonDocument.Parse(Uncounted);
            return [.. json.RootElement.EnumerateArray().Select(a => new RelationName(a[0].GetString()!, a[1].GetString()!))];
        }
    }

    private static async ValueTask DrainAsync(NpgsqlDataReader reader, CancellationToken cancellationToken)
    {
        while (await reader.NextResultAsync(cancellationToken).ConfigureAwait(false))
        {
        }
    }

    // Reads past the current result; false when it was the last.
    private static async ValueTask<bool> SkipAsync(NpgsqlDataReader reader, CancellationToken cancellationToken)
    {
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
        }

        return await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>A value as the agent receives it; false, with a note saying to cast it to text, for one .NET cannot hold.</summary>
    internal static bool TryReadValue(NpgsqlDataReader reader, int ordinal, out object? value)
    {
        value = null;
        if (reader.IsDBNull(ordinal))
        {
            return true;
        }

        object raw;
        try
        {
            // Dates and timestamps are read as PostgreSQL sends them, so infinity stays infinity. Npgsql's own conversion
            // (turned off in NpgsqlSettings) makes it 9999-12-31 or 0001-01-01, real dates an agent would then search for.
            raw = reader.GetDataTypeOID(ordinal) switch
            {
                PostgresTime.DateOid => PostgresTime.Date(reader.GetFieldValue<int>(ordinal)),
                PostgresTime.TimestampOid => PostgresTime.Timestamp(reader.GetFieldValue<long>(ordinal), DateTimeKind.Unspecified),
                PostgresTime.TimestampTzOid => PostgresTime.Timestamp(reader.GetFieldValue<long>(ordinal), DateTimeKind.Utc),
                _ => reader.GetValue(ordinal),
            };
        }
        catch (Exception e) when (e is not (NpgsqlException or IOException or TimeoutException or OperationCanceledException))
        {
            // A value .NET cannot hold (a numeric of 1e30 or NaN, a timestamp in the year 200000) fails this value, not the call
            // (the row is already read, so the rest of it still converts); the agent can ask PostgreSQL for its text instead.
            value = $"(a {reader.GetDataTypeName(ordinal)} value Gatehouse cannot render; cast it to text to read it)";
            return false;
        }

        value = Convert(raw);
        return true;
    }

    /// <summary>
    /// How deep arrays and records may nest in a value: JSON readers and writers stop at 64 levels, and a deeper value would
    /// fail the answer after the call was recorded as answered. What lies deeper is a note saying how to read it.
    /// </summary>
    public const int MaxNesting = 32;

    // What stands for a value nested deeper than that.
    private static readonly string TooDeep = $"(arrays or records nested deeper than {MaxNesting} levels; cast the value to text to read it)";

    internal static object? Convert(object? value) => Convert(value, 0);

    private static object? Convert(object? value, int depth) => value switch
    {
        null or DBNull => null,
        bool or long or decimal or string => value,
        short s => (long)s,
        int i => (long)i,
        float f => float.IsFinite(f) ? (double)f : f.ToString(CultureInfo.InvariantCulture),
        double d => double.IsFinite(d) ? d : d.ToString(CultureInfo.InvariantCulture),
        char c => c.ToString(),
        DateTime dt => dt.ToString(dt.Kind == DateTimeKind.Unspecified ? "yyyy-MM-ddTHH:mm:ss.FFFFFFF" : "O", CultureInfo.InvariantCulture),
        DateTimeOffset dto => dto.ToString("O", CultureInfo.InvariantCulture),
        DateOnly date => date.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
        TimeOnly time => time.ToString("HH:mm:ss.FFFFFFF", CultureInfo.InvariantCulture),
        TimeSpan span => span.ToString("c", CultureInfo.InvariantCulture),
        byte[] bytes => "\\x" + System.Convert.ToHexString(bytes).ToLowerInvariant(),
        Array when depth >= MaxNesting => TooDeep,
        Array { Rank: > 1 } grid => Dimension(grid, new int[grid.Rank], 0, depth),
        Array array => array.Cast<object?>().Select(item => Convert(item, depth + 1)).ToList(),
        // bit(n > 1) and varbit: the bits as PostgreSQL writes them. hstore: its text form, which the detectors then read.
        System.Collections.BitArray bits => string.Create(bits.Length, bits, (text, b) =>
        {
            for (var i = 0; i < text.Length; i++)
            {
                text[i] = b[i] ? '1' : '0';
            }
        }),
        IDictionary<string, string?> pairs => string.Join(", ", pairs.Select(p => $"{Quoted(p.Key)}=>{(p.Value is null ? "NULL" : Quoted(p.Value))}")),
        IFormattable formattable => formattable.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString(),
    };

    // A multi-dimensional array as lists of lists, one level per dimension (flattened, {{1,2},{3,4}} read as [1,2,3,4]).
    private static object? Dimension(Array grid, int[] at, int dimension, int depth)
    {
        if (depth >= MaxNesting)
        {
            return TooDeep;
        }

        var items = new List<object?>(grid.GetLength(dimension));
        for (var i = 0; i < grid.GetLength(dimension); i++)
        {
            at[dimension] = i;
            items.Add(dimension == grid.Rank - 1 ? Convert(grid.GetValue(at), depth + 1) : Dimension(grid, at, dimension + 1, depth + 1));
        }

        return items;
    }

    private static string Quoted(string text) => "\"" + text.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"";

    private static long ApproximateSize(object? value) => value switch
    {
        null => 4,
        string s => JsonSize(s),
        List<object?> list => list.Sum(ApproximateSize) + 2,
        _ => 16,
    };

    // What a text value takes in the answer, written with the encoder the answer is (ResultMapper's): UTF-8, quoted, and
    // \uXXXX for whatever it escapes (control characters, DEL, invisible and private-use characters, and characters beyond
    // the first plane as two of them). Counted by characters, such a value passed the cap up to six times over.
    private static long JsonSize(string s)
    {
        long size = 2;
        for (var i = 0; i < s.Length; i++)
        {
            var c = s[i];
            if (c is '\n' or '\r' or '\t' or '\b' or '\f' or '"' or '\\')
            {
                size += 2;
            }
            else if (char.IsHighSurrogate(c) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                size += AnswerEncoder.WillEncode(char.ConvertToUtf32(c, s[i + 1])) ? 12 : 4;
                i++;
            }
            else
            {
                size += char.IsSurrogate(c) || AnswerEncoder.WillEncode(c) ? 6 : c < '\u0080' ? 1 : c < '\u0800' ? 2 : 3;
            }
        }

        return size;
    }

    private static readonly System.Text.Encodings.Web.JavaScriptEncoder AnswerEncoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping;
}
