using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Identity;
using Gatehouse.Enforcement.Policy;

namespace Gatehouse.Enforcement.Masking;

/// <summary>
/// One masking profile of a strict-mode connection: a distinct set of grants and masked classes. <c>gatehouse setup</c> gives
/// it a NOLOGIN role and a schema of the same name holding security_barrier views; every call of an identity with exactly
/// these rights runs under that role with that schema as its search_path.
/// </summary>
/// <param name="Name">The role and schema name: a hash of everything the views depend on in the policy.</param>
/// <param name="Masked">The tagged classes this profile sees masked.</param>
/// <param name="UsedBy">The agents and groups of the policy that have exactly these rights (for the admin reading the database).</param>
public sealed record DatabaseProfile(string Name, IReadOnlyList<Grant> Grants, IReadOnlySet<string> Masked, IReadOnlyList<string> UsedBy)
{
    /// <summary>The access this profile has to a relation, or null when no grant covers it.</summary>
    public AccessLevel? AccessTo(Classification.RelationName relation) =>
        Grants.Where(g => g.Covers(relation)).Select(g => (AccessLevel?)g.Access).Max();
}

/// <summary>Names and enumerates the masking profiles of strict-mode connections.</summary>
public static class DatabaseProfiles
{
    /// <summary>Profile roles and schemas start with this.</summary>
    public const string Prefix = "gatehouse_p_";

    /// <summary>The schema setup keeps the token key (and pgcrypto, unless installed elsewhere) in; no agent role may use it.</summary>
    public const string GatewaySchema = "gatehouse";

    /// <summary>The pgcrypto function token views call with the key (where setup installs pgcrypto; elsewhere, allowlist it).</summary>
    public const string TokenFunction = GatewaySchema + ".hmac";

    /// <summary>
    /// The plan as the caller's statement wrote it: a profile view's own reads (the token key, in the gateway's schema,
    /// which agent roles cannot use) are the view's business, not the caller's, and are left out of authorization.
    /// </summary>
    public static PlanFacts WithoutViewInternals(PlanFacts plan) =>
        plan.Relations.Any(r => r.Relation.Schema == GatewaySchema)
            ? plan with
            {
                Relations = plan.Relations.Where(r => r.Relation.Schema != GatewaySchema).ToList(),
                Columns = plan.Columns.Where(c => c.Relation.Schema != GatewaySchema).ToList(),
            }
            : plan;

    // Bumped when the shape of the views changes, so an old setup counts as missing rather than silently different.
    // v2: partial email masking shows only the first address's domain (v1 showed up to a second '@').
    private const string Format = "gatehouse-profile-v2";

    /// <summary>The gateway's own schemas (the token key, the profile views): no grant or request may name them.</summary>
    public static bool IsGatewaySchema(string schema) =>
        schema == GatewaySchema || schema.StartsWith(Prefix, StringComparison.Ordinal);

    /// <summary>Strict masking needs database profiles only where there is something to mask.</summary>
    public static bool Apply(ConnectionConfig connection) => connection.Masking == MaskingMode.Strict && connection.Tags.Count > 0;

