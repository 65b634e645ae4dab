namespace Gatehouse.Enforcement.Pipeline;

/// <summary>
/// Graceful shutdown for the pipeline: once stopping, new calls are refused (and recorded); calls in flight may finish
/// until a deadline, after which they are cut off, and each cut-off call is recorded as such before the stores close.
/// </summary>
public sealed class GatewayLifetime
{
    private readonly CancellationTokenSource _cutOff = new();
    private readonly TaskCompletionSource _drained = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly object _gate = new();
    private int _inFlight;
    private bool _stopping;

    public bool IsStopping => Volatile.Read(ref _stopping);

    /// <summary>Cancelled when the shutdown deadline passes with calls still running.</summary>
    public CancellationToken CutOff => _cutOff.Token;

    public int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>A call starting: null once the gateway is stopping (the call is refused), else a lease to dispose when it ends.</summary>
    public IDisposable? TryEnter()
    {
        lock (_gate)
        {
            if (_stopping)
            {
                return null;
            }

            _inFlight++;
            return new Lease(this);
        }
    }

    /// <summary>
    /// Stops taking calls, waits up to <paramref name="deadline"/> for those in flight, then cuts off the rest and waits up
    /// to <paramref name="recordGrace"/> for them to record how they ended. Returns how many were cut off.
    /// </summary>
    public async Task<int> StopAsync(TimeSpan deadline, TimeSpan recordGrace)
    {
        lock (_gate)
        {
            _stopping = true;
            if (_inFlight == 0)
            {
                _drained.TrySetResult();
            }
        }

        if (await Finished(deadline).ConfigureAwait(false))
        {
            return 0;
        }

        var cut = InFlight;
        await _cutOff.CancelAsync().ConfigureAwait(false);
        await Finished(recordGrace).ConfigureAwait(false);
        return cut;
    }

    private async Task<bool> Finished(TimeSpan within)
    {
        try
        {
            await _drained.Task.WaitAsync(within).ConfigureAwait(false);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    private void Exit()
    {
        lock (_gate)
        {
            if (--_inFlight == 0 && _stopping)
            {
                _drained.TrySetResult();
            }
        }
    }

    private sealed class Lease(GatewayLifetime lifetime) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                lifetime.Exit();
            }
        }
    }
}
