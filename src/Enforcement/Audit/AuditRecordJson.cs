using System.Text.Json.Serialization;

namespace Gatehouse.Enforcement.Audit;

/// <summary>
/// An audit record's JSON, generated at build time: the canonical text the hash chain seals for every call, written by
/// generated code instead of the serializer's reflection. Default options, so the text is the same, byte for byte, as the
/// reflection-based serializer wrote into every store sealed before it.
/// </summary>
[JsonSerializable(typeof(AuditRecord))]
internal sealed partial class AuditRecordJson : JsonSerializerContext;
