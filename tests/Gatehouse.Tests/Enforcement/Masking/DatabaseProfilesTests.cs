using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Execution;
using Gatehouse.Enforcement.Masking;
using Gatehouse.Enforcement.Policy;

namespace Gatehouse.Tests.Enforcement.Masking;

public sealed class DatabaseProfilesTests
{
    private static readonly RelationName Customers = new("public", "customers");

    private static readonly ConnectionConfig Shop = new("shop", "Host=x;Username=gw", SecretSource.None)
    {
        LoginRole = "gw",
        Tags = new Dictionary<ColumnUse, string> { [new(Customers, "ssn")] = "ssn", [new(Customers, "email")] = "email" },
    };

    private static readonly Grant ReadPublic = new("shop", AccessLevel.Read, ["public"], []);

    private static string Name(ConnectionConfig connection, IEnumerable<Grant> grants, params string[] unmask) =>
        DatabaseProfiles.For(connection, grants, unmask.ToHashSet()).Name;

    [Fact]
    public void The_same_rights_always_map_to_the_same_profile_whatever_their_order_or_source()
    {
        var writeOrders = new Grant("shop", AccessLevel.Write, [], [new RelationName("public", "orders")]);
        var name = Name(Shop, [ReadPublic, writeOrders]);
        Assert.StartsWith(DatabaseProfiles.Prefix, name);
        Assert.Equal(name, Name(Shop, [writeOrders with { Source = "group ops" }, ReadPublic]));
        Assert.Equal(name, Name(Shop, [ReadPublic, writeOrders, new Grant("warehouse", AccessLevel.Write, ["public"], [])]));
        Assert.Equal(name.Length, DatabaseProfiles.Prefix.Length + 12);
    }

    [Fact]
    public void Each_thing_the_views_depend_on_makes_a_different_profile()
    {
        var baseline = Name(Shop, [ReadPublic]);
        Assert.NotEqual(baseline, Name(Shop, [ReadPublic with { Access = AccessLevel.Write }]));
        Assert.NotEqual(baseline, Name(Shop, [ReadPublic], "email"));
        Assert.NotEqual(baseline, Name(Shop with { LoginRole = "other" }, [ReadPublic]));
        Assert.NotEqual(baseline, Name(Shop with { Strategies = new Dictionary<string, MaskingStrategy> { ["ssn"] = MaskingStrategy.Token } }, [ReadPublic]));
        Assert.NotEqual(baseline, Name(Shop with { Tags = new Dictionary<ColumnUse, string> { [new(Customers, "ssn")] = "ssn" } }, [ReadPublic]));
    }

    [Fact]
    public void A_calls_profile_is_the_one_its_rights_name_however_often_and_in_whatever_mix_it_is_asked_for()
    {
        var writeOrders = new Grant("shop", AccessLevel.Write, [], [new RelationName("public", "orders")]);
        var cases = new (Grant[] Grants, string[] Unmask)[]
        {
            ([ReadPublic], []),
            ([ReadPublic], ["email"]),
            ([ReadPublic], ["all"]),
            ([ReadPublic, writeOrders], []),
            ([writeOrders], ["ssn"]),
        };

        // Interleaved and repeated, so a kept profile is asked for again after others were made.
        for (var round = 0; round < 3; round++)
        {
            foreach (var (grants, unmask) in cases)
            {
                var expected = DatabaseProfiles.For(Shop, grants, unmask.ToHashSet());
                var kept = DatabaseProfiles.ForCall(Shop, grants, unmask.ToHashSet());
                Assert.Equal(expected.Name, kept.Name);
                Assert.Equal(expected.Masked.Order(), kept.Masked.Order());
            }
        }

        // Asked again with the same policy grants, the profile is the one made the first time.
        var again = new HashSet<string>(StringComparer.Ordinal) { "email" };
        Assert.Same(DatabaseProfiles.ForCall(Shop, cases[1].Grants, again), DatabaseProfiles.ForCall(Shop, cases[1].Grants, again));

        // A reloaded policy brings a new connection object: its profiles follow its own tags, not what was kept for the old one.
        var retagged = Shop with { Tags = new Dictionary<ColumnUse, string> { [new(Customers, "ssn")] = "ssn" } };
        Assert.Equal(DatabaseProfiles.For(retagged, [ReadPublic], new HashSet<string>()).Name, DatabaseProfiles.ForCall(retagged, [ReadPublic], new HashSet<string>()).Name);
        Assert.NotEqual(DatabaseProfiles.ForCall(Shop, [ReadPublic], new HashSet<string>()).Name, DatabaseProfiles.ForCall(retagged, [ReadPublic], new HashSet<string>()).Name);
    }

    [Fact]
    public void A_time_boxed_grant_counts_in_a_calls_profile_like_any_other_and_is_never_kept()
    {
        var approved = new Grant("shop", AccessLevel.Read, [], [new RelationName("public", "payments")]) { Source = "request req_1", ExpiresAt = DateTimeOffset.UtcNow.AddHours(1) };
        var withApproval = DatabaseProfiles.ForCall(Shop, [ReadPublic, approved], new HashSet<string>());
        Assert.Equal(DatabaseProfiles.For(Shop, [ReadPublic, approved], new HashSet<string>()).Name, withApproval.Name);
        Assert.NotEqual(DatabaseProfiles.ForCall(Shop, [ReadPublic], new HashSet<string>()).Name, withApproval.Name);

        // Read from the store on each call, such rights are worked out each time rather than kept.
        Assert.NotSame(withApproval, DatabaseProfiles.ForCall(Shop, [ReadPublic, approved], new HashSet<string>()));
    }

