using Gatehouse.Enforcement.Masking;
using Microsoft.Extensions.AI;

namespace Gatehouse.Enforcement.Approvals;

/// <summary>
/// The optional AI reviewer: a short risk summary of a statement request for its approvers, from any chat model behind
/// <see cref="IChatClient"/>. It informs and never decides. Everything sent to the model, and everything it says, passes the
/// content detectors first, so no recognisable sensitive value leaves for a third party or comes back into the record.
/// At most <see cref="MaxAtOnce"/> reviews are with the model at once: agents filing requests (each up to its cap of waiting
/// ones) cannot make the gateway send the model, and pay for, more at a time. A review that finds no place within the
/// timeout is not made.
/// </summary>
public sealed class ApprovalReviewer(IChatClient chat, TimeSpan timeout)
{
    public const int MaxAtOnce = 4;

    private readonly SemaphoreSlim _places = new(MaxAtOnce, MaxAtOnce);

    private const string Instructions =
        "You help a human decide whether an AI agent may run a SQL statement against a production database. "
        + "In at most three short sentences say what the statement does, which data it reads or changes, and the main risk. "
        + "Do not approve or deny; the human decides.";

    public async Task<string?> ReviewAsync(StatementApproval request, CancellationToken cancellationToken)
    {
        var counts = new MaskingCounts();
        var facts = string.Join('\n',
            $"Agent: {request.Agent}",
            $"Connection: {request.Connection}",
            $"Why it needs approval: {request.Rule}: {request.Reason}",
            $"What the database plan says it touches: {request.Classification}",
            $"Statement: {request.Sql}",
            $"Parameters: {request.Parameters ?? "none"}",
            request.DryRunRows is { } rows ? $"A rolled-back dry run touched {rows} row(s)." : "It only reads.");
        // One timeout for the whole review: the wait for a place, then the model's answer.
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(timeout);
        var placed = false;
        ChatResponse response;
        try
        {
            await _places.WaitAsync(limit.Token).ConfigureAwait(false);
            placed = true;
            response = await chat.GetResponseAsync(
                [new ChatMessage(ChatRole.System, Instructions), new ChatMessage(ChatRole.User, ContentDetectors.Mask(facts, counts))],
                new ChatOptions { Temperature = 0, MaxOutputTokens = 300 },
                limit.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (limit.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException(placed
                ? $"request {request.Id} was not reviewed: the model did not answer within the {timeout.TotalSeconds:0.#} s timeout"
                : $"request {request.Id} was not reviewed: the reviewer had {MaxAtOnce} others with the model for the whole {timeout.TotalSeconds:0.#} s timeout");
        }
        finally
        {
            if (placed)
            {
                _places.Release();
            }
        }

        var text = ContentDetectors.Mask(response.Text.Trim(), counts);
        return text.Length == 0 ? null : text.Length <= 1000 ? text : text[..1000] + "…";
    }
}
