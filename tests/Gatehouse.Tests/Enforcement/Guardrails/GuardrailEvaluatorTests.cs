using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Execution;
using Gatehouse.Enforcement.Guardrails;
using Gatehouse.Enforcement.Identity;
using Gatehouse.Enforcement.Pipeline;
using Gatehouse.Enforcement.Policy;

namespace Gatehouse.Tests.Enforcement.Guardrails;

public sealed class GuardrailEvaluatorTests
{
    private static readonly AgentIdentity OpsBot = new("ops-bot", ["ops"], "dev", "ops-bot", null, DateTimeOffset.MaxValue);
    private static readonly RelationName Payments = new("public", "payments");
    private static readonly RelationName Orders = new("public", "orders");

    private static StatementText Statement(string sql) => StatementReader.Read(sql).Single();

    private static PlanFacts Write(RelationName table, string operation, double rows, params FunctionCall[] functions) =>
        new([new RelationAccess(table, AccessLevel.Write, operation)], functions, 0, rows) { Writers = 1 };

    private static string? Rule(string sql, PlanFacts plan, GuardrailMatch match, GuardrailOutcome outcome = GuardrailOutcome.Deny, string? connection = null, double maxWriteRows = 10_000) =>
        GuardrailEvaluator.Evaluate(Statement(sql), plan, OpsBot, "shop", [new GuardrailRule("r1", connection, match, outcome, null)], maxWriteRows)?.Rule;

    [Fact]
    public void A_write_estimated_past_the_limit_is_refused_with_the_estimate()
    {
        var decision = GuardrailEvaluator.Evaluate(Statement("update orders set note = 'x' where total > 0"), Write(Orders, "update", 5000), OpsBot, "shop", [], 1000);
        Assert.Equal("guard.large_write", decision!.Rule);
        Assert.Contains("5000", decision.Reason);
    }

    [Fact]
    public void A_rule_matches_on_tables_and_operations()
    {
        var match = new GuardrailMatch { Tables = [Payments], Operations = ["delete"] };
        Assert.Equal("guard.r1", Rule("delete from payments where id = 1", Write(Payments, "delete", 1), match));
        Assert.Null(Rule("update payments set status = 'x' where id = 1", Write(Payments, "update", 1), match));
        Assert.Null(Rule("delete from orders where id = 1", Write(Orders, "delete", 1), match));
    }

    [Fact]
    public void A_rules_tables_and_operations_hold_on_one_relation()
    {
        // An update of orders that reads payments is not an update of payments.
        var match = new GuardrailMatch { Tables = [Payments], Operations = ["update"] };
        var plan = new PlanFacts([new RelationAccess(Orders, AccessLevel.Write, "update"), new RelationAccess(Payments, AccessLevel.Read, "read")], [], 0, 1);
        Assert.Null(Rule("update orders o set note = 'x' from payments p where p.order_id = o.id", plan, match));
        Assert.Equal("guard.r1", Rule("update payments set status = 'x' where id = 1", Write(Payments, "update", 1), match));
    }

    [Fact]
    public void A_write_is_judged_by_the_tables_its_cascades_and_triggers_wrote_and_its_own_partition_rows_are_not_taken_for_them()
    {
        var statement = Statement("delete from orders where id = 1");
        var rules = new[] { new GuardrailRule("payments-kept", null, new GuardrailMatch { Tables = [Payments], Operations = ["delete"] }, GuardrailOutcome.Deny, null) };
        var cascaded = new TableWrites(Payments, 0, 0, 3, new RelationLineage([], false));
        var ownRow = new TableWrites(Orders, 0, 0, 1, new RelationLineage([], false));

        var refused = GuardrailEvaluator.EvaluateWritten(statement, Write(Orders, "delete", 1), OpsBot, "shop", rules, 10_000, 4, 1, [ownRow, cascaded]);
        Assert.Equal("guard.payments-kept", refused!.Rule);
        Assert.Contains("and also deleted from public.payments through its triggers or foreign-key cascades", refused.Reason);
        Assert.Null(GuardrailEvaluator.EvaluateWritten(statement, Write(Orders, "delete", 1), OpsBot, "shop", rules, 10_000, 1, 1, [ownRow]));

        // An UPDATE that moves a row to another partition of payments deletes it from one and inserts it into the other: its
        // own write, not a delete the rule is about.
        var moved = new[]
        {
            new TableWrites(new RelationName("public", "payments_2025"), 0, 0, 1, new RelationLineage([Payments], true)),
            new TableWrites(new RelationName("public", "payments_2026"), 1, 0, 0, new RelationLineage([Payments], true)),
        };
        Assert.Null(GuardrailEvaluator.EvaluateWritten(Statement("update payments set paid_at = now() where id = 1"), Write(Payments, "update", 1), OpsBot, "shop", rules, 10_000, 2, 1, moved));
    }

