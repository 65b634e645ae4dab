using Gatehouse.Enforcement.Audit;
using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Policy;

namespace Gatehouse.Tests.Enforcement.Policy;

public sealed class PolicyLoaderTests
{
    internal const string Minimal = """
        connections:
          shop:
            connection_string: "Host=127.0.0.1;Database=shop;Username=gw"
            password_env: SHOP_PW
        issuers:
          - issuer: gatehouse-dev
            audience: gatehouse
            dev_key_file: dev.pem
        agents:
          analyst:
            grants:
              - connection: shop
                access: read
                tables: [public.orders, customers]
        """;

    internal static GatewayPolicy Parse(string yaml) => PolicyLoader.Parse(yaml, "/etc/gatehouse/policy.yaml");

    internal static IReadOnlyList<string> Errors(string yaml) => Assert.Throws<PolicyException>(() => Parse(yaml)).Errors;

    [Fact]
    public void The_sample_policy_in_the_repository_is_valid()
    {
        var path = Path.Combine(AppContext.BaseDirectory, "samples", "gatehouse.yaml");
        var policy = PolicyLoader.LoadFile(path);
        Assert.Contains("shop", policy.Connections.Keys);
        Assert.Equal(["analyst", "ops-bot"], policy.Agents.Keys.Order());
    }

    [Fact]
    public void The_policy_example_in_the_readme_is_valid()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (!File.Exists(Path.Combine(directory!.FullName, "Mcp.sln")))
        {
            directory = directory.Parent;
        }

        var readme = File.ReadAllText(Path.Combine(directory.FullName, "README.md"));
        var start = readme.IndexOf("```yaml\ngateway:", StringComparison.Ordinal) + "```yaml\n".Length;
        var example = readme[start..readme.IndexOf("```", start, StringComparison.Ordinal)];
        var policy = Parse(example);
        Assert.Equal(["gatehouse-dev", "https://login.example.com/", "batch-scheduler"], policy.Issuers.Select(i => i.Issuer));
        Assert.Equal(["HS256"], policy.Issuers[2].Algorithms);
        Assert.Equal("payments-by-hand", Assert.Single(policy.Guardrails).Id);
        Assert.Equal(60, policy.Quotas.Agents["analyst"].CallsPerMinute);

        // Admin tokens only from the issuers named for them: with several trusted, the policy must say which.
        Assert.Equal(["https://login.example.com/"], policy.Admin!.Issuers);
        const string Named = "  issuers: [https://login.example.com/]   # who may sign admin tokens; required when more than one issuer is trusted";
        Assert.Contains(Named, example, StringComparison.Ordinal);
        Assert.Contains(Errors(example.Replace(Named, "  issuers: [https://other.example/]", StringComparison.Ordinal)), e => e.Contains("admin.issuers names 'https://other.example/'", StringComparison.Ordinal));
        Assert.Contains(Errors(example.Replace(Named, "", StringComparison.Ordinal)), e => e.Contains("admin: 3 issuer(s) are trusted; name under admin.issuers", StringComparison.Ordinal));

