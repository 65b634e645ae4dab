using Gatehouse.Enforcement.Audit;

namespace Gatehouse.Tests.Enforcement.Audit;

public sealed class AuditChainTests
{
    private static AuditRecord Record(string agent) => new()
    {
        Id = AuditRecord.NewId(),
        Time = DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000),
        Tool = "query",
        Transport = "stdio",
        Agent = agent,
        Decision = Verdict.Allowed,
        Rule = "query.allowed",
        Reason = "allowed",
    };

    // Seals records the way a gateway does, but with the sealed text an older version would have written.
    private static List<ChainEntry> Seal(IEnumerable<(AuditRecord Record, string Sealed)> items)
    {
        var chain = new List<ChainEntry>();
        var prev = AuditChain.Genesis;
        foreach (var (record, text) in items)
        {
            var hash = AuditChain.Hash(prev, text);
            chain.Add(new ChainEntry(chain.Count + 1, record.Id, prev, hash, text));
            prev = hash;
        }

        return chain;
    }

    private static ChainReport Verify(List<ChainEntry> chain, AuditRecord stored)
    {
        var verifier = new ChainVerifier(null, null);
        chain.ForEach(verifier.Link);
        verifier.Record(stored.Id, stored, chain[^1]);
        return verifier.Report();
    }

    [Fact]
    public void A_link_is_the_sha256_of_the_previous_hash_a_newline_and_the_sealed_text_in_utf8()
    {
        // Expected values from Python's hashlib over the same bytes: stores sealed by any version must keep verifying. The
        // first record is small enough to be hashed from a pooled buffer, the second is not.
        Assert.Equal("4b16ea61f3a9e5c5f4d05f7013298128d911e4f6b5789dc9e55d78bbe12404fb", AuditChain.Hash(AuditChain.Genesis, "{\"Sql\":\"select été from café -- \U0001F600\"}"));
        Assert.Equal("7878effb69bc37c2a66ea5fba5f95ff45f143d82dc53ed2d2593ec5d6e93cdc2", AuditChain.Hash(string.Concat(Enumerable.Repeat("0f", 32)), new string('x', 100_000)));
        // A lone surrogate is encoded as U+FFFD, as it always was.
        Assert.Equal("fedf9f3c27b6f8837400405134244f54c320426c61b8244b168c9d0e8478d410", AuditChain.Hash(AuditChain.Genesis, "a\uD800b"));
    }

    [Fact]
    public void A_record_sealed_before_a_field_existed_still_verifies_after_an_upgrade()
    {
        var record = Record("analyst");
        var olderSealedText = AuditChain.Canonical(record).Replace(",\"Result\":null", "", StringComparison.Ordinal);
        Assert.DoesNotContain("Result", olderSealedText);

        var report = Verify(Seal([(record, olderSealedText)]), record);
        Assert.True(report.Intact, string.Join("; ", report.Problems));
    }

    [Fact]
    public void A_changed_value_is_still_caught_in_a_record_sealed_by_an_older_version()
    {
        var record = Record("analyst");
        var olderSealedText = AuditChain.Canonical(record).Replace(",\"Result\":null", "", StringComparison.Ordinal);

        var report = Verify(Seal([(record, olderSealedText)]), record with { Reason = "nothing to see" });
        Assert.Contains(report.Problems, p => p.Contains("was modified after it was sealed", StringComparison.Ordinal));
        Assert.False(AuditChain.SameRecord(record with { Result = "{}" }, olderSealedText));
    }

    [Fact]
    public void Past_a_thousand_problems_the_rest_are_counted_not_listed()
    {
        // A log changed throughout would otherwise fill verify's memory with sentences.
        var records = Enumerable.Range(0, ChainVerifier.ListedProblems + 500).Select(i => Record($"agent{i}")).ToList();
        var chain = Seal(records.Select(r => (r, AuditChain.Canonical(r))));
        var verifier = new ChainVerifier(null, null);
        chain.ForEach(verifier.Link);
        for (var i = 0; i < records.Count; i++)
        {
            verifier.Record(records[i].Id, records[i] with { Reason = "nothing to see" }, chain[i]);
        }

        var report = verifier.Report();
        Assert.False(report.Intact);
        Assert.Equal(ChainVerifier.ListedProblems, report.Problems.Count);
        Assert.Equal(500, report.Unlisted);
        Assert.Equal(records.Count, report.ProblemCount);
        Assert.Equal(records.Count, report.Sealed);
    }

    [Fact]
    public void A_link_whose_record_is_gone_is_a_deleted_record_and_a_started_record_without_one_is_open()
    {
        var sealedRecord = Record("analyst");
        var chain = Seal([(sealedRecord, AuditChain.Canonical(sealedRecord))]);
        var verifier = new ChainVerifier(null, null);
        chain.ForEach(verifier.Link);
        verifier.Record(null, null, chain[0]);
        verifier.Record("aud_open", Record("analyst") with { Id = "aud_open", Decision = Verdict.Started }, null);

        var report = verifier.Report();
        Assert.Equal([$"record {sealedRecord.Id} was deleted (sealed at link 1)"], report.Problems);
        Assert.Equal(1, report.Sealed);
        Assert.Equal(1, report.Open);
    }

    [Fact]
    public void The_sealed_text_of_a_record_is_the_same_as_every_earlier_version_wrote()
    {
        // Every field set, with text JSON must escape: a store sealed by any earlier version must keep verifying, so the
        // canonical text may not change by a byte, whatever serializes it.
        var record = new AuditRecord
        {
            Id = "aud_0193a3b4c5d6e7f8a9b0c1d2e3f4a5b6",
            Time = new DateTimeOffset(2026, 12, 6, 9, 30, 15, 123, TimeSpan.FromHours(1)).AddTicks(4567),
            Tool = "query",
            Transport = "http",
            SessionId = "http-0123456789abcdef",
            Agent = "analyst",
            Groups = ["finance", "ops <night>"],
            Issuer = "https://issuer.example/realms/a+b",
            Subject = "user:42",
            TokenId = "jti-1",
            ClientId = "claude",
            DelegatedBy = "ana@example.com",
            Connection = "shop",
            Sql = "select 'café', \"x\" from t where a < 1 & b > 2 -- \U0001F600\n\tnext",
            Parameters = "[1,\"two\",null]",
            Classification = "select: public.orders(read)",
            Decision = Verdict.Denied,
            Rule = "guard.no_where",
            Reason = "it's refused",
            RowCount = 12,
            DurationMs = 1.25,
            Error = "none",
            Masking = "email:3",
            Result = "{\"rows\":[]}",
        };

        // Written by the reflection-based serializer that sealed every store up to now.
        const string Sealed = """{"Id":"aud_0193a3b4c5d6e7f8a9b0c1d2e3f4a5b6","Time":"2026-12-06T09:30:15.1234567+01:00","Tool":"query","Transport":"http","SessionId":"http-0123456789abcdef","Agent":"analyst","Groups":["finance","ops \u003Cnight\u003E"],"Issuer":"https://issuer.example/realms/a\u002Bb","Subject":"user:42","TokenId":"jti-1","ClientId":"claude","DelegatedBy":"ana@example.com","Connection":"shop","Sql":"select \u0027caf\u00E9\u0027, \u0022x\u0022 from t where a \u003C 1 \u0026 b \u003E 2 -- \uD83D\uDE00\n\tnext","Parameters":"[1,\u0022two\u0022,null]","Classification":"select: public.orders(read)","Decision":2,"Rule":"guard.no_where","Reason":"it\u0027s refused","RowCount":12,"DurationMs":1.25,"Error":"none","Masking":"email:3","Result":"{\u0022rows\u0022:[]}"}""";
        Assert.Equal(Sealed, AuditChain.Canonical(record));
        Assert.True(AuditChain.SameRecord(record, Sealed));
    }
}