    public static TheoryData<string, string, TableWrites[]> WritesThePlanDoesNotShow => new()
    {
        // A trigger on an UPDATE that deletes from the table the statement updates.
        { "update payments set status = 'x' where id = 1", "update", [new TableWrites(Payments, 0, 1, 1, new RelationLineage([], false))] },
        // A trigger inserting into a sibling partition: no row was moved (nothing deleted), so it is no row movement.
        { "update payments set status = 'x' where id = 1", "update", [new TableWrites(new RelationName("public", "payments_2026"), 1, 0, 0, new RelationLineage([Payments], true)), new TableWrites(new RelationName("public", "payments_2025"), 0, 1, 0, new RelationLineage([Payments], true))] },
        // A MERGE whose WHEN clauses only update, and whose trigger deletes.
        { "merge into payments p using (select 1 as id) s on p.id = s.id when matched then update set status = 'x'", "merge", [new TableWrites(Payments, 0, 1, 1, new RelationLineage([], false))] },
        // An UPDATE of one row in place whose trigger moves another: as many inserted as deleted, but more rows than its own.
        { "update payments set status = 'x' where id = 1", "update", [new TableWrites(new RelationName("public", "payments_2025"), 0, 1, 1, new RelationLineage([Payments], true)), new TableWrites(new RelationName("public", "payments_2026"), 1, 0, 0, new RelationLineage([Payments], true))] },
    };

    [Theory]
    [MemberData(nameof(WritesThePlanDoesNotShow))]
    public void A_trigger_write_of_the_kind_a_rule_names_is_judged_even_on_the_table_the_statement_writes(string sql, string operation, TableWrites[] tables)
    {
        var rules = new[] { new GuardrailRule("payments-kept", null, new GuardrailMatch { Tables = [Payments], Operations = ["delete", "insert"] }, GuardrailOutcome.Deny, null) };
        var refused = GuardrailEvaluator.EvaluateWritten(Statement(sql), Write(Payments, operation, 1), OpsBot, "shop", rules, 10_000, tables.Sum(t => t.Inserted + t.Updated + t.Deleted), 1, tables);
        Assert.Equal("guard.payments-kept", refused?.Rule);
        Assert.Contains("through its triggers or foreign-key cascades", refused!.Reason);
    }