    [Fact]
    public void Unmask_rights_count_only_for_classes_the_connection_tags()
    {
        Assert.Equal(Name(Shop, [ReadPublic]), Name(Shop, [ReadPublic], "iban"));
        Assert.Equal(Name(Shop, [ReadPublic], "all"), Name(Shop, [ReadPublic], "email", "ssn"));
        Assert.Empty(DatabaseProfiles.For(Shop, [ReadPublic], new HashSet<string> { "all" }).Masked);
        Assert.Equal(["ssn"], DatabaseProfiles.For(Shop, [ReadPublic], new HashSet<string> { "email" }).Masked);
    }

    [Fact]
    public void Agents_and_groups_with_identical_rights_share_one_profile_that_names_them_all()
    {
        var reader = new PrincipalPolicy("reader", [ReadPublic]);
        var policy = new GatewayPolicy(
            "/p.yaml",
            new GatewaySettings("state.db", QueryLimits.Default, HttpSettings.LoopbackOnly),
            new Dictionary<string, ConnectionConfig> { ["shop"] = Shop },
            [],
            new Dictionary<string, PrincipalPolicy> { ["a"] = reader with { Name = "a" }, ["b"] = reader with { Name = "b", Unmask = ["email"] }, ["off"] = new("off", []) },
            new Dictionary<string, PrincipalPolicy> { ["g"] = reader with { Name = "g" } });
        var profiles = DatabaseProfiles.All(policy, Shop);
        Assert.Equal(2, profiles.Count);
        Assert.Contains(profiles, p => p.UsedBy.SequenceEqual(["agent a", "group g"]));
        Assert.Contains(profiles, p => p.UsedBy.SequenceEqual(["agent b"]));
    }

    [Fact]
    public void Time_boxed_grants_make_one_profile_for_each_person_they_were_asked_for_as_a_call_holds_them()
    {
        var policy = new GatewayPolicy(
            "/p.yaml",
            new GatewaySettings("state.db", QueryLimits.Default, HttpSettings.LoopbackOnly),
            new Dictionary<string, ConnectionConfig> { ["shop"] = Shop },
            [],
            new Dictionary<string, PrincipalPolicy> { ["analyst"] = new("analyst", [ReadPublic]) },
            new Dictionary<string, PrincipalPolicy>());
        Grant forAlice = new Grant("shop", AccessLevel.Read, [], []) { Source = "request req_1", Unmask = "email", DelegatedBy = "alice" };
        Grant onItsOwn = new Grant("shop", AccessLevel.Read, [], []) { Source = "request req_2", Unmask = "ssn" };

        var profiles = DatabaseProfiles.All(policy, Shop, new Dictionary<string, IReadOnlyList<Grant>> { ["analyst"] = [forAlice, onItsOwn] });

        // Each is the profile a call resolves to: the agent's own grants and the time-boxed ones held for the same person.
        Assert.Contains(profiles, p => p.Name == DatabaseProfiles.ForCall(Shop, [ReadPublic, forAlice], new HashSet<string> { "email" }).Name && p.UsedBy.Single().StartsWith("agent analyst for alice with request req_1", StringComparison.Ordinal));
        Assert.Contains(profiles, p => p.Name == DatabaseProfiles.ForCall(Shop, [ReadPublic, onItsOwn], new HashSet<string> { "ssn" }).Name);
        Assert.DoesNotContain(profiles, p => p.Name == DatabaseProfiles.ForCall(Shop, [ReadPublic, forAlice, onItsOwn], new HashSet<string> { "email", "ssn" }).Name);
    }

    [Fact]
    public void Strict_lineage_names_the_result_columns_the_database_masked_and_counts_their_values()
    {
        var plan = PlanReader.Read("""
            [{"Plan": {"Node Type": "Subquery Scan", "Alias": "x", "Output": ["x.id", "upper(x.email)", "x.ssn"],
              "Plans": [{"Node Type": "Seq Scan", "Relation Name": "customers", "Schema": "public", "Alias": "t",
                         "Output": ["t.id", "t.email", "t.ssn"]}]}}]
            """);
        var result = new QueryResult([new("id", "integer"), new("e", "text"), new("ssn", "text")], [[1L, "***@x.org", null], [2L, "***@y.org", "[ssn]"]], false, null, null);
        var annotated = StrictLineage.Annotate(result, plan, Shop, new HashSet<string> { "ssn", "email" });
        Assert.Equal(["email"], annotated.MaskedColumns["e"]);
        Assert.Equal(["ssn"], annotated.MaskedColumns["ssn"]);
        Assert.False(annotated.MaskedColumns.ContainsKey("id"));
        Assert.Equal(2, annotated.Masked["email"]);
        Assert.Equal(1, annotated.Masked["ssn"]);
        Assert.Empty(StrictLineage.Annotate(result, plan, Shop, new HashSet<string>()).MaskedColumns);
    }
}
