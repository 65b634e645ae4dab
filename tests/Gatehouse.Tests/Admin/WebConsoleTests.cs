using System.Text.Json;
using Deque.AxeCore.Playwright;
using Gatehouse.Enforcement.Identity;
using Gatehouse.Tests.EndToEnd;
using Gatehouse.Tests.Infrastructure;
using Microsoft.Playwright;
using ModelContextProtocol.Protocol;

namespace Gatehouse.Tests.Admin;

/// <summary>The web console in real headless Chromium against a real gateway, agents calling it over MCP meanwhile.</summary>
[Collection(PostgresCollection.Name)]
public sealed class WebConsoleTests(PostgresFixture pg) : IAsyncLifetime
{
    private const string Policy = """

        approvals:
          approvers: [alice]
          wait: 60s
        admin:
          audience: gatehouse-admin
          users: [alice]
        """;

    private readonly Browser _browser = new();
    private readonly TestGateway _gateway = TestGateway.Create(pg, GuardrailTests.Agents + Policy);
    private HttpGateway _server = null!;
    private IBrowserContext _context = null!;
    private IPage _page = null!;

    public async Task InitializeAsync()
    {
        await _browser.InitializeAsync();
        _server = await HttpGateway.StartAsync(_gateway);
        _context = await _browser.Chromium.NewContextAsync(new() { BaseURL = _server.Endpoint.GetLeftPart(UriPartial.Authority) });
        _page = await _context.NewPageAsync();
        _page.SetDefaultTimeout(20_000);
        Assertions.SetDefaultExpectTimeout(15_000);
    }

    public async Task DisposeAsync()
    {
        await _context.DisposeAsync();
        await _server.DisposeAsync();
        await _browser.DisposeAsync();
    }

    private async Task SignInAsync()
    {
        await _page.GotoAsync("/admin");
        await _page.GetByLabel("Admin token").FillAsync(_gateway.MintAdmin("alice"));
        await _page.GetByRole(AriaRole.Button, new() { Name = "Sign in" }).ClickAsync();
        await Assertions.Expect(_page.Locator("#who")).ToHaveTextAsync("Signed in as alice");
    }

    private async Task<string> QueryAsync(string agent, string sql, object?[]? parameters = null)
    {
        await using var client = await GatewayClients.HttpAsync(_server.Endpoint, _gateway.Mint(agent));
        return (await client.QueryAsync(sql, parameters)).AuditId();
    }

    [Fact]
    public async Task An_agent_token_does_not_open_the_console_and_the_refusal_says_why()
    {
        await _page.GotoAsync("/admin");
        await _page.GetByLabel("Admin token").FillAsync(_gateway.Mint("analyst"));
        await _page.GetByRole(AriaRole.Button, new() { Name = "Sign in" }).ClickAsync();
        await Assertions.Expect(_page.GetByRole(AriaRole.Alert)).ToContainTextAsync("That token does not open the console");
        Assert.Equal(401, (await _page.APIRequest.GetAsync("/admin/api/calls")).Status);
    }

    [Fact]
    public async Task An_admin_filters_the_log_to_one_agent_with_the_keyboard()
    {
        await QueryAsync("analyst", "select count(*) from orders");
        await QueryAsync("ops-bot", "select count(*) from customers");
        await QueryAsync("analyst", "delete from orders");
        await SignInAsync();

        await Assertions.Expect(_page.Locator("tr[data-call]")).Not.ToHaveCountAsync(0);
        await _page.Locator("#filter-agent").SelectOptionAsync("analyst");
        await _page.GetByPlaceholder("SQL, rule or reason").FocusAsync();
        await _page.Keyboard.PressAsync("Enter");
        await _page.WaitForURLAsync("**/admin#/calls?agent=analyst");

        // The URL changes as the filter is submitted, before the table is read again: wait for the rows themselves.
        await Assertions.Expect(_page.Locator("tr[data-call] td:nth-child(2)")).ToHaveTextAsync(["analyst", "analyst"]);
        await Browser.ScreenshotAsync(_page, "calls-filtered-to-analyst");

        var axe = await _page.RunAxe();
        Assert.Empty(axe.Violations.Where(v => v.Impact is "serious" or "critical").Select(v => $"{v.Id}: {v.Help}"));
    }

