using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Execution;
using Npgsql;

namespace Gatehouse.Connectors.Postgres;

/// <summary>Reads a few rows of a table as text, in a read-only transaction under the gateway's credential, for classification.</summary>
public sealed class PostgresSampler(PostgresTargets targets)
{
    /// <summary>Up to <paramref name="rows"/> text values per column, nulls dropped.</summary>
    public async Task<Dictionary<string, List<string>>> SampleAsync(string connection, RelationName table, int rows, CancellationToken cancellationToken)
    {
        await using var pooled = await targets.OpenAsync(connection, cancellationToken).ConfigureAwait(false);
        var conn = pooled.Connection;
        try
        {
            // The server quotes the identifiers (format %I), so no name is spliced into SQL by hand.
            await using var build = new NpgsqlCommand("SELECT format('SELECT * FROM %I.%I LIMIT %s', $1, $2, $3)", conn);
            build.Parameters.Add(new NpgsqlParameter<string> { TypedValue = table.Schema });
            build.Parameters.Add(new NpgsqlParameter<string> { TypedValue = table.Name });
            build.Parameters.Add(new NpgsqlParameter<int> { TypedValue = rows });
            var sql = (string)(await build.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;

            await using var transaction = await conn.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            await using (var readOnly = new NpgsqlCommand("SET TRANSACTION READ ONLY", conn, transaction))
            {
                await readOnly.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }

            var values = new Dictionary<string, List<string>>(StringComparer.Ordinal);
            await using (var command = new NpgsqlCommand(sql, conn, transaction))
            await using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
            {
                var names = Enumerable.Range(0, reader.FieldCount).Select(reader.GetName).ToList();
                names.ForEach(n => values[n] = []);
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    for (var i = 0; i < names.Count; i++)
                    {
                        if (ResultReader.TryReadValue(reader, i, out var value) && value is string text)
                        {
                            values[names[i]].Add(text);
                        }
                    }
                }
            }

            await transaction.RollbackAsync(cancellationToken).ConfigureAwait(false);
            return values;
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException or IOException)
        {
            throw PostgresErrors.Map(e);
        }
    }
}