        // Each issuer says which agents and groups it speaks for: the shared-secret one names a single agent and no group.
        Assert.Equal(["nightly-report"], policy.Issuers[2].Agents);
        Assert.Equal([], policy.Issuers[2].Groups);
        Assert.Null(policy.Issuers[1].Groups);
        const string Lists = "    agents: [nightly-report]           # whoever holds the secret can sign any name: here, only this one counts\n    groups: []\n";
        Assert.Contains(Lists, example, StringComparison.Ordinal);
        var unsaid = Errors(example.Replace(Lists, "", StringComparison.Ordinal));
        Assert.Contains(unsaid, e => e.Contains("issuer 'batch-scheduler': agents is required when more than one issuer is trusted", StringComparison.Ordinal));
        Assert.Contains(unsaid, e => e.Contains("issuer 'batch-scheduler': groups is required when more than one issuer is trusted", StringComparison.Ordinal));
    }

    [Fact]
    public void A_single_trusted_issuer_may_name_any_agent_and_group_unless_it_lists_them()
    {
        Assert.Null(Parse(Minimal).Issuers[0].Agents);
        var listed = Parse(Minimal.Replace("dev_key_file: dev.pem", "dev_key_file: dev.pem\n    agents: [analyst]\n    groups: any", StringComparison.Ordinal)).Issuers[0];
        Assert.True(listed.MayName("analyst"));
        Assert.False(listed.MayName("Analyst"));
        Assert.True(listed.MayGroup("anything"));
    }

    [Fact]
    public void A_minimal_policy_loads_with_defaults_and_paths_relative_to_the_file()
    {
        var policy = Parse(Minimal);
        Assert.Equal("/etc/gatehouse/gatehouse-state.db", policy.Gateway.StatePath);
        Assert.Equal(QueryLimits.Default, policy.Gateway.Limits);
        Assert.Equal("/etc/gatehouse/dev.pem", policy.Issuers[0].Keys.DevKeyFile);
        Assert.Equal("sub", policy.Issuers[0].AgentClaim);
        var grant = Assert.Single(policy.Agents["analyst"].Grants);
        Assert.Equal([new RelationName("public", "orders"), new RelationName("public", "customers")], grant.Tables);
    }

    [Fact]
    public void A_connection_may_allowlist_functions_and_pin_its_search_path()
    {
        var policy = Parse(Minimal.Replace("    password_env: SHOP_PW", "    password_env: SHOP_PW\n    functions: [public.shipping_cost]\n    search_path: sales"));
        Assert.Equal(["public.shipping_cost"], policy.Connections["shop"].AllowedFunctions);
        Assert.Equal("sales", policy.Connections["shop"].SearchPath);
        Assert.Equal("public", Parse(Minimal).Connections["shop"].SearchPath);
    }

    [Fact]
    public void Guardrails_observe_only_and_the_write_limit_are_read()
    {
        var policy = Parse(Minimal.Replace("    password_env: SHOP_PW", "    password_env: SHOP_PW\n    observe_only: true") + """

            guardrails:
              - id: payments-by-hand
                connection: shop
                match: { tables: [public.payments], operations: [update, delete], kinds: [update, delete], without_where: false, min_rows: 1 }
                outcome: require_approval
                message: Payments are changed by people.
            gateway:
              limits: { max_write_rows: 500 }
            """);
        var rule = Assert.Single(policy.Guardrails);
        Assert.Equal("payments-by-hand", rule.Id);
        Assert.Equal(Gatehouse.Enforcement.Guardrails.GuardrailOutcome.RequireApproval, rule.Outcome);
        Assert.Equal([StatementKind.Update, StatementKind.Delete], rule.Match.Kinds);
        Assert.Equal(1, rule.Match.MinRows);
        Assert.True(policy.Connections["shop"].ObserveOnly);
        Assert.Equal(500, policy.Gateway.Limits.MaxWriteRows);
    }

    [Theory]
    [InlineData("tables: [public.orders, customers]", "tables: [public.\"Orders\"]", "'public.\"Orders\"' is not a table name")]
    [InlineData("tables: [public.orders, customers]", "schemas: ['\"Sales\"']", "'\"Sales\"' is not a schema name")]
    [InlineData("password_env: SHOP_PW", "password_env: SHOP_PW\n    tags: { 'public.\"Customers\".email': email }", "is not a column; write schema.table.column")]
    public void A_quoted_name_is_refused_since_it_would_name_nothing(string find, string replace, string message)
    {
        // Names compare as PostgreSQL stores them; read as written, "Orders" (quotes and all) would match no table, so a
        // tag on it would protect nothing and a grant on it would grant nothing.
        Assert.Contains(find, Minimal, StringComparison.Ordinal);
        var errors = Errors(Minimal.Replace(find, replace, StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains(message, StringComparison.Ordinal) && e.Contains("without double quotes", StringComparison.Ordinal));
    }

    [Fact]
    public void A_column_tagged_twice_under_two_spellings_is_an_error()
    {
        var yaml = Minimal.Replace("password_env: SHOP_PW", "password_env: SHOP_PW\n    tags: { customers.ssn: ssn, public.customers.ssn: email }", StringComparison.Ordinal);

        Assert.Contains(Errors(yaml), e => e.Contains("'public.customers.ssn' tags public.customers.ssn a second time (already as ssn)", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("outcome: maybe", "outcome 'maybe' is not known")]
    [InlineData("match: {}", "needs a match with at least one condition")]
    [InlineData("match: { kinds: [drop] }", "kind 'drop' is not known")]
    [InlineData("match: { operations: [truncate] }", "operation 'truncate' is not known")]
    [InlineData("connection: warehouse", "connection 'warehouse' is not defined")]
    [InlineData("match: { tables: ['public.\"Orders\"'] }", "not a table name; write schema.table (names are written as PostgreSQL stores them: case-sensitive, without double quotes")]
    // Block style without brackets is one value in YAML: a guardrail on a table named "orders, payments", which held on none.
    [InlineData("match:\n      tables: orders, payments", "tables is the one text value 'orders, payments'; write a list, [orders, payments]")]
    [InlineData("match:\n      functions: pg_sleep, dblink", "functions is the one text value 'pg_sleep, dblink'")]
    public void A_bad_guardrail_is_an_error(string line, string message)
    {
        var rule = "guardrails:\n  - id: g\n    match: { tables: [public.orders] }\n    outcome: deny\n";
        var key = line.Split(':')[0];
        rule = rule.Contains(key + ":", StringComparison.Ordinal)
            ? string.Join("\n", rule.Split('\n').Select(l => l.TrimStart().StartsWith(key + ":", StringComparison.Ordinal) ? "    " + line : l))
            : rule + "    " + line + "\n";
        Assert.Contains(Errors(Minimal + "\n" + rule), e => e.Contains(message, StringComparison.Ordinal));
    }

    [Fact]
    public void Tags_default_to_strict_masking_with_a_strategy_per_class()
    {
        var tagged = Minimal.Replace("    password_env: SHOP_PW", "    password_env: SHOP_PW\n    tags:\n      public.customers.ssn: ssn\n      customers.email: email\n    strategies:\n      ssn: token");
        var policy = Parse(tagged.Replace("    grants:", "    unmask: [email]\n    grants:"));
        var shop = policy.Connections["shop"];
        Assert.Equal(MaskingMode.Strict, shop.Masking);
        Assert.Equal("gw", shop.LoginRole);
        Assert.Equal("email", shop.Tags[new ColumnUse(new RelationName("public", "customers"), "email")]);
        Assert.Equal(MaskingStrategy.Token, shop.StrategyFor("ssn"));
        Assert.Equal(MaskingStrategy.Partial, shop.StrategyFor("email"));
        Assert.Equal(MaskingStrategy.Redact, shop.StrategyFor("address"));
        Assert.Equal(["email"], policy.Agents["analyst"].Unmask);

        var overlay = Parse(tagged.Replace("    tags:", "    masking: overlay\n    tags:"));
        Assert.Equal(MaskingMode.Overlay, overlay.Connections["shop"].Masking);

        // The strategy named null, written plain as the README writes it, is that strategy and not YAML's null.
        Assert.Equal(MaskingStrategy.Null, Parse(tagged.Replace("ssn: token", "ssn: null")).Connections["shop"].StrategyFor("ssn"));
        Assert.Contains(Errors(tagged.Replace("ssn: token", "ssn: ~")), e => e.Contains("the strategy for ssn is ~ (YAML's null)", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("    masking: strong", "masking 'strong' is not known")]
    [InlineData("    strategies:\n      ssn: hash", "strategy 'hash' for ssn is not known")]
    [InlineData("    strategies:\n      ssn: 1", "strategy '1' for ssn is not known")]
    [InlineData("    strategies:\n      SSN: token", "strategies names class 'SSN', which no tag of this connection has; the tagged classes are: ssn")]
    [InlineData("    strategies:\n      emial: redact", "strategies names class 'emial'")]
    public void Bad_masking_settings_are_errors(string line, string message)
    {
        var yaml = Minimal.Replace("    password_env: SHOP_PW", "    password_env: SHOP_PW\n    tags:\n      public.customers.ssn: ssn\n" + line);
        Assert.Contains(Errors(yaml), e => e.Contains(message, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("approvals:\n  approvers: [alice, bob]\n  required: 3", "only 2 approver(s) are named")]
    [InlineData("approvals:\n  wait: forever", "approvals.wait must be a duration")]
    [InlineData("approvals:\n  webhook:\n    url: ftp://hooks.example.com/x", "is not an http(s) URL")]
    [InlineData("approvals:\n  webhook:\n    url: https://hooks.example.com/x\n    secret_env: A\n    secret_file: b", "set secret_env or secret_file, not both")]
    [InlineData("admin:\n  audience: gatehouse\n  users: [alice]", "is also an agent audience")]
    [InlineData("admin:\n  audience: Gatehouse/\n  users: [alice]", "is also an agent audience")]
    [InlineData("groups:\n  keyholders:\n    grants:\n      - connection: shop\n        access: read\n        schemas: [gatehouse]", "belongs to the gateway's strict masking")]
    [InlineData("admin:\n  audience: gatehouse-admin", "name the users or groups")]
    // Each person decides once: two approvals from the names below could never be given.
    [InlineData("approvals:\n  approvers: [alice, alice]\n  required: 2", "approvals.approvers names 'alice' 2 times")]
    [InlineData("approvals:\n  webhook:\n    url: ~", "approvals.webhook.url is ~ (YAML's null)")]
    [InlineData("approvals:\n  webhook:\n    url: https://hooks.example.com/x\n    secret_file: null", "secret_file is null (YAML's null)")]
    [InlineData("approvals:\n  approvers: [alice, NULL]", "approvals.approvers is NULL (YAML's null)")]
    public void Bad_approval_settings_are_errors(string section, string message) =>
        Assert.Contains(Errors(Minimal + "\n" + section + "\n"), e => e.Contains(message, StringComparison.Ordinal));

    [Theory]
    [InlineData("approvers: [alice, bob, carol]\n  required: 2", 2)]
    [InlineData("approvers: [alice, bob, operator]\n  required: 3", 2)]
    [InlineData("approvers: [alice, operator]\n  required: 2", 1)]
    [InlineData("approvers: [operator]", 1)]
    [InlineData("approvers: [alice, operator]\n  groups: [dba]\n  required: 2", 2)]
    [InlineData("required: 3", 3)]
    public void An_access_request_needs_as_many_approvals_as_a_statement_but_none_of_the_operator_who_never_sees_one(string settings, int required) =>
        Assert.Equal(required, Parse(Minimal + "\napprovals:\n  " + settings + "\n").Approvals.RequiredForAccess);

    [Fact]
    public void Approval_settings_are_read_with_their_defaults()
    {
        var policy = Parse(Minimal + "\napprovals:\n  approvers: [alice, bob]\n  required: 2\n  wait: 10s\n  webhook:\n    url: https://hooks.example.com/x\n    secret_env: HOOK_SECRET\n");
        Assert.Equal(["alice", "bob"], policy.Approvals.Approvers);
        Assert.Equal(2, policy.Approvals.Required);
        Assert.Equal(TimeSpan.FromSeconds(10), policy.Approvals.Wait);
        Assert.Equal(TimeSpan.FromMinutes(15), policy.Approvals.ApprovalLifetime);
        Assert.Equal("HOOK_SECRET", policy.Approvals.Webhook!.Secret.EnvironmentVariable);
        Assert.Equal(TimeSpan.FromSeconds(45), Parse(Minimal).Approvals.Wait);
    }

    [Fact]
    public void Strict_masking_needs_a_login_role_in_the_connection_string()
    {
        var yaml = Minimal.Replace(";Username=gw", "").Replace("    password_env: SHOP_PW", "    password_env: SHOP_PW\n    tags:\n      public.customers.ssn: ssn");
        Assert.Contains(Errors(yaml), e => e.Contains("strict masking needs the connection string's Username", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("      public.customers.ssn: SSN!", "must be a lower-case word")]
    [InlineData("      ssn: ssn", "is not a column")]
    public void Bad_tags_are_errors(string tag, string message)
    {
        var yaml = Minimal.Replace("    password_env: SHOP_PW", "    password_env: SHOP_PW\n    masking: overlay\n    tags:\n" + tag);
        Assert.Contains(Errors(yaml), e => e.Contains(message, StringComparison.Ordinal));
    }

    [Fact]
    public void An_unknown_key_is_an_error_with_its_line_and_the_allowed_keys()
    {
        var error = Assert.Single(Errors(Minimal.Replace("    password_env: SHOP_PW", "    password_env: SHOP_PW\n    pasword_file: x")));
        Assert.StartsWith("/etc/gatehouse/policy.yaml:5:", error);
        Assert.Contains("unknown key 'pasword_file'", error);
        Assert.Contains("password_file", error);
    }

    [Fact]
    public void A_grant_on_an_undefined_connection_is_an_error()
    {
        var error = Assert.Single(Errors(Minimal.Replace("- connection: shop", "- connection: warehouse")));
        Assert.Contains("connection 'warehouse', which is not defined", error);
        Assert.StartsWith("/etc/gatehouse/policy.yaml:12:", error);
    }

    [Theory]
    [InlineData("Password=hunter2")]
    [InlineData("PSW=hunter2")]
    [InlineData("pwd=hunter2")]
    [InlineData("SSL Password=hunter2")]
    public void A_password_inside_the_connection_string_is_refused_under_any_of_its_names(string setting)
    {
        var error = Assert.Single(Errors(Minimal.Replace("Username=gw", "Username=gw;" + setting)));
        Assert.Contains("must not contain a password", error);
        Assert.DoesNotContain("hunter2", error);
    }

    [Theory]
    [InlineData("quotas:\n  defualt: { calls_per_minute: 60 }", "defualt")]
    [InlineData("quotas:\n  agents:\n    analyst: { calls_per_minut: 10 }", "calls_per_minut")]
    [InlineData("quotas:\n  agents:\n    analyst: { rows: -5 }", "rows")]
    [InlineData("quotas:\n  agents:\n    nobody: { rows: 10 }", "'nobody' is not an agent of this policy")]
    [InlineData("quotas:\n  groups:\n    finance: lots", "quotas.groups.finance")]
    // A window alone set no limit, and replaced the default: the agent had none at all.
    [InlineData("quotas:\n  default: { calls_per_minute: 60 }\n  agents:\n    analyst: { window: 24h }", "set at least one of calls_per_minute")]
    public void A_mistake_in_the_quotas_is_an_error_not_a_quota_dropped(string quotas, string message)
    {
        // A misspelt default would leave every agent without a quota, and a bad value was silently the minimum.
        Assert.Contains(Errors(Minimal + "\n" + quotas), e => e.Contains(message, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("access: read", "access: admin", "access 'admin' is not known")]
    [InlineData("tables: [public.orders, customers]", "tables: [a.b.c]", "'a.b.c' is not a table name")]
    [InlineData("audience: gatehouse", "audience: gatehouse\n    algorithms: [none]", "algorithm 'none' is not allowed")]
    [InlineData("audience: gatehouse", "audience: gatehouse\n    clock_skew: forever", "clock_skew must be a duration")]
    [InlineData("audience: gatehouse", "audience: gatehouse\n    algorithms: [HS256]", "HS256 needs shared_secret_env or shared_secret_file")]
    [InlineData("audience: gatehouse", "audience: gatehouse\n    algorithms: [EdDSA]", "EdDSA is not supported")]
    [InlineData("audience: gatehouse", "audience: gatehouse\n    algorithms: []", "algorithms is empty, which would accept any algorithm")]
    [InlineData("audience: gatehouse", "audience: gatehouse\n    shared_secret_env: HS_SECRET", "cannot be combined")]
    [InlineData("audience: gatehouse", "audience: gatehouse\n    key_refresh_interval: 0s", "key_refresh_interval must be a duration from 1s")]
    [InlineData("audience: gatehouse", "audience: gatehouse\n    key_max_age: 1m", "key_max_age must be a duration from 5m")]
    [InlineData("    audience: gatehouse\n", "", "an audience is required")]
    [InlineData("dev_key_file: dev.pem", "dev_key_file: dev.pem\n    jwks_file: keys.json", "exactly one of dev_key_file")]
    [InlineData("password_env: SHOP_PW", "password_env: SHOP_PW\n    password_file: pw", "not both")]
    public void Bad_values_are_errors_that_say_what_is_wrong(string find, string replace, string message)
    {
        var errors = Errors(Minimal.Replace(find, replace));
        Assert.Contains(errors, e => e.Contains(message, StringComparison.Ordinal));
    }

    [Fact]
    public void Every_error_is_reported_not_just_the_first()
    {
        var errors = Errors(Minimal.Replace("access: read", "access: admin").Replace("- connection: shop", "- connection: warehouse"));
        Assert.Equal(2, errors.Count);
    }

    [Fact]
    public void A_policy_without_issuers_or_connections_cannot_start()
    {
        var errors = Errors("agents: {}");
        Assert.Contains(errors, e => e.Contains("no connections", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("no issuers", StringComparison.Ordinal));
    }

    [Fact]
    public void Broken_yaml_is_reported_with_its_position()
    {
        var error = Assert.Single(Errors("connections:\n  shop: [unclosed"));
        Assert.Contains("not valid YAML", error);
        Assert.StartsWith("/etc/gatehouse/policy.yaml:", error);
    }

    [Fact]
    public void Nesting_deeper_than_any_policy_is_refused_at_its_line_before_a_tree_is_built()
    {
        // The top-level mapping and the guardrails list are two levels; 63 brackets make 65.
        var deep = Minimal + "\nguardrails:\n  - " + new string('[', 63) + new string(']', 63);

        var error = Assert.Single(Errors(deep));

        Assert.Equal("/etc/gatehouse/policy.yaml:16:67: lists and mappings nest more than 64 deep; no policy needs that.", error);
        var deepest = Minimal + "\nguardrails:\n  - " + new string('[', 62) + new string(']', 62);
        Assert.DoesNotContain(Errors(deepest), e => e.Contains("nest", StringComparison.Ordinal));
    }

    [Fact]
    public void Aliases_that_expand_past_a_million_values_are_refused()
    {
        // Seven levels of ten aliases to the level below: ten million values from eight short lines.
        var laughs = new System.Text.StringBuilder(Minimal + "\nx-laughs:\n  l0: &l0 [a, a, a, a, a, a, a, a, a, a]\n");
        for (var level = 1; level <= 7; level++)
        {
            laughs.Append($"  l{level}: &l{level} [{string.Join(", ", Enumerable.Repeat($"*l{level - 1}", 10))}]\n");
        }

        var error = Assert.Single(Errors(laughs.ToString()));

        Assert.Matches(@"^/etc/gatehouse/policy\.yaml:\d+:\d+: with its aliases expanded the file holds more than 1,000,000 values", error);
    }

    [Theory]
    [InlineData("? [a, b]\n: 1")]
    [InlineData("{x: 1}: 2")]
    [InlineData("k: &k [a]\n*k : 1")]
    public void A_key_that_is_not_plain_text_is_refused(string entry)
    {
        var error = Assert.Single(Errors(Minimal + "\n" + entry + "\n"));

        Assert.Contains("a key must be plain text, not a list, a mapping or an alias.", error);
    }

    [Fact]
    public void Anchors_and_aliases_within_bounds_still_share_a_list()
    {
        var shared = Minimal.Replace("tables: [public.orders, customers]", "tables: &shop-tables [public.orders, customers]") + """

              reporter:
                grants:
                  - connection: shop
                    access: read
                    tables: *shop-tables
            """;

        var policy = Parse(shared);

        Assert.Equal(policy.Agents["analyst"].Grants[0].Tables, policy.Agents["reporter"].Grants[0].Tables);
        Assert.Equal(2, policy.Agents["reporter"].Grants[0].Tables.Count);
    }

    [Fact]
    public void An_agent_or_group_name_that_would_read_as_another_is_an_error()
    {
        var yaml = Minimal.Replace("  analyst:", "  \"analyst \":") + "\n  client:reporting: {}\ngroups:\n  \"fin\\u200Bance\": {}\n  sub:readers: {}\n  \"interns,finance\": {}\n";

        var errors = Errors(yaml);

        Assert.Contains(errors, e => e.Contains("the agent name 'analyst ' has spaces at its start or end", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("the group name 'fin\u200Bance' holds control or invisible characters", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("the agent name 'client:reporting' begins like a subject, client or token switch", StringComparison.Ordinal));
        Assert.DoesNotContain(errors, e => e.Contains("sub:readers", StringComparison.Ordinal));
        Assert.DoesNotContain(errors, e => e.Contains("interns,finance", StringComparison.Ordinal));
    }

    [Fact]
    public void A_file_larger_than_any_policy_is_not_read()
    {
        var path = Path.Combine(Path.GetTempPath(), $"gatehouse-huge-{Guid.NewGuid():N}.yaml");
        try
        {
            File.WriteAllText(path, Minimal + "\n# " + new string('x', (int)PolicyLoader.MaxFileBytes) + "\n");

            var error = Assert.Single(Assert.Throws<PolicyException>(() => PolicyLoader.LoadFile(path)).Errors);

            Assert.Equal($"{path}: the policy file is larger than 16 MiB; no policy needs that, so it is not read", error);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void A_missing_file_is_a_clear_error()
    {
        var error = Assert.Single(Assert.Throws<PolicyException>(() => PolicyLoader.LoadFile("/nonexistent/gatehouse.yaml")).Errors);
        Assert.Contains("does not exist", error);
    }

    [Theory]
    [InlineData("500ms", 500)]
    [InlineData("30s", 30_000)]
    [InlineData("15m", 900_000)]
    [InlineData("2h", 7_200_000)]
    [InlineData("1.5s", 1_500)]
    public void Durations_parse_with_units(string text, double milliseconds) =>
        Assert.Equal(milliseconds, Durations.Parse(text).TotalMilliseconds);

    [Theory]
    [InlineData("")]
    [InlineData("15")]
    [InlineData("-1s")]
    [InlineData("1 fortnight")]
    public void Durations_without_a_unit_or_with_nonsense_are_refused(string text) =>
        Assert.False(Durations.TryParse(text, out _));

    [Fact]
    public void Tls_settings_use_libpqs_names_and_a_root_certificate_alone_means_verify_full()
    {
        var certificate = Path.GetTempFileName();
        try
        {
            var policy = Parse(Minimal.Replace("    password_env: SHOP_PW", $"    password_env: SHOP_PW\n    sslrootcert: {certificate}"));
            Assert.Equal(new TlsSettings("verify-full", certificate), policy.Connections["shop"].Tls);
            Assert.Equal("require", Parse(Minimal.Replace("    password_env: SHOP_PW", "    password_env: SHOP_PW\n    sslmode: require")).Connections["shop"].Tls!.Mode);
            Assert.Null(Parse(Minimal).Connections["shop"].Tls);
        }
        finally
        {
            File.Delete(certificate);
        }
    }

    [Theory]
    [InlineData("sslmode: verify_full", "sslmode 'verify_full' is not known")]
    [InlineData("sslmode: require\n    sslrootcert: /etc/ssl/ca.pem", "sslrootcert is only used to verify the server")]
    [InlineData("sslrootcert: /nonexistent/ca.pem", "sslrootcert /nonexistent/ca.pem does not exist")]
    [InlineData("sslmode: verify-full\n    connection_string: \"Host=db;SSL Mode=Require;Username=gw\"", "TLS is set both here and in connection_string")]
    public void Tls_mistakes_are_errors_with_their_line(string settings, string message)
    {
        var yaml = Minimal.Replace("    password_env: SHOP_PW", $"    password_env: SHOP_PW\n    {settings}");
        if (settings.Contains("connection_string", StringComparison.Ordinal))
        {
            yaml = yaml.Replace("    connection_string: \"Host=127.0.0.1;Database=shop;Username=gw\"\n", "");
        }

        Assert.Contains(Errors(yaml), e => e.Contains(message, StringComparison.Ordinal) && e.StartsWith("/etc/gatehouse/policy.yaml:", StringComparison.Ordinal));
    }

    [Fact]
    public void Trusted_proxies_take_addresses_and_networks_and_default_to_none()
    {
        Assert.Empty(Parse(Minimal).Gateway.Http.TrustedProxies);
        var proxies = Parse("gateway:\n  http:\n    trusted_proxies: [10.0.0.5, 10.1.0.0/16, \"::1\", \"fd00:10::/32\", \"::ffff:10.0.0.6\", \"::ffff:172.16.0.0/108\"]\n" + Minimal).Gateway.Http.TrustedProxies;
        Assert.Equal(["10.0.0.5/32", "10.1.0.0/16", "::1/128", "fd00:10::/32", "10.0.0.6/32", "172.16.0.0/12"], proxies);
    }

    [Theory]
    [InlineData("[proxy.internal]", "'proxy.internal' is not an IP address or a network")]
    [InlineData("[10.1.2.3/8]", "'10.1.2.3/8' has bits set past its prefix; write 10.0.0.0/8")]
    [InlineData("[10.0.0.0/33]", "'10.0.0.0/33' is not an IP address or a network")]
    [InlineData("[0.0.0.0/0]", "'0.0.0.0/0' is wider than any proxy needs")]
    [InlineData("[128.0.0.0/1]", "'128.0.0.0/1' is wider than any proxy needs")]
    [InlineData("[\"::/0\"]", "'::/0' is wider than any proxy needs")]
    [InlineData("[\"::ffff:0:0/96\"]", "'::ffff:0:0/96' is wider than any proxy needs")]
    [InlineData("[\"fd00::/8\"]", "'fd00::/8' is wider than any proxy needs")]
    [InlineData("10.0.0.5", "trusted_proxies must be a list")]
    public void A_trusted_proxy_that_is_not_an_address_or_is_everyone_is_refused(string value, string expected)
    {
        Assert.Contains(Errors($"gateway:\n  http:\n    trusted_proxies: {value}\n" + Minimal), e => e.Contains(expected, StringComparison.Ordinal));
    }

    [Fact]
    public void An_empty_allowed_hosts_list_is_refused_rather_than_allowing_any_host()
    {
        Assert.Contains(Errors("gateway:\n  http:\n    allowed_hosts: []\n" + Minimal), e => e.Contains("gateway.http.allowed_hosts is empty", StringComparison.Ordinal));
        Assert.Equal(["*"], Parse("gateway:\n  http:\n    allowed_hosts: [\"*\"]\n" + Minimal).Gateway.Http.AllowedHosts);
    }

    [Fact]
    public void Audit_durability_defaults_to_power_loss_and_takes_process_crash_by_name()
    {
        Assert.Equal(AuditDurability.PowerLoss, Parse(Minimal).Gateway.Audit.Durability);
        Assert.Equal(AuditDurability.ProcessCrash, Parse("gateway:\n  audit:\n    durability: process_crash\n" + Minimal).Gateway.Audit.Durability);
        Assert.Contains(Errors("gateway:\n  audit:\n    durability: fast\n" + Minimal), e => e.Contains("durability 'fast' is not known", StringComparison.Ordinal));
    }
}