    /// <summary>The profile for a caller with these grants (on this connection) and unmask rights.</summary>
    public static DatabaseProfile For(ConnectionConfig connection, IEnumerable<Grant> grants, IReadOnlySet<string> unmask, IReadOnlyList<string>? usedBy = null)
    {
        var onConnection = grants.Where(g => g.Connection == connection.Name).Select(g => g with { Source = "policy", ExpiresAt = null }).ToList();
        var tagged = connection.Tags.Values.ToHashSet(StringComparer.Ordinal);
        var masked = unmask.Contains("all") ? [] : tagged.Where(c => !unmask.Contains(c)).ToHashSet(StringComparer.Ordinal);
        var key = new StringBuilder(Format).Append('\n').Append(connection.Name).Append('\n').Append(connection.LoginRole).Append('\n');
        foreach (var line in CanonicalGrants(onConnection))
        {
            key.Append(line).Append('\n');
        }

        foreach (var className in masked.Order(StringComparer.Ordinal))
        {
            key.Append("masked ").Append(className).Append('\n');
        }

        foreach (var (column, className) in connection.Tags.OrderBy(t => t.Key.ToString(), StringComparer.Ordinal))
        {
            key.Append("tag ").Append(column).Append(' ').Append(className).Append(' ').Append(MaskingStrategies.Name(connection.StrategyFor(className))).Append('\n');
        }

        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key.ToString())))[..12];
        return new DatabaseProfile(Prefix + hash, onConnection, masked, usedBy ?? []);
    }

    /// <summary>
    /// <see cref="For"/> on a call's path. Rights made of policy grants alone are the same grant objects on every call until the
    /// policy reloads (which brings a new <paramref name="connection"/>), so their profile is worked out once per connection,
    /// set of grant objects and unmask rights, and kept. Rights with a time-boxed grant, read from the store on each call, are
    /// worked out every time.
    /// </summary>
    public static DatabaseProfile ForCall(ConnectionConfig connection, IReadOnlyList<Grant> grants, IReadOnlySet<string> unmask)
    {
        if (grants.Any(g => g.ExpiresAt is not null))
        {
            return For(connection, grants, unmask);
        }

        var known = CallProfiles.GetValue(connection, static _ => new ConcurrentDictionary<ProfileKey, DatabaseProfile>());
        var key = new ProfileKey([.. grants], [.. unmask.Order(StringComparer.Ordinal)]);
        if (known.TryGetValue(key, out var profile))
        {
            return profile;
        }

        if (known.Count >= MaxCallProfiles)
        {
            known.Clear();
        }

        // Made from the key, so the profile kept is the one its key names, whatever comparer the caller's set had.
        return known.GetOrAdd(key, static (k, c) => For(c, k.Grants, k.Unmask.ToHashSet(StringComparer.Ordinal)), connection);
    }

    // Far more than a policy has principals: the bound only keeps group claims combined in ways no policy foresaw from piling up.
    private const int MaxCallProfiles = 4096;

    // Dropped with the connection's configuration when the policy reloads.
    private static readonly ConditionalWeakTable<ConnectionConfig, ConcurrentDictionary<ProfileKey, DatabaseProfile>> CallProfiles = new();

    /// <summary>
    /// Grants by identity, unmask rights by value (ordinal), both in order. Grant identity stands for content because a
    /// loaded policy's grants and connections are never changed afterwards; a reload makes new ones.
    /// </summary>
    private sealed class ProfileKey(Grant[] grants, string[] unmask) : IEquatable<ProfileKey>
    {
        private readonly int _hash = Combine(grants, unmask);

        public Grant[] Grants => grants;

        public string[] Unmask => unmask;

        public bool Equals(ProfileKey? other) =>
            other is not null
            && other._hash == _hash
            && grants.AsSpan().SequenceEqual(other.Grants, ReferenceEqualityComparer.Instance)
            && unmask.AsSpan().SequenceEqual(other.Unmask, StringComparer.Ordinal);

        public override bool Equals(object? obj) => Equals(obj as ProfileKey);

        public override int GetHashCode() => _hash;

        private static int Combine(Grant[] grants, string[] unmask)
        {
            var hash = new HashCode();
            foreach (var grant in grants)
            {
                hash.Add(RuntimeHelpers.GetHashCode(grant));
            }

            foreach (var name in unmask)
            {
                hash.Add(name, StringComparer.Ordinal);
            }

            return hash.ToHashCode();
        }
    }

    /// <summary>
    /// Every profile the policy's agents and groups need on a connection, each once, naming who uses it; plus, for agents
    /// holding time-boxed grants from approved requests (<paramref name="timeBoxed"/>), the profile of their widened rights:
    /// one for each person the grants were asked for, as a call acting for that person holds only theirs.
    /// </summary>
    public static IReadOnlyList<DatabaseProfile> All(GatewayPolicy policy, ConnectionConfig connection, IReadOnlyDictionary<string, IReadOnlyList<Grant>>? timeBoxed = null)
    {
        var principals = policy.Agents.Values.Select(a => (Name: $"agent {a.Name}", a.Grants, a.Unmask))
            .Concat(policy.Groups.Values.Select(g => (Name: $"group {g.Name}", g.Grants, g.Unmask)))
            .Concat((timeBoxed ?? new Dictionary<string, IReadOnlyList<Grant>>())
                .SelectMany(t => t.Value.GroupBy(g => g.DelegatedBy).Select(held => (Agent: t.Key, For: held.Key, Grants: held.ToList())))
                .Where(t => t.Grants.Any(g => g.Connection == connection.Name))
                .Select(t =>
                {
                    var own = policy.Agents.TryGetValue(t.Agent, out var agent) ? agent : new PrincipalPolicy(t.Agent, []);
                    var unmask = own.Unmask.Concat(t.Grants.Where(g => g.Connection == connection.Name && g.Unmask is not null).Select(g => g.Unmask!)).ToList();
                    var acting = t.For is { } person ? $" for {person}" : "";
                    return (Name: $"agent {t.Agent}{acting} with {string.Join(", ", t.Grants.Select(g => g.Source))}", Grants: (IReadOnlyList<Grant>)[.. own.Grants, .. t.Grants], Unmask: (IReadOnlyList<string>)unmask);
                }))
            .Where(p => p.Grants.Any(g => g.Connection == connection.Name));
        return principals
            .Select(p => For(connection, p.Grants, p.Unmask.ToHashSet(StringComparer.Ordinal), [p.Name]))
            .GroupBy(p => p.Name, StringComparer.Ordinal)
            .Select(g => g.First() with { UsedBy = g.SelectMany(p => p.UsedBy).ToList() })
            .OrderBy(p => p.Name, StringComparer.Ordinal)
            .ToList();
    }

    private static IEnumerable<string> CanonicalGrants(IEnumerable<Grant> grants)
    {
        var targets = new Dictionary<string, AccessLevel>(StringComparer.Ordinal);
        foreach (var grant in grants)
        {
            foreach (var target in grant.Schemas.Select(s => $"schema {s}").Concat(grant.Tables.Select(t => $"table {t}")))
            {
                targets[target] = targets.TryGetValue(target, out var had) && had > grant.Access ? had : grant.Access;
            }
        }

        return targets.OrderBy(t => t.Key, StringComparer.Ordinal).Select(t => $"{t.Value} {t.Key}");
    }
}
