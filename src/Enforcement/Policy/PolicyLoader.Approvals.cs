using YamlDotNet.RepresentationModel;

namespace Gatehouse.Enforcement.Policy;

/// <summary>Reading the <c>approvals</c> section.</summary>
public static partial class PolicyLoader
{
    private static ApprovalSettings ReadApprovals(YamlNodeReader reader, YamlNode? node, string baseDir)
    {
        var d = ApprovalSettings.Default;
        if (node is null)
        {
            return d;
        }

        var e = reader.Mapping(node, "approvals", "approvers", "required", "wait", "pending_ttl", "approval_ttl", "result_ttl", "write_tolerance", "webhook", "reviewer", "max_grant", "groups");
        var approvers = e.TryGetValue("approvers", out var a) ? reader.Strings(a, "approvals.approvers") : d.Approvers;
        var required = e.TryGetValue("required", out var r) ? reader.Int(r, "approvals.required", 1, 100) : d.Required;
        if (approvers.Count > 0 && !e.ContainsKey("groups") && required > approvers.Count)
        {
            reader.Error(e["required"], $"approvals.required is {required}, but only {approvers.Count} approver(s) are named: no request could ever be approved.");
        }

        return new ApprovalSettings(
            approvers,
            required,
            e.TryGetValue("wait", out var w) ? reader.Duration(w, "approvals.wait", TimeSpan.Zero, TimeSpan.FromMinutes(10)) : d.Wait,
            e.TryGetValue("pending_ttl", out var p) ? reader.Duration(p, "approvals.pending_ttl", TimeSpan.FromMinutes(1), TimeSpan.FromDays(7)) : d.PendingLifetime,
            e.TryGetValue("approval_ttl", out var t) ? reader.Duration(t, "approvals.approval_ttl", TimeSpan.FromMinutes(1), TimeSpan.FromDays(1)) : d.ApprovalLifetime,
            e.TryGetValue("result_ttl", out var k) ? reader.Duration(k, "approvals.result_ttl", TimeSpan.FromMinutes(1), TimeSpan.FromDays(1)) : d.ResultLifetime,
            e.TryGetValue("write_tolerance", out var tol) ? reader.Int(tol, "approvals.write_tolerance", 0, int.MaxValue) : d.WriteTolerance)
        {
            Webhook = e.TryGetValue("webhook", out var hook) ? ReadWebhook(reader, hook, baseDir) : null,
            Reviewer = e.TryGetValue("reviewer", out var reviewer) ? ReadReviewer(reader, reviewer, baseDir) : null,
            ApproverGroups = e.TryGetValue("groups", out var approverGroups) ? reader.Strings(approverGroups, "approvals.groups") : [],
            MaxGrant = e.TryGetValue("max_grant", out var max) ? reader.Duration(max, "approvals.max_grant", TimeSpan.FromMinutes(1), TimeSpan.FromDays(30)) : d.MaxGrant,
        };
    }

    private static ReviewerSettings? ReadReviewer(YamlNodeReader reader, YamlNode node, string baseDir)
    {
        var e = reader.Mapping(node, "approvals.reviewer", "endpoint", "model", "api_key_env", "api_key_file", "timeout");
        var endpoint = reader.String(e, "endpoint", "approvals.reviewer.endpoint", requiredAt: node);
        var model = reader.String(e, "model", "approvals.reviewer.model", requiredAt: node);
        if (endpoint is null || model is null)
        {
            return null;
        }

        if (!Uri.TryCreate(endpoint, UriKind.Absolute, out var uri) || uri.Scheme is not ("https" or "http"))
        {
            reader.Error(e["endpoint"], $"approvals.reviewer.endpoint '{endpoint}' is not an http(s) URL.");
            return null;
        }

        var key = ReadSecret(reader, e, node, "approvals.reviewer", baseDir, "api_key_env", "api_key_file");
        var timeout = e.TryGetValue("timeout", out var t) ? reader.Duration(t, "approvals.reviewer.timeout", TimeSpan.FromSeconds(1), TimeSpan.FromMinutes(5)) : TimeSpan.FromSeconds(30);
        return new ReviewerSettings(uri, model, key, timeout);
    }

    private static AdminSettings? ReadAdmin(YamlNodeReader reader, YamlNode node, IReadOnlyList<IssuerConfig> issuers)
    {
        var e = reader.Mapping(node, "admin", "audience", "users", "groups", "issuers");
        var audience = reader.String(e, "audience", "admin.audience", requiredAt: node);
        var users = e.TryGetValue("users", out var u) ? reader.Strings(u, "admin.users") : [];
        var groups = e.TryGetValue("groups", out var g) ? reader.Strings(g, "admin.groups") : [];
        var adminIssuers = e.TryGetValue("issuers", out var ai)
            ? reader.Strings(ai, "admin.issuers")
            : issuers.Where(i => i.SharedSecret == SecretSource.None).Select(i => i.Issuer).ToList();
        foreach (var unknown in adminIssuers.Where(name => issuers.All(i => i.Issuer != name)))
        {
            reader.Error(e["issuers"], $"admin.issuers names '{unknown}', which is not one of the trusted issuers.");
        }

        if (adminIssuers.Count == 0)
        {
            reader.Error(node, "admin: no issuer may sign admin tokens (every trusted issuer signs with a shared secret, which whoever holds it could mint an admin's name with); list the ones that may under admin.issuers.");
        }

        if (audience is null)
        {
            return null;
        }

        if (issuers.Any(i => i.Audiences.Contains(audience, StringComparer.Ordinal)))
        {
            // Otherwise an agent's own token would open the admin API.
            reader.Error(e["audience"], $"admin.audience '{audience}' is also an agent audience; use one no agent token is minted for, such as gatehouse-admin.");
        }

        if (users.Count == 0 && groups.Count == 0)
        {
            reader.Error(node, "admin: name the users or groups who may use the admin API.");
        }

        return new AdminSettings(audience, users, groups) { Issuers = adminIssuers };
    }

    private static WebhookSettings? ReadWebhook(YamlNodeReader reader, YamlNode node, string baseDir)
    {
        var e = reader.Mapping(node, "approvals.webhook", "url", "secret_env", "secret_file");
        var url = reader.String(e, "url", "approvals.webhook.url", requiredAt: node);
        if (url is null)
        {
            return null;
        }

        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("https" or "http"))
        {
            reader.Error(e["url"], $"approvals.webhook.url '{url}' is not an http(s) URL.");
            return null;
        }

        var secret = ReadSecret(reader, e, node, "approvals.webhook", baseDir, "secret_env", "secret_file");
        return new WebhookSettings(uri, secret);
    }
}
