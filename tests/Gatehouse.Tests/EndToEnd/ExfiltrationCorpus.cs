using System.Text;
using Gatehouse.Tests.Infrastructure;
using ModelContextProtocol.Protocol;
using Npgsql;

namespace Gatehouse.Tests.EndToEnd;

/// <summary>
/// Ways an agent might try to get the shop's tagged values (email, phone, SSN, card) out, run through the real MCP path
/// in both masking modes: overlay must refuse each, strict may answer but only with masked values. Either way no raw value,
/// nor its reverse or base64, may appear anywhere in the response.
/// </summary>
public static class ExfiltrationCorpus
{
    /// <summary>The shop's sensitive columns, as both masking modes tag them.</summary>
    public const string Tags = """
        tags:
          public.customers.email: email
          public.customers.phone: phone
          public.customers.ssn: ssn
          public.customers.card_number: card
        """;

    /// <summary>Readers of the whole shop: one without unmask rights, one who may see contact details, one who may see all.</summary>
    public const string Readers = """
        agents:
          analyst:
            grants:
              - connection: shop
                access: read
                schemas: [public]
          support:
            unmask: [email, phone]
            grants:
              - connection: shop
                access: read
                schemas: [public]
          auditor:
            unmask: [all]
            grants:
              - connection: shop
                access: read
                schemas: [public]
        """;

    public static TheoryData<string> Attempts() => new(All);

    public static IReadOnlyList<string> All { get; } =
    [
        "select ssn from customers",
        "select ssn as harmless from customers",
        "select ssn::text from customers",
        "select 'x' || ssn || 'y' from customers",
        "select reverse(ssn) from customers",
        "select encode(convert_to(ssn, 'UTF8'), 'base64') from customers",
        "select upper(email) from customers",
        "select split_part(email, '@', 1) from customers",
        "select substr(card_number, 1, 6) from customers",
        "select md5(card_number) from customers",
        "select length(ssn) from customers",
        "select row_to_json(c) from customers c",
        "select to_jsonb(c.*) from customers c",
        "select json_agg(c) from customers c",
        "select c from customers c",
        "select * from customers",
        "select customers.* from customers",
        "select string_agg(phone, ',') from customers",
        "select array_agg(email order by id) from customers",
        "select max(ssn) from customers",
        "select count(distinct card_number) from customers",
        "select id from customers where ssn like '5%'",
        "select id from customers where email = 'amelia.hartmann@example.com'",
        "select id from customers order by ssn",
        "select ssn, count(*) from customers group by ssn",
        "select (select ssn from customers limit 1)",
        "select id from customers c where exists (select 1 from customers d where d.ssn = c.ssn and d.id <> c.id)",
        "with x as (select ssn from customers) select * from x",
        "with x as (select * from customers) select id from x where card_number is not null",
        "select s.ssn from (select * from customers) s",
        "select o.id from orders o join customers c on c.email = o.note",
        "select id from customers where id = $1 and ssn = $2",
        "select jsonb_build_object('e', email) from customers",
        "select format('%s', phone) from customers",
        "select case when ssn > '5' then 1 else 0 end from customers",
        "select id from customers union select length(ssn) from customers",
        "select 1 from customers where ssn::int > 0",
        "explain select ssn from customers",
        "select ssn from customers c join orders o on o.customer_id = c.id",
        "select lateral_ssn from orders o, lateral (select ssn as lateral_ssn from customers c where c.id = o.customer_id) l",
        // PostgreSQL's own surfaces: base tables by name, statistics, SQL in strings, settings, casts whose errors echo values.
        "select * from public.customers",
        "select ssn from public.customers",
        "select c.ssn from public.customers c join orders o on o.customer_id = c.id",
        "select attname, most_common_vals::text from pg_stats where tablename = 'customers'",
        "select histogram_bounds::text from pg_stats where attname = 'ssn'",
        "select query_to_xml('select ssn from public.customers', true, false, '')",
        // EXPLAIN prints EXTRACT's unit as written: a quote in it hid the column between two from the plan reader. The CASE
        // keeps the bad unit from ever running.
        "select concat(case when id < 0 then extract('''' from now()) end, ssn, case when id < 0 then extract('''' from now()) end) from customers",
        "select concat(case when id < 0 then extract('year FROM id''' from now()) end, ssn, case when id < 0 then extract('year FROM id''' from now()) end) from customers",
        "select concat(case when id < 0 then extract('year'\n' FROM id''' from now()) end, ssn, case when id < 0 then extract('year'\n' FROM id''' from now()) end) from customers",
        "select concat(case when id < 0 then extract(\"year FROM id'\" from now()) end, ssn, case when id < 0 then extract(\"year FROM id'\" from now()) end) from customers",
        "select table_to_xml('public.customers', true, false, '')",
        "with x as (select set_config('role', 'postgres', true)) select ssn from customers, x",
        "select cast(ssn as integer) from customers",
        "select id from customers where card_number::int8 is not null",
        "select 1 / 0 from customers where ssn is not null and email::int > 0",
        "select xmlelement(name x, ssn) from customers",
        "select translate(card_number, '0123456789', 'abcdefghij') from customers",
        "select regexp_replace(ssn, '-', '', 'g') from customers",
        "select string_to_array(email, '@') from customers",
        "select to_json(array[phone, ssn]) from customers",
        "select (s.c).ssn from (select c from customers c) s",
        "select jsonb_path_query(to_jsonb(c), '$.ssn') from customers c",
        "select id from customers where position('4821' in ssn) > 0",
        "select ssn from customers tablesample system (100)",
        "select distinct on (ssn) id, ssn from customers",
        "select id, lag(card_number) over (order by id) from customers",
        "select e.email from (values (1)) v(x) cross join lateral (select email from customers limit 1) e",
        "select pg_catalog.textcat(ssn, '') from customers",
        "select encode(ssn::bytea, 'escape') from customers",
        "select ssn collate \"C\" from customers",
    ];

    /// <summary>The positional parameters an attempt needs ($2 carries a real SSN, as a guess an agent might make).</summary>
    public static object?[]? Parameters(string sql) => sql.Contains("$2", StringComparison.Ordinal) ? [1, "536-22-4821"] : null;

    /// <summary>Every tagged value of the shop as stored, with its reverse and base64 form, read with the admin credential.</summary>
    public static async Task<IReadOnlyList<string>> SecretsAsync(PostgresFixture pg)
    {
        var secrets = new List<string>();
        var builder = new NpgsqlConnectionStringBuilder(pg.AdminConnectionString) { Database = pg.Database };
        await using var connection = new NpgsqlConnection(builder.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("select email, phone, ssn, card_number from customers", connection);
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            for (var i = 0; i < 4; i++)
            {
                if (!reader.IsDBNull(i))
                {
                    var raw = reader.GetString(i);
                    secrets.AddRange([raw, new string(raw.Reverse().ToArray()), Convert.ToBase64String(Encoding.UTF8.GetBytes(raw))]);
                }
            }
        }

        return secrets;
    }

    /// <summary>Fails if any secret appears in the text, the structured content or the error of a tool result.</summary>
    public static void AssertNoSecret(CallToolResult result, IReadOnlyList<string> secrets)
    {
        var everything = result.Text() + (result.StructuredContent?.GetRawText() ?? "");
        foreach (var secret in secrets)
        {
            Assert.DoesNotContain(secret, everything);
        }
    }
}
