using Gatehouse.Enforcement.Audit;
using Gatehouse.Enforcement.Pipeline;

namespace Gatehouse.Tests.Enforcement.Pipeline;

public sealed partial class GatewayPipelineTests
{
    [Fact]
    public async Task A_stopping_gateway_refuses_new_calls_and_records_them()
    {
        Assert.Equal(0, await _lifetime.StopAsync(TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(1)));

        var outcome = await Query("select * from orders");

        Assert.Equal("gateway.shutting_down", outcome.Decision.Rule);
        var record = _audit.Completed[outcome.AuditId!];
        Assert.Equal(Verdict.Denied, record.Decision);
        Assert.Equal("analyst", record.Agent);
        Assert.Equal(0, _database.Executions);
    }

    [Fact]
    public async Task A_call_in_flight_finishes_before_the_gateway_stops()
    {
        var release = new TaskCompletionSource();
        _database.Hold = _ => release.Task;
        var call = Query("select * from orders");
        await WaitUntil(() => _database.Executions == 1);

        var stopping = _lifetime.StopAsync(TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(1));
        await Task.Delay(100);
        Assert.False(stopping.IsCompleted);
        release.SetResult();

        Assert.Equal(0, await stopping);
        var outcome = await call;
        Assert.True(outcome.Decision.IsAllowed);
        Assert.Equal(Verdict.Allowed, _audit.Completed[outcome.AuditId!].Decision);
    }

    [Fact]
    public async Task A_call_still_running_at_the_deadline_is_cut_off_and_recorded_as_such()
    {
        _database.Hold = ct => Task.Delay(Timeout.Infinite, ct);
        var call = Query("select * from orders");
        await WaitUntil(() => _database.Executions == 1);

        Assert.Equal(1, await _lifetime.StopAsync(TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(5)));

        var outcome = await call;
        Assert.Equal("gateway.shutdown", outcome.Decision.Rule);
        var record = _audit.Completed[outcome.AuditId!];
        Assert.Equal(Verdict.Failed, record.Decision);
        Assert.Contains("shut down", record.Reason, StringComparison.Ordinal);
        Assert.Equal(0, _lifetime.InFlight);
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        for (var i = 0; i < 500 && !condition(); i++)
        {
            await Task.Delay(10);
        }

        Assert.True(condition());
    }
}