    [Fact]
    public void Rows_moved_between_partitions_are_the_statements_own_only_where_they_add_up_to_its_own_count()
    {
        var rules = new[] { new GuardrailRule("payments-kept", null, new GuardrailMatch { Tables = [Payments], Operations = ["delete"] }, GuardrailOutcome.Deny, null) };
        TableWrites Partition(string name, long inserted, long updated, long deleted) =>
            new(new RelationName("public", name), inserted, updated, deleted, new RelationLineage([Payments], true));
        Decision? Written(string sql, string operation, long? own, params TableWrites[] tables) => GuardrailEvaluator.EvaluateWritten(
            Statement(sql), Write(Payments, operation, 1), OpsBot, "shop", rules, 10_000, tables.Sum(t => t.Inserted + t.Updated + t.Deleted), own, tables);

        // Two rows updated: one in place, one moved.
        const string Update = "update payments set paid_at = now() where id in (1, 2)";
        Assert.Null(Written(Update, "update", 2, Partition("payments_2025", 0, 1, 1), Partition("payments_2026", 1, 0, 0)));
        // The same counts with a third row's delete and insert by a trigger: more than the statement's own.
        Assert.Equal("guard.payments-kept", Written(Update, "update", 2, Partition("payments_2025", 0, 1, 2), Partition("payments_2026", 2, 0, 0))?.Rule);
        // No count for the statement: nothing to tell a move by.
        Assert.Equal("guard.payments-kept", Written(Update, "update", null, Partition("payments_2025", 0, 0, 1), Partition("payments_2026", 1, 0, 0))?.Rule);
        // A partition of the table keeps no counts (a foreign table): rows changed there are room for a trigger's.
        var uncounted = Written(Update, "update", 2, Partition("payments_2025", 0, 1, 1) with { UncountedPartitions = true }, Partition("payments_2026", 1, 0, 0) with { UncountedPartitions = true });
        Assert.Equal("guard.payments-kept", uncounted?.Rule);
        Assert.Contains("no partition of its table is a foreign table", uncounted!.Reason);

        // A MERGE could have inserted the row while a trigger deleted one (and PostgreSQL 15.0 to 15.2 counted its moves
        // twice): its moves are judged as deletes and inserts, and the refusal says why.
        foreach (var merge in new[]
        {
            "merge into payments p using (select 1 as id) s on p.id = s.id when matched then update set paid_at = now()",
            "merge into payments p using (values (1), (3)) s(id) on p.id = s.id when matched then update set paid_at = now() when not matched then insert (id) values (s.id)",
        })
        {
            var merged = Written(merge, "merge", 1, Partition("payments_2025", 0, 0, 1), Partition("payments_2026", 1, 0, 0));
            Assert.Equal("guard.payments-kept", merged?.Rule);
            Assert.Contains("deleted from public.payments_2025 through its triggers or foreign-key cascades (or rows it moved between partitions", merged!.Reason);
            Assert.Contains("for a MERGE they cannot be told from a trigger's", merged.Reason);
        }

        // An upsert never moves a row, so its refusal does not say it might have.
        var upsert = GuardrailEvaluator.EvaluateWritten(
            Statement("insert into payments (id) values (1) on conflict (id) do update set paid_at = now()"),
            new PlanFacts([new RelationAccess(Payments, AccessLevel.Write, "insert"), new RelationAccess(Payments, AccessLevel.Write, "update")], [], 0, 1) { Writers = 1 },
            OpsBot, "shop", rules, 10_000, 2, 1, [Partition("payments_2025", 0, 1, 1)]);
        Assert.Equal("guard.payments-kept", upsert?.Rule);
        Assert.DoesNotContain("moved between partitions", upsert!.Reason);
    }

    [Fact]
    public void A_refusal_names_the_write_that_met_the_rule_not_every_write_the_plan_did_not_show()
    {
        var rules = new[] { new GuardrailRule("payments-kept", null, new GuardrailMatch { Tables = [Payments], Operations = ["delete"] }, GuardrailOutcome.Deny, null) };
        var refused = GuardrailEvaluator.EvaluateWritten(
            Statement("delete from orders where id = 1"), Write(Orders, "delete", 1), OpsBot, "shop", rules, 10_000, 3, 1,
            [new TableWrites(Orders, 0, 0, 1, new RelationLineage([], false)), new TableWrites(new RelationName("public", "audit_log"), 1, 0, 0, new RelationLineage([], false)), new TableWrites(Payments, 0, 0, 1, new RelationLineage([], false))]);
        Assert.Equal("guard.payments-kept", refused?.Rule);
        Assert.Contains("and also deleted from public.payments through its triggers", refused!.Reason);
        Assert.DoesNotContain("audit_log", refused.Reason);
    }

