using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Masking;
using Npgsql;

namespace Gatehouse.Connectors.Postgres.Setup;

/// <summary>A relation setup may wrap in a profile view: its kind (pg_class.relkind) and columns with their types, in order.</summary>
internal sealed record CatalogRelation(RelationName Name, char Kind, IReadOnlyList<(string Name, string Type)> Columns)
{
    /// <summary>Row-level security is on: views owned by the admin who runs setup would not be held to it.</summary>
    public bool RowSecurity { get; init; }

    /// <summary>Columns PUBLIC may read directly (all of them when PUBLIC holds SELECT on the table).</summary>
    public IReadOnlyList<string> PublicReadable { get; init; } = [];

    public bool IsTable => Kind is 'r' or 'p';
}

/// <summary>The gateway's login role as PostgreSQL sees it; <see cref="DirectPrivileges"/> are relations, already quoted by the server.</summary>
internal sealed record LoginRoleState(bool Superuser, bool Inherits, bool CanLogin, bool BypassRls, int OwnedObjects, IReadOnlyList<string> DirectPrivileges, IReadOnlyList<string> OtherMemberships)
{
    /// <summary>Memberships granted WITH INHERIT TRUE (PostgreSQL 16 and later), which the role's NOINHERIT does not undo.</summary>
    public IReadOnlyList<string> InheritingMemberships { get; init; } = [];

    /// <summary>It may SET log_min_messages, with which the statement probe keeps parse trees out of the server log.</summary>
    public bool MaySetLogLevel { get; init; }

    /// <summary>Of <see cref="DirectPrivileges"/>, those granted by a role other than the relation's owner, with that role (both quoted).</summary>
    public IReadOnlyList<(string Relation, string Grantor)> OtherGrantors { get; init; } = [];
}

/// <summary>
/// A default privilege of the role running setup: <paramref name="Kind"/> 'n' for schemas, 'r' for tables and views, for
/// <paramref name="Grantee"/> (quoted, or PUBLIC), in every schema or (<paramref name="Global"/> false) the gateway's own only.
/// </summary>
internal sealed record DefaultGrant(char Kind, string Grantee, bool Global);

/// <summary>
/// A membership in a profile role setup did not grant: the member and its grantor (quoted; null when the grantor is gone),
/// whether memberships are per grantor (PostgreSQL 16 on), and whether the admin running setup may revoke this grantor's.
/// </summary>
internal sealed record ForeignMembership(string Member, string? Grantor, bool PerGrantor, bool MayRevoke);

/// <summary>A privilege on one of the gateway's schemas (<paramref name="Relation"/> null) or on something in it, held by a role setup never grants it to.</summary>
internal sealed record ForeignGrant(string Schema, string? Relation, string Grantee, string Privileges);

/// <summary>What setup reads from the target database before deciding what to create: one round trip of catalog queries.</summary>
internal sealed class SetupState
{
    public required string Database { get; init; }

    public required IReadOnlyList<CatalogRelation> Relations { get; init; }

    /// <summary>For each view or materialized view, the base columns it reads ("*" when it reads whole rows).</summary>
    public required ILookup<RelationName, ColumnUse> ViewReads { get; init; }

    /// <summary>For each table, the sequences its column defaults call.</summary>
    public required ILookup<RelationName, RelationName> DefaultSequences { get; init; }

    /// <summary>Null when the login role does not exist yet.</summary>
    public required LoginRoleState? Login { get; init; }

    /// <summary>Existing roles named like profiles.</summary>
    public required IReadOnlySet<string> ProfileRoles { get; init; }

    /// <summary>Profile roles the login role is a member of.</summary>
    public required IReadOnlySet<string> Memberships { get; init; }

    /// <summary>Profile schemas this login role and connection own (by their comment), with each view's comment.</summary>
    public required IReadOnlyDictionary<string, IReadOnlyDictionary<string, string?>> ProfileSchemas { get; init; }

    /// <summary>The schema pgcrypto is installed in, or null.</summary>
    public required string? PgcryptoSchema { get; init; }

