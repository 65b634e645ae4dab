using Gatehouse.Enforcement.Authorization;
using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Identity;
using Gatehouse.Enforcement.Policy;

namespace Gatehouse.Tests.Enforcement.Authorization;

public sealed class StatementAuthorizerTests
{
    private static readonly AgentIdentity Analyst = new("analyst", [], "dev", "analyst", null, DateTimeOffset.MaxValue);
    private static readonly RelationName Orders = new("public", "orders");
    private static readonly RelationName Customers = new("public", "customers");
    private static readonly RelationName Secrets = new("vault", "secrets");
    private static readonly Grant ReadPublic = new("shop", AccessLevel.Read, ["public"], []);
    private static readonly Grant WriteOrders = new("shop", AccessLevel.Write, [], [Orders]);

    private static StatementText Statement(string sql) => StatementReader.Read(sql).Single();

    [Fact]
    public void No_grant_on_the_connection_means_no_access()
    {
        var decision = StatementAuthorizer.AuthorizeKind(Analyst, "shop", [], Statement("select 1"));
        Assert.Equal("grant.no_access", decision.Rule);
    }

    [Fact]
    public void An_unmask_right_alone_is_no_access_to_the_connection()
    {
        var unmask = new Grant("shop", AccessLevel.Read, [], []) { Unmask = "email", Source = "request req_1" };
        Assert.Equal("grant.no_access", StatementAuthorizer.AuthorizeKind(Analyst, "shop", [unmask], Statement("select version()")).Rule);
        Assert.True(StatementAuthorizer.AuthorizeKind(Analyst, "shop", [unmask, ReadPublic], Statement("select version()")).IsAllowed);
    }

    [Fact]
    public void A_read_grant_refuses_a_delete_before_asking_the_database()
    {
        var decision = StatementAuthorizer.AuthorizeKind(Analyst, "shop", [ReadPublic], Statement("/* harmless */ DELETE FROM orders"));
        Assert.False(decision.IsAllowed);
        Assert.Equal("grant.read_only", decision.Rule);
        Assert.Contains("DELETE", decision.Reason);
        Assert.Contains("request_access", decision.Reason);
    }

    [Theory]
    [InlineData("drop table orders")]
    [InlineData("commit")]
    [InlineData("set role postgres")]
    [InlineData("copy orders to '/tmp/x'")]
    [InlineData("select * into copy_of_orders from orders")]
    [InlineData("frobnicate")]
    public void Statements_no_grant_can_name_are_refused_whatever_the_grants(string sql)
    {
        var decision = StatementAuthorizer.AuthorizeKind(Analyst, "shop", [ReadPublic, WriteOrders], Statement(sql));
        Assert.Equal("grant.kind_not_allowed", decision.Rule);
    }

    [Fact]
    public void Every_relation_in_the_plan_must_be_granted()
    {
        var plan = new PlanFacts([new RelationAccess(Orders, AccessLevel.Read, "read"), new RelationAccess(Secrets, AccessLevel.Read, "read")], [], 1);
        var decision = StatementAuthorizer.AuthorizePlan(Analyst, "shop", [ReadPublic], plan);
        Assert.Equal("grant.relation_not_granted", decision.Rule);
        Assert.Contains("vault.secrets", decision.Reason);
    }

    [Fact]
    public void A_write_hidden_in_a_cte_needs_write_access_on_its_table()
    {
        var plan = new PlanFacts([new RelationAccess(Customers, AccessLevel.Write, "delete"), new RelationAccess(Customers, AccessLevel.Read, "read")], [], 1);
        var decision = StatementAuthorizer.AuthorizePlan(Analyst, "shop", [ReadPublic, WriteOrders], plan);
        Assert.Equal("grant.relation_read_only", decision.Rule);
        Assert.Contains("delete public.customers", decision.Reason);
    }

    [Fact]
    public void A_covered_plan_is_allowed_and_says_what_it_touches()
    {
        var plan = new PlanFacts([new RelationAccess(Orders, AccessLevel.Write, "update"), new RelationAccess(Customers, AccessLevel.Read, "read")], [], 1);
        var decision = StatementAuthorizer.AuthorizePlan(Analyst, "shop", [ReadPublic, WriteOrders], plan);
        Assert.True(decision.IsAllowed);
        Assert.Contains("public.orders (write)", decision.Reason);
    }
}
