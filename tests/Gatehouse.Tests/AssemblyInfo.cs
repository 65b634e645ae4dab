using System.Runtime.Versioning;

// The suite starts PostgreSQL with initdb/pg_ctl and checks Unix file modes: it runs on Linux.
[assembly: SupportedOSPlatform("linux")]