    public required bool TokenKeyExists { get; init; }

    /// <summary>SECURITY DEFINER functions in the granted schemas that PUBLIC may execute, as signatures.</summary>
    public required IReadOnlyList<string> PublicDefinerFunctions { get; init; }

    /// <summary>For each inheritance child or partition, the tables it descends from, nearest first.</summary>
    public required ILookup<RelationName, RelationName> Ancestors { get; init; }

    /// <summary>The admin running setup may grant SET on log_min_messages (a superuser may).</summary>
    public bool MayGrantLogLevel { get; init; }

    /// <summary>
    /// The columns PUBLIC may read of each partition, and of each inheritance child outside the granted schemas: tables
    /// <see cref="Relations"/> leaves out that the gateway lets a grant on their parent reach.
    /// </summary>
    public IReadOnlyList<(RelationName Child, IReadOnlyList<string> Columns)> PublicChildren { get; init; } = [];

    /// <summary>The generated columns in every schema, with the columns of their table that their expressions read.</summary>
    public IReadOnlyList<(ColumnUse Column, IReadOnlyList<string> Sources)> Generated { get; init; } = [];

    /// <summary>What each view PUBLIC may read (in any schema it can reach, security_invoker views aside) reads, through views of views.</summary>
    public ILookup<RelationName, ColumnUse> PublicViewReads { get; init; } = Array.Empty<(RelationName, ColumnUse)>().ToLookup(r => r.Item1, r => r.Item2);

    /// <summary>
    /// Whom the default privileges of the role running setup hand what it creates (ALTER DEFAULT PRIVILEGES): 'n' for
    /// schemas, 'r' for tables and views, each grantee quoted (or PUBLIC). A profile view read by such a role hands it every
    /// row the profile sees, with its owner's rights.
    /// </summary>
    public IReadOnlyList<DefaultGrant> DefaultGrantees { get; init; } = [];

    /// <summary>
    /// Memberships in each profile role (by profile) of roles other than the login role and the admin running setup: each
    /// member reads all its profile sees, or (with the admin option alone) may grant itself the rest.
    /// </summary>
    public ILookup<string, ForeignMembership> ForeignMembers { get; init; } = Array.Empty<(string, ForeignMembership)>().ToLookup(m => m.Item1, m => m.Item2);

    /// <summary>Roles that may SET ROLE to the login role, and from it to any profile (quoted), the admin running setup aside.</summary>
    public IReadOnlyList<string> LoginMembers { get; init; } = [];

    /// <summary>
    /// Privileges on the gateway's schemas (its own and the profiles') and what is in them, held by a role setup never
    /// grants them to: neither the owner nor, in a profile's schema, the profile. Grantees quoted (or PUBLIC).
    /// </summary>
    public IReadOnlyList<ForeignGrant> ForeignGrants { get; init; } = [];

    public static string SchemaComment(string loginRole, string connection) => $"Gatehouse masking profile. login={loginRole} connection={connection}.";

    // Everything a view reads, through views of views: a view over a view over customers.ssn reads customers.ssn.
    private const string ViewReadsSql =
        "WITH RECURSIVE reads(view_oid, ref_oid, ref_col) AS ("
        + " SELECT r.ev_class, d.refobjid, d.refobjsubid FROM pg_rewrite r JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid"
        + " AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> r.ev_class"
        + " UNION SELECT reads.view_oid, d.refobjid, d.refobjsubid FROM reads JOIN pg_rewrite r ON r.ev_class = reads.ref_oid"
        + " JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> r.ev_class)"
        + " SELECT DISTINCT vn.nspname, v.relname, tn.nspname, t.relname, coalesce(a.attname::text, '*')"
        + " FROM reads JOIN pg_class v ON v.oid = reads.view_oid JOIN pg_namespace vn ON vn.oid = v.relnamespace"
        + " JOIN pg_class t ON t.oid = reads.ref_oid JOIN pg_namespace tn ON tn.oid = t.relnamespace"
        + " LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = reads.ref_col AND reads.ref_col > 0";

