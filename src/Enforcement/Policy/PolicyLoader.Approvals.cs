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
        // Each person decides once, so a name listed twice counts once toward required.
        foreach (var twice in approvers.GroupBy(name => name, StringComparer.Ordinal).Where(g => g.Count() > 1))
        {
            reader.Error(a!, $"approvals.approvers names '{twice.Key}' {twice.Count()} times; each person decides once, so list each once.");
        }

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
        // Admins are named, not bound to an issuer: any issuer allowed here could mint an admin's name. With one issuer that
        // signs with its own key that is the only choice; otherwise the policy must say, since one of them may well be where
        // the agents' own tokens come from (an agent platform), and whoever holds a shared secret can mint any name.
        IReadOnlyList<string> adminIssuers = [];
        if (e.TryGetValue("issuers", out var ai))
        {
            adminIssuers = reader.Strings(ai, "admin.issuers");
            foreach (var unknown in adminIssuers.Where(name => issuers.All(i => i.Issuer != name)))
            {
                reader.Error(ai, $"admin.issuers names '{unknown}', which is not one of the trusted issuers.");
            }
        }
        else if (issuers is [{ } only] && only.SharedSecret == SecretSource.None)
        {
            adminIssuers = [only.Issuer];
        }
        else if (issuers.Count > 0)
        {
            reader.Error(node, $"admin: {issuers.Count} issuer(s) are trusted{(issuers.Count == 1 ? ", signing with a shared secret" : "")}; name under admin.issuers the one(s) whose tokens may open the admin API (an issuer that signs agents' tokens, or whoever holds a shared secret, could otherwise mint an admin's name).");
        }

        if (audience is null)
        {
            return null;
        }

        if (issuers.SelectMany(i => i.Audiences).Any(a => string.Equals(a.TrimEnd('/'), audience.TrimEnd('/'), StringComparison.OrdinalIgnoreCase)))
        {
            // Otherwise an agent's own token would open the admin API.
            reader.Error(e["audience"], $"admin.audience '{audience}' is also an agent audience (or differs from one only in case or a trailing slash); use one no agent token is minted for, such as gatehouse-admin.");
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
