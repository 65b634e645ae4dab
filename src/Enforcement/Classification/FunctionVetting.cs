using Gatehouse.Enforcement.Pipeline;

namespace Gatehouse.Enforcement.Classification;

/// <summary>
/// Decides whether the functions a plan calls are safe. EXPLAIN cannot see what a function does inside, so only vetted
/// functions pass: immutable or stable built-ins, a few harmless volatile ones, minus a denylist of functions that read
/// files, run SQL strings, touch large objects, change settings, show other sessions' statements or control the server. Anything
/// else needs the policy's allowlist.
/// </summary>
public static class FunctionVetting
{
    private static readonly Dictionary<string, string> Denied = new(StringComparer.Ordinal)
    {
        ["pg_read_file"] = "reads server files",
        ["pg_read_binary_file"] = "reads server files",
        ["pg_ls_dir"] = "lists server directories",
        ["pg_stat_file"] = "reads server file metadata",
        ["pg_file_write"] = "writes server files",
        ["pg_file_rename"] = "renames server files",
        ["pg_file_unlink"] = "deletes server files",
        ["pg_logdir_ls"] = "lists server directories",
        ["loread"] = "reads large objects",
        ["lowrite"] = "writes large objects",
        ["query_to_xml"] = "runs a SQL string",
        ["query_to_xmlschema"] = "runs a SQL string",
        ["query_to_xml_and_xmlschema"] = "runs a SQL string",
        ["cursor_to_xml"] = "reads an open cursor",
        ["cursor_to_xmlschema"] = "reads an open cursor",
        ["ts_stat"] = "runs a SQL string",
        ["ts_rewrite"] = "can run a SQL string",
        ["set_config"] = "changes settings",
        ["pg_notify"] = "sends notifications",
        ["pg_terminate_backend"] = "ends other sessions",
        ["pg_cancel_backend"] = "cancels other sessions",
        // Where an agent runs as the gateway's own login (no masking profile or mapped role), PostgreSQL shows it the text of
        // every statement on the gateway's other connections: other agents' SQL, literals and all.
        ["pg_stat_get_activity"] = "shows other sessions' statements (pg_stat_activity), other agents' among them",
        ["pg_stat_get_backend_activity"] = "shows other sessions' statements, other agents' among them",
        ["pg_stat_statements"] = "shows statements other sessions ran",
        ["pg_reload_conf"] = "controls the server",
        ["pg_rotate_logfile"] = "controls the server",
        ["pg_switch_wal"] = "controls the server",
        ["pg_promote"] = "controls the server",
        ["pg_create_restore_point"] = "controls the server",
        ["pg_backup_start"] = "controls the server",
        ["pg_backup_stop"] = "controls the server",
        ["pg_log_backend_memory_contexts"] = "controls the server",
        ["pg_import_system_collations"] = "changes the catalog",
        ["pg_logical_emit_message"] = "writes to the WAL",
        ["pg_replication_slot_advance"] = "controls replication",
        ["pg_create_physical_replication_slot"] = "controls replication",
        ["pg_create_logical_replication_slot"] = "controls replication",
        ["pg_drop_replication_slot"] = "controls replication",
        ["pg_sleep"] = "holds a connection",
        ["pg_sleep_for"] = "holds a connection",
        ["pg_sleep_until"] = "holds a connection",
    };

    private static readonly (string Prefix, string Why)[] DeniedPrefixes =
    [
        ("pg_ls_", "lists server directories"), ("lo_", "touches large objects"), ("dblink", "connects to other databases"),
        ("table_to_xml", "reads a table by name, around grants"), ("schema_to_xml", "reads tables by name, around grants"),
        ("database_to_xml", "reads tables by name, around grants"), ("pg_advisory", "takes advisory locks"), ("pg_try_advisory", "takes advisory locks"),
        ("pg_stat_reset", "resets statistics"), ("pg_replication_origin", "controls replication"), ("pg_copy_", "controls replication"),
        ("pg_wal_replay", "controls the server"),
    ];

    // PostgreSQL's FirstNormalObjectId: objects below it come with the server.
    private const uint FirstUserOid = 16384;

    /// <summary>The rule for a name the cached catalog lacks; the pipeline re-reads the catalog once before refusing.</summary>
    public const string UnknownRule = "function.unknown";

    private static readonly HashSet<string> Sequences = new(StringComparer.Ordinal) { "nextval", "setval", "currval", "lastval" };

    private static readonly HashSet<string> HarmlessVolatile = new(StringComparer.Ordinal) { "random", "random_normal", "clock_timestamp", "timeofday", "gen_random_uuid", "uuidv4", "uuidv7" };