    // Each privilege granted on the relation c, or on one of its columns, as x (grantor, grantee, privilege_type).
    private const string RelationAcl =
        "LATERAL (SELECT e.grantor, e.grantee, e.privilege_type FROM aclexplode(c.relacl) e"
        + " UNION ALL SELECT e.grantor, e.grantee, e.privilege_type FROM pg_attribute a, aclexplode(a.attacl) e WHERE a.attrelid = c.oid) x";

    // The relations the login role (r) holds privileges on that someone other than their owner granted, with each grantor.
    private const string OtherGrantors =
        "SELECT DISTINCT format('%I.%I', n.nspname, c.relname) AS rel, quote_ident(pg_get_userbyid(x.grantor)) AS grantor"
        + " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, " + RelationAcl
        + " WHERE x.grantee = r.oid AND x.grantor <> c.relowner AND n.nspname NOT LIKE 'gatehouse\\_p\\_%'";

    // The gateway's schemas, and the role each one's objects are for (a profile's schema is named as its role).
    private const string GatewaySchemas = $"(n.nspname = '{DatabaseProfiles.GatewaySchema}' OR n.nspname LIKE 'gatehouse\\_p\\_%')";

    private const string ProfileRole = "(CASE WHEN n.nspname LIKE 'gatehouse\\_p\\_%' THEN (SELECT oid FROM pg_roles WHERE rolname = n.nspname) END)";

    // Memberships (g is the role, m the member) but the admin's own: it owns the views anyway, and from PostgreSQL 16 it holds
    // the admin option on each role it created. Columns new in 16 are read through JSON, so older servers run it too.
    private const string ForeignMembershipRows = "pg_auth_members a JOIN pg_roles g ON g.oid = a.roleid JOIN pg_roles m ON m.oid = a.member AND m.rolname <> current_user";

    private const string Grantee = "CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(x.grantee)) END";

    // Whether PUBLIC can reach a relation in schema <alias>: a granted schema (the profile roles get USAGE on those), or one
    // PUBLIC may use.
    private static string PublicReaches(string alias) => $"({alias}.nspname = ANY($1) OR has_schema_privilege('public', {alias}.oid, 'USAGE'))";