    [Fact]
    public void An_approval_its_plan_asks_anyway_names_the_first_rule_only_its_writes_met()
    {
        GuardrailRule Approval(string id, GuardrailMatch match) => new(id, null, match, GuardrailOutcome.RequireApproval, null);
        var rules = new[]
        {
            Approval("orders-by-hand", new GuardrailMatch { Tables = [Orders], Operations = ["delete"] }),
            Approval("deletes-by-hand", new GuardrailMatch { Kinds = [StatementKind.Delete] }),
            Approval("payments-by-hand", new GuardrailMatch { Tables = [Payments] }),
        };
        var statement = Statement("delete from orders where id = 1");
        var own = new TableWrites(Orders, 0, 0, 1, new RelationLineage([], false));
        var log = new TableWrites(new RelationName("public", "audit_log"), 1, 0, 0, new RelationLineage([], false));
        var cascaded = new TableWrites(Payments, 0, 0, 1, new RelationLineage([], false));

        // The plan meets the first two; only the cascade into payments meets the third, which is what is named, and by
        // that write alone.
        var reached = GuardrailEvaluator.EvaluateWritten(statement, Write(Orders, "delete", 1), OpsBot, "shop", rules, 10_000, 3, 1, [own, log, cascaded]);
        Assert.Equal("guard.payments-by-hand", reached?.Rule);
        Assert.True(reached!.NeedsApproval);
        Assert.Contains("and also deleted from public.payments through its triggers", reached.Reason);
        Assert.DoesNotContain("audit_log", reached.Reason);

        // With no write its plan did not show, the plan's own rule stands.
        var alone = GuardrailEvaluator.EvaluateWritten(statement, Write(Orders, "delete", 1), OpsBot, "shop", rules, 10_000, 1, 1, [own]);
        Assert.Equal("guard.orders-by-hand", alone?.Rule);
        Assert.Contains("more than the planner estimated", alone!.Reason);
    }

    [Fact]
    public void A_rule_on_a_partition_sees_the_rows_an_insert_into_its_table_routed_there()
    {
        var partition = new RelationName("public", "payments_2026");
        var rules = new[] { new GuardrailRule("this-year", null, new GuardrailMatch { Tables = [partition] }, GuardrailOutcome.Deny, null) };
        var routed = new[] { new TableWrites(partition, 1, 0, 0, new RelationLineage([Payments], true)) };
        var refused = GuardrailEvaluator.EvaluateWritten(Statement("insert into payments (amount) values (1)"), Write(Payments, "insert", 1), OpsBot, "shop", rules, 10_000, 1, 1, routed);
        Assert.Equal("guard.this-year", refused?.Rule);
        Assert.Contains("in public.payments_2026, which its plan names only by their tables", refused!.Reason);
    }

    [Fact]
    public void A_rule_matches_on_kind_rows_functions_agents_and_groups()
    {
        var plan = Write(Orders, "update", 500, new FunctionCall(null, "now"));
        Assert.Equal("guard.r1", Rule("update orders set note = 'x' where id > 1", plan, new GuardrailMatch { Kinds = [StatementKind.Update], MinRows = 100 }));
        Assert.Null(Rule("update orders set note = 'x' where id > 1", plan, new GuardrailMatch { Kinds = [StatementKind.Update], MinRows = 1000 }));
        Assert.Equal("guard.r1", Rule("update orders set note = now()::text where id > 1", plan, new GuardrailMatch { Functions = ["now"] }));
        Assert.Equal("guard.r1", Rule("update orders set note = 'x' where id > 1", plan, new GuardrailMatch { Agents = ["ops-bot"] }));
        Assert.Null(Rule("update orders set note = 'x' where id > 1", plan, new GuardrailMatch { Groups = ["finance"] }));
    }

    [Theory]
    [InlineData("merge into payments p using (select 1) s on true when matched then delete", true)]
    [InlineData("merge into payments p using (select 1 as id) s on p.id = s.id when matched and p.amount > 0 then update set amount = 0", true)]
    [InlineData("merge into payments p using (select 1 as id) s on p.id = s.id when not matched then insert (amount) values (1)", false)]
    [InlineData("with s as (select 1 as id) merge into payments p using s on p.id = s.id when matched then delete", true)]
    [InlineData("merge into payments p using (select 1 as id) s on p.id = s.id when not matched then do nothing", false)]
    public void A_merge_matches_the_operations_and_kinds_its_when_clauses_take(string sql, bool updatesOrDeletes)
    {
        // The plan says only "merge"; what the MERGE does is in its WHEN clauses.
        var plan = Write(Payments, "merge", 1);
        Assert.Equal(updatesOrDeletes ? "guard.r1" : null, Rule(sql, plan, new GuardrailMatch { Operations = ["update", "delete"] }));
        Assert.Equal(updatesOrDeletes ? "guard.r1" : null, Rule(sql, plan, new GuardrailMatch { Kinds = [StatementKind.Update, StatementKind.Delete] }));
        Assert.Equal("guard.r1", Rule(sql, plan, new GuardrailMatch { Operations = ["merge"] }));
    }

