using System.Globalization;

namespace Gatehouse.Enforcement.Policy;

/// <summary>Parses and prints the short durations used in policy files and on the command line (500ms, 30s, 15m, 8h, 7d).</summary>
public static class Durations
{
    public static bool TryParse(string? text, out TimeSpan duration)
    {
        duration = default;
        if (string.IsNullOrWhiteSpace(text))
        {
            return false;
        }

        text = text.Trim();
        var unitStart = text.Length;
        while (unitStart > 0 && char.IsLetter(text[unitStart - 1]))
        {
            unitStart--;
        }

        if (!double.TryParse(text.AsSpan(0, unitStart), NumberStyles.Float, CultureInfo.InvariantCulture, out var amount) || amount < 0)
        {
            return false;
        }

        double? ms = text[unitStart..] switch
        {
            "ms" => amount,
            "s" => amount * 1000,
            "m" => amount * 60_000,
            "h" => amount * 3_600_000,
            "d" => amount * 86_400_000,
            _ => null,
        };
        if (ms is null || ms > TimeSpan.MaxValue.TotalMilliseconds)
        {
            return false;
        }

        duration = TimeSpan.FromMilliseconds(ms.Value);
        return true;
    }

    public static TimeSpan Parse(string text) =>
        TryParse(text, out var d) ? d : throw new FormatException($"'{text}' is not a duration; use a number with ms, s, m, h or d (for example 15m).");

    public static string Format(TimeSpan duration) =>
        duration.TotalDays >= 1 && duration.TotalDays == Math.Floor(duration.TotalDays) ? $"{duration.TotalDays:0}d"
        : duration.TotalHours >= 1 && duration.TotalHours == Math.Floor(duration.TotalHours) ? $"{duration.TotalHours:0}h"
        : duration.TotalMinutes >= 1 && duration.TotalMinutes == Math.Floor(duration.TotalMinutes) ? $"{duration.TotalMinutes:0}m"
        : duration.TotalSeconds >= 1 && duration.TotalSeconds == Math.Floor(duration.TotalSeconds) ? $"{duration.TotalSeconds:0}s"
        : $"{duration.TotalMilliseconds:0}ms";
}
