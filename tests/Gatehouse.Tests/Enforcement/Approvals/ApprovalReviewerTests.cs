using Gatehouse.Enforcement.Approvals;
using Microsoft.Extensions.AI;

namespace Gatehouse.Tests.Enforcement.Approvals;

public sealed class ApprovalReviewerTests
{
    private static StatementApproval Request(int i)
    {
        var now = DateTimeOffset.UtcNow;
        return new StatementApproval(
            StatementApproval.NewId(), "ops-bot", "ops-bot", "dev", "shop", StatementApproval.Hash($"delete from payments where id = {i}"), StatementApproval.Hash(""),
            $"delete from payments where id = {i}", null, "delete: public.payments(delete)", "guard.payments", "Payments are changed by people", 1,
            StatementApprovalStatus.Pending, now, now.AddHours(1));
    }

    [Fact]
    public async Task At_most_four_reviews_are_with_the_model_at_once_and_the_others_wait_their_turn()
    {
        var model = new HeldModel();
        var reviewer = new ApprovalReviewer(model, TimeSpan.FromSeconds(30));

        var reviews = Enumerable.Range(0, 10).Select(i => reviewer.ReviewAsync(Request(i), CancellationToken.None)).ToList();
        await model.Reached(ApprovalReviewer.MaxAtOnce).WaitAsync(TimeSpan.FromSeconds(10));
        await Task.Delay(300);
        Assert.Equal(ApprovalReviewer.MaxAtOnce, model.AtOnce);
        Assert.All(reviews, r => Assert.False(r.IsCompleted));

        // As the model answers, the six that waited get their places, and every request is reviewed.
        model.Answer();
        var texts = await Task.WhenAll(reviews).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.All(texts, t => Assert.Equal("Deletes one payment.", t));
        Assert.Equal(ApprovalReviewer.MaxAtOnce, model.MostAtOnce);
    }

    [Fact]
    public async Task A_review_that_finds_no_place_in_time_or_whose_model_does_not_answer_in_time_is_not_made_and_says_which()
    {
        // Four held by a model that does not stop when asked to: the fifth finds no place before its timeout.
        var stubborn = new HeldModel { HonoursCancellation = false };
        var reviewer = new ApprovalReviewer(stubborn, TimeSpan.FromMilliseconds(500));
        var held = Enumerable.Range(0, ApprovalReviewer.MaxAtOnce).Select(i => reviewer.ReviewAsync(Request(i), CancellationToken.None)).ToList();
        await stubborn.Reached(ApprovalReviewer.MaxAtOnce).WaitAsync(TimeSpan.FromSeconds(10));
        var unplaced = await Assert.ThrowsAsync<TimeoutException>(() => reviewer.ReviewAsync(Request(9), CancellationToken.None));
        Assert.Contains("the reviewer had 4 others with the model for the whole 0.5 s timeout", unplaced.Message);

        // Their places come back as they end.
        stubborn.Answer();
        await Task.WhenAll(held).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal("Deletes one payment.", await reviewer.ReviewAsync(Request(10), CancellationToken.None));

        var silent = new ApprovalReviewer(new HeldModel(), TimeSpan.FromMilliseconds(300));
        var unanswered = await Assert.ThrowsAsync<TimeoutException>(() => silent.ReviewAsync(Request(11), CancellationToken.None));
        Assert.Contains("the model did not answer within the 0.3 s timeout", unanswered.Message);
    }

    /// <summary>A model that holds every request until told to answer, counting how many it holds.</summary>
    private sealed class HeldModel : IChatClient
    {
        private readonly TaskCompletionSource _answer = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _reached = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _atOnce;
        private int _most;
        private int _awaited;

        public int AtOnce => Volatile.Read(ref _atOnce);

        /// <summary>Whether it stops waiting when the caller cancels (some clients do not).</summary>
        public bool HonoursCancellation { get; init; } = true;

        public int MostAtOnce => Volatile.Read(ref _most);

        public Task Reached(int count)
        {
            _awaited = count;
            return AtOnce >= count ? Task.CompletedTask : _reached.Task;
        }

        public void Answer() => _answer.TrySetResult();

        public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
        {
            var now = Interlocked.Increment(ref _atOnce);
            InterlockedMax(ref _most, now);
            if (_awaited > 0 && now >= _awaited)
            {
                _reached.TrySetResult();
            }

            try
            {
                await _answer.Task.WaitAsync(HonoursCancellation ? cancellationToken : CancellationToken.None);
                return new ChatResponse(new ChatMessage(ChatRole.Assistant, "Deletes one payment."));
            }
            finally
            {
                Interlocked.Decrement(ref _atOnce);
            }
        }

        public IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
            throw new NotSupportedException();

        public object? GetService(Type serviceType, object? serviceKey = null) => null;

        public void Dispose()
        {
        }

        private static void InterlockedMax(ref int location, int value)
        {
            int seen;
            while ((seen = Volatile.Read(ref location)) < value && Interlocked.CompareExchange(ref location, value, seen) != seen)
            {
            }
        }
    }
}