    public static async Task<SetupState> ReadAsync(NpgsqlConnection admin, string loginRole, string connection, IReadOnlyList<string> schemas, CancellationToken cancellationToken)
    {
        await using var batch = admin.CreateBatch();
        Add(batch, "SELECT current_database(), current_setting('standard_conforming_strings'), has_parameter_privilege('log_min_messages', 'SET WITH GRANT OPTION')");
        Add(
            batch,
            "SELECT n.nspname, c.relname, c.relkind::text, array_agg(a.attname::text ORDER BY a.attnum), array_agg(format_type(b.type, b.typmod) ORDER BY a.attnum),"
            + " c.relrowsecurity, array_agg(a.attname::text ORDER BY a.attnum) FILTER (WHERE has_column_privilege('public', c.oid, a.attnum, 'SELECT'))"
            + " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
            // A domain's column by its base type, through domains over domains, with the first type modifier met on the way.
            + " CROSS JOIN LATERAL (WITH RECURSIVE d(type, typmod, depth) AS (SELECT a.atttypid, a.atttypmod, 0"
            + "   UNION ALL SELECT t.typbasetype, CASE WHEN d.typmod = -1 THEN t.typtypmod ELSE d.typmod END, d.depth + 1"
            + "   FROM d JOIN pg_type t ON t.oid = d.type WHERE t.typtype = 'd' AND d.depth < 100)"
            + "   SELECT type, typmod FROM d ORDER BY depth DESC LIMIT 1) b"
            + " WHERE c.relkind IN ('r','v','m','p','f') AND NOT c.relispartition AND n.nspname = ANY($1) GROUP BY 1, 2, 3, c.relrowsecurity ORDER BY 1, 2",
            schemas.ToArray());
        Add(batch, ViewReadsSql + " WHERE v.relkind IN ('v','m') AND vn.nspname = ANY($1)", schemas.ToArray());
        Add(
            batch,
            "SELECT DISTINCT tn.nspname, t.relname, sn.nspname, s.relname FROM pg_attrdef ad"
            + " JOIN pg_class t ON t.oid = ad.adrelid JOIN pg_namespace tn ON tn.oid = t.relnamespace"
            + " JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid AND d.refclassid = 'pg_class'::regclass"
            + " JOIN pg_class s ON s.oid = d.refobjid AND s.relkind = 'S' JOIN pg_namespace sn ON sn.oid = s.relnamespace"
            + " WHERE tn.nspname = ANY($1)",
            schemas.ToArray());
        Add(
            batch,
            "SELECT r.rolsuper, r.rolinherit, r.rolcanlogin, r.rolbypassrls,"
            + " (SELECT count(*) FROM pg_class WHERE relowner = r.oid) + (SELECT count(*) FROM pg_namespace WHERE nspowner = r.oid) + (SELECT count(*) FROM pg_proc WHERE proowner = r.oid),"
            + " ARRAY(SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            + "   WHERE (EXISTS (SELECT 1 FROM aclexplode(c.relacl) x WHERE x.grantee = r.oid)"
            + "     OR EXISTS (SELECT 1 FROM pg_attribute a, aclexplode(a.attacl) x WHERE a.attrelid = c.oid AND x.grantee = r.oid))"
            + "   AND n.nspname NOT LIKE 'gatehouse\\_p\\_%' ORDER BY 1),"
            + " ARRAY(SELECT g.rolname::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid AND g.rolname NOT LIKE 'gatehouse\\_p\\_%' ORDER BY 1),"
            // From PostgreSQL 16 each membership carries its own inherit option, which ALTER ROLE ... NOINHERIT leaves as it
            // was; read through JSON, so the query runs on older servers too (where the column, and the question, are absent).
            + " ARRAY(SELECT g.rolname::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid"
            + "   AND (to_jsonb(m) ->> 'inherit_option')::boolean AND g.rolname NOT LIKE 'gatehouse\\_p\\_%' ORDER BY 1),"
            + " has_parameter_privilege(r.oid, 'log_min_messages', 'SET'),"
            // Who else granted it those privileges: a REVOKE without GRANTED BY removes only the owner's grants.
            + $" (SELECT array_agg(rel ORDER BY rel, grantor) FROM ({OtherGrantors}) o), (SELECT array_agg(grantor ORDER BY rel, grantor) FROM ({OtherGrantors}) o)"
            + " FROM pg_roles r WHERE r.rolname = $1",
            loginRole);
        Add(batch, "SELECT rolname::text FROM pg_roles WHERE rolname LIKE 'gatehouse\\_p\\_%'");
        Add(batch, "SELECT g.rolname::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = $1 AND g.rolname LIKE 'gatehouse\\_p\\_%'", loginRole);
        Add(
            batch,
            "SELECT n.nspname, c.relname, obj_description(c.oid, 'pg_class') FROM pg_namespace n LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relkind = 'v'"
            + " WHERE n.nspname LIKE 'gatehouse\\_p\\_%' AND obj_description(n.oid, 'pg_namespace') = $1",
            SchemaComment(loginRole, connection));
        Add(batch, "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pgcrypto'");
        Add(batch, $"SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = '{DatabaseProfiles.GatewaySchema}' AND c.relname = 'mask_key'");
        Add(
            batch,
            "SELECT quote_ident(n.nspname) || '.' || quote_ident(p.proname) || '(' || pg_get_function_identity_arguments(p.oid) || ')' FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
            + " WHERE p.prosecdef AND n.nspname = ANY($1) AND (p.proacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) x WHERE x.grantee = 0)) ORDER BY 1",
            schemas.ToArray());
        Add(
            batch,
            // The tables each inheritance child (or partition) descends from, nearest first: a child has its parent's columns.
            // Every schema's: a view in a granted schema may read a partition kept in another.
            "WITH RECURSIVE up(child, parent, depth) AS (SELECT i.inhrelid, i.inhparent, 1 FROM pg_inherits i"
            + " UNION SELECT up.child, i.inhparent, up.depth + 1 FROM up JOIN pg_inherits i ON i.inhrelid = up.parent WHERE up.depth < 100)"
            + " SELECT cn.nspname, c.relname, pn.nspname, p.relname FROM up JOIN pg_class c ON c.oid = up.child JOIN pg_namespace cn ON cn.oid = c.relnamespace"
            + " JOIN pg_class p ON p.oid = up.parent JOIN pg_namespace pn ON pn.oid = p.relnamespace ORDER BY 1, 2, up.depth, 3, 4");
        Add(
            batch,
            "SELECT n.nspname, c.relname, array_agg(a.attname::text ORDER BY a.attnum) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            + " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
            + " WHERE EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid) AND (c.relispartition OR NOT n.nspname = ANY($1))"
            + $" AND {PublicReaches("n")} AND has_column_privilege('public', c.oid, a.attnum, 'SELECT') GROUP BY 1, 2 ORDER BY 1, 2",
            schemas.ToArray());
        Add(
            batch,
            // Views PUBLIC may read, in any schema it can reach, with what they read. A view reads with its owner's rights
            // unless it is security_invoker, and a materialized view holds what its owner read.
            ViewReadsSql
            + $" WHERE v.relkind IN ('v','m') AND vn.nspname NOT IN ('pg_catalog', 'information_schema') AND vn.nspname NOT LIKE 'gatehouse\\_p\\_%' AND {PublicReaches("vn")}"
            + " AND (has_table_privilege('public', v.oid, 'SELECT') OR has_any_column_privilege('public', v.oid, 'SELECT'))"
            + " AND NOT EXISTS (SELECT 1 FROM unnest(coalesce(v.reloptions, '{}')) o WHERE o ~* '^security_invoker=(true|on|yes|1)$')",
            schemas.ToArray());
        Add(
            batch,
            // Generated columns and the columns of their table their expressions read (a default depends on its own column too).
            // Every schema's: reading a parent reads its children, which may compute an inherited generated column their own way.
            "SELECT n.nspname, c.relname, a.attname::text, array_agg(r.attname::text ORDER BY r.attnum) FROM pg_attribute a"
            + " JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
            + " JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum"
            + " JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid AND d.refclassid = 'pg_class'::regclass AND d.refobjid = c.oid"
            + " JOIN pg_attribute r ON r.attrelid = c.oid AND r.attnum = d.refobjsubid AND r.attnum <> a.attnum"
            + " WHERE a.attgenerated <> '' AND NOT a.attisdropped AND n.nspname NOT IN ('pg_catalog', 'information_schema') GROUP BY 1, 2, 3 ORDER BY 1, 2, 3");

        Add(
            batch,
            $"SELECT DISTINCT d.defaclobjtype::text, {Grantee}, d.defaclnamespace = 0 FROM pg_default_acl d CROSS JOIN LATERAL aclexplode(d.defaclacl) x"
            + " WHERE d.defaclrole = (SELECT oid FROM pg_roles WHERE rolname = current_user) AND d.defaclobjtype IN ('r', 'n') AND x.grantee <> d.defaclrole"
            + $" AND (d.defaclnamespace = 0 OR d.defaclnamespace = (SELECT oid FROM pg_namespace WHERE nspname = '{DatabaseProfiles.GatewaySchema}')) ORDER BY 1, 2");
        Add(
            batch,
            $"SELECT n.nspname, NULL::text, {Grantee}, string_agg(DISTINCT x.privilege_type, ', ') FROM pg_namespace n CROSS JOIN LATERAL aclexplode(n.nspacl) x"
            + $" WHERE {GatewaySchemas} AND x.grantee <> n.nspowner AND x.grantee IS DISTINCT FROM {ProfileRole} GROUP BY 1, 2, 3"
            + $" UNION ALL SELECT n.nspname, c.relname::text, {Grantee}, string_agg(DISTINCT x.privilege_type, ', ')"
            + " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, " + RelationAcl
            + $" WHERE {GatewaySchemas} AND x.grantee <> c.relowner AND x.grantee IS DISTINCT FROM {ProfileRole} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3");

        Add(
            batch,
            // From PostgreSQL 16 each grantor's grant is a membership of its own, revoked as that grantor's, which only a role
            // with the grantor's privileges may do; before, one REVOKE ends the membership whoever granted it.
            "SELECT DISTINCT g.rolname::text, quote_ident(m.rolname), quote_ident(gr.rolname), current_setting('server_version_num')::int >= 160000,"
            + " coalesce(pg_has_role(current_user, gr.oid, 'USAGE'), false) AND pg_has_role(current_user, g.oid, 'USAGE WITH ADMIN OPTION')"
            + $" FROM {ForeignMembershipRows} LEFT JOIN pg_roles gr ON gr.oid = a.grantor WHERE g.rolname LIKE 'gatehouse\\_p\\_%' AND m.rolname <> $1 ORDER BY 1, 2, 3",
            loginRole);
        Add(
            batch,
            // Who may SET ROLE to the login role (always, before PostgreSQL 16), or grant itself that.
            $"SELECT DISTINCT quote_ident(m.rolname) FROM {ForeignMembershipRows} WHERE g.rolname = $1"
            + " AND (coalesce((to_jsonb(a) ->> 'set_option')::boolean, true) OR a.admin_option) ORDER BY 1",
            loginRole);

        await using var reader = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        var database = reader.GetString(0);
        var mayGrantLogLevel = reader.GetBoolean(2);
        if (reader.GetString(1) != "on")
        {
            throw new InvalidOperationException("standard_conforming_strings is off in this database; setup writes standard SQL literals and will not run without it.");
        }

        await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
        var relations = new List<CatalogRelation>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            var names = reader.GetFieldValue<string[]>(3);
            var types = reader.GetFieldValue<string[]>(4);
            relations.Add(new CatalogRelation(new RelationName(reader.GetString(0), reader.GetString(1)), reader.GetString(2)[0], names.Zip(types).ToList())
            {
                RowSecurity = reader.GetBoolean(5),
                PublicReadable = reader.IsDBNull(6) ? [] : reader.GetFieldValue<string[]>(6),
            });
        }

        var viewReads = await ReadViewReadsAsync(reader, cancellationToken).ConfigureAwait(false);

        await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
        var sequences = new List<(RelationName Table, RelationName Sequence)>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            sequences.Add((new RelationName(reader.GetString(0), reader.GetString(1)), new RelationName(reader.GetString(2), reader.GetString(3))));
        }

