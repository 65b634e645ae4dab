namespace Gatehouse.Connectors.Postgres;

/// <summary>
/// PostgreSQL's dates and timestamps from their wire values: days or microseconds since 2000-01-01, with the extremes of the
/// integer standing for <c>infinity</c> and <c>-infinity</c>. A value .NET cannot hold throws, for the caller's note.
/// </summary>
internal static class PostgresTime
{
    public const uint DateOid = 1082;
    public const uint TimestampOid = 1114;
    public const uint TimestampTzOid = 1184;

    private static readonly int EpochDay = new DateOnly(2000, 1, 1).DayNumber;
    private static readonly long EpochTicks = new DateTime(2000, 1, 1).Ticks;

    public static object Date(int days) => days switch
    {
        int.MaxValue => "infinity",
        int.MinValue => "-infinity",
        _ => DateOnly.FromDayNumber(checked(EpochDay + days)),
    };

    public static object Timestamp(long microseconds, DateTimeKind kind) => microseconds switch
    {
        long.MaxValue => "infinity",
        long.MinValue => "-infinity",
        _ => new DateTime(checked(EpochTicks + (microseconds * TimeSpan.TicksPerMicrosecond)), kind),
    };
}
