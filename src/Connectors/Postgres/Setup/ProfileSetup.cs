using System.Security.Cryptography;
using System.Text;
using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Masking;
using Gatehouse.Enforcement.Policy;
using Npgsql;

namespace Gatehouse.Connectors.Postgres.Setup;

/// <summary>One statement setup runs; <see cref="Shown"/> is what --dry-run prints (no secret in it).</summary>
public sealed record SetupStatement(string Sql, string Shown);

/// <summary>What setup found and would do.</summary>
/// <param name="Drift">How the database differs from what the policy calls for; empty when in sync.</param>
/// <param name="Blockers">Problems setup will not paper over (a login role that is superuser or owns objects, tags naming no column).</param>
/// <param name="Notes">Things worth knowing that do not stop setup (views left out, name clashes).</param>
public sealed record SetupReport(
    string Database,
    IReadOnlyList<DatabaseProfile> Profiles,
    IReadOnlyList<SetupStatement> Statements,
    IReadOnlyList<string> Drift,
    IReadOnlyList<string> Blockers,
    IReadOnlyList<string> Notes);

/// <summary>
/// <c>gatehouse setup</c> for one strict-mode connection: reads the database, works out the profile roles, schemas and
/// security_barrier views the policy calls for, reports drift, and applies everything in one transaction.
/// </summary>
public static class ProfileSetup
{
    /// <summary>Reads the database and plans the setup. <paramref name="loginPassword"/> is used only if the login role must be created, and only as a SCRAM verifier made here.</summary>
    /// <param name="timeBoxed">Active time-boxed grants by agent (approved access requests), which need profiles of their own.</param>
    public static async Task<SetupReport> PlanAsync(
        NpgsqlConnection admin, GatewayPolicy policy, ConnectionConfig connection, string? loginPassword, bool revokePublicExecute, CancellationToken cancellationToken,
        IReadOnlyDictionary<string, IReadOnlyList<Grant>>? timeBoxed = null)
    {
        var login = connection.LoginRole ?? throw new InvalidOperationException($"connection '{connection.Name}' names no login role (Username) in its connection string");
        var profiles = DatabaseProfiles.All(policy, connection, timeBoxed);
        var schemas = profiles.SelectMany(p => p.Grants).SelectMany(g => g.Schemas.Concat(g.Tables.Select(t => t.Schema)))
            .Concat(connection.Tags.Keys.Select(t => t.Relation.Schema)).Distinct(StringComparer.Ordinal).ToList();
        var state = await SetupState.ReadAsync(admin, login, connection.Name, schemas, cancellationToken).ConfigureAwait(false);
        string? passwordVerifier = null;
        if (state.Login is null && loginPassword is not null)
        {
            // The server is sent a SCRAM verifier, never the password: statement logs and pg_stat_activity would show it.
            // The verifier's characters (base64, '$', ':') need no quoting. scram_iterations exists from PostgreSQL 16.
            await using var setting = new NpgsqlCommand("SELECT current_setting('scram_iterations', true)", admin);
            var iterations = int.TryParse(await setting.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) as string, out var configured)
                ? Math.Max(configured, ScramVerifier.DefaultIterations)
                : ScramVerifier.DefaultIterations;
            passwordVerifier = $"'{ScramVerifier.Create(loginPassword, iterations)}'";
        }