    [Fact]
    public async Task An_admin_opens_a_refused_call_and_sees_the_sql_rule_and_reason()
    {
        var id = await QueryAsync("analyst", "delete from orders where id = 1");
        await SignInAsync();
        await _page.Locator($"tr[data-call='{id}'] a").ClickAsync();

        await Assertions.Expect(_page.GetByRole(AriaRole.Heading, new() { Name = $"Call {id}" })).ToBeVisibleAsync();
        await Assertions.Expect(_page.Locator("#call-sql")).ToHaveTextAsync("delete from orders where id = 1");
        await Assertions.Expect(_page.Locator("dl.fields")).ToContainTextAsync("grant.read_only");
        await Assertions.Expect(_page.Locator("dl.fields")).ToContainTextAsync("needs write access");
        await Browser.ScreenshotAsync(_page, "call-detail");

        // Its session, replayed as a timeline, holds the call too.
        await _page.Locator("dl.fields a[href^='#/sessions/http-']").ClickAsync();
        await Assertions.Expect(_page.Locator("ol.timeline li")).ToContainTextAsync("delete from orders where id = 1");
        await Browser.ScreenshotAsync(_page, "session-replay");
    }

    [Fact]
    public async Task Bidirectional_overrides_an_agent_hides_in_its_sql_are_shown_not_obeyed()
    {
        // "Trojan source": the override makes the end of the line read right to left, so the SQL would look other than it is.
        var id = await QueryAsync("analyst", "select count(*) from orders /* \u202e ,dil */ where id > 0");
        await SignInAsync();
        await _page.Locator($"tr[data-call='{id}'] a").ClickAsync();
        var shown = await _page.Locator("#call-sql").TextContentAsync();
        Assert.Equal("select count(*) from orders /* \\u202e ,dil */ where id > 0", shown);
        Assert.DoesNotContain('\u202e', shown!);
    }

    [Fact]
    public async Task An_admin_approves_a_pending_statement_and_the_waiting_agents_call_completes()
    {
        await using var agent = await GatewayClients.HttpAsync(_server.Endpoint, _gateway.Mint("ops-bot"));
        var waiting = agent.QueryAsync("update payments set status = status where id = $1", [2]);
        await SignInAsync();
        await _page.GetByRole(AriaRole.Link, new() { Name = "Approvals" }).ClickAsync();

        var card = _page.Locator("section[data-request]");
        await Assertions.Expect(card).ToHaveCountAsync(1);
        await Assertions.Expect(card).ToContainTextAsync("update payments set status = status where id = $1");
        await Assertions.Expect(_page.Locator("#pending-count")).ToHaveTextAsync("1");
        await Browser.ScreenshotAsync(_page, "approvals-pending");
        await card.GetByLabel(new System.Text.RegularExpressions.Regex("^Reason for deciding")).FillAsync("routine fix, checked with finance");
        await card.GetByRole(AriaRole.Button, new() { NameRegex = new("^Approve ") }).ClickAsync();

        var result = await waiting.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.NotEqual(true, result.IsError);
        Assert.Equal(1, result.Structured().GetProperty("affected_rows").GetInt32());
        await Assertions.Expect(_page.Locator("#status")).ToContainTextAsync("Approved");
        await Assertions.Expect(_page.Locator("section[data-request]")).ToHaveCountAsync(0);
        await Browser.ScreenshotAsync(_page, "approvals-approved");
    }

    [Fact]
    public async Task An_admin_grants_an_access_request_from_its_card_which_shows_its_approvals_and_when_it_expires()
    {
        await using var analyst = await GatewayClients.HttpAsync(_server.Endpoint, _gateway.Mint("analyst"));
        var id = (await analyst.RequestAccessAsync(["public.orders"], "write", "fix a typo in a note")).Structured().GetProperty("request_id").GetString()!;
        await SignInAsync();
        await _page.GetByRole(AriaRole.Link, new() { Name = "Approvals" }).ClickAsync();

        var card = _page.Locator($"section[data-request='{id}']");
        await Assertions.Expect(card).ToContainTextAsync("analyst asks for write access for 10m");
        await Assertions.Expect(card).ToContainTextAsync("0/1 approval(s) · expires ");
        await card.GetByRole(AriaRole.Button, new() { Name = $"Approve {id}" }).ClickAsync();

        await Assertions.Expect(_page.Locator("#status")).ToContainTextAsync($"Approved {id}: analyst may write public.orders on shop until");
        await Assertions.Expect(card).ToHaveCountAsync(0);
        Assert.Equal(1, (await analyst.QueryAsync("update orders set note = note where id = 1")).Structured().GetProperty("affected_rows").GetInt32());
    }