        await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
        LoginRoleState? login = null;
        if (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            login = new LoginRoleState(reader.GetBoolean(0), reader.GetBoolean(1), reader.GetBoolean(2), reader.GetBoolean(3), (int)reader.GetInt64(4), reader.GetFieldValue<string[]>(5), reader.GetFieldValue<string[]>(6))
            {
                InheritingMemberships = reader.GetFieldValue<string[]>(7),
                MaySetLogLevel = reader.GetBoolean(8),
                OtherGrantors = reader.IsDBNull(9) ? [] : reader.GetFieldValue<string[]>(9).Zip(reader.GetFieldValue<string[]>(10)).ToList(),
            };
        }

        var profileRoles = await ReadStringsAsync(reader, cancellationToken).ConfigureAwait(false);
        var memberships = await ReadStringsAsync(reader, cancellationToken).ConfigureAwait(false);

        await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
        var profileSchemas = new Dictionary<string, Dictionary<string, string?>>(StringComparer.Ordinal);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            var views = profileSchemas.TryGetValue(reader.GetString(0), out var v) ? v : profileSchemas[reader.GetString(0)] = new Dictionary<string, string?>(StringComparer.Ordinal);
            if (!reader.IsDBNull(1))
            {
                views[reader.GetString(1)] = reader.IsDBNull(2) ? null : reader.GetString(2);
            }
        }

        await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
        var pgcrypto = await reader.ReadAsync(cancellationToken).ConfigureAwait(false) ? reader.GetString(0) : null;
        await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
        await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        var tokenKey = reader.GetInt64(0) > 0;
        var definers = await ReadStringsAsync(reader, cancellationToken).ConfigureAwait(false);

        await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
        var ancestors = new List<(RelationName Child, RelationName Parent)>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            ancestors.Add((new RelationName(reader.GetString(0), reader.GetString(1)), new RelationName(reader.GetString(2), reader.GetString(3))));
        }

        await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
        var publicChildren = new List<(RelationName, IReadOnlyList<string>)>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            publicChildren.Add((new RelationName(reader.GetString(0), reader.GetString(1)), reader.GetFieldValue<string[]>(2)));
        }

        var publicViewReads = await ReadViewReadsAsync(reader, cancellationToken).ConfigureAwait(false);

        await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
        var generated = new List<(ColumnUse, IReadOnlyList<string>)>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            generated.Add((new ColumnUse(new RelationName(reader.GetString(0), reader.GetString(1)), reader.GetString(2)), reader.GetFieldValue<string[]>(3)));
        }

        await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
        var defaults = new List<DefaultGrant>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            defaults.Add(new DefaultGrant(reader.GetString(0)[0], reader.GetString(1), reader.GetBoolean(2)));
        }

        await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
        var foreign = new List<ForeignGrant>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            foreign.Add(new ForeignGrant(reader.GetString(0), reader.IsDBNull(1) ? null : reader.GetString(1), reader.GetString(2), reader.GetString(3)));
        }

        await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
        var members = new List<(string Profile, ForeignMembership Membership)>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            members.Add((reader.GetString(0), new ForeignMembership(reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetString(2), reader.GetBoolean(3), reader.GetBoolean(4))));
        }

        var loginMembers = await ReadStringsAsync(reader, cancellationToken).ConfigureAwait(false);

        return new SetupState
        {
            DefaultGrantees = defaults,
            ForeignMembers = members.ToLookup(m => m.Profile, m => m.Membership, StringComparer.Ordinal),
            LoginMembers = loginMembers,
            ForeignGrants = foreign,
            Database = database,
            MayGrantLogLevel = mayGrantLogLevel,
            Relations = relations,
            ViewReads = viewReads.ToLookup(r => r.View, r => r.Column),
            DefaultSequences = sequences.ToLookup(s => s.Table, s => s.Sequence),
            Login = login,
            ProfileRoles = profileRoles.ToHashSet(StringComparer.Ordinal),
            Memberships = memberships.ToHashSet(StringComparer.Ordinal),
            ProfileSchemas = profileSchemas.ToDictionary(p => p.Key, p => (IReadOnlyDictionary<string, string?>)p.Value, StringComparer.Ordinal),
            PgcryptoSchema = pgcrypto,
            TokenKeyExists = tokenKey,
            PublicDefinerFunctions = definers,
            Ancestors = ancestors.Distinct().ToLookup(a => a.Child, a => a.Parent),
            PublicChildren = publicChildren,
            PublicViewReads = publicViewReads.ToLookup(r => r.View, r => r.Column),
            Generated = generated,
        };
    }

    private static async Task<List<(RelationName View, ColumnUse Column)>> ReadViewReadsAsync(NpgsqlDataReader reader, CancellationToken cancellationToken)
    {
        await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
        var reads = new List<(RelationName View, ColumnUse Column)>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            reads.Add((new RelationName(reader.GetString(0), reader.GetString(1)), new ColumnUse(new RelationName(reader.GetString(2), reader.GetString(3)), reader.GetString(4))));
        }

        return reads;
    }

    private static async Task<List<string>> ReadStringsAsync(NpgsqlDataReader reader, CancellationToken cancellationToken)
    {
        await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
        var values = new List<string>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            values.Add(reader.GetString(0));
        }

        return values;
    }

    private static void Add(NpgsqlBatch batch, string sql, object? parameter = null)
    {
        var command = new NpgsqlBatchCommand(sql);
        if (parameter is not null)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = parameter });
        }

        batch.BatchCommands.Add(command);
    }
}