    // Deparsed SQL constructs that print like calls but are not pg_proc functions; taken as such only when printed as keywords
    // are (a user's function of the same name, created since the catalog was read, prints otherwise and is looked up again).
    private static readonly HashSet<string> Constructs = new(StringComparer.Ordinal)
    {
        "coalesce", "nullif", "greatest", "least", "exists", "any", "all", "some", "array", "row", "in", "values", "grouping", "cast", "treat",
        "xmlelement", "xmlforest", "xmlparse", "xmlpi", "xmlroot", "xmlserialize", "xmlexists", "xmlconcat", "xmlattributes", "trim",
        "json_object", "json_array", "json_objectagg", "json_arrayagg", "json", "json_scalar", "json_serialize", "is", "not", "and", "or", "collate",
        "json_value", "json_query", "json_exists", "json_table", "columns", "merge_action", "current_timestamp", "current_time", "localtimestamp", "localtime", "xmltable", "xmlnamespaces", "passing", "path", "default",
        "case", "when", "then", "else", "end", "over", "filter", "group", "within", "from", "as", "on", "between", "like", "ilike", "similar",
        "distinct", "where", "select", "by", "order", "partition", "rows", "range", "groups", "at", "zone", "escape", "using", "of", "to",
        "for", "having", "union", "except", "intersect", "returning", "nulls", "only", "lateral", "with",
    };

    /// <summary>Null when every call is acceptable; otherwise the refusal naming the first function that is not.</summary>
    public static Decision? Vet(IEnumerable<FunctionCall> calls, FunctionCatalog catalog, bool statementWrites, IReadOnlyCollection<string> allowlist)
    {
        foreach (var call in calls.Distinct())
        {
            if (catalog.Find(call).Count == 0 && !(call.Keyword && Constructs.Contains(call.Name)))
            {
                return Decision.Deny(UnknownRule, $"function {call} is not allowed: it is not in the database's function catalog");
            }

            if (Refusal(call, catalog, statementWrites, allowlist) is { } reason)
            {
                return Decision.Deny("function.not_allowed", $"function {call} is not allowed: {reason}");
            }
        }

        return null;
    }

    /// <summary>
    /// The calls a statement's parse tree makes, as <see cref="Vet"/> checks them: each function it names, and the function
    /// behind each operator that is not a built-in (a built-in operator's function is a built-in, and named too). Null when it
    /// names a function or a user's operator the catalog lacks, which the pipeline re-reads once before refusing.
    /// </summary>
    public static IReadOnlyList<FunctionCall>? Calls(StatementReferences references, FunctionCatalog catalog)
    {
        var calls = new List<FunctionCall>(references.Functions.Count);
        foreach (var oid in references.Functions)
        {
            if (catalog.Function(oid) is not { } function)
            {
                return null;
            }

            calls.Add(new FunctionCall(function.Schema, function.Name));
        }

        foreach (var oid in references.Operators)
        {
            if (catalog.Operator(oid) is { Function: var function })
            {
                calls.Add(new FunctionCall(function.Schema, function.Name));
            }
            else if (oid >= FirstUserOid)
            {
                // Created since the catalog was read: every operator from this oid up was created after initdb.
                return null;
            }
        }

        return calls;
    }

    /// <summary>
    /// The calls whose verdict a policy's allowlist could change. One that passes without it (a vetted built-in) passes under
    /// any policy while the catalog stands, so a cached plan need not carry it into the vetting on every call.
    /// </summary>
    public static IReadOnlyList<FunctionCall> ForPolicy(IEnumerable<FunctionCall> calls, FunctionCatalog catalog, bool statementWrites) =>
        [.. calls.Distinct().Where(call => Refusal(call, catalog, statementWrites, []) is not null)];

    private static string? Refusal(FunctionCall call, FunctionCatalog catalog, bool statementWrites, IReadOnlyCollection<string> allowlist)
    {
        // An unqualified name may resolve to any schema's function: every candidate must pass.
        foreach (var function in catalog.Find(call))
        {
            // Strict masking's own schema (pgcrypto, the token key) is never on an agent's path and no agent role may
            // use it, so an unqualified name cannot mean a function there.
            if (call.Schema is null && function.Schema == Masking.DatabaseProfiles.GatewaySchema)
            {
                continue;
            }

            var qualified = $"{function.Schema}.{function.Name}";
            if (allowlist.Contains(qualified) || allowlist.Contains(function.Name))
            {
                continue;
            }

            if (DenialReason(function.Name) is { } why)
            {
                return $"it {why}";
            }

            if (function.Schema == "pg_catalog" && Sequences.Contains(function.Name))
            {
                // The sequence is an argument, not a relation of the plan, so no grant covers it: a write may draw numbers
                // as its inserts do, but not move any sequence back or ahead, where other writers' keys would collide.
                if (function.Name == "setval")
                {
                    return "it sets a sequence's position, which no grant covers (later inserts could collide with existing keys); allowlist pg_catalog.setval under the connection's 'functions' if an agent must";
                }

                if (statementWrites)
                {
                    continue;
                }

                return "it changes a sequence, which a read may not do";
            }

            if (function.SecurityDefiner)
            {
                return $"it runs with its owner's rights (SECURITY DEFINER); allowlist {qualified} under the connection's 'functions' if it is safe";
            }

            if (function.Schema != "pg_catalog")
            {
                return $"{qualified} is not a vetted built-in; allowlist it under the connection's 'functions' if it is safe";
            }

            if (function.Volatility == Volatility.Volatile && !HarmlessVolatile.Contains(function.Name))
            {
                return "it is a volatile built-in that may change state";
            }
        }

        return null;
    }

    private static string? DenialReason(string name) =>
        Denied.TryGetValue(name, out var why)
            ? why
            : DeniedPrefixes.FirstOrDefault(p => name.StartsWith(p.Prefix, StringComparison.Ordinal)).Why;
}