    [Fact]
    public async Task The_approvals_list_holds_still_while_the_pointer_is_on_a_request()
    {
        // Newest first: a request filed while an admin aims at a card would slide another card, and its Approve button,
        // under the click. The page waits until the pointer leaves the card.
        await using var agent = await GatewayClients.HttpAsync(_server.Endpoint, _gateway.Mint("ops-bot"));
        var waiting = new List<Task<CallToolResult>> { agent.QueryAsync("update payments set status = status where id = $1", [2]) };
        await SignInAsync();
        await _page.GetByRole(AriaRole.Link, new() { Name = "Approvals" }).ClickAsync();
        var cards = _page.Locator("section[data-request]");
        await Assertions.Expect(cards).ToHaveCountAsync(1);
        var aimed = await cards.First.GetAttributeAsync("data-request");

        await cards.First.GetByRole(AriaRole.Button, new() { NameRegex = new("^Approve ") }).HoverAsync();
        waiting.Add(agent.QueryAsync("update payments set status = status where id = $1", [3]));
        await Eventually.HoldsAsync(async () => await PendingStatementsAsync() == 2, TimeSpan.FromSeconds(20));
        await Assertions.Expect(_page.Locator("#live")).ToHaveTextAsync("Updates paused while you are on a request");
        await Task.Delay(TimeSpan.FromSeconds(3)); // past another refresh, which must not happen either
        await Assertions.Expect(cards).ToHaveCountAsync(1);
        Assert.Equal(aimed, await cards.First.GetAttributeAsync("data-request"));

        await _page.Mouse.MoveAsync(0, 0);
        await Assertions.Expect(cards).ToHaveCountAsync(2);
        Assert.NotEqual(aimed, await cards.First.GetAttributeAsync("data-request"));
        Assert.All(waiting, call => Assert.False(call.IsCompleted));
    }

    private async Task<int> PendingStatementsAsync()
    {
        var response = await _page.APIRequest.GetAsync("/admin/api/requests");
        using var body = JsonDocument.Parse(await response.TextAsync());
        return body.RootElement.GetProperty("statements").GetArrayLength();
    }

    [Fact]
    public async Task An_admin_disables_an_agent_and_its_next_call_is_refused()
    {
        await QueryAsync("analyst", "select 1");
        await SignInAsync();
        await _page.GetByRole(AriaRole.Link, new() { Name = "Agents" }).ClickAsync();
        await _page.GetByRole(AriaRole.Button, new() { Name = "Disable analyst" }).ClickAsync();
        await Assertions.Expect(_page.Locator("#status")).ToContainTextAsync("Agent 'analyst' is disabled");
        await Assertions.Expect(_page.Locator("tr[data-agent='analyst']")).ToContainTextAsync("disabled");
        await Browser.ScreenshotAsync(_page, "agents-analyst-disabled");

        var (status, challenge) = await GatewayClients.KnockAsync(_server.Endpoint, _gateway.Mint("analyst"));
        Assert.Equal(System.Net.HttpStatusCode.Unauthorized, status);
        Assert.Contains("agent 'analyst' has been disabled by an admin", challenge);
        // Other agents are untouched.
        await using var other = await GatewayClients.HttpAsync(_server.Endpoint, _gateway.Mint("ops-bot"));
        Assert.NotEqual(true, (await other.QueryAsync("select 1")).IsError);
    }

    [Fact]
    public async Task A_console_action_without_the_csrf_token_is_refused()
    {
        await SignInAsync();
        // The session cookie rides along, but a forged request cannot know the page's CSRF token.
        var forged = await _page.APIRequest.PostAsync("/admin/api/agents/disable?agent=analyst");
        Assert.Equal(403, forged.Status);
        Assert.Contains("X-Gatehouse-CSRF", await forged.TextAsync());
        var state = await Gatehouse.Connectors.State.SqliteStateStore.OpenAsync(_gateway.Policy.Gateway.StatePath, CancellationToken.None);
        Assert.False(await state.IsDisabledAsync("analyst", CancellationToken.None));
    }
}