        return new Planner(connection, login, profiles, state, passwordVerifier, revokePublicExecute).Plan();
    }

    /// <summary>Runs every statement in one transaction: the database moves from the old profiles to the new at once, or not at all.</summary>
    public static async Task ApplyAsync(NpgsqlConnection admin, SetupReport report, CancellationToken cancellationToken)
    {
        await using var transaction = await admin.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        foreach (var statement in report.Statements)
        {
            await using var command = new NpgsqlCommand(statement.Sql, admin, transaction);
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    private sealed class Planner(ConnectionConfig connection, string login, IReadOnlyList<DatabaseProfile> profiles, SetupState state, string? passwordVerifier, bool revokePublicExecute)
    {
        private readonly List<SetupStatement> _statements = [];
        private readonly List<string> _drift = [];
        private readonly List<string> _blockers = [];
        private readonly List<string> _notes = [];
        private readonly NpgsqlCommandBuilder _quoter = new();

        // Each table's partitions and inheritance children, at any depth.
        private readonly ILookup<RelationName, RelationName> _descendants =
            state.Ancestors.SelectMany(child => child.Select(ancestor => (Ancestor: ancestor, Child: child.Key))).ToLookup(d => d.Ancestor, d => d.Child);

        public SetupReport Plan()
        {
            CheckTags();
            PlanLoginRole();
            var tokens = profiles.Any(p => p.Masked.Any(c => connection.StrategyFor(c) == MaskingStrategy.Token));
            if (tokens)
            {
                PlanTokenKey();
            }

            PlanForeignGrants();
            foreach (var profile in profiles)
            {
                PlanProfile(profile);
            }

            foreach (var stale in state.ProfileSchemas.Keys.Where(s => profiles.All(p => p.Name != s)).Order(StringComparer.Ordinal))
            {
                _drift.Add($"profile {stale} is left from an earlier policy; setup drops it");
                Run($"DROP SCHEMA {Id(stale)} CASCADE");
                if (state.ProfileRoles.Contains(stale))
                {
                    Run($"DROP OWNED BY {Id(stale)}");
                    Run($"DROP ROLE {Id(stale)}");
                }
            }

            if (revokePublicExecute)
            {
                foreach (var function in state.PublicDefinerFunctions)
                {
                    Run($"REVOKE EXECUTE ON FUNCTION {function} FROM PUBLIC");
                }
            }
            else if (state.PublicDefinerFunctions.Count > 0)
            {
                _notes.Add($"SECURITY DEFINER functions anyone may execute: {string.Join(", ", state.PublicDefinerFunctions)}. The gateway refuses them unless allowlisted; --revoke-public-execute takes PUBLIC's EXECUTE away.");
            }

            return new SetupReport(state.Database, profiles, _statements, _drift, _blockers, _notes);
        }

        private void CheckTags()
        {
            var columns = state.Relations.SelectMany(r => r.Columns.Select(c => new ColumnUse(r.Name, c.Name))).ToHashSet();
            foreach (var tag in connection.Tags.Keys.Where(t => !columns.Contains(t)))
            {
                _blockers.Add($"the policy tags {tag}, which the database does not have: fix the tag so the real column is protected");
            }

            // A child has its parent's columns, and the parent's tags hold on them.
            string? ClassOf(ColumnUse column) => connection.NearestTag(state.Ancestors[column.Relation].Prepend(column.Relation), column.Column);
            foreach (var (column, sources) in state.Generated.Where(g => ClassOf(g.Column) is null))
            {
                if (sources.Select(s => column with { Column = s }).FirstOrDefault(s => ClassOf(s) is not null) is { } source)
                {
                    _blockers.Add($"{TagDrift.Describe(new Derivation(column, source, ClassOf(source)!))}: tag it too, so its profiles mask it");
                }
            }

            // Privileges granted to PUBLIC reach every role, the gateway's included: a tagged column PUBLIC may read is
            // readable raw through its table's qualified name, whatever the views mask. So is one of a partition (its
            // parent's tags hold on it), and a view PUBLIC may read that reads a tagged column: a view reads with its
            // owner's rights, so it hands the raw value to whoever may read the view.
            var publicTables = state.Relations.Where(r => r.Kind is not ('v' or 'm')).Select(r => (r.Name, r.PublicReadable)).Concat(state.PublicChildren);
            foreach (var (table, readable) in publicTables)
            {
                foreach (var column in readable.Where(c => TagsOf(table, c).Any()))
                {
                    _blockers.Add($"PUBLIC may read {table}.{column}, which the policy tags: every role could read it unmasked; REVOKE SELECT ON {table} FROM PUBLIC (and any column grant) first");
                }
            }

            foreach (var view in state.PublicViewReads)
            {
                if (view.FirstOrDefault(ReadsTagged) is { } tagged)
                {
                    _blockers.Add($"PUBLIC may read {view.Key}, which reads {tagged}, a column the policy tags: a view reads with its owner's rights, so every role could read it unmasked through the view; REVOKE SELECT ON {view.Key} FROM PUBLIC (and any column grant), or make it security_invoker, first");
                }
            }

            // Profile views run with their owner's rights, so row-level security would hold them to the admin's rows, not the agent's.
            foreach (var relation in state.Relations.Where(r => r.RowSecurity && profiles.Any(p => p.AccessTo(r.Name) is not null)))
            {
                _blockers.Add($"{relation.Name} has row-level security, which profile views (owned by the admin running setup) would not apply; use overlay masking for this connection, or disable row-level security on it");
            }
        }

        private void PlanLoginRole()
        {
            if (state.Login is not { } role)
            {
                _drift.Add($"login role {login} does not exist; setup creates it (NOINHERIT, owning nothing)");
                if (passwordVerifier is null)
                {
                    _blockers.Add($"login role {login} must be created, but the connection's password (password_env or password_file) could not be read");
                }

                Run(
                    $"CREATE ROLE {Id(login)} LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS PASSWORD {passwordVerifier ?? "NULL"}",
                    $"CREATE ROLE {Id(login)} LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS PASSWORD '(the connection's password)'");
            }
            else
            {
                if (role.Superuser || role.BypassRls)
                {
                    _blockers.Add($"login role {login} is a superuser or bypasses row security: PostgreSQL would check nothing for it; use a plain role");
                }

                if (role.OwnedObjects > 0)
                {
                    _blockers.Add($"login role {login} owns {role.OwnedObjects} object(s) in this database; an owner can read and grant its own tables, so the gateway's role must own nothing (ALTER ... OWNER TO another role)");
                }

                if (role.Inherits)
                {
                    _drift.Add($"login role {login} inherits its roles' privileges; setup makes it NOINHERIT");
                    Run($"ALTER ROLE {Id(login)} NOINHERIT");
                }

                foreach (var relation in role.DirectPrivileges)
                {
                    _drift.Add($"login role {login} holds privileges on {relation} directly; setup revokes them (it may read only through profiles)");
                    Run($"REVOKE ALL ON TABLE {relation} FROM {Id(login)}");
                    foreach (var (_, grantor) in role.OtherGrantors.Where(g => g.Relation == relation))
                    {
                        // What another role granted (one holding the grant option) stays until that role revokes it, and
                        // PostgreSQL takes a REVOKE ... GRANTED BY only from the grantor itself: so, as the grantor.
                        var body = $"SET LOCAL ROLE {grantor}; REVOKE ALL ON TABLE {relation} FROM {Id(login)}; RESET ROLE;";
                        if (body.Contains("$gatehouse$", StringComparison.Ordinal))
                        {
                            _blockers.Add($"login role {login} holds privileges on {relation} granted by {grantor}, whose name setup will not write into SQL; revoke them by hand");
                            continue;
                        }

                        Run($"DO $gatehouse$ BEGIN {body} END $gatehouse$");
                    }
                }

                if (state.LoginMembers.Count > 0)
                {
                    _blockers.Add($"{string.Join(", ", state.LoginMembers)} may SET ROLE to login role {login}, and from it to every profile, reading all they see: REVOKE {login} FROM them");
                }

                if (role.InheritingMemberships.Count > 0)
                {
                    _blockers.Add($"login role {login} inherits the privileges of {string.Join(", ", role.InheritingMemberships)}: from PostgreSQL 16 each membership keeps its own inherit option, which NOINHERIT does not change, so after RESET ROLE it could read what they may; REVOKE them FROM {login}, or GRANT them TO {login} WITH INHERIT FALSE");
                }
                else if (role.OtherMemberships.Count > 0)
                {
                    _notes.Add($"login role {login} is also a member of {string.Join(", ", role.OtherMemberships)}; it inherits nothing from them, but revoke them unless the gateway needs them");
                }
            }

            Run($"GRANT CONNECT ON DATABASE {Id(state.Database)} TO {Id(login)}");
            PlanQuietProbe();
        }

        // What setup creates must be readable by the profile it is for and nobody else: a profile view reads with its owner's
        // rights, so whoever may read it gets every row the profile sees, and whoever may read the token key can tell which
        // value a token stands for. A DBA's ALTER DEFAULT PRIVILEGES (a "readonly" role handed every new table) or a grant
        // by hand would do exactly that.
        private void PlanForeignGrants()
        {
            if (state.DefaultGrantees.Count > 0)
            {
                var described = state.DefaultGrantees.GroupBy(d => (d.Kind, d.Global))
                    .Select(k => $"new {(k.Key.Kind == 'n' ? "schemas" : "tables and views")}{(k.Key.Global ? "" : $" in schema {DatabaseProfiles.GatewaySchema}")} to {string.Join(", ", k.Select(d => d.Grantee).Distinct())}");
                _notes.Add($"the default privileges of the role running setup hand {string.Join(", and ", described)}; setup revokes them from each schema, table and view it creates");
            }

            foreach (var grant in state.ForeignGrants)
            {
                var gateway = grant.Schema == DatabaseProfiles.GatewaySchema;
                if (!gateway && !state.ProfileSchemas.ContainsKey(grant.Schema))
                {
                    continue;
                }

                var target = grant.Relation is null ? $"schema {grant.Schema}" : $"{grant.Schema}.{grant.Relation}";
                if (gateway)
                {
                    _drift.Add($"{grant.Grantee} holds {grant.Privileges} on {target}, which setup grants nobody (it holds the token key); setup revokes it");
                    // CASCADE: what the grantee passed on with a grant option goes too (and without it the REVOKE fails).
                    Run(grant.Relation is null
                        ? $"REVOKE ALL ON SCHEMA {Id(grant.Schema)} FROM {grant.Grantee} CASCADE"
                        : $"REVOKE ALL ON {Id(grant.Schema)}.{Id(grant.Relation)} FROM {grant.Grantee} CASCADE");
                }
                else
                {
                    _drift.Add($"{grant.Grantee} holds {grant.Privileges} on {target}, which setup grants only its profile (a view reads with its owner's rights); setup makes the profile anew without it");
                }
            }
        }

        // The gateway schema's own default privileges hold only on what is created there (the token key).
        private void RevokeDefaults(char kind, string target, bool gatewaySchema = false)
        {
            foreach (var grantee in state.DefaultGrantees.Where(d => d.Kind == kind && (d.Global || gatewaySchema)).Select(d => d.Grantee).Distinct())
            {
                Run($"REVOKE ALL ON {(kind == 'n' ? "SCHEMA " : "")}{target} FROM {grantee} CASCADE");
            }
        }

        // The statement probe sets log_min_messages for its transaction, or PostgreSQL's server log gets every statement's
        // parse tree, literal values included.
        private void PlanQuietProbe()
        {
            if (connection.LogParseTrees || state.Login is { MaySetLogLevel: true })
            {
                return;
            }

            if (!state.MayGrantLogLevel)
            {
                _blockers.Add($"login role {login} may not SET log_min_messages, which the gateway's statement probe needs to keep parse trees (literal values included) out of the server log, and this admin may not grant it: have a superuser run GRANT SET ON PARAMETER log_min_messages TO {login}, or set log_parse_trees: true on connection '{connection.Name}'");
                return;
            }

            if (state.Login is not null)
            {
                _drift.Add($"login role {login} may not SET log_min_messages, so the statement probe could not keep parse trees out of the server log; setup grants it");
            }

            Run($"GRANT SET ON PARAMETER log_min_messages TO {Id(login)}");
        }

        // The key is made inside the database and never leaves it. Views read it with their owner's rights (an
        // uncorrelated subquery, evaluated once per statement); no agent role can read it, nor use this schema.
        private void PlanTokenKey()
        {
            var schema = Id(DatabaseProfiles.GatewaySchema);
            if (!state.TokenKeyExists)
            {
                _drift.Add($"the token key ({DatabaseProfiles.GatewaySchema}.mask_key) does not exist yet; setup creates it");
            }

            Run($"CREATE SCHEMA IF NOT EXISTS {schema}");
            Run($"REVOKE ALL ON SCHEMA {schema} FROM PUBLIC");
            RevokeDefaults('n', schema);
            Run($"CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA {schema}");
            Run($"CREATE TABLE IF NOT EXISTS {schema}.mask_key (id boolean PRIMARY KEY DEFAULT true CHECK (id), key bytea NOT NULL)");
            Run($"REVOKE ALL ON TABLE {schema}.mask_key FROM PUBLIC");
            RevokeDefaults('r', $"{schema}.mask_key", gatewaySchema: true);
            Run($"INSERT INTO {schema}.mask_key (key) SELECT {Crypto}.gen_random_bytes(32) WHERE NOT EXISTS (SELECT 1 FROM {schema}.mask_key)");
        }

        // Where pgcrypto's functions live: an existing installation wherever it is, or the gateway's schema.
        private string Crypto => Id(state.PgcryptoSchema ?? DatabaseProfiles.GatewaySchema);

        private void PlanProfile(DatabaseProfile profile)
        {
            var name = Id(profile.Name);
            var views = Views(profile);
            if (!state.ProfileRoles.Contains(profile.Name))
            {
                _drift.Add($"profile {profile.Name} ({string.Join(", ", profile.UsedBy)}) does not exist; setup creates it");
                Run($"CREATE ROLE {name} NOLOGIN NOINHERIT");
            }
            else
            {
                if (!state.Memberships.Contains(profile.Name))
                {
                    _drift.Add($"login role {login} is not a member of profile {profile.Name}; setup grants it");
                }

                // A member reads every row the profile sees, through views with the admin's rights: the profile is the login
                // role's alone. From PostgreSQL 16 each grantor's grant is revoked as that grantor's, which takes its privileges.
                foreach (var membership in state.ForeignMembers[profile.Name])
                {
                    var what = $"{membership.Member} is a member of profile {profile.Name}, which setup grants only login role {login} (a member reads every row the profile sees, or with the admin option may grant itself that)";
                    if (!membership.PerGrantor)
                    {
                        _drift.Add($"{what}; setup revokes it");
                        Run($"REVOKE {name} FROM {membership.Member} CASCADE");
                    }
                    else if (membership is { MayRevoke: true, Grantor: { } grantor })
                    {
                        _drift.Add($"{what}; setup revokes it");
                        Run($"REVOKE {name} FROM {membership.Member} GRANTED BY {grantor} CASCADE");
                    }
                    else
                    {
                        _blockers.Add($"{what}, granted by {membership.Grantor ?? "a role since dropped"}, whose grant this admin may not revoke: have a superuser run REVOKE {name} FROM {membership.Member}{(membership.Grantor is null ? "" : $" GRANTED BY {membership.Grantor}")}");
                    }
                }
            }

            state.ProfileSchemas.TryGetValue(profile.Name, out var existing);
            if (existing is not null)
            {
                foreach (var view in views)
                {
                    if (!existing.TryGetValue(view.Name, out var comment))
                    {
                        _drift.Add($"{view.Source} is not in profile {profile.Name} yet (hidden from {string.Join(", ", profile.UsedBy)} until setup runs)");
                    }
                    else if (comment != view.Fingerprint)
                    {
                        _drift.Add($"profile {profile.Name}'s view of {view.Source} differs from the policy and catalog (a new or changed column stays hidden until setup runs)");
                    }
                }

                foreach (var extra in existing.Keys.Where(v => views.All(x => x.Name != v)))
                {
                    _drift.Add($"profile {profile.Name} has a view {extra} the policy no longer calls for");
                }
            }

            Run($"GRANT {name} TO {Id(login)}");
            Run($"DROP OWNED BY {name}");
            Run($"DROP SCHEMA IF EXISTS {name} CASCADE");
            Run($"CREATE SCHEMA {name}");
            RevokeDefaults('n', name);
            Run($"COMMENT ON SCHEMA {name} IS {Literal(SetupState.SchemaComment(login, connection.Name))}");
            Run($"COMMENT ON ROLE {name} IS {Literal($"Gatehouse masking profile for {string.Join(", ", profile.UsedBy)} on connection {connection.Name}; masks {(profile.Masked.Count == 0 ? "nothing" : string.Join(", ", profile.Masked.Order(StringComparer.Ordinal)))}.")}");
            Run($"GRANT USAGE ON SCHEMA {name} TO {name}");
            foreach (var view in views)
            {
                Run(view.Create);
                RevokeDefaults('r', $"{name}.{Id(view.Name)}");
                Run($"COMMENT ON VIEW {name}.{Id(view.Name)} IS {Literal(view.Fingerprint)}");
                Run($"GRANT SELECT ON {name}.{Id(view.Name)} TO {name}");
                if (view.Writable)
                {
                    GrantWrites(profile, view);
                }
            }

            if (existing is null && state.ProfileRoles.Contains(profile.Name))
            {
                _drift.Add($"profile {profile.Name} has no views yet; setup creates {views.Count}");
            }
        }

        // Writes: through the view for plain columns, and on the base table for the rest, with SELECT only on columns this
        // profile sees unmasked, so a WHERE or RETURNING on a masked column is refused by PostgreSQL itself.
        private void GrantWrites(DatabaseProfile profile, ProfileView view)
        {
            var name = Id(profile.Name);
            var relation = view.Relation;
            Run($"GRANT INSERT, UPDATE, DELETE ON {name}.{Id(view.Name)} TO {name}");
            Run($"GRANT USAGE ON SCHEMA {Id(relation.Name.Schema)} TO {name}");
            Run($"GRANT INSERT, UPDATE, DELETE ON {Id(relation.Name)} TO {name}");
            var readable = relation.Columns.Where(c => MaskedClass(profile, relation.Name, c.Name) is null).Select(c => Id(c.Name)).ToList();
            if (readable.Count > 0)
            {
                Run($"GRANT SELECT ({string.Join(", ", readable)}) ON {Id(relation.Name)} TO {name}");
            }

            foreach (var sequence in state.DefaultSequences[relation.Name])
            {
                Run($"GRANT USAGE ON SCHEMA {Id(sequence.Schema)} TO {name}");
                Run($"GRANT USAGE ON SEQUENCE {Id(sequence)} TO {name}");
            }
        }

        private List<ProfileView> Views(DatabaseProfile profile)
        {
            var order = connection.SearchPath.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).ToList();
            // The gateway's own schemas are never wrapped, whatever a grant says.
            var candidates = state.Relations
                .Where(r => profile.AccessTo(r.Name) is not null && !DatabaseProfiles.IsGatewaySchema(r.Name.Schema))
                .OrderBy(r => order.IndexOf(r.Name.Schema) is var i && i < 0 ? int.MaxValue : i)
                .ThenBy(r => r.Name.Schema, StringComparer.Ordinal);
            var views = new List<ProfileView>();
            foreach (var relation in candidates)
            {
                if (views.FirstOrDefault(v => v.Name == relation.Name.Name) is { } taken)
                {
                    _notes.Add($"{relation.Name} is left out of profile {profile.Name}: its name is taken by {taken.Source} (profile views are named without their schema)");
                    continue;
                }

                if (relation.Kind is 'v' or 'm' && state.ViewReads[relation.Name].FirstOrDefault(c => ReadsMasked(profile, c)) is { Relation.Schema: not null } hidden)
                {
                    _notes.Add($"{relation.Name} is left out of profile {profile.Name}: it reads {hidden}, which that profile sees masked; define it over the masked columns instead");
                    continue;
                }

                views.Add(View(profile, relation));
            }

            return views;
        }

        private bool ReadsTagged(ColumnUse use) =>
            use.Column == ColumnUse.WholeRow ? connection.Tags.Keys.Any(t => Related(use.Relation).Contains(t.Relation)) : TagsOf(use.Relation, use.Column).Any();

        private bool ReadsMasked(DatabaseProfile profile, ColumnUse use) =>
            use.Column == ColumnUse.WholeRow
                ? connection.Tags.Any(t => Related(use.Relation).Contains(t.Key.Relation) && profile.Masked.Contains(t.Value))
                : MaskedClass(profile, use.Relation, use.Column) is not null;

        private string? MaskedClass(DatabaseProfile profile, RelationName relation, string column) =>
            TagsOf(relation, column).FirstOrDefault(profile.Masked.Contains);

        // An inheritance child has its parent's columns, and the parent's tags hold on them: its view masks them too. A
        // parent's view (no ONLY) reads its children's rows, so a tag on a child's column holds on the parent's as well.
        private IEnumerable<RelationName> SelfAndAncestors(RelationName relation) => [relation, .. state.Ancestors[relation]];

        private IEnumerable<RelationName> Related(RelationName relation) => SelfAndAncestors(relation).Concat(_descendants[relation]);

        private IEnumerable<string> TagsOf(RelationName relation, string column) =>
            Related(relation).Select(r => connection.Tags.GetValueOrDefault(new ColumnUse(r, column))).OfType<string>();

        private ProfileView View(DatabaseProfile profile, CatalogRelation relation)
        {
            var select = relation.Columns.Select(c =>
            {
                var column = $"t.{Id(c.Name)}";
                var expression = MaskedClass(profile, relation.Name, c.Name) is { } className
                    ? MaskExpression(column, c.Type, className, connection.StrategyFor(className))
                    : column;
                return expression == column ? column : $"{expression} AS {Id(c.Name)}";
            });
            var create = $"CREATE VIEW {Id(profile.Name)}.{Id(relation.Name.Name)} WITH (security_barrier) AS SELECT {string.Join(", ", select)} FROM {Id(relation.Name)} t";
            var fingerprint = "gatehouse " + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(create)))[..16];
            var writable = relation.IsTable && profile.AccessTo(relation.Name) == AccessLevel.Write;
            return new ProfileView(relation.Name.Name, relation.Name.ToString(), relation, create, fingerprint, writable);
        }

        private string MaskExpression(string column, string type, string className, MaskingStrategy strategy)
        {
            var text = $"{column}::text";
            var key = $"(SELECT k.key FROM {Id(DatabaseProfiles.GatewaySchema)}.mask_key k)";
            return strategy switch
            {
                // A domain's column is typed by its base type here (setup reads it so): a NOT NULL domain refuses NULL.
                MaskingStrategy.Null => $"NULL::{type}",
                MaskingStrategy.Token => $"'tok_' || left(encode({Crypto}.hmac(convert_to({text}, 'UTF8'), {key}, 'sha256'), 'hex'), 16)",
                MaskingStrategy.Partial => className switch
                {
                    // The first address's domain, and only the characters a domain holds: a value with several addresses
                    // must not show what follows the first (the next one's local part).
                    "email" => $"CASE WHEN {column} IS NULL THEN NULL ELSE '***@' || coalesce(substring({text} from '@([[:alnum:].-]+)'), '') END",
                    "card" or "phone" or "iban" or "ssn" => $"CASE WHEN {column} IS NULL THEN NULL ELSE '***' || right({text}, 4) END",
                    _ => $"CASE WHEN {column} IS NULL THEN NULL ELSE left({text}, 1) || '***' END",
                },
                _ => $"CASE WHEN {column} IS NULL THEN NULL ELSE '[{className}]' END",
            };
        }

        // Grants that several views need (USAGE on a schema) are written once.
        private void Run(string sql, string? shown = null)
        {
            if (!_statements.Any(s => s.Sql == sql))
            {
                _statements.Add(new SetupStatement(sql, shown ?? sql));
            }
        }

        private string Id(string name) => _quoter.QuoteIdentifier(name);

        private string Id(RelationName name) => $"{Id(name.Schema)}.{Id(name.Name)}";

        // standard_conforming_strings is checked on when the state is read, so doubling quotes is the whole escaping.
        private static string Literal(string text) => $"'{text.Replace("'", "''", StringComparison.Ordinal)}'";
    }

    private sealed record ProfileView(string Name, string Source, CatalogRelation Relation, string Create, string Fingerprint, bool Writable);
}