    [Fact]
    public void A_merge_the_text_does_not_show_counts_as_every_write()
    {
        // A MERGE inside a WITH query (PostgreSQL 17) under a SELECT: its actions are not read, so it matches any write rule.
        Assert.Equal("guard.r1", Rule("select 1", Write(Payments, "merge", 1), new GuardrailMatch { Operations = ["delete"] }));
    }

    [Fact]
    public void An_upsert_matches_update_rules_by_kind_and_by_the_update_its_plan_names()
    {
        const string Upsert = "insert into payments (id, amount) values (1, 0) on conflict (id) do update set amount = excluded.amount";
        var plan = new PlanFacts([new RelationAccess(Payments, AccessLevel.Write, "insert"), new RelationAccess(Payments, AccessLevel.Write, "update")], [], 0, 1);
        Assert.Equal("guard.r1", Rule(Upsert, plan, new GuardrailMatch { Operations = ["update"] }));
        Assert.Equal("guard.r1", Rule(Upsert, plan, new GuardrailMatch { Kinds = [StatementKind.Update] }));
        Assert.Null(Rule("insert into payments (id, amount) values (1, 0) on conflict (id) do nothing", Write(Payments, "insert", 1), new GuardrailMatch { Kinds = [StatementKind.Update] }));
    }

    [Fact]
    public void A_rule_without_where_matches_a_write_without_its_own_where_in_a_with_query_too()
    {
        var match = new GuardrailMatch { Operations = ["delete"], WithoutWhere = true };
        Assert.Equal("guard.r1", Rule("delete from payments", Write(Payments, "delete", 1), match));
        Assert.Equal("guard.r1", Rule("with d as (delete from payments returning 1) select count(*) from d", Write(Payments, "delete", 1), match));
        Assert.Null(Rule("with d as (delete from payments where id = 1 returning 1) select count(*) from d", Write(Payments, "delete", 1), match));
    }

    [Fact]
    public void A_rule_for_another_connection_does_not_apply() =>
        Assert.Null(Rule("delete from payments where id = 1", Write(Payments, "delete", 1), new GuardrailMatch { Tables = [Payments] }, connection: "warehouse"));

    [Fact]
    public void Require_approval_refuses_and_says_a_human_is_needed()
    {
        var decision = GuardrailEvaluator.Evaluate(
            Statement("delete from payments where id = 1"),
            Write(Payments, "delete", 1),
            OpsBot,
            "shop",
            [new GuardrailRule("payments-by-hand", null, new GuardrailMatch { Tables = [Payments] }, GuardrailOutcome.RequireApproval, "Payments are changed by people")],
            10_000);
        Assert.Equal("guard.payments-by-hand", decision!.Rule);
        Assert.Contains("Payments are changed by people", decision.Reason);
        Assert.Contains("approval", decision.Reason);
    }

    [Fact]
    public void A_deny_rule_wins_over_an_earlier_require_approval_rule()
    {
        GuardrailRule[] rules =
        [
            new("payments-by-hand", null, new GuardrailMatch { Tables = [Payments] }, GuardrailOutcome.RequireApproval, "Payments are changed by people"),
            new("no-deletes", null, new GuardrailMatch { Operations = ["delete"] }, GuardrailOutcome.Deny, "Nothing is deleted"),
        ];
        var deleted = GuardrailEvaluator.Evaluate(Statement("delete from payments where id = 1"), Write(Payments, "delete", 1), OpsBot, "shop", rules, 10_000);
        Assert.Equal("guard.no-deletes", deleted!.Rule);
        Assert.False(deleted.NeedsApproval);

        var updated = GuardrailEvaluator.Evaluate(Statement("update payments set status = 'x' where id = 1"), Write(Payments, "update", 1), OpsBot, "shop", rules, 10_000);
        Assert.Equal("guard.payments-by-hand", updated!.Rule);
        Assert.True(updated.NeedsApproval);
    }
}
