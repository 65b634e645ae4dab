// The micro-benchmarks of issue 8, with BenchmarkDotNet: the lexer, the cached classification path, token validation,
// the content detectors and result masking, the result's JSON, one audit append made durable, and one call's state reads.
// Run all: dotnet run -c Release --project bench/Gatehouse.Micro -- --filter '*'
// One class: ... -- --filter '*Masking*'
using BenchmarkDotNet.Running;

BenchmarkSwitcher.FromAssembly(typeof(Gatehouse.Micro.Lexer).Assembly).Run(args);
